"""`synthrank label`: judge mined candidates with an LLM and write labels and training groups."""

from __future__ import annotations

from typing import Any

import click

from synthrank_cli.generate import llm_options, make_llm_config
from synthrank_cli.options import friendly_errors, load_config, merge_config, prepare_output_dir


@click.command()
@click.option("--corpus", required=True, help="BEIR folder, corpus JSONL/TSV file, or irds:<id>.")
@click.option("--candidates", default=None, type=click.Path(exists=True, dir_okay=False),
              help="candidates.jsonl from `synthrank mine` (query_id, query, source_doc_id, candidates).")
@click.option("--queries", default=None, type=click.Path(exists=True, dir_okay=False),
              help="queries.jsonl from `synthrank generate`: adds instructions/types to --candidates, or, alone, "
                   "is mined here with in-memory BM25 (--top-k).")
@click.option("--output-dir", required=True, type=click.Path(file_okay=False),
              help="Writes labels.jsonl, groups.jsonl, label_stats.json, label_config.json.")
@click.option("--config", "config_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="YAML with any of these options (flags win).")
@click.option("--top-k", default=30, show_default=True, type=int, help="BM25 depth when mining from --queries.")
@click.option("--judge-mode", default="graded", show_default=True, type=click.Choice(["graded", "binary"]),
              help="graded: 0-3 grade + reason (+P(relevant) from logprobs); binary: one Yes/No token + P(yes).")
@click.option("--judge-top-k", default=10, show_default=True, type=int, help="Candidates judged per query.")
@click.option("--positive-min-grade", default=2, show_default=True, type=int)
@click.option("--negative-max-grade", default=1, show_default=True, type=int)
@click.option("--min-negatives", default=1, show_default=True, type=int, help="Drop groups with fewer hard negatives.")
@click.option("--self-consistency", default=1, show_default=True, type=int,
              help="Samples for borderline pairs (majority grade); 1 disables.")
@click.option("--append-instruction/--no-append-instruction", default=True, show_default=True,
              help="Train on 'query instruction' for instruction-following queries.")
@click.option("--max-passage-chars", default=2000, show_default=True, type=int)
@click.option("--max-queries", default=None, type=int, help="Label only the first N queries (budget).")
@click.option("--batch-size", default=8, show_default=True, type=int, help="Queries judged per batch.")
@llm_options
@click.option("--overwrite", is_flag=True, help="Write into a non-empty output folder (resumes what is there).")
@click.pass_context
@friendly_errors
def label(ctx: click.Context, corpus: str, output_dir: str, config_file: str | None, overwrite: bool, **options: Any) -> None:
    """Label query-passage pairs with an LLM judge: source passages the judge rejects drop their query,
    candidates judged relevant become positives (never negatives), the rest hard negatives.

    Reruns resume: judged pairs are skipped, and the response cache answers what was asked before.
    """
    from synthrank.data import load_dataset, read_jsonl, write_json
    from synthrank.label import LabelConfig, Labeler, LLMJudge, candidates_from_retriever, read_candidates
    from synthrank.llm import LLMClient

    v = merge_config(ctx, load_config(config_file), **options)
    if not v["candidates"] and not v["queries"]:
        raise click.UsageError("give --candidates (from `synthrank mine`) or --queries (from `synthrank generate`)")
    out = prepare_output_dir(output_dir, overwrite=overwrite)
    dataset = load_dataset(corpus)
    if v["candidates"]:
        queries = read_candidates(v["candidates"], corpus=dataset.corpus, queries=v["queries"])
    else:
        from synthrank.retrieve import InMemoryBM25

        records = read_jsonl(v["queries"])
        bm25 = InMemoryBM25()
        bm25.index(dataset.corpus.values())
        queries = candidates_from_retriever(records, bm25, k=v["top_k"], show_progress=True)
    if v["max_queries"]:
        queries = queries[: v["max_queries"]]
    label_config = LabelConfig(
        judge_top_k=v["judge_top_k"],
        positive_min_grade=v["positive_min_grade"],
        negative_max_grade=v["negative_max_grade"],
        min_negatives=v["min_negatives"],
        append_instruction=v["append_instruction"],
        batch_size=v["batch_size"],
    )
    llm_config = make_llm_config(v)
    write_json(
        out / "label_config.json",
        {"corpus": corpus, "queries": len(queries), "label": label_config.to_dict(), "llm": llm_config.to_dict(),
         "options": {k: v[k] for k in sorted(v)}},
    )
    with LLMClient(llm_config) as client:
        judge = LLMJudge(
            client,
            mode=v["judge_mode"],
            relevant_grade=v["positive_min_grade"],
            self_consistency=v["self_consistency"],
            max_passage_chars=v["max_passage_chars"],
        )
        report = Labeler(judge, dataset.corpus, label_config).label(queries, out, show_progress=True)
    write_json(out / "label_stats.json", report.to_dict())
    click.echo(
        f"{report.groups} groups from {report.queries} queries ({report.dropped_source_not_relevant} dropped: source "
        f"judged not relevant; {report.false_negatives_rescued} false negatives moved to positives); "
        f"{report.pairs_judged} pairs judged, {report.usage['calls']} LLM calls, {report.usage['cache_hits']} cache "
        f"hits, {report.pairs_failed} failed (rerun to retry) -> {out / 'groups.jsonl'}"
    )
