"""Conversions between PyTerrier frames and the core's records: the only place frames meet synthrank."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias

import pandas as pd

from synthrank.data.records import Dataset, Document
from synthrank.errors import DataError

DocumentsLike: TypeAlias = "pd.DataFrame | Iterable[Mapping[str, Any]] | Mapping[str, Document] | Iterable[Document]"
"""Anything that can be indexed: a ``docno, text[, title]`` frame, dicts like ``get_corpus_iter()`` yields, core documents."""


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text(value: Any) -> str:
    return "" if _is_missing(value) else str(value)


def documents_from(
    docs: DocumentsLike,
    *,
    text_field: str = "text",
    title_field: str | None = "title",
) -> list[Document]:
    """Core documents from a document frame, an iterable of dicts (``docno`` + text), or core documents.

    ``title_field`` is kept apart (not concatenated) so BM25 and rerankers see ``title + text``
    exactly as the core does. A record without a ``docno``, or with neither text nor title,
    raises :class:`~synthrank.errors.DataError` naming the record.
    """
    if isinstance(docs, Mapping):
        values: Iterable[Any] = docs.values()
    elif isinstance(docs, pd.DataFrame):
        if "docno" not in docs.columns:
            raise DataError(f"document frame has no 'docno' column (columns: {list(docs.columns)})", field="docno")
        if text_field not in docs.columns:
            raise DataError(
                f"document frame has no {text_field!r} column (columns: {list(docs.columns)})", field=text_field
            )
        values = docs.to_dict("records")
    else:
        values = docs
    out: list[Document] = []
    for i, record in enumerate(values):
        if isinstance(record, Document):
            out.append(record)
            continue
        if not isinstance(record, Mapping):
            raise DataError(
                f"document {i}: expected a dict with 'docno' and {text_field!r}, got {type(record).__name__}"
            )
        if _is_missing(record.get("docno")):
            raise DataError(f"document {i} has no 'docno'", field="docno")
        docno = str(record["docno"])
        text = _text(record.get(text_field))
        title = _text(record.get(title_field)) if title_field else ""
        if not text.strip() and not title.strip():
            raise DataError(f"document {docno!r} (record {i}) has an empty {text_field!r}", field=text_field)
        meta = {k: v for k, v in record.items() if k not in ("docno", text_field, title_field)}
        out.append(Document(id=docno, text=text, title=title, meta=meta))
    return out


def query_texts(frame: pd.DataFrame, *, who: str) -> list[str]:
    """The ``query`` column as strings; an empty or missing query raises naming its ``qid``."""
    queries = [_text(q) for q in frame["query"].tolist()]
    bad = [str(qid) for qid, q in zip(frame["qid"].tolist(), queries, strict=True) if not q.strip()]
    if bad:
        shown = ", ".join(repr(b) for b in sorted(set(bad))[:5])
        raise DataError(f"{who}: empty query text for qid {shown}" + (" …" if len(set(bad)) > 5 else ""), field="query")
    return queries


def document_texts(frame: pd.DataFrame, text_field: str, *, who: str) -> list[str]:
    """The ``text_field`` column as strings; an empty or missing text raises naming its ``docno``."""
    texts = [_text(t) for t in frame[text_field].tolist()]
    docnos = frame["docno"].tolist() if "docno" in frame.columns else list(range(len(frame)))
    bad = [str(d) for d, t in zip(docnos, texts, strict=True) if not t.strip()]
    if bad:
        shown = ", ".join(repr(b) for b in sorted(set(bad))[:5])
        raise DataError(
            f"{who}: empty {text_field!r} for docno {shown}"
            + (" …" if len(set(bad)) > 5 else "")
            + " (load the text first, e.g. with a text loader, or set text_field)",
            field=text_field,
        )
    return texts


def empty_result_frame(extra: Iterable[str] = ()) -> pd.DataFrame:
    """A zero-row result frame with correctly typed ``qid, query, docno, score, rank`` columns."""
    columns: dict[str, pd.Series] = {
        "qid": pd.Series(dtype="object"),
        "query": pd.Series(dtype="object"),
        "docno": pd.Series(dtype="object"),
        "score": pd.Series(dtype="float64"),
        "rank": pd.Series(dtype="int64"),
    }
    for name in extra:
        columns.setdefault(name, pd.Series(dtype="object"))
    return pd.DataFrame(columns)


def topics_frame(dataset: Dataset) -> pd.DataFrame:
    """A core dataset's queries as a PyTerrier topics frame (``qid, query``)."""
    return pd.DataFrame(
        {"qid": list(dataset.queries), "query": [q.text for q in dataset.queries.values()]}, columns=["qid", "query"]
    )


def qrels_frame(dataset: Dataset) -> pd.DataFrame:
    """A core dataset's qrels as a PyTerrier qrels frame (``qid, docno, label``)."""
    rows = [{"qid": q, "docno": d, "label": rel} for q, docs in dataset.qrels.items() for d, rel in docs.items()]
    return pd.DataFrame(rows, columns=["qid", "docno", "label"])
