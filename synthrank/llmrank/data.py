"""SFT examples for the pointwise LLM reranker, from the artifacts the pipeline already writes.

LIMRANK's point is that a few hundred to a few thousand *good* examples suffice, so this
module is about choosing them: each positive is paired with hard negatives from its own mined
pool (balanced 1:1 by default, so the model cannot win by always answering one word), doubtful
judgements (grade 1, "somewhat related") are left out on both sides, and the order is a seeded
shuffle so that reruns train on the same sequence.

Two sources:
- training groups (``synthrank.data.TrainingGroup``, one line per query and positive, with the
  mined negatives' texts): :func:`examples_from_groups`;
- judge labels (``{"query_id", "doc_id", "grade", "reason"}``) plus the query and corpus texts:
  :func:`examples_from_labels`; the judge's ``reason`` becomes the optional reasoning target.

Example:
    >>> from synthrank.data import read_groups
    >>> examples = examples_from_groups(read_groups("run/groups.jsonl"), negatives_per_positive=1, seed=13)
    >>> sum(e.label for e in examples) * 2 == len(examples)
    True
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from synthrank.data.groups import TrainingGroup
from synthrank.data.jsonl import iter_jsonl, write_jsonl
from synthrank.errors import DataError


@dataclass(frozen=True, slots=True)
class SFTExample:
    """One (query, passage, label[, reason]) example; ``label`` True means relevant."""

    query: str
    passage: str
    label: bool
    reason: str | None = None
    query_id: str = ""
    doc_id: str = ""

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if out["reason"] is None:
            del out["reason"]
        return out


def _keep_negative(grade: int | None, max_negative_grade: int | None) -> bool:
    return grade is None or max_negative_grade is None or grade <= max_negative_grade


def examples_from_groups(
    groups: Iterable[TrainingGroup],
    *,
    negatives_per_positive: int = 1,
    min_positive_grade: int | None = None,
    max_negative_grade: int | None = 0,
    seed: int = 42,
    shuffle: bool = True,
) -> list[SFTExample]:
    """Positive vs hard negatives from training groups.

    Args:
        groups: the mined (and possibly judged) groups.
        negatives_per_positive: negatives drawn (seeded) from each group's pool; 1 balances the classes.
        min_positive_grade: drop groups whose positive the judge graded below this (ungraded positives stay).
        max_negative_grade: negatives graded above this are left out as possible false negatives
            (ungraded ones stay); ``None`` keeps all.
        seed: for sampling and the final shuffle.
        shuffle: shuffle the result (seeded); off keeps group order.
    """
    if negatives_per_positive < 0:
        raise DataError(f"must be 0 or more, got {negatives_per_positive}", field="negatives_per_positive")
    rng = random.Random(seed)
    out: list[SFTExample] = []
    seen: set[tuple[str, str]] = set()
    for group in groups:
        pos = group.positive
        if min_positive_grade is not None and pos.grade is not None and pos.grade < min_positive_grade:
            continue
        if (group.query, pos.doc_id) not in seen:
            seen.add((group.query, pos.doc_id))
            out.append(SFTExample(group.query, pos.text, True, None, group.query_id, pos.doc_id))
        pool = [
            n
            for n in group.negatives
            if n.doc_id != pos.doc_id and n.text.strip() != pos.text.strip() and _keep_negative(n.grade, max_negative_grade)
        ]
        for neg in rng.sample(pool, min(negatives_per_positive, len(pool))):
            if (group.query, neg.doc_id) in seen:
                continue
            seen.add((group.query, neg.doc_id))
            out.append(SFTExample(group.query, neg.text, False, None, group.query_id, neg.doc_id))
    if shuffle:
        rng.shuffle(out)
    return out


def examples_from_labels(
    labels: str | Path | Iterable[dict[str, Any]],
    *,
    queries: Mapping[str, str],
    passages: Mapping[str, str],
    min_positive_grade: int = 2,
    max_negative_grade: int = 0,
    negatives_per_positive: int = 1,
    seed: int = 42,
    shuffle: bool = True,
) -> list[SFTExample]:
    """Examples from judge labels: graded >= ``min_positive_grade`` -> true, <= ``max_negative_grade`` -> false.

    Per query, at most ``negatives_per_positive`` negatives per positive are kept (seeded draw), so
    the set stays balanced; queries without a positive contribute nothing. Labels may carry
    ``query``/``text`` themselves; otherwise the texts come from ``queries`` and ``passages``.
    """
    if min_positive_grade <= max_negative_grade:
        raise DataError(
            f"min_positive_grade ({min_positive_grade}) must be above max_negative_grade ({max_negative_grade})",
            field="min_positive_grade",
        )
    source = str(labels) if isinstance(labels, (str, Path)) else None
    records: Iterable[tuple[int, dict[str, Any]]] = (
        iter_jsonl(labels) if isinstance(labels, (str, Path)) else enumerate(labels, start=1)
    )
    by_query: dict[str, dict[bool, list[SFTExample]]] = defaultdict(lambda: {True: [], False: []})
    seen: set[tuple[str, str]] = set()
    for lineno, rec in records:
        for required in ("query_id", "doc_id", "grade"):
            if rec.get(required) is None:
                raise DataError(f"missing '{required}'", path=source, line=lineno, field=required)
        qid, did = str(rec["query_id"]), str(rec["doc_id"])
        try:
            grade = int(rec["grade"])
        except (TypeError, ValueError):
            raise DataError(f"expected an integer grade, got {rec['grade']!r}", path=source, line=lineno, field="grade") from None
        if max_negative_grade < grade < min_positive_grade or (qid, did) in seen:
            continue
        seen.add((qid, did))
        query = rec.get("query") or queries.get(qid)
        if not query:
            raise DataError(f"no text for query {qid!r} (not in the record nor in the queries given)", path=source, line=lineno, field="query_id")
        text = rec.get("text") or passages.get(did)
        if not text:
            raise DataError(f"no text for document {did!r} (not in the record nor in the corpus given)", path=source, line=lineno, field="doc_id")
        reason = rec.get("reason") or None
        label = grade >= min_positive_grade
        by_query[qid][label].append(SFTExample(str(query), str(text), label, reason, qid, did))
    rng = random.Random(seed)
    out: list[SFTExample] = []
    for qid in sorted(by_query):
        pos, neg = by_query[qid][True], by_query[qid][False]
        if not pos:
            continue
        out.extend(pos)
        out.extend(rng.sample(neg, min(len(neg), negatives_per_positive * len(pos))))
    if shuffle:
        rng.shuffle(out)
    return out


def read_query_texts(path: str | Path) -> dict[str, str]:
    """Query id -> text from synthetic queries (``query_id``/``query``) or BEIR queries (``_id``/``text``)."""
    out: dict[str, str] = {}
    for lineno, rec in iter_jsonl(path):
        qid = rec.get("query_id", rec.get("_id"))
        text = rec.get("query", rec.get("text"))
        if qid is None or not isinstance(text, str) or not text.strip():
            raise DataError("expected 'query_id' and 'query' (or BEIR '_id' and 'text')", path=path, line=lineno)
        out[str(qid)] = text
    return out


def write_examples(path: str | Path, examples: Iterable[SFTExample]) -> int:
    """Write examples as JSONL (atomically), e.g. beside a trained model for provenance."""
    return write_jsonl(path, (e.to_json() for e in examples))


def read_examples(path: str | Path) -> list[SFTExample]:
    """Read examples written by :func:`write_examples` (or by hand: query, passage, label[, reason])."""
    out: list[SFTExample] = []
    for lineno, rec in iter_jsonl(path):
        for required in ("query", "passage", "label"):
            if required not in rec:
                raise DataError(f"missing '{required}'", path=path, line=lineno, field=required)
        label = rec["label"]
        if isinstance(label, str) and label.lower() in ("true", "false"):
            label = label.lower() == "true"
        if not isinstance(label, (bool, int)) or label not in (0, 1):
            raise DataError(f"expected true/false (or 1/0), got {rec['label']!r}", path=path, line=lineno, field="label")
        if not str(rec["query"]).strip() or not str(rec["passage"]).strip():
            raise DataError("empty query or passage", path=path, line=lineno, field="query" if not str(rec["query"]).strip() else "passage")
        out.append(
            SFTExample(
                str(rec["query"]), str(rec["passage"]), bool(label), rec.get("reason") or None,
                str(rec.get("query_id", "")), str(rec.get("doc_id", "")),
            )
        )  # fmt: skip
    return out


def class_counts(examples: Iterable[SFTExample]) -> dict[str, int]:
    pos = neg = 0
    for e in examples:
        if e.label:
            pos += 1
        else:
            neg += 1
    return {"examples": pos + neg, "positives": pos, "negatives": neg}
