"""PyTerrier BM25 first stages: same hits as the core, typed empty frames, clear errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("pyterrier")

import pyterrier as pt

from pyterrier_synthrank import CorpusTextLoader, SynthBM25, documents_from, pisa_bm25
from synthrank.data import read_corpus, read_queries
from synthrank.errors import DataError
from synthrank.retrieve import InMemoryBM25


@pytest.fixture
def corpus(tiny_beir: Path) -> dict:
    return read_corpus(tiny_beir)


@pytest.fixture
def topics(tiny_beir: Path) -> pd.DataFrame:
    queries = read_queries(tiny_beir)
    return pd.DataFrame({"qid": list(queries), "query": [q.text for q in queries.values()]})


def test_same_hits_and_scores_as_core_bm25(corpus: dict, topics: pd.DataFrame) -> None:
    bm25 = SynthBM25.from_documents(corpus, num_results=3)
    res = bm25.transform(topics)
    core = InMemoryBM25()
    core.index(corpus.values())
    hits = core.retrieve(topics["query"].tolist(), k=3)
    for qid, query_hits in zip(topics["qid"], hits, strict=True):
        got = res[res.qid == qid].sort_values("rank")
        assert got["docno"].tolist() == [h.doc_id for h in query_hits]
        assert got["score"].tolist() == pytest.approx([h.score for h in query_hits])
        assert got["rank"].tolist() == list(range(len(query_hits)))
    assert list(res.columns) == ["qid", "query", "docno", "score", "rank", "text"]
    row = res[(res.qid == "q1") & (res["rank"] == 0)].iloc[0]
    assert row.docno == "d1"
    assert row.text == corpus["d1"].full_text("\n")


def test_document_frame_and_dicts_index_like_core_documents(corpus: dict, topics: pd.DataFrame) -> None:
    frame = pd.DataFrame([{"docno": d.id, "title": d.title, "text": d.text} for d in corpus.values()])
    from_frame = SynthBM25.from_documents(frame).transform(topics)
    from_dicts = SynthBM25.from_documents(frame.to_dict("records")).transform(topics)
    from_core = SynthBM25.from_documents(corpus).transform(topics)
    pd.testing.assert_frame_equal(from_frame, from_core)
    pd.testing.assert_frame_equal(from_dicts, from_core)


def test_zero_rows_in_typed_zero_rows_out(corpus: dict) -> None:
    bm25 = SynthBM25.from_documents(corpus)
    out = bm25.transform(pd.DataFrame({"qid": pd.Series(dtype=object), "query": pd.Series(dtype=object), "lang": []}))
    assert len(out) == 0
    assert {"qid", "query", "docno", "score", "rank", "text", "lang"} <= set(out.columns)
    assert out["score"].dtype == "float64"
    assert out["rank"].dtype == "int64"
    assert pt.inspect.transformer_outputs(bm25, ["qid", "query"]) == ["qid", "query", "docno", "score", "rank", "text"]


def test_keeps_query_columns_and_input_unchanged(corpus: dict, topics: pd.DataFrame) -> None:
    topics = topics.assign(lang="en")
    before = topics.copy()
    out = SynthBM25.from_documents(corpus, include_text=False).transform(topics)
    pd.testing.assert_frame_equal(topics, before)
    assert "text" not in out.columns
    assert set(out["lang"]) == {"en"}


def test_query_with_no_known_term_returns_nothing(corpus: dict) -> None:
    out = SynthBM25.from_documents(corpus).transform(pd.DataFrame({"qid": ["x"], "query": ["zzzz qqqq"]}))
    assert len(out) == 0


def test_bad_input_is_named(corpus: dict) -> None:
    bm25 = SynthBM25.from_documents(corpus)
    with pytest.raises(pt.validate.InputValidationError, match="query"):
        bm25.transform(pd.DataFrame({"qid": ["1"]}))
    with pytest.raises(DataError, match="empty query text for qid 'q9'"):
        bm25.transform(pd.DataFrame({"qid": ["q1", "q9"], "query": ["eye", "  "]}))
    with pytest.raises(DataError, match="no 'text' column"):
        SynthBM25.from_documents(pd.DataFrame({"docno": ["a"], "body": ["x"]}))
    with pytest.raises(DataError, match="document 'a'"):
        documents_from([{"docno": "a", "text": ""}])
    with pytest.raises(DataError, match="no 'docno'"):
        documents_from([{"text": "hello"}])
    with pytest.raises(ValueError, match="include_text=True needs the documents"):
        SynthBM25(InMemoryBM25(), include_text=True)
    with pytest.raises(ValueError, match="num_results"):
        SynthBM25.from_documents(corpus, num_results=0)


def test_save_and_load(corpus: dict, topics: pd.DataFrame, tmp_path: Path) -> None:
    bm25 = SynthBM25.from_documents(corpus)
    bm25.save(tmp_path / "idx")
    loaded = SynthBM25.load(tmp_path / "idx", documents=corpus)
    pd.testing.assert_frame_equal(loaded.transform(topics), bm25.transform(topics))
    no_text = SynthBM25.load(tmp_path / "idx")
    assert "text" not in no_text.transform(topics).columns
    assert repr(loaded) == repr(bm25)


def test_text_loader_adds_core_text_and_names_unknown_docnos(corpus: dict) -> None:
    loader = CorpusTextLoader(corpus)
    res = pd.DataFrame({"qid": ["1", "1"], "docno": ["d2", "d4"], "score": [2.0, 1.0], "text": ["old", "old"]})
    out = loader.transform(res)
    assert out["text"].tolist() == [corpus["d2"].full_text("\n"), corpus["d4"].full_text("\n")]
    assert res["text"].tolist() == ["old", "old"]
    assert len(loader.transform(res.iloc[:0])) == 0
    with pytest.raises(DataError, match="not in the corpus"):
        loader.transform(pd.DataFrame({"qid": ["1"], "docno": ["nope"]}))


def test_pisa_first_stage_finds_the_same_top_document(corpus: dict, topics: pd.DataFrame, tmp_path: Path) -> None:
    pytest.importorskip("pyterrier_pisa")
    pisa = pisa_bm25(corpus, tmp_path / "pisa", num_results=3)
    res = pisa.transform(topics)
    assert {"qid", "docno", "score", "rank", "text"} <= set(res.columns)
    top = res[res["rank"] == 0].set_index("qid")["docno"].to_dict()
    assert top == {"q1": "d1", "q2": "d2", "q3": "d3"}
    # the index is reused, not rebuilt
    assert (
        pisa_bm25(corpus, tmp_path / "pisa", num_results=3).transform(topics)["docno"].tolist() == res["docno"].tolist()
    )
