"""The plain records that flow between stages: documents, queries, relevance judgements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Qrels = dict[str, dict[str, int]]
"""query id -> document id -> graded relevance (0 = judged not relevant)."""


@dataclass(frozen=True, slots=True)
class Document:
    """One passage of the corpus. ``title`` is kept apart so rerankers can see ``title + text``."""

    id: str
    text: str
    title: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def full_text(self, separator: str = "\n") -> str:
        """The text a reranker or BM25 sees by default: title, then body."""
        if self.title and self.text:
            return f"{self.title}{separator}{self.text}"
        return self.title or self.text

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"_id": self.id, "title": self.title, "text": self.text}
        if self.meta:
            out["metadata"] = self.meta
        return out


@dataclass(frozen=True, slots=True)
class Query:
    id: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(slots=True)
class Dataset:
    """A corpus with (optionally) queries and qrels of one split."""

    name: str
    corpus: dict[str, Document]
    queries: dict[str, Query] = field(default_factory=dict)
    qrels: Qrels = field(default_factory=dict)

    def judged_queries(self) -> dict[str, Query]:
        """Queries that have at least one judgement in the qrels (the ones evaluation uses)."""
        return {qid: q for qid, q in self.queries.items() if qid in self.qrels}
