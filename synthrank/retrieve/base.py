"""What every BM25 backend offers: index documents once, retrieve many queries at once."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from synthrank.data.records import Document


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved document: its id, BM25 score and 1-based rank."""

    doc_id: str
    score: float
    rank: int


@runtime_checkable
class Retriever(Protocol):
    """A first-stage retriever: the in-memory BM25 and the Elasticsearch backend both satisfy it."""

    def index(self, documents: Iterable[Document]) -> None:
        """Index the documents (title + text), replacing whatever was indexed before."""

    def retrieve(self, queries: Sequence[str], k: int = 100, *, show_progress: bool = False) -> list[list[Hit]]:
        """Top-``k`` hits for each query, best first; documents with no matching term are never returned."""
        ...

    def __len__(self) -> int:
        """Number of indexed documents."""
        ...
