"""Haystack HardNegativeMiner: the core miner's groups over Haystack BM25 retrievers, serialisation, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("haystack")

from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.document_stores.in_memory import InMemoryDocumentStore

from haystack_synthrank import HardNegativeMiner
from synthrank.data import read_groups, write_jsonl
from synthrank.errors import DataError

TYPE = "haystack_synthrank.hard_negative_miner.HardNegativeMiner"

TEXTS = {
    "d0": ("Glaucoma", "glaucoma damages the optic nerve of the eye"),
    "d1": ("Cataract", "a cataract clouds the lens of the eye"),
    "d2": ("Retina", "the retina of the eye senses light"),
    "d3": ("Diabetes", "diabetes means high blood sugar"),
    "d4": ("Glaucoma", "glaucoma damages the optic nerve of the eye"),
    "d5": ("Eye exam", "an eye exam checks the optic nerve"),
    "d6": ("Dry eye", "dry eye needs eye drops"),
}


@pytest.fixture
def store() -> InMemoryDocumentStore:
    store = InMemoryDocumentStore()
    store.write_documents([Document(id=i, content=text, meta={"title": t}) for i, (t, text) in TEXTS.items()])
    return store


def _query(qid: str = "s1", text: str = "optic nerve damage in the eye", source: str = "d0") -> dict[str, Any]:
    return {"query_id": qid, "query": text, "source_doc_id": source, "query_type": "natural"}


def test_groups_follow_the_core_rules(store: InMemoryDocumentStore, tmp_path: Path) -> None:
    retriever = InMemoryBM25Retriever(document_store=store)
    miner = HardNegativeMiner(retriever=retriever, num_negatives=3, top_k=7)
    out = miner.run(queries=[_query()])
    assert len(out["groups"]) == 1
    group = out["groups"][0]
    write_jsonl(tmp_path / "groups.jsonl", out["groups"])
    assert read_groups(tmp_path / "groups.jsonl")[0].positive.doc_id == "d0"  # the core reads them back
    assert group["query_id"] == "s1" and group["query"] == "optic nerve damage in the eye"
    assert group["positive"]["doc_id"] == "d0"
    assert group["positive"]["text"] == "Glaucoma\nglaucoma damages the optic nerve of the eye"  # title + text
    negative_ids = [n["doc_id"] for n in group["negatives"]]
    assert "d0" not in negative_ids and "d4" not in negative_ids  # the positive and its near-duplicate
    assert len(negative_ids) == 3
    assert group["meta"] == {"source_doc_id": "d0", "query_type": "natural"}
    hits = retriever.run(query="optic nerve damage in the eye", top_k=7)["documents"]
    assert [c["doc_id"] for c in out["candidates"][0]["candidates"]] == [d.id for d in hits]
    ranks = {d.id: r for r, d in enumerate(hits, start=1)}
    assert [n["rank"] for n in group["negatives"]] == [ranks[i] for i in negative_ids]
    assert [n["rank"] for n in group["negatives"]] == sorted(n["rank"] for n in group["negatives"])


def test_range_min_and_known_positives(store: InMemoryDocumentStore) -> None:
    retriever = InMemoryBM25Retriever(document_store=store)
    full = HardNegativeMiner(retriever=retriever, num_negatives=3, exclude_near_duplicates=False).run(
        queries=[_query()]
    )["groups"][0]
    skipped = HardNegativeMiner(retriever=retriever, num_negatives=2, range_min=1, exclude_near_duplicates=False).run(
        queries=[_query()]
    )["groups"][0]
    assert [n["doc_id"] for n in skipped["negatives"]] == [n["doc_id"] for n in full["negatives"]][1:3]
    with_known = HardNegativeMiner(retriever=retriever, num_negatives=2).run(
        queries=[_query()], positives={"s1": ["d5"]}
    )["groups"]
    assert [g["positive"]["doc_id"] for g in with_known] == ["d0", "d5"]
    assert all("d5" not in [n["doc_id"] for n in g["negatives"]] for g in with_known)


def test_source_outside_the_store_gives_no_group(store: InMemoryDocumentStore) -> None:
    miner = HardNegativeMiner(retriever=InMemoryBM25Retriever(document_store=store), num_negatives=2)
    out = miner.run(queries=[_query(source="missing")])
    assert out["groups"] == [] and len(out["candidates"]) == 1


def test_empty_and_bad_input(store: InMemoryDocumentStore) -> None:
    miner = HardNegativeMiner(retriever=InMemoryBM25Retriever(document_store=store), num_negatives=2)
    assert miner.run(queries=[]) == {"groups": [], "candidates": []}
    with pytest.raises(DataError, match="query 0"):
        miner.run(queries=[{"text_missing": "x"}])
    with pytest.raises(DataError, match="empty text"):
        miner.run(queries=[_query(text="  ")])
    with pytest.raises(ValueError, match="range_max"):
        HardNegativeMiner(retriever=InMemoryBM25Retriever(document_store=store), range_min=5, range_max=3)
    with pytest.raises(TypeError, match="no document store"):
        HardNegativeMiner(retriever=object())


def test_to_dict_from_dict_and_yaml(store: InMemoryDocumentStore) -> None:
    retriever = InMemoryBM25Retriever(document_store=store, top_k=50)
    miner = HardNegativeMiner(retriever=retriever, num_negatives=4, range_min=1, margin=0.1, sampling="random", seed=7)
    data = miner.to_dict()
    assert data == {
        "type": TYPE,
        "init_parameters": {
            "retriever": retriever.to_dict(),
            "top_k": 100,
            "num_negatives": 4,
            "range_min": 1,
            "range_max": None,
            "margin": 0.1,
            "absolute_margin": None,
            "sampling": "random",
            "exclude_near_duplicates": True,
            "min_negatives": 1,
            "seed": 7,
            "title_meta_field": "title",
            "filters": None,
        },
    }
    again = HardNegativeMiner.from_dict(data)
    assert again.to_dict() == data
    assert isinstance(again.retriever, InMemoryBM25Retriever)
    pipe = Pipeline()
    pipe.add_component("miner", miner)
    loaded = Pipeline.loads(pipe.dumps())
    assert loaded.get_component("miner").to_dict() == data  # type: ignore[attr-defined]


def test_elasticsearch_retriever_round_trip_and_run(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("haystack_integrations.document_stores.elasticsearch")
    from haystack_integrations.components.retrievers.elasticsearch import ElasticsearchBM25Retriever
    from haystack_integrations.document_stores.elasticsearch import ElasticsearchDocumentStore

    monkeypatch.setenv("ELASTIC_API_KEY", "do-not-leak-this-key")
    es_store = ElasticsearchDocumentStore(hosts="http://127.0.0.1:9200", index="synthrank-test")
    docs = [
        Document(id=i, content=text, meta={"title": t}, score=10.0 - n)
        for n, (i, (t, text)) in enumerate(TEXTS.items())
    ]
    seen: dict[str, Any] = {}

    def bm25_retrieval(query: str, **kwargs: Any) -> list[Document]:  # the store's search, no server needed
        seen.update(query=query, **kwargs)
        return docs[: kwargs["top_k"]]

    def filter_documents(filters: dict[str, Any] | None = None) -> list[Document]:
        wanted = set(filters["value"]) if filters else set(TEXTS)
        return [d for d in docs if d.id in wanted]

    monkeypatch.setattr(es_store, "_bm25_retrieval", bm25_retrieval)
    monkeypatch.setattr(es_store, "filter_documents", filter_documents)
    miner = HardNegativeMiner(retriever=ElasticsearchBM25Retriever(document_store=es_store), num_negatives=2, top_k=5)
    out = miner.run(queries=[_query()])
    assert seen["query"] == "optic nerve damage in the eye" and seen["top_k"] == 5
    assert [n["doc_id"] for n in out["groups"][0]["negatives"]] == ["d1", "d2"]
    pipe = Pipeline()
    pipe.add_component("miner", miner)
    yaml_text = pipe.dumps()
    assert "do-not-leak-this-key" not in yaml_text and "ELASTIC_API_KEY" in yaml_text
    loaded = Pipeline.loads(yaml_text).get_component("miner")
    assert isinstance(loaded.retriever, ElasticsearchBM25Retriever)  # type: ignore[attr-defined]
