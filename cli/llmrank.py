"""`synthrank llmrank`: the LIMRANK-style LLM reranker: convert a GGUF, LoRA-train, score candidates."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import click

from synthrank_cli.options import friendly_errors, load_config, merge_config, prepare_output_dir

# what `train` writes; --restart removes them
TRAIN_OUTPUTS = ("checkpoints", "adapter", "merged", "metrics.json", "README.md", "examples.jsonl", "train_config.json")


@click.group()
def llmrank() -> None:
    """Pointwise LLM reranker (LIMRANK-style): a causal LM answering "relevant? true/false", tuned with LoRA."""


@llmrank.command()
@click.argument("model")
@click.option("--output-dir", type=click.Path(file_okay=False),
              help="Folder for the converted model [default: the model cache, reused by every command].")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default="float32", show_default=True,
              help="Stored weight type (float32 keeps the dequantized values exactly).")
@click.option("--overwrite", is_flag=True, help="Convert again into an existing folder.")
@friendly_errors
def convert(model: str, output_dir: str | None, dtype: str, overwrite: bool) -> None:
    """Turn a GGUF LLM (packaged name such as qwen2.5-coder-0.5b, or a .gguf file) into a Hugging Face folder.

    Loading a GGUF dequantizes it (~100 s for 0.5B parameters); the folder loads in seconds.
    Prints the folder.
    """
    from synthrank.llmrank.convert import convert_gguf_to_hf, resolve_causal_lm
    from synthrank.models.gguf import resolve_gguf

    if output_dir is None:
        click.echo(str(resolve_causal_lm(model, dtype=dtype)))
        return
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise click.UsageError(f"{out} exists and is not empty; pass --overwrite to convert into it again")
    click.echo(str(convert_gguf_to_hf(resolve_gguf(model), out, dtype=dtype, overwrite=True)))


@llmrank.command()
@click.option("--base-model", default="qwen2.5-coder-0.5b", show_default=True,
              help="Packaged GGUF name, .gguf file, Hugging Face folder or hub id of the causal LM to tune.")
@click.option("--groups", type=click.Path(exists=True, dir_okay=False),
              help="Training groups JSONL (`synthrank mine`/`label`): positive vs hard negatives.")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False),
              help="Judge labels JSONL (query_id, doc_id, grade[, reason]); needs --queries and --corpus.")
@click.option("--examples", type=click.Path(exists=True, dir_okay=False),
              help="Ready SFT examples JSONL (query, passage, label[, reason]).")
@click.option("--queries", type=click.Path(exists=True, dir_okay=False),
              help="Query texts for --labels: synthetic queries JSONL or BEIR queries.")
@click.option("--corpus", help="Passage texts for --labels: BEIR folder or corpus file (title + text is used).")
@click.option("--output-dir", required=True, type=click.Path(file_okay=False),
              help="Writes adapter/, merged/, checkpoints/, metrics.json, README.md, examples.jsonl.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="YAML with any of these options (flags win).")
@click.option("--negatives-per-positive", default=1, show_default=True, type=click.IntRange(0),
              help="Hard negatives per positive (1 = balanced classes).")
@click.option("--min-positive-grade", default=2, show_default=True, type=int, help="Labels: grade from which a pair is relevant.")
@click.option("--max-negative-grade", default=0, show_default=True, type=int,
              help="Grade up to which a pair is a negative (labels and judged groups; higher ones are left out).")
@click.option("--max-examples", type=click.IntRange(2), help="Use only the first N examples (after the seeded shuffle).")
@click.option("--max-length", default=256, show_default=True, type=click.IntRange(32), help="Tokens per example.")
@click.option("--epochs", default=1, show_default=True, type=click.IntRange(1))
@click.option("--max-steps", type=click.IntRange(1), help="Stop after this many optimizer steps.")
@click.option("--batch-size", default=4, show_default=True, type=click.IntRange(1))
@click.option("--grad-accum", default=4, show_default=True, type=click.IntRange(1), help="Gradient accumulation steps.")
@click.option("--learning-rate", default=2e-4, show_default=True, type=float)
@click.option("--lora-r", default=16, show_default=True, type=click.IntRange(1))
@click.option("--lora-alpha", default=32, show_default=True, type=int)
@click.option("--lora-dropout", default=0.05, show_default=True, type=float)
@click.option("--lora-layers", type=click.IntRange(1), help="Adapt only the last N layers (cheaper backward pass).")
@click.option("--reasoning/--no-reasoning", default=False, show_default=True,
              help="Train a one-line reason before the answer (needs labels with reasons; slower to score).")
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--checkpoint-every", default=50, show_default=True, type=click.IntRange(0), help="Optimizer steps between checkpoints.")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 [default: CUDA when present].")
@click.option("--bf16/--no-bf16", default=True, show_default=True, help="bfloat16 autocast on CUDA (ignored on CPU).")
@click.option("--merge/--no-merge", default=True, show_default=True, help="Also write merged/ (adapter folded into the base).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--overwrite", is_flag=True, help="Write into a non-empty output folder (resumes a run that is there).")
@click.option("--restart", is_flag=True, help="Discard checkpoints and models in the output folder and start over.")
@click.pass_context
@friendly_errors
def train(ctx: click.Context, output_dir: str, config_file: str | None, overwrite: bool, restart: bool, **options: Any) -> None:
    """LoRA-tune a causal LM into a pointwise reranker on groups, labels or examples.

    Resumes from the last checkpoint when the output folder holds a stopped run with the same settings.
    """
    from synthrank.data import read_corpus, read_groups, write_json
    from synthrank.llmrank import (
        LoRATrainer,
        LoRATrainingConfig,
        PointwisePrompt,
        class_counts,
        examples_from_groups,
        examples_from_labels,
        read_examples,
        read_query_texts,
        write_examples,
    )

    opts = merge_config(ctx, load_config(config_file), **options)
    out = Path(output_dir)
    ours = out.exists() and any((out / name).exists() for name in ("checkpoints", "metrics.json"))
    if restart:
        for name in TRAIN_OUTPUTS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    prepare_output_dir(out, overwrite=overwrite or restart, resume=ours and not restart)

    sources = [s for s in ("groups", "labels", "examples") if opts.get(s)]
    if len(sources) != 1:
        raise click.UsageError("give exactly one of --groups, --labels or --examples")
    if opts["groups"]:
        examples = examples_from_groups(
            read_groups(opts["groups"]),
            negatives_per_positive=opts["negatives_per_positive"],
            max_negative_grade=opts["max_negative_grade"],
            seed=opts["seed"],
        )
    elif opts["labels"]:
        if not opts["queries"] or not opts["corpus"]:
            raise click.UsageError("--labels needs --queries (query texts) and --corpus (passage texts)")
        corpus = read_corpus(opts["corpus"])
        examples = examples_from_labels(
            opts["labels"],
            queries=read_query_texts(opts["queries"]),
            passages={doc_id: doc.full_text() for doc_id, doc in corpus.items()},
            min_positive_grade=opts["min_positive_grade"],
            max_negative_grade=opts["max_negative_grade"],
            negatives_per_positive=opts["negatives_per_positive"],
            seed=opts["seed"],
        )
    else:
        examples = read_examples(opts["examples"])
    if opts["max_examples"]:
        examples = examples[: opts["max_examples"]]
    counts = class_counts(examples)
    click.echo(f"{counts['examples']} examples ({counts['positives']} relevant, {counts['negatives']} not relevant)")

    config = LoRATrainingConfig(
        base_model=opts["base_model"],
        max_length=opts["max_length"],
        epochs=opts["epochs"],
        max_steps=opts["max_steps"],
        batch_size=opts["batch_size"],
        gradient_accumulation_steps=opts["grad_accum"],
        learning_rate=opts["learning_rate"],
        lora_r=opts["lora_r"],
        lora_alpha=opts["lora_alpha"],
        lora_dropout=opts["lora_dropout"],
        lora_layers=opts["lora_layers"],
        seed=opts["seed"],
        checkpoint_every=opts["checkpoint_every"],
        device=opts["device"],
        bf16=opts["bf16"],
        merge=opts["merge"],
        prompt=PointwisePrompt(reasoning=opts["reasoning"]),
    )
    write_examples(out / "examples.jsonl", examples)
    write_json(out / "train_config.json", {**config.to_dict(), "data": {k: opts[k] for k in sources}})
    result = LoRATrainer(config, out).train(examples, resume=True, show_progress=opts["progress"])
    m = result.metrics
    click.echo(
        f"trained {m['global_step']} steps in {m['train_seconds']:.0f} s; final loss {m['final_loss']:.4f}, "
        f"answer accuracy {m['final_answer_accuracy']:.3f}"
    )
    click.echo(f"model: {result.model_dir}")


@llmrank.command()
@click.option("--model", help="Trained output folder (or merged/adapter folder), packaged GGUF name, HF folder or hub id.")
@click.option("--endpoint", help="Score through an OpenAI-compatible server instead (e.g. http://127.0.0.1:8000/v1).")
@click.option("--endpoint-model", help="Model name the endpoint serves (with --endpoint).")
@click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True,
              help="Environment variable holding the endpoint's key (never logged or saved).")
@click.option("--candidates", "candidates_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Candidates JSONL (query_id, query, candidates: [{doc_id, rank, score}]), e.g. from `synthrank mine`.")
@click.option("--corpus", required=True, help="BEIR folder or corpus file with the candidates' texts (title + text is scored).")
@click.option("--output", required=True, type=click.Path(dir_okay=False),
              help="Reranked JSONL, one line per query; resumes a partial file.")
@click.option("--top-k", default=100, show_default=True, type=click.IntRange(1), help="Candidates rescored per query.")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(1))
@click.option("--max-length", type=click.IntRange(32), help="Prompt tokens per pair [default: the model's training length, else 512].")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 [default: CUDA when present].")
@click.option("--progress/--no-progress", default=True, show_default=True)
@friendly_errors
def score(
    model: str | None,
    endpoint: str | None,
    endpoint_model: str | None,
    api_key_env: str,
    candidates_file: str,
    corpus: str,
    output: str,
    top_k: int,
    batch_size: int,
    max_length: int | None,
    device: str | None,
    progress: bool,
) -> None:
    """Rerank candidate lists with the LLM: score = P(true) / (P(true) + P(false))."""
    from tqdm.auto import tqdm

    from synthrank.data import ResumableJsonlWriter, iter_jsonl, read_corpus
    from synthrank.errors import DataError

    if (model is None) == (endpoint is None):
        raise click.UsageError("give exactly one of --model or --endpoint")
    if endpoint is not None and not endpoint_model:
        raise click.UsageError("--endpoint needs --endpoint-model (the model name the server serves)")
    docs = read_corpus(corpus)
    records = []
    for lineno, rec in iter_jsonl(candidates_file):
        for required in ("query_id", "query", "candidates"):
            if required not in rec:
                raise DataError(f"missing '{required}'", path=candidates_file, line=lineno, field=required)
        for i, cand in enumerate(rec["candidates"][:top_k]):
            if cand.get("doc_id") not in docs:
                raise DataError(f"document {cand.get('doc_id')!r} is not in the corpus {corpus}",
                                path=candidates_file, line=lineno, field=f"candidates[{i}].doc_id")
        records.append(rec)

    scorer: Any
    if endpoint is not None:
        from synthrank.llmrank import EndpointLLMReranker

        scorer = EndpointLLMReranker(str(endpoint_model), base_url=endpoint, api_key_env=api_key_env)
    else:
        from synthrank.llmrank import load_llm_scorer

        scorer = load_llm_scorer(
            str(model), device=device, batch_size=batch_size, max_length=max_length, score="probability"
        )
    scored = 0
    try:
        with ResumableJsonlWriter(output, key=lambda r: str(r["query_id"])) as writer:
            todo = [r for r in records if str(r["query_id"]) not in writer.done]
            for rec in tqdm(todo, desc="queries", unit="query", disable=not progress):
                cands = rec["candidates"][:top_k]
                texts = [docs[c["doc_id"]].full_text() for c in cands]
                values = scorer.score_pairs([rec["query"]] * len(cands), texts) if cands else []
                ranked = sorted(
                    ({"doc_id": c["doc_id"], "score": float(s), "first_stage_rank": c.get("rank"),
                      "first_stage_score": c.get("score")} for c, s in zip(cands, values, strict=True)),
                    key=lambda c: -c["score"],
                )  # fmt: skip
                for rank, cand in enumerate(ranked, start=1):
                    cand["rank"] = rank
                writer.append({"query_id": rec["query_id"], "query": rec["query"], "candidates": ranked})
                scored += 1
    finally:
        if hasattr(scorer, "close"):
            scorer.close()
    click.echo(f"reranked {scored} queries ({len(records) - scored} already done) -> {output}")
