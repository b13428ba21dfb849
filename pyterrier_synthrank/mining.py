"""`HardNegativeMiner`: queries with positives -> training groups, as a PyTerrier transformer over the core miner."""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyterrier as pt

from pyterrier_synthrank.frames import DocumentsLike, documents_from, query_texts
from synthrank.data.groups import Passage, TrainingGroup, write_groups
from synthrank.data.records import Document
from synthrank.errors import DataError, SynthrankError
from synthrank.mine import HardNegativeMiner as CoreMiner
from synthrank.mine import MiningConfig, MiningQuery
from synthrank.retrieve.base import Hit
from synthrank.retrieve.bm25s_backend import InMemoryBM25

logger = logging.getLogger(__name__)

GROUP_COLUMNS = ("qid", "query", "docno", "text", "rank", "score", "negatives", "meta")


class _HitsFromFrame:
    """Stands in for a retriever when the hits arrive in the input frame: it can only refuse to search."""

    def __repr__(self) -> str:
        return "hits from the input frame"

    def index(self, documents: Iterable[Document]) -> None:
        raise SynthrankError("this miner takes its hits from the input frame")

    def retrieve(self, queries: Sequence[str], k: int = 100, *, show_progress: bool = False) -> list[list[Hit]]:
        raise SynthrankError("this miner takes its hits from the input frame")

    def __len__(self) -> int:
        return 0


class HardNegativeMiner(pt.Transformer):
    """Mines BM25 hard negatives with the core miner; one output row per training group.

    Input is either a query frame (``qid, query`` and ``source_doc_id``, the passage each
    synthetic query was written from; the miner then retrieves with the core BM25 over
    ``documents``) or a result frame from any first stage (``qid, query, docno, score, rank``,
    e.g. ``pisa_bm25(...)``), whose hits are used as they are. Options are the core
    :class:`~synthrank.mine.MiningConfig`'s (``num_negatives``, ``range_min``, ``range_max``,
    ``margin``, ``sampling``…).

    Output: ``qid, query, docno`` (the positive), ``text``, ``rank``, ``score`` (its BM25 rank and
    score, if retrieved), ``negatives`` (a list of ``{"doc_id", "text", "rank", "score"}``) and
    ``meta``; :func:`groups_from_frame` / :func:`write_groups_frame` turn it into the groups artifact.

    Args:
        documents: the corpus the queries were written from (texts of positives and negatives).
        positives: further known positives per qid (e.g. judged relevant), never used as negatives.
        bm25: a core BM25 over ``documents`` (built on first use for query frames when not given).
        verbose: progress bar.
        **options: :class:`~synthrank.mine.MiningConfig` fields.

    Example:
        >>> miner = HardNegativeMiner(corpus, num_negatives=8, range_min=2)
        >>> groups = miner(pd.DataFrame({"qid": ["s1"], "query": ["optic nerve damage"], "source_doc_id": ["d1"]}))
    """

    def __init__(
        self,
        documents: DocumentsLike,
        *,
        positives: Mapping[str, Collection[str]] | None = None,
        bm25: InMemoryBM25 | None = None,
        verbose: bool = False,
        **options: Any,
    ) -> None:
        self.corpus = {d.id: d for d in documents_from(documents)}
        self.positives = {str(k): {str(v) for v in vs} for k, vs in (positives or {}).items()}
        self.config = MiningConfig.from_dict(options)
        self.bm25 = bm25
        self.verbose = verbose

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.config.to_dict().items() if v != getattr(MiningConfig(), k))
        return f"HardNegativeMiner(docs={len(self.corpus)}{', ' + options if options else ''})"

    def _queries(self, frame: pd.DataFrame) -> list[MiningQuery]:
        first = frame.drop_duplicates("qid")
        texts = query_texts(first, who=repr(self))
        sources = first["source_doc_id"].tolist() if "source_doc_id" in first.columns else [None] * len(first)
        out = []
        for qid, text, source in zip(first["qid"].astype(str), texts, sources, strict=True):
            missing = source is None or (isinstance(source, float) and math.isnan(source))
            out.append(MiningQuery(qid, text, None if missing else str(source)))
        return out

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        with pt.validate.any(inp) as v:
            v.query_frame(extra_columns=["query"], mode="retrieve")
            v.result_frame(extra_columns=["query"], mode="hits")
        if len(inp) == 0:
            return _empty_groups_frame()
        queries = self._queries(inp)
        unknown = sorted({q.source_doc_id for q in queries if q.source_doc_id and q.source_doc_id not in self.corpus})
        if unknown:
            raise DataError(f"{self!r}: source_doc_id not in the documents, e.g. {unknown[:5]}", field="source_doc_id")
        if v.mode == "hits":
            miner = CoreMiner(_HitsFromFrame(), self.corpus, self.config, positives=self.positives)
            by_qid = {qid: rows for qid, rows in inp.groupby(inp["qid"].astype(str), sort=False)}
            mined = [miner.select(q, _hits(by_qid[q.query_id])) for q in queries]
        else:
            if self.bm25 is None:
                self.bm25 = InMemoryBM25()
                self.bm25.index(self.corpus.values())
            miner = CoreMiner(self.bm25, self.corpus, self.config, positives=self.positives)
            mined = list(miner.mine(queries, show_progress=self.verbose))
        rows = []
        for result in mined:
            if not result.positive_ids or len(result.negatives) < self.config.min_negatives:
                continue
            for group in result.groups(self.corpus):
                rows.append(_group_row(group))
        if not rows:
            return _empty_groups_frame()
        return pd.DataFrame(rows, columns=list(GROUP_COLUMNS))


