"""`synthrank train`: training groups -> a reranker (a cross-encoder, LCE by default), resumable after a kill."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from synthrank.config_fields import field_defaults
from synthrank.train.config import ARCHITECTURES, LOSSES, PRECISIONS, TrainConfig
from synthrank_cli.options import friendly_errors, load_config, merge_config, prepare_output_dir

# every default below that a TrainConfig field has is that field's: one home for the train step's defaults
_D = field_defaults(TrainConfig)


@click.command()
@click.option("--groups", "groups_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Training groups JSONL (query, positive, negatives) from `synthrank mine` / `synthrank label`.")
@click.option("--output-dir", required=True, type=click.Path(file_okay=False),
              help="Writes model/, metrics.json, README.md, loss.png, dev_ndcg.png; checkpoints while training.")
@click.option("--config", "config_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="YAML with any of these options (flags win).")
@click.option("--model", default=_D["model"], show_default=True,
              help="Backbone: packaged short name, HF folder or hub id (a plain encoder gets a fresh one-logit head).")
@click.option("--tokenizer", default=None, help="Tokenizer folder/id when it is not beside the weights.")
@click.option("--architecture", default=_D["architecture"], show_default=True, type=click.Choice(ARCHITECTURES),
              help="cross-encoder: a one-logit head reads query and passage together; bi-encoder: tune the "
                   "encoder itself (cosine of embeddings), starting as the zero-shot model.")
@click.option("--similarity-temperature", default=_D["similarity_temperature"], show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Bi-encoder: the loss sees cosine / T.")
@click.option("--merge-with-base", default=None, type=click.FloatRange(0, 1, max_open=True),
              help="Bi-encoder: average this share of the untuned weights into the final model (WiSE-FT) "
                   "[default: 0.5 for a bi-encoder, 0 for a cross-encoder, as in `synthrank run`].")
@click.option("--loss", default=_D["loss"], show_default=True, type=click.Choice(LOSSES),
              help="lce: softmax CE of the positive over its group; bce: pointwise; listwise: KL to the LLM grades; "
                   "margin_mse: GPL's MarginMSE on the judge's log-odds margins.")
@click.option("--group-size", default=_D["group_size"], show_default=True, type=click.IntRange(2), help="1 positive + G-1 negatives.")
@click.option("--negative-sampling", default=_D["negative_sampling"], show_default=True, type=click.Choice(["random", "top"]),
              help="Draw G-1 negatives from the pool anew each epoch, or always take the best-ranked.")
@click.option("--negative-pool", default=None, type=click.IntRange(1),
              help="Only the first N negatives of the mined pool (by BM25 rank) are eligible.")
@click.option("--relevant-grade", default=_D["relevant_grade"], show_default=True, type=int,
              help="LLM grade from which a passage counts as relevant (BCE label; LCE drops such negatives).")
@click.option("--drop-false-negatives/--keep-false-negatives", default=_D["drop_false_negatives"], show_default=True,
              help="Leave negatives the judge graded relevant out of LCE/listwise groups.")
@click.option("--listwise-temperature", default=_D["listwise_temperature"], show_default=True, type=float,
              help="Temperature of the softmax over grades (listwise loss).")
@click.option("--epochs", default=_D["epochs"], show_default=True, type=click.IntRange(1), help="Passes over the groups.")
@click.option("--max-steps", default=None, type=click.IntRange(1), help="Stop after this many optimizer steps.")
@click.option("--batch-size", default=_D["batch_size"], show_default=True, type=click.IntRange(1), help="Groups per forward/backward.")
@click.option("--gradient-accumulation", default=_D["gradient_accumulation"], show_default=True, type=click.IntRange(1),
              help="Batches per optimizer step.")
@click.option("--learning-rate", default=None, type=float,
              help="AdamW peak learning rate [default: 2e-5 for a bi-encoder, 7e-5 for a cross-encoder's fresh head, "
                   "as in `synthrank run`].")
@click.option("--weight-decay", default=_D["weight_decay"], show_default=True, type=float, help="AdamW weight decay.")
@click.option("--warmup-ratio", default=_D["warmup_ratio"], show_default=True, type=float,
              help="Share of steps of linear warm-up (then linear decay).")
@click.option("--max-grad-norm", default=_D["max_grad_norm"], show_default=True, type=float, help="Gradient clipping (0: off).")
@click.option("--max-length", default=_D["max_length"], show_default=True, type=click.IntRange(16), help="Tokens per pair.")
@click.option("--seed", default=_D["seed"], show_default=True, type=int, help="Seeds init, dropout, order and sampling.")
@click.option("--dev-data", default=None,
              help="BEIR folder / corpus source with real queries and qrels for dev evaluation (nDCG@10 of BM25 top-k).")
@click.option("--dev-split", default="dev", show_default=True, help="Qrels split of --dev-data.")
@click.option("--dev-top-k", default=30, show_default=True, type=click.IntRange(1), help="BM25 candidates per dev query.")
@click.option("--dev-max-queries", default=200, show_default=True, type=click.IntRange(1),
              help="Seeded sample of dev queries.")
@click.option("--dev-groups", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Held-out groups JSONL as dev set (rank the positive among its negatives).")
@click.option("--dev-fraction", default=0.0, show_default=True, type=click.FloatRange(0, 1, max_open=True),
              help="Hold out this share of --groups (seeded by --seed, whole source passages or queries: "
                   "--dev-holdout) as the dev set, written to dev_groups.jsonl, as `synthrank run` does (it holds out 0.1).")
@click.option("--dev-holdout", default="passage", show_default=True, type=click.Choice(["passage", "query"]),
              help="What --dev-fraction holds out whole: every query of a source passage (meta.source_doc_id), "
                   "so no training group has a dev query's passage as its positive; or single queries.")
@click.option("--dev-batch-size", default=_D["dev_batch_size"], show_default=True, type=click.IntRange(1), help="Pairs per dev forward pass.")
@click.option("--eval-every", default=_D["eval_every"], show_default=True, type=click.IntRange(0),
              help="Steps between dev evaluations (0: each epoch end).")
@click.option("--early-stopping-patience", default=_D["early_stopping_patience"], show_default=True, type=click.IntRange(0),
              help="Stop after N evaluations without dev improvement (0: never).")
@click.option("--dev-min-queries", default=_D["dev_min_queries"], show_default=True, type=click.IntRange(0),
              help="A dev set of fewer queries is scored for the record but does not choose the checkpoint or stop "
                   "early: the last step is kept.")
@click.option("--save-every", default=_D["save_every"], show_default=True, type=click.IntRange(0), help="Steps between checkpoints.")
@click.option("--keep-checkpoints", default=_D["keep_checkpoints"], show_default=True, type=click.IntRange(1), help="Checkpoints kept.")
@click.option("--precision", default=_D["precision"], show_default=True, type=click.Choice(PRECISIONS),
              help="auto: bf16 (or fp16) autocast on CUDA; bf16 autocast on a CPU with AMX or AVX512-BF16; "
                   "fp32 on other CPUs.")
@click.option("--gradient-checkpointing/--no-gradient-checkpointing", default=_D["gradient_checkpointing"], show_default=True,
              help="Recompute activations in backward (less memory, slower).")
@click.option("--length-bucket-rows", default=_D["length_bucket_rows"], show_default=True, type=click.IntRange(0),
              help="Rows per forward pass after sorting a batch by length (0: whole batch).")
@click.option("--activation-budget-mb", default=_D["activation_budget_mb"], show_default=True, type=click.IntRange(0),
              help="A batch whose kept activations would exceed this many MiB recomputes its passes in backward "
                   "(same weights, slower steps; 0: every batch).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... [default: cuda when present].")
@click.option("--num-threads", default=None, type=click.IntRange(1), help="CPU threads for torch.")
@click.option("--trust-remote-code", is_flag=True, help="Allow model code shipped with the model (runs arbitrary code).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar.")
@click.option("--restart", is_flag=True, help="Discard checkpoints and outputs in --output-dir and start over.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --output-dir that holds no run of ours.")
@click.pass_context
@friendly_errors
def train(ctx: click.Context, groups_file: str, output_dir: str, config_file: str | None, progress: bool,
          restart: bool, overwrite: bool, **options: Any) -> None:
    """Train a reranker on training groups: a cross-encoder, or with --architecture bi-encoder the encoder itself.

    The learning rate and the merge with the base follow the architecture as in `synthrank run`; the
    differences from a run's recipe are the architecture (a run trains a merged bi-encoder by default:
    pass --architecture bi-encoder), the epochs (a run trains 2: pass --epochs 2), the length (a run trains
    on 128 tokens: pass --max-length 128) and the dev set (a run holds out a tenth of the queries: pass
    --dev-fraction 0.1). With those flags it trains what the run trains.

    Resumes automatically when --output-dir holds a checkpoint of a run with the same settings
    (a kill -9 loses at most --save-every steps); --restart starts over.
    """
    from synthrank.data import load_dataset
    from synthrank.pipeline.stages import train_config_from_section
    from synthrank.train import DevSet, train_reranker

    v = merge_config(ctx, load_config(config_file), **options)
    out = Path(output_dir)
    ours = (out / "checkpoints").is_dir() or (out / "metrics.json").exists()
    prepare_output_dir(out, overwrite=overwrite or restart, resume=ours)
    config = train_config_from_section({name: v[name] for name in _D if name in v})
    if sum(bool(v[name]) for name in ("dev_data", "dev_groups", "dev_fraction")) > 1:
        raise click.UsageError("give one of --dev-data, --dev-groups and --dev-fraction")
    dev = None
    groups: Any = groups_file
    if v["dev_fraction"]:
        from synthrank.data import read_groups, write_groups
        from synthrank.data.splits import split_dev

        groups, dev_groups = split_dev(read_groups(groups_file), float(v["dev_fraction"]), config.seed,
                                       holdout=v["dev_holdout"])
        write_groups(out / "dev_groups.jsonl", dev_groups)
        dev = DevSet.from_groups(dev_groups) if dev_groups else None
    elif v["dev_data"]:
        dataset = load_dataset(v["dev_data"], split=v["dev_split"])
        dev = DevSet.from_dataset(dataset, top_k=v["dev_top_k"], max_queries=v["dev_max_queries"],
                                  show_progress=progress)
    elif v["dev_groups"]:
        dev = DevSet.from_groups(v["dev_groups"])
    result = train_reranker(groups, out, config, dev=dev, show_progress=progress, restart=restart)
    m = result.metrics
    click.echo(f"model: {result.model_dir}")
    click.echo(f"steps: {m['global_step']}/{m['total_steps']}, final loss {m['final_loss']:.4f}, "
               f"{m['groups_per_second']:.2f} groups/s")
    if m.get("best_dev"):
        best = ", ".join(f"{k} {val:.4f}" for k, val in m["best_dev"].items() if k != "step")
        base = ", ".join(f"{k} {val:.4f}" for k, val in (m.get("dev") or {}).get("baseline", {}).items())
        click.echo(f"dev (step {m['best_step']}): {best}; first stage: {base}")
    elif m.get("dev_history"):
        last = m["dev_history"][-1]
        scores = ", ".join(f"{k} {val:.4f}" for k, val in last.items() if k != "step")
        click.echo(f"dev (last step {last['step']}; {m['dev']['queries']} queries, fewer than --dev-min-queries "
                   f"{m['config']['dev_min_queries']}: not used to choose): {scores}")
