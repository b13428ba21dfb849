"""Rerankers: fast batched scoring of (query, document) pairs on CPU or GPU."""

from __future__ import annotations

from synthrank.rerank.base import PairScorer

__all__ = ["PairScorer"]
