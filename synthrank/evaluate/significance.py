"""Per-query paired significance tests between two runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from synthrank.evaluate.metrics import Evaluation


@dataclass(frozen=True)
class PairedTest:
    metric: str
    mean_a: float
    mean_b: float
    delta: float
    t_statistic: float
    p_value: float
    num_queries: int

    @property
    def significant(self) -> bool:
        return self.p_value < 0.05


def paired_t_test(a: Evaluation, b: Evaluation, metric: str) -> PairedTest:
    """Two-sided paired t-test of ``a`` against ``b`` on the queries both evaluated."""
    return paired_t_test_per_query(a.per_query[metric], b.per_query[metric], metric)


def paired_t_test_per_query(qa: Mapping[str, float], qb: Mapping[str, float], metric: str) -> PairedTest:
    """The same test on per-query scores as saved in results JSON (query id -> value)."""
    from scipy import stats

    common = sorted(set(qa) & set(qb))
    if len(common) < 2:
        raise ValueError(f"need at least two common queries for a paired test on {metric}, got {len(common)}")
    xa = [qa[q] for q in common]
    xb = [qb[q] for q in common]
    mean_a, mean_b = sum(xa) / len(xa), sum(xb) / len(xb)
    if all(x == y for x, y in zip(xa, xb, strict=True)):
        t, p = 0.0, 1.0
    else:
        res = stats.ttest_rel(xa, xb)
        t, p = float(res.statistic), float(res.pvalue)
    return PairedTest(metric, mean_a, mean_b, mean_a - mean_b, t, p, len(common))