def _hits(rows: pd.DataFrame) -> list[Hit]:
    if "rank" in rows.columns:
        rows = rows.sort_values("rank", kind="stable")
    elif "score" in rows.columns:
        rows = rows.sort_values("score", ascending=False, kind="stable")
    scores = rows["score"].tolist() if "score" in rows.columns else [0.0] * len(rows)
    return [
        Hit(str(d), float(s), position) for position, (d, s) in enumerate(zip(rows["docno"], scores, strict=True), 1)
    ]


def _group_row(group: TrainingGroup) -> dict[str, Any]:
    return {
        "qid": group.query_id,
        "query": group.query,
        "docno": group.positive.doc_id,
        "text": group.positive.text,
        "rank": group.positive.rank,
        "score": group.positive.score,
        "negatives": [n.to_json() for n in group.negatives],
        "meta": group.meta,
    }


def _empty_groups_frame() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype="object") for name in GROUP_COLUMNS})


def groups_from_frame(frame: pd.DataFrame) -> list[TrainingGroup]:
    """The core's training groups from :class:`HardNegativeMiner`'s output frame."""
    missing = [c for c in ("qid", "query", "docno", "text", "negatives") if c not in frame.columns]
    if missing:
        raise DataError(f"not a groups frame: missing columns {missing}", field=missing[0])
    groups = []
    for row in frame.to_dict("records"):

        def number(value: Any) -> Any:
            return None if value is None or (isinstance(value, float) and math.isnan(value)) else value

        rank, score = number(row.get("rank")), number(row.get("score"))
        positive = Passage(
            str(row["docno"]),
            row["text"],
            rank=int(rank) if rank is not None else None,
            score=float(score) if score is not None else None,
        )
        negatives = [
            Passage(
                str(n["doc_id"]),
                n["text"],
                rank=n.get("rank"),
                score=n.get("score"),
                grade=n.get("grade"),
                probability=n.get("probability"),
            )
            for n in row["negatives"]
        ]
        groups.append(TrainingGroup(str(row["qid"]), row["query"], positive, negatives, dict(row.get("meta") or {})))
    return groups


def write_groups_frame(frame: pd.DataFrame, path: str | Path) -> int:
    """Write :class:`HardNegativeMiner`'s output as the groups JSONL that ``synthrank train`` reads."""
    return write_groups(path, groups_from_frame(frame))
