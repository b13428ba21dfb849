"""`synthrank evaluate`: BM25 first stage, optional reranking, nDCG@10 / MRR@10 / Recall@100."""

from __future__ import annotations

from pathlib import Path

import click

from synthrank_cli.options import friendly_errors


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
@click.option("--reranker", "rerankers", multiple=True, help="Model dir/name to rerank the top-k with (repeatable).")
@click.option(
    "--reranker-kind",
    type=click.Choice(["auto", "cross-encoder", "bi-encoder", "llm"]),
    default="auto",
    show_default=True,
    help="How to load each --reranker; llm: a causal LM (GGUF name, .gguf, folder) as a pointwise reranker.",
)
@click.option(
    "--top-k",
    default=100,
    show_default=True,
    type=click.IntRange(1),
    help="Candidates from BM25 per query (and reranked).",
)
@click.option(
    "--max-queries", type=click.IntRange(1), help="Evaluate on the first N judged queries only (for quick looks)."
)
@click.option("--metric", "metrics", multiple=True, help="Metrics (repeatable); default nDCG@10, MRR@10, Recall@100.")
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
    from synthrank.evaluate import DEFAULT_METRICS, evaluate_systems, format_table
    from synthrank.evaluate.runs import write_trec_run
    from synthrank.retrieve import InMemoryBM25

    dataset = load_dataset(data, split=split, queries_file=queries_file, qrels_file=qrels_file)
    if not dataset.qrels:
        raise click.UsageError(f"{data}: no qrels for split {split!r}; give --qrels")
    if max_queries is not None:
        keep = sorted(dataset.judged_queries())[:max_queries]
        dataset.qrels = {q: dataset.qrels[q] for q in keep}
    bm25 = InMemoryBM25(k1=k1, b=b)
    bm25.index(dataset.corpus.values(), show_progress=progress)
    scorers = {}
    if rerankers:
        from synthrank.rerank.factory import load_scorer

        for model in rerankers:
            name = Path(model).name or model
            scorers[name] = load_scorer(model, kind=reranker_kind, device=device, batch_size=batch_size)
    report = evaluate_systems(
        dataset,
        bm25,
        scorers,
        split=split,
        top_k=top_k,
        metrics=tuple(metrics) or DEFAULT_METRICS,
        show_progress=progress,
    )
    click.echo(f"{dataset.name} ({split}, {report.systems[0].evaluation.num_queries} queries, top-{top_k})")
    click.echo(format_table(report))
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
        for system in report.systems:
            write_trec_run(Path(run_dir) / f"{system.name}.trec", system.run, tag=system.name)
