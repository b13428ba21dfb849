"""`synthrank evaluate`: BM25 first stage, optional reranking, nDCG@10 / MRR@10 / Recall at the depth retrieved."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import click

from synthrank_cli.options import friendly_errors

FIRST_STAGE = "bm25"
# the depth `synthrank run` reranks (its `evaluate.top_k`; a test keeps the two equal), so one model gets one number
DEFAULT_TOP_K = 30


def name_systems(specs: Sequence[str], *, taken: Sequence[str] = (FIRST_STAGE,)) -> dict[str, str]:
    """``--reranker`` values -> {system name: model}, every name unique.

    ``NAME=PATH`` names a system; a bare path is named by the shortest tail of its path that tells it
    apart from the others (``runs/a/train/model`` and ``runs/b/train/model`` become ``a/train/model`` and
    ``b/train/model``); the same model given twice gets ``-2``. A duplicate ``NAME=`` is an error.
    """
    entries: list[tuple[str | None, str]] = []
    for spec in specs:
        label, sep, path = spec.partition("=")
        if sep and label.strip() and path.strip() and not Path(spec).exists():
            entries.append((label.strip(), path.strip()))
        else:
            entries.append((None, spec))
    explicit = [name for name, _ in entries if name is not None]
    clashes = sorted({n for n in explicit if explicit.count(n) > 1 or n in taken})
    if clashes:
        raise click.BadParameter(
            f"system name(s) {', '.join(map(repr, clashes))} given twice or taken by the first stage; "
            "each NAME=PATH needs its own name",
            param_hint="'--reranker'",
        )
    auto = [i for i, (name, _) in enumerate(entries) if name is None]
    parts = {i: [p for p in Path(entries[i][1]).parts if p not in ("/", ".")] or [entries[i][1]] for i in auto}
    depth = dict.fromkeys(auto, 1)
    while True:
        tails = {i: "/".join(parts[i][-depth[i]:]) for i in auto}
        counts = Counter(tails.values())
        stuck = [i for i in auto if counts[tails[i]] > 1 or tails[i] in explicit or tails[i] in taken]
        grow = [i for i in stuck if depth[i] < len(parts[i])]
        if not grow:
            break
        for i in grow:
            depth[i] += 1
    out: dict[str, str] = {}
    for i, (given, model) in enumerate(entries):
        if given is not None:
            out[given] = model
            continue
        final, n = tails[i], 2
        while final in out or final in explicit or final in taken:
            final, n = f"{tails[i]}-{n}", n + 1
        out[final] = model
    return out


def run_file_names(names: Sequence[str]) -> dict[str, str]:
    """System name -> a unique, safe TREC run file name (``a/train/model`` -> ``a_train_model.trec``)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        stem = re.sub(r"[^\w.@+=-]+", "_", name).strip("._") or "system"
        candidate, n = stem, 2
        while candidate in used:
            candidate, n = f"{stem}-{n}", n + 1
        used.add(candidate)
        out[name] = f"{candidate}.trec"
    return out


