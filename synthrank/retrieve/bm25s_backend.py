"""In-memory BM25 on `bm25s`: sparse precomputed scores, the embedded default first stage."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthrank.data.jsonl import write_json
from synthrank.data.records import Document
from synthrank.errors import SynthrankError
from synthrank.retrieve.analysis import Analyzer
from synthrank.retrieve.base import Hit

logger = logging.getLogger(__name__)


def _import_bm25s() -> Any:
    """Import bm25s and undo its forcing of its logger to DEBUG, so it follows the application's level."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.NOTSET)
    return bm25s


class InMemoryBM25:
    """BM25 over an in-memory sparse index (`bm25s`), with batch retrieval.

    Defaults follow Lucene's BM25 formula with Anserini's BEIR parameters (k1=0.9, b=0.4).
    Documents are indexed as ``title + text``.

    Example:
        >>> bm25 = InMemoryBM25()
        >>> bm25.index(corpus.values())
        >>> hits = bm25.retrieve(["what causes glaucoma"], k=10)[0]
    """

    def __init__(
        self,
        *,
        k1: float = 0.9,
        b: float = 0.4,
        analyzer: Analyzer | None = None,
        method: str = "lucene",
        n_threads: int = 0,
        batch_size: int = 512,
    ) -> None:
        self.k1 = k1
        self.b = b
        self.analyzer = analyzer or Analyzer()
        self.method = method
        self.n_threads = n_threads
        self.batch_size = batch_size
        self._model: Any = None
        self._doc_ids: list[str] = []
        self._positions: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self._doc_ids)

    def __repr__(self) -> str:
        return f"InMemoryBM25(k1={self.k1}, b={self.b}, analyzer={self.analyzer!r}, docs={len(self)})"

    @property
    def doc_ids(self) -> list[str]:
        return list(self._doc_ids)

    def index(self, documents: Iterable[Document], *, show_progress: bool = False) -> None:
        bm25s = _import_bm25s()

        docs = list(documents)
        if not docs:
            raise SynthrankError("cannot build a BM25 index over zero documents")
        self._doc_ids = [d.id for d in docs]
        self._positions = None
        tokens = [self.analyzer(d.full_text(" ")) for d in docs]
        # Documents with no term at all would make bm25s drop them from the vocab but keep their
        # slot; give them a sentinel term that no query can produce so indices stay aligned.
        tokens = [t if t else ["\x00empty"] for t in tokens]
        self._model = bm25s.BM25(k1=self.k1, b=self.b, method=self.method)
        self._model.index(tokens, show_progress=show_progress)
        logger.info("indexed %d documents (%d terms)", len(docs), len(self._model.vocab_dict))

    def _require_index(self) -> Any:
        if self._model is None:
            raise SynthrankError("the BM25 index is empty: call index() or load() first")
        return self._model

    def retrieve(self, queries: Sequence[str], k: int = 100, *, show_progress: bool = False) -> list[list[Hit]]:
        model = self._require_index()
        if isinstance(queries, str):
            raise TypeError("retrieve() takes a sequence of query strings, not one string")
        k_eff = min(k, len(self._doc_ids))
        vocab = model.vocab_dict
        results: list[list[Hit]] = []
        from tqdm.auto import tqdm

        batches = range(0, len(queries), self.batch_size)
        for start in tqdm(batches, desc="BM25", unit="batch", disable=not show_progress or len(queries) <= self.batch_size):
            batch = queries[start : start + self.batch_size]
            token_lists = [[t for t in self.analyzer(q) if t in vocab] for q in batch]
            nonempty = [i for i, t in enumerate(token_lists) if t]
            batch_hits: list[list[Hit]] = [[] for _ in batch]
            if nonempty and k_eff > 0:
                ids = [[vocab[t] for t in token_lists[i]] for i in nonempty]
                docs, scores = model.retrieve(
                    ids, k=k_eff, show_progress=False, n_threads=self.n_threads, return_as="tuple"
                )
                for row, i in enumerate(nonempty):
                    hits = []
                    for rank0, (d, s) in enumerate(zip(docs[row], scores[row], strict=True)):
                        if s <= 0:
                            break
                        hits.append(Hit(self._doc_ids[int(d)], float(s), rank0 + 1))
                    batch_hits[i] = hits
            results.extend(batch_hits)
        return results

    def score(self, query: str, doc_ids: Sequence[str]) -> np.ndarray:
        """BM25 scores of given documents for one query (0 for documents without a query term)."""
        model = self._require_index()
        if self._positions is None:
            self._positions = {d: i for i, d in enumerate(self._doc_ids)}
        position = self._positions
        tokens = [t for t in self.analyzer(query) if t in model.vocab_dict]
        if not tokens:
            return np.zeros(len(doc_ids), dtype=np.float32)
        all_scores = model.get_scores(tokens)
        return np.array([all_scores[position[d]] if d in position else 0.0 for d in doc_ids], dtype=np.float32)

    def save(self, directory: str | Path) -> None:
        """Save the index (bm25s format) with its doc ids and analyser settings."""
        model = self._require_index()
        directory = Path(directory)
        model.save(str(directory))
        write_json(
            directory / "synthrank_bm25.json",
            {"doc_ids": self._doc_ids, "k1": self.k1, "b": self.b, "method": self.method, "analyzer": self.analyzer.to_dict()},
        )

    @classmethod
    def load(cls, directory: str | Path, *, mmap: bool = True) -> InMemoryBM25:
        bm25s = _import_bm25s()

        directory = Path(directory)
        meta_path = directory / "synthrank_bm25.json"
        if not meta_path.exists():
            raise SynthrankError(f"{directory} is not a synthrank BM25 index (no synthrank_bm25.json)")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        self = cls(k1=meta["k1"], b=meta["b"], method=meta["method"], analyzer=Analyzer.from_dict(meta["analyzer"]))
        self._model = bm25s.BM25.load(str(directory), mmap=mmap)
        self._doc_ids = list(meta["doc_ids"])
        return self
