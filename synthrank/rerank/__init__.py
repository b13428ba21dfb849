"""Rerankers: fast batched scoring of (query, document) pairs on CPU or GPU.

Every model family implements :class:`PairScorer`; :func:`load_scorer` picks the right one
for a model folder or name. Nothing here imports torch until a model is loaded.
"""

from __future__ import annotations

from synthrank.rerank.base import PairScorer
from synthrank.rerank.bi_encoder import BiEncoderScorer
from synthrank.rerank.cross_encoder import CrossEncoderReranker, ModelInfo, inspect_model
from synthrank.rerank.factory import load_scorer

__all__ = ["BiEncoderScorer", "CrossEncoderReranker", "ModelInfo", "PairScorer", "inspect_model", "load_scorer"]
