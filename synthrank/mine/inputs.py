"""What the miner reads: the synthetic-query artifact and, optionally, known positives (qrels or labels)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthrank.data.jsonl import iter_jsonl
from synthrank.data.readers import read_qrels
from synthrank.data.records import Document
from synthrank.errors import DataError

logger = logging.getLogger(__name__)

_ID_FIELDS = ("query_id", "_id", "id", "qid")
_TEXT_FIELDS = ("query", "text")


@dataclass(frozen=True, slots=True)
class MiningQuery:
    """One query to mine for: its text, and the passage it was written from (the positive).

    ``source_doc_id`` is ``None`` for queries that carry no positive of their own (e.g. real
    questions whose positives come from qrels or judge labels).
    """

    query_id: str
    query: str
    source_doc_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> MiningQuery:
        """Build from a synthetic-query record (``query_id``, ``query``, ``source_doc_id``, anything else = meta)."""
        id_field = next((f for f in _ID_FIELDS if f in obj), None)
        text_field = next((f for f in _TEXT_FIELDS if f in obj), None)
        if id_field is None or text_field is None:
            raise ValueError(f"a query record needs one of {_ID_FIELDS} and one of {_TEXT_FIELDS}")
        source = obj.get("source_doc_id")
        meta = {k: v for k, v in obj.items() if k not in (id_field, text_field, "source_doc_id")}
        return cls(str(obj[id_field]), str(obj[text_field]), None if source is None else str(source), meta)


def read_mining_queries(path: str | Path, *, corpus: Mapping[str, Document] | None = None) -> list[MiningQuery]:
    """Read a synthetic-query JSONL (``query_id``, ``query``, ``source_doc_id``, ...).

    BEIR-style ``_id``/``text`` records are accepted too. With ``corpus``, a ``source_doc_id``
    that names no document is an error naming the line, since its group could never be built.
    """
    path = Path(path)
    if not path.exists():
        raise DataError("queries file does not exist", path=path)
    queries: list[MiningQuery] = []
    first_line: dict[str, int] = {}
    for lineno, obj in iter_jsonl(path):
        id_field = next((f for f in _ID_FIELDS if f in obj), None)
        if id_field is None:
            raise DataError("record has no query id", path=path, line=lineno, field="query_id")
        raw_id = obj[id_field]
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or not str(raw_id).strip():
            raise DataError(f"bad query id {raw_id!r}", path=path, line=lineno, field=id_field)
        text_field = next((f for f in _TEXT_FIELDS if f in obj), "query")
        text = obj.get(text_field)
        if not isinstance(text, str) or not text.strip():
            raise DataError("query has no text", path=path, line=lineno, field=text_field)
        source = obj.get("source_doc_id")
        if source is not None:
            if isinstance(source, bool) or not isinstance(source, (str, int)):
                raise DataError(f"bad document id {source!r}", path=path, line=lineno, field="source_doc_id")
            source = str(source)
            if corpus is not None and source not in corpus:
                raise DataError(f"names document {source!r}, which is not in the corpus", path=path, line=lineno,
                                field="source_doc_id")
        query = MiningQuery.from_dict(obj)
        if query.query_id in first_line:
            raise DataError(f"duplicate query id {query.query_id!r} (first seen on line {first_line[query.query_id]})",
                            path=path, line=lineno, field=id_field)
        first_line[query.query_id] = lineno
        queries.append(query)
    if not queries:
        raise DataError("no queries in this file", path=path)
    logger.info("read %d queries from %s", len(queries), path)
    return queries


def read_positives(path: str | Path, *, min_grade: int = 1) -> dict[str, set[str]]:
    """Known positives per query: qrels (TSV/TREC) or judge labels (JSONL ``query_id``, ``doc_id``, ``grade``).

    A document counts as a positive when its relevance/grade is at least ``min_grade``; it is then
    never mined as a negative for that query, and gets a training group of its own.
    """
    path = Path(path)
    if not path.exists():
        raise DataError("positives file does not exist", path=path)
    positives: dict[str, set[str]] = {}
    if ".jsonl" in path.suffixes or ".json" in path.suffixes:
        for lineno, obj in iter_jsonl(path):
            for required in ("query_id", "doc_id", "grade"):
                if obj.get(required) is None:
                    raise DataError(f"missing '{required}'", path=path, line=lineno, field=required)
            grade = obj["grade"]
            if isinstance(grade, bool) or not isinstance(grade, (int, float)):
                raise DataError(f"grade must be a number, got {grade!r}", path=path, line=lineno, field="grade")
            if grade >= min_grade:
                positives.setdefault(str(obj["query_id"]), set()).add(str(obj["doc_id"]))
    else:
        for qid, judged in read_qrels(path).items():
            relevant = {did for did, rel in judged.items() if rel >= min_grade}
            if relevant:
                positives[qid] = relevant
    logger.info("read positives for %d queries from %s", len(positives), path)
    return positives
