"""Read corpora, queries and qrels from BEIR folders, plain JSONL/TSV files and ir_datasets.

Every reader validates as it goes and raises :class:`~synthrank.errors.DataError` naming the
file, line and field at fault: malformed JSON, a record without an id or text, a duplicate
id, a qrels line naming a document or query that does not exist.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from synthrank.data.jsonl import iter_jsonl, open_text
from synthrank.data.records import Dataset, Document, Qrels, Query
from synthrank.errors import DataError

logger = logging.getLogger(__name__)

ID_FIELDS = ("_id", "id", "doc_id", "docno", "qid", "query_id")
IRDS_PREFIX = "irds:"


def _first_present(obj: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        if name in obj:
            return name
    return None


def _find(folder: Path, stem: str) -> Path | None:
    for suffix in (".jsonl", ".jsonl.gz", ".tsv", ".tsv.gz"):
        candidate = folder / f"{stem}{suffix}"
        if candidate.exists():
            return candidate
    return None


# --------------------------------------------------------------------------- corpus


def read_corpus(path: str | Path) -> dict[str, Document]:
    """Read a corpus from a BEIR folder, a ``.jsonl[.gz]`` file or a ``.tsv[.gz]`` file.

    JSONL records need an id (``_id``; ``id``/``doc_id``/``docno`` accepted) and ``text``
    and/or ``title``; other fields go to ``Document.meta``. TSV rows are ``id<TAB>text`` or
    ``id<TAB>title<TAB>text``, with an optional header row.
    """
    path = Path(path)
    if path.is_dir():
        found = _find(path, "corpus")
        if found is None:
            raise DataError("no corpus.jsonl[.gz] or corpus.tsv in this folder", path=path)
        path = found
    if not path.exists():
        raise DataError("corpus file does not exist", path=path)
    records = _iter_tsv_docs(path) if ".tsv" in path.suffixes else _iter_jsonl_docs(path)
    corpus: dict[str, Document] = {}
    first_line: dict[str, int] = {}
    for lineno, doc in records:
        if doc.id in corpus:
            raise DataError(
                f"duplicate document id {doc.id!r} (first seen on line {first_line[doc.id]})",
                path=path,
                line=lineno,
                field="_id",
            )
        corpus[doc.id] = doc
        first_line[doc.id] = lineno
    if not corpus:
        raise DataError("the corpus is empty", path=path)
    logger.info("read %d documents from %s", len(corpus), path)
    return corpus


def _iter_jsonl_docs(path: Path) -> Iterator[tuple[int, Document]]:
    for lineno, obj in iter_jsonl(path):
        id_field = _first_present(obj, ("_id", "id", "doc_id", "docno"))
        if id_field is None:
            raise DataError("record has no document id", path=path, line=lineno, field="_id")
        doc_id = _as_id(obj[id_field], path, lineno, id_field)
        title = obj.get("title") or ""
        text = obj.get("text")
        if text is None and not title:
            raise DataError("record has neither 'text' nor 'title'", path=path, line=lineno, field="text")
        if not isinstance(title, str):
            raise DataError(f"expected a string, got {type(title).__name__}", path=path, line=lineno, field="title")
        if text is not None and not isinstance(text, str):
            raise DataError(f"expected a string, got {type(text).__name__}", path=path, line=lineno, field="text")
        meta = {k: v for k, v in obj.items() if k not in (id_field, "title", "text")}
        if isinstance(meta.get("metadata"), dict):
            meta = {**meta.pop("metadata"), **meta}
        yield lineno, Document(id=doc_id, text=text or "", title=title, meta=meta)


def _iter_tsv_docs(path: Path) -> Iterator[tuple[int, Document]]:
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.rstrip("\n\r")
            if not line.strip():
                continue
            cols = line.split("\t")
            if lineno == 1 and cols[0].strip().lower() in ID_FIELDS:
                continue
            if len(cols) == 2:
                doc_id, title, text = cols[0], "", cols[1]
            elif len(cols) == 3:
                doc_id, title, text = cols
            else:
                raise DataError(
                    f"expected 2 (id, text) or 3 (id, title, text) tab-separated columns, got {len(cols)}",
                    path=path,
                    line=lineno,
                )
            doc_id = doc_id.strip()
            if not doc_id:
                raise DataError("empty document id", path=path, line=lineno, field="_id")
            if not text.strip() and not title.strip():
                raise DataError("empty document text", path=path, line=lineno, field="text")
            yield lineno, Document(id=doc_id, text=text, title=title)


def _as_id(value: Any, path: Path, lineno: int, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"id must be a string or integer, got {type(value).__name__}", path=path, line=lineno, field=field)
    text = str(value).strip()
    if not text:
        raise DataError("empty id", path=path, line=lineno, field=field)
    return text


# --------------------------------------------------------------------------- queries


def read_queries(path: str | Path) -> dict[str, Query]:
    """Read queries from a BEIR folder, ``queries.jsonl[.gz]`` (``_id``, ``text``) or a TSV ``id<TAB>text``."""
    path = Path(path)
    if path.is_dir():
        found = _find(path, "queries")
        if found is None:
            raise DataError("no queries.jsonl[.gz] or queries.tsv in this folder", path=path)
        path = found
    if not path.exists():
        raise DataError("queries file does not exist", path=path)
    queries: dict[str, Query] = {}
    for lineno, query in _iter_tsv_queries(path) if ".tsv" in path.suffixes else _iter_jsonl_queries(path):
        if query.id in queries:
            raise DataError(f"duplicate query id {query.id!r}", path=path, line=lineno, field="_id")
        queries[query.id] = query
    logger.info("read %d queries from %s", len(queries), path)
    return queries


def _iter_jsonl_queries(path: Path) -> Iterator[tuple[int, Query]]:
    for lineno, obj in iter_jsonl(path):
        id_field = _first_present(obj, ("_id", "id", "qid", "query_id"))
        if id_field is None:
            raise DataError("record has no query id", path=path, line=lineno, field="_id")
        qid = _as_id(obj[id_field], path, lineno, id_field)
        text = obj.get("text", obj.get("query"))
        if not isinstance(text, str) or not text.strip():
            raise DataError("query has no text", path=path, line=lineno, field="text")
        meta = {k: v for k, v in obj.items() if k not in (id_field, "text", "query")}
        yield lineno, Query(id=qid, text=text, meta=meta)


def _iter_tsv_queries(path: Path) -> Iterator[tuple[int, Query]]:
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.rstrip("\n\r")
            if not line.strip():
                continue
            cols = line.split("\t")
            if lineno == 1 and cols[0].strip().lower() in ID_FIELDS:
                continue
            if len(cols) != 2:
                raise DataError(f"expected 2 tab-separated columns (id, text), got {len(cols)}", path=path, line=lineno)
            qid, text = cols[0].strip(), cols[1]
            if not qid:
                raise DataError("empty query id", path=path, line=lineno, field="_id")
            if not text.strip():
                raise DataError("query has no text", path=path, line=lineno, field="text")
            yield lineno, Query(id=qid, text=text)


# --------------------------------------------------------------------------- qrels


def read_qrels(
    path: str | Path,
    *,
    corpus: dict[str, Document] | None = None,
    queries: dict[str, Query] | None = None,
) -> Qrels:
    """Read qrels: BEIR TSV (``query-id corpus-id score`` header) or TREC (``qid 0 docid rel``).

    When ``corpus``/``queries`` are given, a line naming an unknown document or query is an error.
    """
    path = Path(path)
    if not path.exists():
        raise DataError("qrels file does not exist", path=path)
    qrels: Qrels = {}
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            cols = line.split("\t") if "\t" in line else line.split()
            cols = [c.strip() for c in cols]
            if lineno == 1 and cols[0].lower() in ("query-id", "query_id", "qid", "query"):
                continue
            if len(cols) == 3:
                qid, did, rel_text = cols
            elif len(cols) == 4:
                qid, _, did, rel_text = cols
            else:
                raise DataError(
                    f"expected 3 (query-id corpus-id score) or 4 (TREC) columns, got {len(cols)}", path=path, line=lineno
                )
            try:
                rel = int(float(rel_text))
            except ValueError:
                raise DataError(f"relevance {rel_text!r} is not a number", path=path, line=lineno, field="score") from None
            if queries is not None and qid not in queries:
                raise DataError(f"qrels names unknown query {qid!r}", path=path, line=lineno, field="query-id")
            if corpus is not None and did not in corpus:
                raise DataError(f"qrels names unknown document {did!r}", path=path, line=lineno, field="corpus-id")
            per_query = qrels.setdefault(qid, {})
            if did in per_query and per_query[did] != rel:
                raise DataError(
                    f"conflicting judgements for ({qid!r}, {did!r}): {per_query[did]} and {rel}",
                    path=path,
                    line=lineno,
                )
            per_query[did] = rel
    return qrels


# --------------------------------------------------------------------------- datasets


def load_dataset(
    source: str | Path,
    *,
    split: str = "test",
    qrels_file: str | Path | None = None,
    queries_file: str | Path | None = None,
) -> Dataset:
    """Load a corpus with queries and qrels from a BEIR folder, a corpus file, or an ``ir_datasets`` id.

    ``source`` may be:
      * a BEIR folder: ``corpus.jsonl[.gz]``, ``queries.jsonl[.gz]``, ``qrels/<split>.tsv``;
      * a corpus file (JSONL/TSV), with ``queries_file``/``qrels_file`` given separately, or none
        for a corpus only (what query synthesis needs);
      * ``irds:<id>`` (or an id that is not a path, e.g. ``beir/scifact/test``), loaded with
        ``ir_datasets``, which downloads on first use.
    """
    text = str(source)
    path = Path(source)
    if text.startswith(IRDS_PREFIX) or (not path.exists() and "/" in text and not text.startswith((".", "/"))):
        return load_ir_dataset(text.removeprefix(IRDS_PREFIX))
    if not path.exists():
        raise DataError("no such file or folder", path=path)
    corpus = read_corpus(path)
    name = path.name if path.is_dir() else path.stem.split(".")[0]
    queries: dict[str, Query] = {}
    qrels: Qrels = {}
    if queries_file is not None:
        queries = read_queries(queries_file)
    elif path.is_dir() and _find(path, "queries") is not None:
        queries = read_queries(path)
    if qrels_file is None and path.is_dir():
        candidate = path / "qrels" / f"{split}.tsv"
        if candidate.exists():
            qrels_file = candidate
        elif queries:
            available = sorted(p.stem for p in (path / "qrels").glob("*.tsv")) if (path / "qrels").exists() else []
            raise DataError(f"no qrels for split {split!r}; available: {available or 'none'}", path=candidate)
    if qrels_file is not None:
        qrels = read_qrels(qrels_file, corpus=corpus, queries=queries or None)
    return Dataset(name=name, corpus=corpus, queries=queries, qrels=qrels)


def load_ir_dataset(dataset_id: str) -> Dataset:
    """Load a dataset through ``ir_datasets`` (install ``synthrank[irds]``; downloads on first use)."""
    try:
        import ir_datasets
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DataError(f"ir_datasets is not installed; pip install 'synthrank[irds]' to load {dataset_id!r}") from exc
    try:
        ds = ir_datasets.load(dataset_id)
    except KeyError as exc:
        raise DataError(f"unknown ir_datasets id {dataset_id!r}") from exc
    corpus: dict[str, Document] = {}
    if ds.has_docs():
        for doc in ds.docs_iter():
            fields = doc._asdict()
            text = fields.pop("text", None) or fields.pop("body", None) or ""
            title = fields.pop("title", "") or ""
            doc_id = fields.pop("doc_id")
            corpus[doc_id] = Document(id=doc_id, text=text, title=title, meta={k: v for k, v in fields.items() if isinstance(v, (str, int, float))})
    queries: dict[str, Query] = {}
    if ds.has_queries():
        for q in ds.queries_iter():
            fields = q._asdict()
            qid = fields.pop("query_id")
            text = fields.pop("text", None) or fields.pop("title", None) or ""
            queries[qid] = Query(id=qid, text=text)
    qrels: Qrels = {}
    if ds.has_qrels():
        for qrel in ds.qrels_iter():
            qrels.setdefault(qrel.query_id, {})[qrel.doc_id] = int(qrel.relevance)
    return Dataset(name=dataset_id.replace("/", "-"), corpus=corpus, queries=queries, qrels=qrels)
