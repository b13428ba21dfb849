"""First stage + optional reranking + metrics: the measuring stick of the method."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synthrank.data.records import Dataset, Document
from synthrank.evaluate.metrics import DEFAULT_METRICS, Evaluation, Run, evaluate_run, metric_cutoff
from synthrank.evaluate.significance import PairedTest, paired_t_test
from synthrank.rerank.base import PairScorer
from synthrank.retrieve.base import Retriever

logger = logging.getLogger(__name__)


def default_document_text(doc: Document) -> str:
    """What a reranker sees by default: ``title + text`` (MedQuAD answers differ mostly by title)."""
    return doc.full_text("\n")


@dataclass
class SystemResult:
    """One system's run, metrics and cost."""

    name: str
    run: Run
    evaluation: Evaluation
    seconds: float
    num_queries: int

    @property
    def seconds_per_query(self) -> float:
        return self.seconds / self.num_queries if self.num_queries else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "metrics": self.evaluation.aggregate,
            "num_queries": self.evaluation.num_queries,
            "seconds": round(self.seconds, 3),
            "seconds_per_query": self.seconds_per_query,
        }


@dataclass
class EvaluationReport:
    dataset: str
    split: str
    top_k: int
    systems: list[SystemResult] = field(default_factory=list)
    significance: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the reader of the numbers should know: tests skipped, metrics deeper than the ranking."""

    def to_json(self, *, per_query: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dataset": self.dataset,
            "split": self.split,
            "top_k": self.top_k,
            "systems": [s.summary() for s in self.systems],
            "significance": self.significance,
        }
        if self.notes:
            out["notes"] = self.notes
        if per_query:
            out["per_query"] = {s.name: s.evaluation.per_query for s in self.systems}
        return out


def first_stage(
    dataset: Dataset, retriever: Retriever, *, top_k: int, show_progress: bool = False
) -> tuple[Run, float]:
    """Retrieve the top-k for every judged query from an indexed retriever; returns the run and seconds spent."""
    queries = dataset.judged_queries()
    qids = list(queries)
    t0 = time.perf_counter()
    hits = retriever.retrieve([queries[q].text for q in qids], k=top_k, show_progress=show_progress)
    seconds = time.perf_counter() - t0
    return {qid: {h.doc_id: h.score for h in qh} for qid, qh in zip(qids, hits, strict=True)}, seconds


def rerank_run(
    dataset: Dataset,
    run: Run,
    scorer: PairScorer,
    *,
    top_k: int,
    document_text: Callable[[Document], str] = default_document_text,
    show_progress: bool = False,
) -> tuple[Run, float]:
    """Rescore the top-k of each query with ``scorer``; documents below the top-k keep their order below."""
    queries: list[str] = []
    texts: list[str] = []
    owners: list[tuple[str, str]] = []
    for qid, docs in run.items():
        ranked = sorted(docs.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
        for did, _ in ranked:
            queries.append(dataset.queries[qid].text)
            texts.append(document_text(dataset.corpus[did]))
            owners.append((qid, did))
    t0 = time.perf_counter()
    scores = np.asarray(scorer.score_pairs(queries, texts, show_progress=show_progress), dtype=np.float64)
    seconds = time.perf_counter() - t0
    if scores.shape != (len(owners),):
        raise ValueError(f"scorer returned {scores.shape} scores for {len(owners)} pairs")
    reranked: Run = {qid: {} for qid in run}
    for (qid, did), s in zip(owners, scores, strict=True):
        reranked[qid][did] = float(s)
    return reranked, seconds


def evaluate_systems(
    dataset: Dataset,
    retriever: Retriever,
    rerankers: dict[str, PairScorer] | None = None,
    *,
    split: str = "test",
    top_k: int = 100,
    metrics: tuple[str, ...] = DEFAULT_METRICS,
    first_stage_name: str = "bm25",
    compare_to: Sequence[str] = (),
    first_stage_fusions: Mapping[str, tuple[str, float]] | None = None,
    show_progress: bool = False,
) -> EvaluationReport:
    """Evaluate the first stage and each reranker over its top-k, with paired t-tests against the first stage.

    ``first_stage_fusions`` adds rows ``{name: (reranker name, weight)}``: that reranker's scores fused with the
    first stage's own (:func:`~synthrank.rerank.first_stage.fuse_with_first_stage`), costing the reranker's time.

    ``compare_to`` names systems (e.g. the zero-shot baseline, another trained model) that every other
    reranker is also tested against, per query and paired. With fewer than two judged queries no test
    can be run: the metrics are reported and the tests are skipped with a note in ``report.notes``; so is
    a metric cut off deeper than ``top_k`` (``Recall@100`` of a top-30 ranking only sees the top 30).
    """
    names = [first_stage_name, *(rerankers or {})]
    if first_stage_name in (rerankers or {}):
        raise ValueError(f"a reranker is named {first_stage_name!r}, the first stage's name: give it another name")
    unknown = [name for name in compare_to if name not in names]
    if unknown:
        raise ValueError(f"compare_to names no system: {unknown} (systems: {names})")
    if not dataset.qrels:
        raise ValueError(f"dataset {dataset.name!r} has no qrels for split {split!r}: nothing to evaluate")
    report = EvaluationReport(dataset=dataset.name, split=split, top_k=top_k)
    for metric in metrics:
        cutoff = metric_cutoff(metric)
        if cutoff is not None and cutoff > top_k:
            report.notes.append(
                f"{metric} is cut off deeper than the {top_k} documents retrieved per query: it equals "
                f"{metric.partition('@')[0]}@{top_k}"
            )
    run, seconds = first_stage(dataset, retriever, top_k=top_k, show_progress=show_progress)
    base = SystemResult(first_stage_name, run, evaluate_run(run, dataset.qrels, metrics), seconds, len(run))
    report.systems.append(base)
    testable = base.evaluation.num_queries >= 2
    if not testable:
        report.notes.append(
            f"paired t-tests skipped: they need at least two judged queries, the evaluation has "
            f"{base.evaluation.num_queries}"
        )

    def add_tests(result: SystemResult, baseline: SystemResult) -> None:
        if not testable:
            return
        for metric in metrics:
            test: PairedTest = paired_t_test(result.evaluation, baseline.evaluation, metric)
            report.significance.append({"system": result.name, "baseline": baseline.name, **test.__dict__})

    for name, scorer in (rerankers or {}).items():
        logger.info("reranking the top %d of %d queries with %s", top_k, len(run), name)
        reranked, rs = rerank_run(dataset, run, scorer, top_k=top_k, show_progress=show_progress)
        result = SystemResult(name, reranked, evaluate_run(reranked, dataset.qrels, metrics), rs, len(run))
        report.systems.append(result)
        add_tests(result, base)
    by_name = {r.name: r for r in report.systems}
    from synthrank.rerank.first_stage import fuse_with_first_stage

    for name, (reranker, weight) in (first_stage_fusions or {}).items():
        if reranker not in by_name or name in by_name:
            raise ValueError(f"first-stage fusion {name!r}: no reranker {reranker!r}, or the name is taken")
        fused = fuse_with_first_stage(run, by_name[reranker].run, weight)
        result = SystemResult(name, fused, evaluate_run(fused, dataset.qrels, metrics), by_name[reranker].seconds,
                              len(run))  # fmt: skip
        report.systems.append(result)
        by_name[name] = result
        add_tests(result, base)
    for baseline in dict.fromkeys(compare_to):
        if baseline == first_stage_name:
            continue  # every reranker is tested against the first stage already
        for result in report.systems[1:]:
            if result.name != baseline:
                add_tests(result, by_name[baseline])
    return report


def format_table(report: EvaluationReport) -> str:
    """A plain-text table of the systems' metrics and cost, then the report's notes (skipped tests, cut-offs)."""
    metrics = list(report.systems[0].evaluation.aggregate) if report.systems else []
    header = ["system", *metrics, "s/query"]
    rows = [
        [s.name, *(f"{s.evaluation.aggregate[m]:.4f}" for m in metrics), f"{s.seconds_per_query:.4f}"]
        for s in report.systems
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.extend(f"note: {note}" for note in report.notes)
    return "\n".join(lines)
