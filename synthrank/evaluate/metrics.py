"""Ranking metrics through ir_measures (trec_eval's numbers), per query and averaged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from synthrank.data.records import Qrels

Run = dict[str, dict[str, float]]
"""query id -> document id -> score (higher is better)."""

DEFAULT_METRICS: tuple[str, ...] = ("nDCG@10", "MRR@10", "Recall@100")

# Our display names -> ir_measures names.
_ALIASES = {"MRR": "RR", "Recall": "R", "MAP": "AP"}


def to_ir_measure(name: str) -> Any:
    """Parse a metric name such as ``nDCG@10``, ``MRR@10`` or ``Recall@100`` into an ir_measures measure."""
    import ir_measures

    base, _, cutoff = name.partition("@")
    base = _ALIASES.get(base, base)
    try:
        return ir_measures.parse_measure(f"{base}@{cutoff}" if cutoff else base)
    except Exception as exc:  # ir_measures' parser raises ValueError, NameError, SyntaxError, TypeError...
        raise ValueError(f"unknown metric {name!r}; examples: nDCG@10, MRR@10, Recall@100, P@5, MAP") from exc


def metric_cutoff(name: str) -> int | None:
    """The rank cut-off of a metric name (``Recall@100`` -> 100), ``None`` when it has none."""
    _, _, cutoff = name.partition("@")
    return int(cutoff) if cutoff.isdigit() else None


def default_metrics(top_k: int) -> tuple[str, ...]:
    """nDCG@10, MRR@10 and Recall at the depth retrieved (``Recall@100`` of a top-30 list would be Recall@30)."""
    return ("nDCG@10", "MRR@10", f"Recall@{top_k}")


@dataclass
class Evaluation:
    """Averaged and per-query metric values of one run.

    Averages are over every query of the qrels that has a relevant document; a query the run
    returned nothing for counts as 0 (trec_eval would silently leave it out).
    """

    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> qid -> value
    num_queries: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"aggregate": self.aggregate, "num_queries": self.num_queries, "per_query": self.per_query}


def evaluate_run(run: Mapping[str, Mapping[str, float]], qrels: Qrels, metrics: Sequence[str] = DEFAULT_METRICS) -> Evaluation:
    import ir_measures

    judged = sorted(qid for qid, docs in qrels.items() if any(rel > 0 for rel in docs.values()))
    measures = {name: to_ir_measure(name) for name in metrics}
    by_measure = {m: name for name, m in measures.items()}
    per_query: dict[str, dict[str, float]] = {name: dict.fromkeys(judged, 0.0) for name in metrics}
    qrels_judged = {qid: qrels[qid] for qid in judged}
    run_judged = {qid: dict(run[qid]) for qid in judged if run.get(qid)}
    if run_judged:
        for metric in ir_measures.iter_calc(list(measures.values()), qrels_judged, run_judged):
            per_query[by_measure[metric.measure]][metric.query_id] = float(metric.value)
    aggregate = {name: (sum(values.values()) / len(values) if values else 0.0) for name, values in per_query.items()}
    return Evaluation(aggregate=aggregate, per_query=per_query, num_queries=len(judged))
