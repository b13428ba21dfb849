from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from synthrank.data import (
    ResumableJsonlWriter,
    atomic_write,
    load_dataset,
    read_corpus,
    read_qrels,
    read_queries,
    write_jsonl,
)
from synthrank.errors import DataError


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_beir_folder_loads_corpus_queries_and_qrels(tiny_beir: Path) -> None:
    ds = load_dataset(tiny_beir, split="test")
    assert ds.name == "tiny"
    assert len(ds.corpus) == 6 and len(ds.queries) == 3
    assert ds.qrels["q2"] == {"d2": 1, "d5": 1}
    doc = ds.corpus["d1"]
    assert doc.title == "Glaucoma"
    assert doc.full_text(" ").startswith("Glaucoma Glaucoma is")


def test_gzipped_corpus_and_metadata(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"_id": 7, "title": "T", "text": "body", "metadata": {"url": "u"}, "source": "s"}) + "\n")
    corpus = read_corpus(path)
    assert corpus["7"].meta == {"url": "u", "source": "s"}


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "corpus.jsonl", ['{"_id": "a", "text": "x"}', '{"_id": "b", "text": '])
    with pytest.raises(DataError, match=r"corpus\.jsonl:2: malformed JSON"):
        read_corpus(path)


def test_missing_id_names_the_field(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "corpus.jsonl", ['{"title": "t", "text": "x"}'])
    with pytest.raises(DataError, match=r"corpus\.jsonl:1, field '_id': record has no document id") as info:
        read_corpus(path)
    assert info.value.line == 1 and info.value.field == "_id"


def test_missing_text_and_title(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "corpus.jsonl", ['{"_id": "a"}'])
    with pytest.raises(DataError, match="field 'text'"):
        read_corpus(path)


def test_non_string_text(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "corpus.jsonl", ['{"_id": "a", "text": 5}'])
    with pytest.raises(DataError, match="field 'text': expected a string"):
        read_corpus(path)


def test_duplicate_document_id(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl", ['{"_id": "a", "text": "x"}', '{"_id": "b", "text": "y"}', '{"_id": "a", "text": "z"}'])
    with pytest.raises(DataError, match=r"c\.jsonl:3, field '_id': duplicate document id 'a' \(first seen on line 1\)"):
        read_corpus(path)


def test_duplicate_query_id(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "q.jsonl", ['{"_id": "q", "text": "x"}', '{"_id": "q", "text": "y"}'])
    with pytest.raises(DataError, match=r"q\.jsonl:2.*duplicate query id"):
        read_queries(path)


def test_empty_query_text(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "q.jsonl", ['{"_id": "q", "text": "  "}'])
    with pytest.raises(DataError, match="field 'text': query has no text"):
        read_queries(path)


def test_qrels_unknown_document_and_query(tiny_beir: Path) -> None:
    ds = load_dataset(tiny_beir)
    bad_doc = write_lines(tiny_beir / "qrels" / "bad_doc.tsv", ["query-id\tcorpus-id\tscore", "q1\td1\t1", "q1\tnope\t1"])
    with pytest.raises(DataError, match=r"bad_doc\.tsv:3, field 'corpus-id': qrels names unknown document 'nope'"):
        read_qrels(bad_doc, corpus=ds.corpus, queries=ds.queries)
    bad_query = write_lines(tiny_beir / "qrels" / "bad_q.tsv", ["q9\t0\td1\t1"])
    with pytest.raises(DataError, match=r"bad_q\.tsv:1, field 'query-id': qrels names unknown query 'q9'"):
        read_qrels(bad_query, corpus=ds.corpus, queries=ds.queries)


def test_qrels_bad_score_and_columns(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"field 'score'.*not a number"):
        read_qrels(write_lines(tmp_path / "a.tsv", ["q1\td1\thigh"]))
    with pytest.raises(DataError, match=r"expected 3.*got 2"):
        read_qrels(write_lines(tmp_path / "b.tsv", ["q1\td1"]))


def test_trec_qrels_format(tmp_path: Path) -> None:
    qrels = read_qrels(write_lines(tmp_path / "q.txt", ["1 0 d1 2", "1 0 d2 0"]))
    assert qrels == {"1": {"d1": 2, "d2": 0}}


def test_tsv_corpus_and_queries(tmp_path: Path) -> None:
    corpus = read_corpus(write_lines(tmp_path / "c.tsv", ["id\ttitle\ttext", "a\tT\tbody", "b\tx\ty"]))
    assert corpus["a"].title == "T" and corpus["a"].text == "body"
    assert read_corpus(write_lines(tmp_path / "c2.tsv", ["a\tonly text"]))["a"].text == "only text"
    with pytest.raises(DataError, match=r"c3\.tsv:1: expected 2 \(id, text\) or 3"):
        read_corpus(write_lines(tmp_path / "c3.tsv", ["a\tb\tc\td"]))
    queries = read_queries(write_lines(tmp_path / "q.tsv", ["q1\thello"]))
    assert queries["q1"].text == "hello"


def test_missing_split_lists_available(tiny_beir: Path) -> None:
    with pytest.raises(DataError, match=r"no qrels for split 'dev'; available: \['test'\]"):
        load_dataset(tiny_beir, split="dev")


def test_missing_source() -> None:
    with pytest.raises(DataError, match="no such file or folder"):
        load_dataset("./does-not-exist")


def test_corpus_file_with_separate_queries_and_qrels(tiny_beir: Path) -> None:
    ds = load_dataset(tiny_beir / "corpus.jsonl", queries_file=tiny_beir / "queries.jsonl", qrels_file=tiny_beir / "qrels" / "test.tsv")
    assert ds.name == "corpus" and len(ds.judged_queries()) == 3


def test_ir_datasets_id_is_routed_to_ir_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    import ir_datasets

    seen = []

    def fake_load(dataset_id: str) -> None:
        seen.append(dataset_id)
        raise KeyError(dataset_id)

    monkeypatch.setattr(ir_datasets, "load", fake_load)
    with pytest.raises(DataError, match="unknown ir_datasets id 'beir/nope'"):
        load_dataset("irds:beir/nope")
    with pytest.raises(DataError, match="unknown ir_datasets id 'vaswani/x'"):
        load_dataset("vaswani/x")
    assert seen == ["beir/nope", "vaswani/x"]


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("old\n", encoding="utf-8")

    def records():
        yield {"a": 1}
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_jsonl(target, records())
    assert target.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]
    with atomic_write(tmp_path / "new.txt") as fh:
        fh.write("x")
    assert (tmp_path / "new.txt").read_text() == "x"


def test_resumable_writer_drops_partial_tail_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "steps.jsonl"
    with ResumableJsonlWriter(path, key=lambda r: r["id"]) as w:
        w.append({"id": 1})
        w.append({"id": 2})
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"id": 3, "val')  # killed mid-line
    with ResumableJsonlWriter(path, key=lambda r: r["id"]) as w:
        assert w.done == {1, 2} and w.records_on_open == 2
        for i in (1, 2, 3):
            if i not in w.done:
                w.append({"id": i})
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["id"] for x in lines] == [1, 2, 3]
