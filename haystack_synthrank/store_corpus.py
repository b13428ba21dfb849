"""Views of a Haystack retriever and its document store through the core's interfaces (no mining logic here).

The core miner needs a :class:`~synthrank.retrieve.Retriever` and a ``Mapping[str, Document]``;
these two classes provide them over any Haystack BM25 retriever component and its document
store, fetching only the documents the miner looks at (so an Elasticsearch index of millions
of documents is never loaded whole).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from haystack import Document as HaystackDocument

from synthrank.data.records import Document
from synthrank.errors import SynthrankError
from synthrank.retrieve.base import Hit

logger = logging.getLogger(__name__)


def document_store_of(retriever: Any) -> Any:
    """The document store a Haystack retriever searches (``InMemoryBM25Retriever``, ``ElasticsearchBM25Retriever``…)."""
    for name in ("document_store", "_document_store"):
        store = getattr(retriever, name, None)
        if store is not None:
            return store
    raise TypeError(f"{type(retriever).__name__} exposes no document store: pass a Haystack BM25 retriever component")


def to_core_document(doc: HaystackDocument, title_meta_field: str | None) -> Document:
    """A Haystack document as the core sees it: ``content`` is the text, one meta field the title."""
    title = doc.meta.get(title_meta_field) if title_meta_field else None
    return Document(id=doc.id, text=doc.content or "", title="" if title is None else str(title), meta=dict(doc.meta))


class StoreCorpus(Mapping[str, Document]):
    """A document store as a read-only ``Mapping[str, Document]`` that fetches by id on demand and caches."""

    def __init__(self, store: Any, *, title_meta_field: str | None = "title") -> None:
        self.store = store
        self.title_meta_field = title_meta_field
        self._cache: dict[str, Document | None] = {}

    def remember(self, docs: Iterable[HaystackDocument]) -> None:
        for doc in docs:
            self._cache[doc.id] = to_core_document(doc, self.title_meta_field)

    def fetch(self, ids: Sequence[str]) -> None:
        """Load the given ids in one store query (unknown ids are remembered as absent)."""
        wanted = [i for i in dict.fromkeys(ids) if i not in self._cache]
        if not wanted:
            return
        found = self.store.filter_documents(filters={"field": "id", "operator": "in", "value": wanted})
        self.remember(found)
        for doc_id in wanted:
            self._cache.setdefault(doc_id, None)

    def __getitem__(self, doc_id: str) -> Document:
        if doc_id not in self._cache:
            self.fetch([doc_id])
        doc = self._cache[doc_id]
        if doc is None:
            raise KeyError(doc_id)
        return doc

    def __contains__(self, doc_id: object) -> bool:
        if not isinstance(doc_id, str):
            return False
        try:
            self[doc_id]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        for doc in self.store.filter_documents():
            yield doc.id

    def __len__(self) -> int:
        return int(self.store.count_documents())


class RetrieverAdapter:
    """A Haystack retriever component as a core :class:`~synthrank.retrieve.Retriever` (search only).

    Hits keep the Haystack retriever's scores and order; rank is the 1-based position.
    """

    def __init__(self, retriever: Any, corpus: StoreCorpus, *, filters: dict[str, Any] | None = None) -> None:
        self.retriever = retriever
        self.corpus = corpus
        self.filters = filters

    def __repr__(self) -> str:
        return f"RetrieverAdapter({type(self.retriever).__name__})"

    def index(self, documents: Iterable[Document]) -> None:
        raise SynthrankError("index documents by writing them to the Haystack document store, not through the miner")

    def retrieve(self, queries: Sequence[str], k: int = 100, *, show_progress: bool = False) -> list[list[Hit]]:
        from tqdm.auto import tqdm

        out: list[list[Hit]] = []
        for query in tqdm(queries, desc="Retrieving", unit="query", disable=not show_progress):
            kwargs: dict[str, Any] = {"query": query, "top_k": k}
            if self.filters is not None:
                kwargs["filters"] = self.filters
            docs: list[HaystackDocument] = self.retriever.run(**kwargs)["documents"]
            self.corpus.remember(docs)
            out.append([Hit(d.id, float(d.score or 0.0), rank) for rank, d in enumerate(docs, start=1)])
        return out

    def __len__(self) -> int:
        return len(self.corpus)
