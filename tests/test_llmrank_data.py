"""SFT examples from training groups and judge labels: balance, filters, seeds, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthrank.data import Passage, TrainingGroup
from synthrank.errors import DataError
from synthrank.llmrank.data import (
    SFTExample,
    class_counts,
    examples_from_groups,
    examples_from_labels,
    read_examples,
    read_query_texts,
    write_examples,
)


def _groups() -> list[TrainingGroup]:
    out = []
    for i in range(6):
        pos = Passage(f"d{i}", f"passage {i}", grade=3)
        negs = [
            Passage(f"n{i}-{j}", f"negative {i} {j}", rank=j, grade=(2 if j == 0 else 0 if j < 4 else None))
            for j in range(6)
        ]
        negs.append(Passage(f"dup{i}", f"passage {i}"))  # same text as the positive: never a negative
        out.append(TrainingGroup(f"q{i}", f"query {i}", pos, negs))
    return out


def test_groups_give_balanced_seeded_examples() -> None:
    a = examples_from_groups(_groups(), negatives_per_positive=1, seed=3)
    b = examples_from_groups(_groups(), negatives_per_positive=1, seed=3)
    c = examples_from_groups(_groups(), negatives_per_positive=1, seed=4)
    assert a == b and a != c
    assert class_counts(a) == {"examples": 12, "positives": 6, "negatives": 6}
    for e in a:
        if not e.label:
            assert e.doc_id.startswith("n") and not e.doc_id.endswith("-0")  # grade 2 is a possible false negative
            assert e.passage != e.passage.replace("negative", "passage")


def test_groups_negative_filters_and_ratio() -> None:
    ex = examples_from_groups(_groups(), negatives_per_positive=10, max_negative_grade=0, shuffle=False)
    negs = [e for e in ex if not e.label]
    # per group: grades 0 (j=1..3) and ungraded (j=4,5) are kept; grade 2 and the duplicate text are not
    assert len(negs) == 6 * 5
    assert not any(e.doc_id.startswith("dup") for e in negs)
    every = examples_from_groups(_groups(), negatives_per_positive=10, max_negative_grade=None, shuffle=False)
    assert len([e for e in every if not e.label]) == 6 * 6
    weak = _groups()
    weak[0].positive.grade = 1
    assert len(examples_from_groups(weak, min_positive_grade=2)) == 10
    with pytest.raises(DataError):
        examples_from_groups(_groups(), negatives_per_positive=-1)


def _write_labels(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_labels_thresholds_balance_and_reasons(tmp_path: Path) -> None:
    rows = [
        {"query_id": "q1", "doc_id": "a", "grade": 3, "reason": "answers it"},
        {"query_id": "q1", "doc_id": "b", "grade": 0, "reason": "off topic"},
        {"query_id": "q1", "doc_id": "c", "grade": 0},
        {"query_id": "q1", "doc_id": "d", "grade": 1},  # doubtful: left out
        {"query_id": "q2", "doc_id": "b", "grade": 0},  # no positive for q2: left out
        {"query_id": "q3", "doc_id": "c", "grade": 2, "query": "inline query", "text": "inline text"},
    ]
    labels = _write_labels(tmp_path / "labels.jsonl", rows)
    queries = {"q1": "first query", "q2": "second query"}
    passages = {"a": "text a", "b": "text b", "c": "text c", "d": "text d"}
    ex = examples_from_labels(labels, queries=queries, passages=passages, seed=1)
    assert class_counts(ex) == {"examples": 3, "positives": 2, "negatives": 1}
    by_doc = {(e.query_id, e.doc_id): e for e in ex}
    assert by_doc[("q1", "a")].reason == "answers it" and by_doc[("q1", "a")].passage == "text a"
    assert by_doc[("q3", "c")].query == "inline query" and by_doc[("q3", "c")].passage == "inline text"
    assert examples_from_labels(rows, queries=queries, passages=passages, seed=1) == ex


def test_labels_errors_name_line_and_field(tmp_path: Path) -> None:
    labels = _write_labels(tmp_path / "labels.jsonl", [{"query_id": "q1", "doc_id": "a", "grade": 3}, {"query_id": "q1", "grade": 0}])
    with pytest.raises(DataError, match=r"labels.jsonl:2.*doc_id"):
        examples_from_labels(labels, queries={"q1": "q"}, passages={"a": "t"})
    labels = _write_labels(tmp_path / "l2.jsonl", [{"query_id": "q9", "doc_id": "a", "grade": 3}])
    with pytest.raises(DataError, match=r"l2.jsonl:1.*no text for query 'q9'"):
        examples_from_labels(labels, queries={}, passages={"a": "t"})
    labels = _write_labels(tmp_path / "l3.jsonl", [{"query_id": "q1", "doc_id": "a", "grade": "high"}])
    with pytest.raises(DataError, match="grade"):
        examples_from_labels(labels, queries={"q1": "q"}, passages={"a": "t"})
    with pytest.raises(DataError, match="min_positive_grade"):
        examples_from_labels([], queries={}, passages={}, min_positive_grade=1, max_negative_grade=1)


def test_examples_round_trip_and_validation(tmp_path: Path) -> None:
    ex = [SFTExample("q", "p", True, "why", "q1", "d1"), SFTExample("q", "n", False)]
    write_examples(tmp_path / "ex.jsonl", ex)
    assert read_examples(tmp_path / "ex.jsonl") == ex
    (tmp_path / "bad.jsonl").write_text('{"query": "q", "passage": "p", "label": "maybe"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl:1.*label"):
        read_examples(tmp_path / "bad.jsonl")


def test_query_texts_from_synthetic_or_beir(tmp_path: Path) -> None:
    (tmp_path / "s.jsonl").write_text('{"query_id": "s1", "query": "a"}\n{"_id": "b1", "text": "b"}\n', encoding="utf-8")
    assert read_query_texts(tmp_path / "s.jsonl") == {"s1": "a", "b1": "b"}
    (tmp_path / "x.jsonl").write_text('{"id": 1}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"x\.jsonl:1"):
        read_query_texts(tmp_path / "x.jsonl")
