"""`synthrank label`: judge mined candidates with an LLM and write labels and training groups."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from synthrank.config_fields import field_defaults
from synthrank.label.labeler import LabelConfig
from synthrank_cli.generate import llm_options, make_llm_config
from synthrank_cli.options import friendly_errors, load_config, merge_config, prepare_output_dir

_D = field_defaults(LabelConfig)  # every default below is LabelConfig's: one home for the label step's defaults


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
@click.option("--judge-mode", default=_D["judge_mode"], show_default=True, type=click.Choice(["graded", "binary"]),
              help="graded: 0-3 grade + reason (+P(relevant) from logprobs); binary: one Yes/No token + P(yes) "
                   "(`synthrank run` judges binary).")
@click.option("--yes-threshold", default=_D["yes_threshold"], show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Binary judge: the P(yes) that counts as relevant.")
@click.option("--judge-top-k", default=_D["judge_top_k"], show_default=True, type=click.IntRange(0),
              help="Candidates judged per query (`synthrank run` judges 3 and fills the rest: --fill-negatives).")
@click.option("--positive-min-grade", default=_D["positive_min_grade"], show_default=True, type=int)
@click.option("--negative-max-grade", default=_D["negative_max_grade"], show_default=True, type=int)
@click.option("--min-negatives", default=_D["min_negatives"], show_default=True, type=int,
              help="Drop groups with fewer hard negatives (after filling, with --fill-negatives).")
@click.option("--fill-negatives/--no-fill-negatives", default=_D["fill_negatives"], show_default=True,
              help="Top up each group with the mined negatives the judge did not read, up to --num-negatives, as "
                   "`synthrank run` does: judge the first ranks, where false negatives hide, and keep full groups.")
@click.option("--mined-groups", default=None, type=click.Path(exists=True, dir_okay=False),
              help="With --fill-negatives: the groups.jsonl of `synthrank mine` [default: beside --candidates].")
@click.option("--num-negatives", default=None, type=click.IntRange(1),
              help="With --fill-negatives: fill up to this many negatives [default: the --num-negatives of the mining "
                   "run, from mine_config.json beside --mined-groups].")
@click.option("--self-consistency", default=_D["self_consistency"], show_default=True, type=int,
              help="Samples for borderline pairs (majority grade); 1 disables.")
@click.option("--append-instruction/--no-append-instruction", default=_D["append_instruction"], show_default=True,
              help="Train on 'query instruction' for instruction-following queries.")
@click.option("--max-passage-chars", default=_D["max_passage_chars"], show_default=True, type=int,
              help="What the judge reads of each passage (`synthrank run` reads 1000).")
@click.option("--max-queries", default=None, type=int, help="Label only the first N queries (budget).")
@click.option("--batch-size", default=_D["batch_size"], show_default=True, type=int, help="Queries judged per batch.")
@llm_options
@click.option("--overwrite", is_flag=True, help="Write into a non-empty output folder (resumes what is there).")
@click.pass_context
@friendly_errors
def label(ctx: click.Context, corpus: str, output_dir: str, config_file: str | None, overwrite: bool, **options: Any) -> None:
    """Label query-passage pairs with an LLM judge: source passages the judge rejects drop their query,
    candidates judged relevant become positives (never negatives), the rest hard negatives.

    To label as `synthrank run --label` does (its recipe; a run judges only when asked), pass --judge-mode binary --judge-top-k 3
    --max-passage-chars 1000 --fill-negatives with --candidates from `synthrank mine`.

    Reruns resume: judged pairs are skipped, and the response cache answers what was asked before.
    """
    from synthrank.data import load_dataset, read_jsonl, write_json
    from synthrank.label import candidates_from_retriever, label_to_groups, read_candidates
    from synthrank.llm import LLMClient

    v = merge_config(ctx, load_config(config_file), **options)
    if not v["candidates"] and not v["queries"]:
        raise click.UsageError("give --candidates (from `synthrank mine`) or --queries (from `synthrank generate`)")
    label_config = LabelConfig.from_dict({k: v[k] for k in field_defaults(LabelConfig)})
    mined_groups, pool_size = _fill_pool(v) if label_config.fill_negatives else (None, None)
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
    llm_config = make_llm_config(v)
    write_json(
        out / "label_config.json",
        {"corpus": corpus, "queries": len(queries), "label": label_config.to_dict(), "llm": llm_config.to_dict(),
         "options": {k: v[k] for k in sorted(v)}},
    )
    with LLMClient(llm_config) as client:
        report, stats = label_to_groups(client, dataset.corpus, queries, label_config, out,
                                        mined_groups=mined_groups, pool_size=pool_size, show_progress=True)  # fmt: skip
    write_json(out / "label_stats.json", stats)
    filled = f"; {stats['filled_negatives']} mined negatives filled in" if label_config.fill_negatives else ""
    click.echo(
        f"{report.groups} groups from {report.queries} queries ({report.dropped_source_not_relevant} dropped: source "
        f"judged not relevant; {report.false_negatives_rescued} false negatives moved to positives{filled}); "
        f"{report.pairs_judged} pairs judged, {report.usage['calls']} LLM calls, {report.usage['cache_hits']} cache "
        f"hits, {report.pairs_failed} failed (rerun to retry) -> {out / 'groups.jsonl'}"
    )


def _fill_pool(v: dict[str, Any]) -> tuple[Path, int]:
    """The mined groups that fill the labelled ones, and how many negatives a filled group holds."""
    if v["mined_groups"]:
        mined = Path(v["mined_groups"])
    elif v["candidates"]:
        mined = Path(v["candidates"]).with_name("groups.jsonl")
    else:
        raise click.UsageError("--fill-negatives needs the mined groups: give --mined-groups (or --candidates "
                               "from a `synthrank mine` folder)")  # fmt: skip
    if not mined.is_file():
        raise click.UsageError(f"--fill-negatives: {mined} does not exist; give --mined-groups")
    if v["num_negatives"] is not None:
        return mined, int(v["num_negatives"])
    mine_config = mined.with_name("mine_config.json")
    try:
        return mined, int(json.loads(mine_config.read_text(encoding="utf-8"))["mining"]["num_negatives"])
    except (OSError, ValueError, KeyError, TypeError):
        raise click.UsageError(f"--fill-negatives: no mining settings in {mine_config}; give --num-negatives") from None
