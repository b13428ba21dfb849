"""Training groups: the artifact that mining/labelling write and training reads.

One JSON line per (query, positive):

    {"query_id": "sq-00042", "query": "what damages the optic nerve",
     "positive": {"doc_id": "d1", "text": "...", "grade": 3},
     "negatives": [{"doc_id": "d7", "text": "...", "rank": 4, "score": 11.2, "grade": 0}, ...],
     "meta": {"source_doc_id": "d1", "query_type": "natural", ...}}

``negatives`` is the mined pool (often larger than a training group needs); the trainer
samples G-1 of them per epoch. ``rank``/``score`` are the first stage's, ``grade`` the LLM
judge's (absent when unlabelled). Texts travel with the group so training needs no corpus.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthrank.data.jsonl import iter_jsonl, write_jsonl
from synthrank.errors import DataError


@dataclass(slots=True)
class Passage:
    doc_id: str
    text: str
    rank: int | None = None
    score: float | None = None
    grade: int | None = None
    probability: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"doc_id": self.doc_id, "text": self.text}
        for name in ("rank", "score", "grade", "probability"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


@dataclass(slots=True)
class TrainingGroup:
    query_id: str
    query: str
    positive: Passage
    negatives: list[Passage] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "query_id": self.query_id,
            "query": self.query,
            "positive": self.positive.to_json(),
            "negatives": [n.to_json() for n in self.negatives],
            "meta": self.meta,
        }


def _passage(obj: Any, path: str | Path, lineno: int, field_name: str) -> Passage:
    if not isinstance(obj, dict):
        raise DataError(f"expected an object with doc_id and text, got {type(obj).__name__}", path=path, line=lineno, field=field_name)
    for required in ("doc_id", "text"):
        if required not in obj:
            raise DataError(f"missing '{required}'", path=path, line=lineno, field=f"{field_name}.{required}")
    if not isinstance(obj["text"], str) or not obj["text"].strip():
        raise DataError("empty passage text", path=path, line=lineno, field=f"{field_name}.text")
    try:
        return Passage(
            doc_id=str(obj["doc_id"]),
            text=obj["text"],
            rank=int(obj["rank"]) if obj.get("rank") is not None else None,
            score=float(obj["score"]) if obj.get("score") is not None else None,
            grade=int(obj["grade"]) if obj.get("grade") is not None else None,
            probability=float(obj["probability"]) if obj.get("probability") is not None else None,
        )
    except (TypeError, ValueError) as exc:
        raise DataError(f"bad number: {exc}", path=path, line=lineno, field=field_name) from None


def iter_groups(path: str | Path) -> Iterator[TrainingGroup]:
    """Read and validate groups; a bad line raises :class:`DataError` naming line and field."""
    for lineno, obj in iter_jsonl(path):
        for required in ("query", "positive", "negatives"):
            if required not in obj:
                raise DataError(f"missing '{required}'", path=path, line=lineno, field=required)
        if not isinstance(obj["query"], str) or not obj["query"].strip():
            raise DataError("empty query", path=path, line=lineno, field="query")
        if not isinstance(obj["negatives"], list):
            raise DataError("'negatives' must be a list", path=path, line=lineno, field="negatives")
        yield TrainingGroup(
            query_id=str(obj.get("query_id", f"line-{lineno}")),
            query=obj["query"],
            positive=_passage(obj["positive"], path, lineno, "positive"),
            negatives=[_passage(n, path, lineno, f"negatives[{i}]") for i, n in enumerate(obj["negatives"])],
            meta=obj.get("meta") or {},
        )


def read_groups(path: str | Path) -> list[TrainingGroup]:
    return list(iter_groups(path))


def write_groups(path: str | Path, groups: Iterable[TrainingGroup]) -> int:
    return write_jsonl(path, (g.to_json() for g in groups))
