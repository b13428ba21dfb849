"""A scorer that remembers its scores, so one model is not run twice over the same pairs.

An evaluation that reports a model alone and fused with another scores the same pairs twice;
wrapping each model in :class:`RememberingScorer` makes the second pass free.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from synthrank.rerank.base import PairScorer


class RememberingScorer:
    """Delegates to ``scorer`` for pairs it has not seen; returns the stored score for the rest."""

    def __init__(self, scorer: PairScorer) -> None:
        self.scorer = scorer
        self._scores: dict[tuple[str, str], float] = {}

    def __repr__(self) -> str:
        return f"RememberingScorer({self.scorer!r}, {len(self._scores)} pairs)"

    def warm_up(self) -> None:
        if hasattr(self.scorer, "warm_up"):
            self.scorer.warm_up()

    def close(self) -> None:
        if hasattr(self.scorer, "close"):
            self.scorer.close()

    def score_pairs(
        self, queries: Sequence[str], documents: Sequence[str], *, show_progress: bool = False
    ) -> np.ndarray:
        if len(queries) != len(documents):
            raise ValueError(f"{len(queries)} queries but {len(documents)} documents")
        keys = list(zip(queries, documents, strict=True))
        new = list(dict.fromkeys(k for k in keys if k not in self._scores))
        if new:
            scores = self.scorer.score_pairs([q for q, _ in new], [d for _, d in new], show_progress=show_progress)
            self._scores.update(zip(new, (float(s) for s in np.asarray(scores)), strict=True))
        return np.asarray([self._scores[k] for k in keys], dtype=np.float32)
