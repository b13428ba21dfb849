"""Rerankers: fast batched scoring of (query, document) pairs on CPU or GPU.

Every model family implements :class:`PairScorer`; :func:`load_scorer` picks the right one
for a model folder or name. Nothing here imports torch until a model is loaded.
"""

from __future__ import annotations

from synthrank.rerank.base import PairScorer
from synthrank.rerank.bi_encoder import BiEncoderScorer
from synthrank.rerank.cross_encoder import CrossEncoderReranker
from synthrank.rerank.factory import load_fused_scorer, load_scorer
from synthrank.rerank.fusion import FusedScorer, fuse_scores, standardise_per_query
from synthrank.rerank.memo import RememberingScorer
from synthrank.runtime.models import ModelInfo, inspect_model

__all__ = [
    "BiEncoderScorer",
    "CrossEncoderReranker",
    "FusedScorer",
    "ModelInfo",
    "PairScorer",
    "RememberingScorer",
    "fuse_scores",
    "inspect_model",
    "load_fused_scorer",
    "load_scorer",
    "standardise_per_query",
]
