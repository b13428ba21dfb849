from __future__ import annotations

import math
from pathlib import Path

import pytest

from synthrank.data import Document, load_dataset
from synthrank.errors import SynthrankError
from synthrank.retrieve import Analyzer, InMemoryBM25


def test_analyzer_lowercases_drops_stopwords_and_stems() -> None:
    assert Analyzer()("The Glaucomas are damaging THE optic nerves!") == ["glaucoma", "damag", "optic", "nerv"]
    assert Analyzer(stemmer=None, stopwords=None)("The cats") == ["the", "cats"]
    assert Analyzer(stopwords=("cats",), stemmer=None)("The cats") == ["the"]
    with pytest.raises(ValueError, match="unknown stopword list 'xx'"):
        Analyzer(stopwords="xx")("a")
    restored = Analyzer.from_dict(Analyzer(stopwords=("a", "b")).to_dict())
    assert restored == Analyzer(stopwords=("a", "b"))


def test_retrieves_the_matching_document_first(tiny_beir: Path) -> None:
    ds = load_dataset(tiny_beir)
    bm25 = InMemoryBM25()
    bm25.index(ds.corpus.values())
    assert len(bm25) == 6
    hits = bm25.retrieve(["optic nerve damage", "blood glucose", "zzzz unknown", "the and of"], k=3)
    assert hits[0][0].doc_id == "d1" and hits[0][0].rank == 1
    assert {h.doc_id for h in hits[1][:2]} == {"d2", "d5"}
    assert hits[2] == [] and hits[3] == []  # no matching term -> nothing, like Elasticsearch
    assert all(a.score >= b.score for a, b in zip(hits[1], hits[1][1:], strict=False))


def test_scores_follow_lucene_bm25(tmp_path: Path) -> None:
    docs = [Document("a", "apple banana"), Document("b", "apple apple cherry date"), Document("c", "cherry")]
    bm25 = InMemoryBM25(k1=1.2, b=0.75, analyzer=Analyzer(stemmer=None, stopwords=None))
    bm25.index(docs)
    hit = {h.doc_id: h.score for h in bm25.retrieve(["apple"], k=3)[0]}
    avgdl = (2 + 4 + 1) / 3
    idf = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))

    def lucene(tf: int, dl: int) -> float:
        return idf * tf / (tf + 1.2 * (1 - 0.75 + 0.75 * dl / avgdl))

    assert hit["a"] == pytest.approx(lucene(1, 2), rel=1e-5)
    assert hit["b"] == pytest.approx(lucene(2, 4), rel=1e-5)
    assert "c" not in hit


def test_k_larger_than_corpus_and_score_lookup(tiny_beir: Path) -> None:
    bm25 = InMemoryBM25()
    bm25.index(load_dataset(tiny_beir).corpus.values())
    assert len(bm25.retrieve(["disease"], k=1000)[0]) == 3  # d2, d3, ... only those with the term
    scores = bm25.score("optic nerve", ["d1", "d2", "missing"])
    assert scores[0] > 0 and scores[1] == 0 and scores[2] == 0


def test_save_and_load_round_trip(tiny_beir: Path, tmp_path: Path) -> None:
    bm25 = InMemoryBM25(k1=1.1)
    bm25.index(load_dataset(tiny_beir).corpus.values())
    bm25.save(tmp_path / "idx")
    again = InMemoryBM25.load(tmp_path / "idx")
    assert again.k1 == 1.1 and again.doc_ids == bm25.doc_ids
    assert again.retrieve(["lung airways"], k=2) == bm25.retrieve(["lung airways"], k=2)


def test_errors_are_clear(tmp_path: Path) -> None:
    bm25 = InMemoryBM25()
    with pytest.raises(SynthrankError, match="call index"):
        bm25.retrieve(["x"])
    with pytest.raises(SynthrankError, match="zero documents"):
        bm25.index([])
    bm25.index([Document("a", "text")])
    with pytest.raises(TypeError, match="not one string"):
        bm25.retrieve("text")  # type: ignore[arg-type]
    with pytest.raises(SynthrankError, match="not a synthrank BM25 index"):
        InMemoryBM25.load(tmp_path)
