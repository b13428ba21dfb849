"""BM25 first-stage retrieval: the in-memory default (bm25s) and Elasticsearch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from synthrank.retrieve.analysis import Analyzer
from synthrank.retrieve.base import Hit, Retriever
from synthrank.retrieve.bm25s_backend import InMemoryBM25

if TYPE_CHECKING:
    from synthrank.retrieve.elasticsearch_backend import ElasticsearchBM25

__all__ = ["Analyzer", "ElasticsearchBM25", "Hit", "InMemoryBM25", "Retriever"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import synthrank.retrieve` never pulls in the elasticsearch client.
    if name == "ElasticsearchBM25":
        from synthrank.retrieve.elasticsearch_backend import ElasticsearchBM25

        return ElasticsearchBM25
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
