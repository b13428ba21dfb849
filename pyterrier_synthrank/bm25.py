"""BM25 first stages that run offline: the core in-memory BM25, PISA, and Terrier for users with its jars."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyterrier as pt

from pyterrier_synthrank.frames import DocumentsLike, documents_from, empty_result_frame, query_texts
from synthrank.errors import DataError
from synthrank.retrieve.analysis import Analyzer
from synthrank.retrieve.bm25s_backend import InMemoryBM25

logger = logging.getLogger(__name__)

_RESULT_COLUMNS = ("docno", "score", "rank")


class SynthBM25(pt.Transformer):
    """The core's in-memory BM25 (bm25s, Lucene formula) as a PyTerrier retriever.

    Query frame in (``qid, query``), result frame out (``qid, query, docno, score, rank`` and,
    with ``include_text``, the document's ``title + "\\n" + text`` in ``text_field`` — exactly
    what the core's evaluation feeds a reranker). Runs without Java.

    Args:
        bm25: an indexed :class:`~synthrank.retrieve.InMemoryBM25`; usually built with
            :meth:`from_documents` or loaded with :meth:`load`.
        documents: the indexed documents, needed only for ``include_text``.
        num_results: documents returned per query.
        include_text: add the document text, so a reranker can follow directly.
        text_field: name of the text column added.
        verbose: progress bar over query batches.

    Example:
        >>> bm25 = SynthBM25.from_documents(pt.get_dataset("vaswani").get_corpus_iter(), num_results=100)
        >>> bm25.search("chemical reactions")
    """

    def __init__(
        self,
        bm25: InMemoryBM25,
        *,
        documents: DocumentsLike | None = None,
        num_results: int = 100,
        include_text: bool = True,
        text_field: str = "text",
        verbose: bool = False,
    ) -> None:
        if num_results <= 0:
            raise ValueError(f"num_results must be > 0, got {num_results}")
        self.bm25 = bm25
        self.num_results = num_results
        self.text_field = text_field
        self.verbose = verbose
        self._texts: dict[str, str] = {}
        if documents is not None:
            self._texts = {d.id: d.full_text("\n") for d in documents_from(documents)}
        if include_text and not self._texts:
            raise ValueError("include_text=True needs the documents: pass documents=... or include_text=False")
        self.include_text = include_text

    @classmethod
    def from_documents(
        cls,
        documents: DocumentsLike,
        *,
        k1: float = 0.9,
        b: float = 0.4,
        analyzer: Analyzer | None = None,
        num_results: int = 100,
        include_text: bool = True,
        text_field: str = "text",
        verbose: bool = False,
    ) -> SynthBM25:
        """Index documents (a ``docno, text[, title]`` frame, dicts like ``get_corpus_iter()`` yields, or core documents)."""
        docs = documents_from(documents)
        bm25 = InMemoryBM25(k1=k1, b=b, analyzer=analyzer)
        bm25.index(docs, show_progress=verbose)
        return cls(
            bm25,
            documents=docs if include_text else None,
            num_results=num_results,
            include_text=include_text,
            text_field=text_field,
            verbose=verbose,
        )

    @classmethod
    def load(cls, directory: str | Path, *, documents: DocumentsLike | None = None, **kwargs: Any) -> SynthBM25:
        """Open an index saved with :meth:`save` (or the ``synthrank index`` command)."""
        kwargs.setdefault("include_text", documents is not None)
        return cls(InMemoryBM25.load(directory), documents=documents, **kwargs)

    def save(self, directory: str | Path) -> None:
        self.bm25.save(directory)

    def text_loader(self) -> CorpusTextLoader:
        """A transformer adding the text of this index's documents to any result frame."""
        if not self._texts:
            raise ValueError("this SynthBM25 was built without its documents: it cannot load text")
        return CorpusTextLoader(self._texts, text_field=self.text_field)

    def __repr__(self) -> str:
        return (
            f"SynthBM25(k1={self.bm25.k1}, b={self.bm25.b}, docs={len(self.bm25)}, "
            f"num_results={self.num_results}, include_text={self.include_text})"
        )

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        pt.validate.query_frame(inp, extra_columns=["query"])
        drop = [c for c in (*_RESULT_COLUMNS, self.text_field) if c in inp.columns]
        queries_frame = inp.drop(columns=drop).reset_index(drop=True)
        extra = [self.text_field] if self.include_text else []
        if len(queries_frame) == 0:
            empty = empty_result_frame(extra)
            for col in queries_frame.columns:
                if col not in empty.columns:
                    empty[col] = pd.Series(dtype=queries_frame[col].dtype)
            return empty
        queries = query_texts(queries_frame, who=repr(self))
        hits = self.bm25.retrieve(queries, k=self.num_results, show_progress=self.verbose)
        owners = [i for i, query_hits in enumerate(hits) for _ in query_hits]
        out = queries_frame.iloc[owners].reset_index(drop=True)
        out["docno"] = [h.doc_id for query_hits in hits for h in query_hits]
        out["score"] = pd.Series([h.score for query_hits in hits for h in query_hits], dtype="float64")
        out = pt.model.add_ranks(out)
        if self.include_text:
            out[self.text_field] = [self._texts[d] for d in out["docno"]]
        return out


class CorpusTextLoader(pt.Transformer):
    """Adds document text to a result frame from an in-memory corpus (for PISA or any retriever returning docnos).

    The text is ``title + "\\n" + text``, as the core feeds rerankers.

    Example:
        >>> pipeline = pisa_index.bm25() >> CorpusTextLoader(corpus) >> reranker
    """

    def __init__(self, documents: DocumentsLike | Mapping[str, str], *, text_field: str = "text") -> None:
        if isinstance(documents, Mapping) and all(isinstance(v, str) for v in documents.values()):
            self._texts = {str(k): v for k, v in documents.items()}
        else:
            self._texts = {d.id: d.full_text("\n") for d in documents_from(documents)}  # type: ignore[arg-type]
        self.text_field = text_field

    def __repr__(self) -> str:
        return f"CorpusTextLoader(docs={len(self._texts)}, text_field={self.text_field!r})"

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        pt.validate.result_frame(inp)
        out = inp.drop(columns=[self.text_field], errors="ignore").copy()
        if len(out) == 0:
            out[self.text_field] = pd.Series(dtype="object")
            return out
        docnos = out["docno"].astype(str)
        missing = sorted(set(docnos) - self._texts.keys())
        if missing:
            raise DataError(f"{self!r}: {len(missing)} docno(s) not in the corpus, e.g. {missing[:5]}", field="docno")
        out[self.text_field] = [self._texts[d] for d in docnos]
        return out


def pisa_bm25(
    documents: DocumentsLike,
    index_path: str | Path,
    *,
    k1: float = 0.9,
    b: float = 0.4,
    num_results: int = 100,
    stemmer: str = "porter2",
    threads: int = 1,
    text_field: str = "text",
    verbose: bool = False,
) -> pt.Transformer:
    """PISA's BM25 (``pyterrier-pisa``, ships its engine) followed by a text loader, building the index if needed.

    The index holds ``title + text``; an index already at ``index_path`` is reused as is.
    """
    from pyterrier_pisa import PisaIndex

    docs = documents_from(documents)
    index = PisaIndex(str(index_path), text_field="text", stemmer=stemmer, threads=threads)
    if not index.built():
        logger.info("building a PISA index of %d documents at %s", len(docs), index_path)
        index.index({"docno": d.id, "text": d.full_text(" ")} for d in docs)
    retriever: pt.Transformer = index.bm25(k1=k1, b=b, num_results=num_results, verbose=verbose)
    return retriever >> CorpusTextLoader(docs, text_field=text_field)


def terrier_bm25(
    index: Any,
    *,
    k1: float = 0.9,
    b: float = 0.4,
    num_results: int = 100,
    text_field: str = "text",
) -> pt.Transformer:
    """Terrier's Java BM25 over an existing Terrier index that stores ``text_field`` as metadata.

    Needs Java and the Terrier jars (``pt.java.init()`` downloads them on first use), so it is
    here for users who have them; synthrank's own tests run :class:`SynthBM25` and
    :func:`pisa_bm25` instead.
    """
    terrier_index = index if isinstance(index, pt.terrier.TerrierIndex) else pt.terrier.TerrierIndex(index)
    retriever: pt.Transformer = terrier_index.bm25(
        k1=k1, b=b, num_results=num_results, include_fields=["docno", text_field]
    )
    return retriever
