"""BM25 first-stage retrieval: the in-memory default (bm25s) and Elasticsearch."""

from __future__ import annotations

from synthrank.retrieve.analysis import Analyzer
from synthrank.retrieve.base import Hit, Retriever
from synthrank.retrieve.bm25s_backend import InMemoryBM25

__all__ = ["Analyzer", "Hit", "InMemoryBM25", "Retriever"]
