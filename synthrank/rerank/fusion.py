"""Score fusion: a trained reranker plus another model (the zero-shot bi-encoder, BM25...) in one score.

A reranker trained on a few hundred synthetic groups and a zero-shot embedder make different
mistakes; a weighted sum of their per-query standardised scores is the usual way to keep the
strengths of both. Scores are standardised within each query's candidates (z-scores), because raw
logits and cosines live on unrelated scales; the weight is picked on held-out synthetic data
(:meth:`synthrank.train.DevSet.tune_fusion`), never on the test queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from synthrank.rerank.base import PairScorer


def standardise_per_query(queries: Sequence[str], scores: np.ndarray) -> np.ndarray:
    """Each query's scores minus their mean, over their standard deviation (0 where all are equal)."""
    values = np.asarray(scores, dtype=np.float64)
    if len(values) != len(queries):
        raise ValueError(f"{len(queries)} queries but {len(values)} scores")
    out = np.zeros_like(values)
    index: dict[str, list[int]] = {}
    for i, q in enumerate(queries):
        index.setdefault(q, []).append(i)
    for rows in index.values():
        part = values[rows]
        std = part.std()
        out[rows] = (part - part.mean()) / std if std > 0 else 0.0
    return out


def fuse_scores(queries: Sequence[str], parts: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The weighted sum of each scorer's per-query standardised scores, as float32."""
    if len(parts) != len(weights) or not parts:
        raise ValueError(f"{len(parts)} score lists but {len(weights)} weights")
    total = np.zeros(len(queries), dtype=np.float64)
    for part, weight in zip(parts, weights, strict=True):
        if weight:
            total += float(weight) * standardise_per_query(queries, part)
    return total.astype(np.float32)


class FusedScorer:
    """Weighted sum of several scorers' per-query standardised scores; a :class:`PairScorer` itself.

    Standardising is per query, over the pairs passed in one call: rerank each query's whole
    candidate list at once (every adapter and the evaluation harness do).

    Args:
        scorers: the scorers to fuse (loaded lazily by their own ``warm_up``).
        weights: one per scorer; only their ratios matter.
        names: labels for logs and reports.

    Example:
        >>> trained, zero_shot = load_scorer("runs/medquad/train/model"), load_scorer("minilm")
        >>> weight = dev.tune_fusion([trained, zero_shot])["weights"]
        >>> FusedScorer([trained, zero_shot], weight).score_pairs(queries, passages)
    """

    def __init__(
        self, scorers: Sequence[PairScorer], weights: Sequence[float], names: Sequence[str] | None = None
    ) -> None:
        if len(scorers) < 1 or len(scorers) != len(weights):
            raise ValueError(f"{len(scorers)} scorers but {len(weights)} weights")
        if any(w < 0 for w in weights) or not any(weights):
            raise ValueError(f"weights must be >= 0 and not all 0, got {list(weights)}")
        self.scorers = list(scorers)
        self.weights = [float(w) for w in weights]
        self.names = list(names) if names is not None else [type(s).__name__ for s in scorers]

    def __repr__(self) -> str:
        parts = ", ".join(f"{w:g}*{n}" for n, w in zip(self.names, self.weights, strict=True))
        return f"FusedScorer({parts})"

    def warm_up(self) -> None:
        for scorer in self.scorers:
            if hasattr(scorer, "warm_up"):
                scorer.warm_up()

    def close(self) -> None:
        for scorer in self.scorers:
            if hasattr(scorer, "close"):
                scorer.close()

    def score_pairs(
        self, queries: Sequence[str], documents: Sequence[str], *, show_progress: bool = False
    ) -> np.ndarray:
        if len(queries) != len(documents):
            raise ValueError(f"{len(queries)} queries but {len(documents)} documents")
        if not queries:
            return np.zeros(0, dtype=np.float32)
        parts = [
            np.asarray(s.score_pairs(queries, documents, show_progress=show_progress), dtype=np.float64)
            if w
            else np.zeros(len(queries))
            for s, w in zip(self.scorers, self.weights, strict=True)
        ]
        return fuse_scores(queries, parts, self.weights)

    def describe(self) -> dict[str, Any]:
        return {"names": self.names, "weights": self.weights}