def _check_metrics(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    from synthrank.evaluate import to_ir_measure

    for metric in value:
        try:
            to_ir_measure(metric)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return value


@click.command()
@click.option("--data", "data", required=True, help="BEIR folder, corpus file (with --queries/--qrels) or irds:<id>.")
@click.option("--split", default="test", show_default=True, help="Qrels split: qrels/<split>.tsv in a BEIR folder.")
@click.option(
    "--queries",
    "queries_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Queries file (JSONL/TSV) for a corpus file.",
)
@click.option(
    "--qrels",
    "qrels_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Qrels file (BEIR TSV or TREC) overriding the split's.",
)
@click.option(
    "--reranker",
    "rerankers",
    multiple=True,
    help="Model dir/name to rerank the top-k with, or NAME=PATH to name its row (repeatable); unnamed rows are "
    "named by the shortest distinct tail of their path.",
)
@click.option(
    "--baseline",
    "baselines",
    multiple=True,
    help="Also test every reranker against this system (a --reranker's name; repeatable); "
    f"all are tested against {FIRST_STAGE}.",
)
@click.option(
    "--reranker-kind",
    type=click.Choice(["auto", "cross-encoder", "bi-encoder", "llm"]),
    default="auto",
    show_default=True,
    help="How to load each --reranker; llm: a causal LM (GGUF name, .gguf, folder) as a pointwise reranker.",
)
@click.option(
    "--top-k",
    default=DEFAULT_TOP_K,
    show_default=True,
    type=click.IntRange(1),
    help="Candidates from BM25 per query (and reranked); the depth `synthrank run` and the PyTerrier example "
    "rerank. The BM25 table of docs/data-and-bm25.md is --top-k 100.",
)
@click.option(
    "--max-queries", type=click.IntRange(1), help="Evaluate on the first N judged queries only (for quick looks)."
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    callback=_check_metrics,
    help="Metrics (repeatable), e.g. nDCG@10, MRR@10, Recall@30, P@5, MAP; default nDCG@10, MRR@10, Recall@<top-k>.",
)
@click.option("--k1", default=0.9, show_default=True, type=float, help="BM25 k1.")
@click.option("--b", default=0.4, show_default=True, type=float, help="BM25 b.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1), help="Reranker batch size.")
@click.option("--device", default=None, help="Reranker device (cpu, cuda, cuda:1); default: CUDA when present.")
@click.option(
    "--output", type=click.Path(dir_okay=False), help="Write the report (with per-query values) as JSON here."
)
@click.option("--run-dir", type=click.Path(file_okay=False), help="Write each system's TREC run file into this folder.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars.")
@friendly_errors
def evaluate(
    data: str,
    split: str,
    queries_file: str | None,
    qrels_file: str | None,
    rerankers: tuple[str, ...],
    baselines: tuple[str, ...],
    reranker_kind: str,
    top_k: int,
    max_queries: int | None,
    metrics: tuple[str, ...],
    k1: float,
    b: float,
    batch_size: int,
    device: str | None,
    output: str | None,
    run_dir: str | None,
    progress: bool,
) -> None:
    """Evaluate BM25 (and rerankers over its top-k) on a data set with qrels."""
    from synthrank.data import load_dataset, write_json
    from synthrank.evaluate import default_metrics, evaluate_systems, format_table
    from synthrank.evaluate.runs import write_trec_run
    from synthrank.retrieve import InMemoryBM25

    systems = name_systems(rerankers)
    unknown = [b for b in baselines if b != FIRST_STAGE and b not in systems]
    if unknown:
        raise click.BadParameter(
            f"{', '.join(map(repr, unknown))} names no system; systems: {', '.join([FIRST_STAGE, *systems])}",
            param_hint="'--baseline'",
        )
    scorers = {}
    if rerankers:  # before the data: a wrong model path fails at once, not after indexing
        from synthrank.rerank.factory import load_scorer

        for name, model in systems.items():
            scorers[name] = load_scorer(model, kind=reranker_kind, device=device, batch_size=batch_size)
    dataset = load_dataset(data, split=split, queries_file=queries_file, qrels_file=qrels_file)
    if not dataset.qrels:
        raise click.UsageError(f"{data}: no qrels for split {split!r}; give --qrels")
    if max_queries is not None:
        keep = sorted(dataset.judged_queries())[:max_queries]
        dataset.qrels = {q: dataset.qrels[q] for q in keep}
    bm25 = InMemoryBM25(k1=k1, b=b)
    bm25.index(dataset.corpus.values(), show_progress=progress)
    report = evaluate_systems(
        dataset,
        bm25,
        scorers,
        split=split,
        top_k=top_k,
        metrics=tuple(metrics) or default_metrics(top_k),
        first_stage_name=FIRST_STAGE,
        compare_to=baselines,
        show_progress=progress,
    )
    click.echo(f"{dataset.name} ({split}, {report.systems[0].evaluation.num_queries} queries, top-{top_k})")
    click.echo(format_table(report))  # with the report's notes
    for test in report.significance:
        mark = "*" if test["p_value"] < 0.05 else " "
        click.echo(
            f"{mark} {test['system']} vs {test['baseline']} {test['metric']}: "
            f"delta {test['delta']:+.4f}, t={test['t_statistic']:.2f}, p={test['p_value']:.3g}"
        )
    if output:
        write_json(output, report.to_json())
        click.echo(f"wrote {output}")
    if run_dir:
        files = run_file_names([system.name for system in report.systems])
        for system in report.systems:
            write_trec_run(Path(run_dir) / files[system.name], system.run, tag=re.sub(r"\s+", "_", system.name))
        click.echo(f"wrote {len(files)} run file(s) to {run_dir}")
