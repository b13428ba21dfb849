"""The one scoring interface every reranker offers (cross-encoder, bi-encoder, LLM judge)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class PairScorer(Protocol):
    """Scores (query, document text) pairs; higher means more relevant.

    The evaluation harness, the Haystack ranker and the PyTerrier reranker all call this,
    so any model family (LCE cross-encoder, zero-shot bi-encoder, LLM judge, LoRA LLM)
    plugs into every adapter.
    """

    def score_pairs(
        self, queries: Sequence[str], documents: Sequence[str], *, show_progress: bool = False
    ) -> np.ndarray:
        """One float score per pair, as a 1-D float32 array of ``len(queries)``."""
        ...
