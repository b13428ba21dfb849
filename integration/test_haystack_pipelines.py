"""Haystack pipelines on shared data: indexing, `retriever -> SynthRankRanker`, checked against the core's numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("haystack")

import numpy as np
from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.components.writers import DocumentWriter
from haystack.document_stores.in_memory import InMemoryDocumentStore

from haystack_synthrank import SynthRankRanker
from integration.adapter_fixtures import local_llm_server, make_cross_encoder, subset
from integration.conftest import shared_dataset
from synthrank.data import load_dataset
from synthrank.data.records import Dataset
from synthrank.evaluate import evaluate_run, rerank_run

DEPTH = 20
MAX_LENGTH = 256
"""Tokens per (query, passage) pair on both sides, as in training: MedQuAD answers are long, and 512 doubles the cost."""


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Path:
    return make_cross_encoder(minilm_dir, tmp_path_factory.mktemp("ce") / "model")


def _core_scorer(model_dir: Path) -> Any:
    from synthrank.rerank.cross_encoder import CrossEncoderReranker

    return CrossEncoderReranker(str(model_dir), batch_size=32, max_length=MAX_LENGTH)


def _index(dataset: Dataset) -> InMemoryDocumentStore:
    """The indexing pipeline a Haystack user runs: documents -> DocumentWriter -> store."""
    store = InMemoryDocumentStore()
    indexing = Pipeline()
    indexing.add_component("writer", DocumentWriter(document_store=store))
    docs = [Document(id=d.id, content=d.text, meta={"title": d.title}) for d in dataset.corpus.values()]
    written = indexing.run({"writer": {"documents": docs}})["writer"]["documents_written"]
    assert written == len(dataset.corpus)
    return store


def _query_pipeline(store: InMemoryDocumentStore, model: Path) -> Pipeline:
    pipe = Pipeline()
    pipe.add_component("retriever", InMemoryBM25Retriever(document_store=store, top_k=DEPTH))
    pipe.add_component(
        "ranker",
        SynthRankRanker(
            model=model,
            top_k=DEPTH,
            meta_fields_to_embed=["title"],
            scale_score=False,
            batch_size=32,
            max_length=MAX_LENGTH,
        ),
    )
    pipe.connect("retriever.documents", "ranker.documents")
    return pipe


@pytest.mark.parametrize(
    ("name", "split", "num_queries"),
    [("vaswani", "test", None), pytest.param("medquad", "test_sample1000", 100, marks=pytest.mark.slow)],
)
def test_query_pipeline_matches_the_core_on_the_same_pairs(
    name: str, split: str, num_queries: int | None, cross_encoder: Path
) -> None:
    dataset = subset(load_dataset(shared_dataset(name), split=split), num_queries)
    store = _index(dataset)
    # the YAML a user would keep; the in-memory store's index is shared within the process
    pipe = Pipeline.loads(_query_pipeline(store, cross_encoder).dumps())
    first_stage: dict[str, dict[str, float]] = {}
    reranked: dict[str, dict[str, float]] = {}
    for qid, query in dataset.queries.items():
        out = pipe.run(
            {"retriever": {"query": query.text}, "ranker": {"query": query.text}},
            include_outputs_from={"retriever"},
        )
        first_stage[qid] = {d.id: float(d.score) for d in out["retriever"]["documents"]}
        reranked[qid] = {d.id: float(d.score) for d in out["ranker"]["documents"]}
        assert list(reranked[qid]) == sorted(reranked[qid], key=lambda d: -reranked[qid][d])  # best first
    # the core: its scorer over exactly the pairs Haystack's BM25 returned
    core_run, _ = rerank_run(dataset, first_stage, _core_scorer(cross_encoder), top_k=DEPTH)
    for qid in list(dataset.queries)[:10]:
        docs = sorted(core_run[qid])
        np.testing.assert_allclose(
            [reranked[qid][d] for d in docs], [core_run[qid][d] for d in docs], rtol=0, atol=1e-5
        )
    metrics = ["nDCG@10", "MRR@10"]
    haystack_eval = evaluate_run(reranked, dataset.qrels, metrics).aggregate
    core_eval = evaluate_run(core_run, dataset.qrels, metrics).aggregate
    for metric in metrics:
        assert haystack_eval[metric] == pytest.approx(core_eval[metric], abs=1e-4), metric


# --------------------------------------------------------------------------- the synthetic-data stages on a real LLM


@pytest.fixture(scope="module")
def llm_server() -> Any:
    with local_llm_server() as server:
        yield server


def _chat_generator(server: Any) -> Any:
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.utils import Secret

    # Haystack's 30 s default is shorter than one answer on a busy 2-core CI machine (a timed-out call is a
    # failed slot, and the test counts calls): a local server is slow, not unreachable
    return OpenAIChatGenerator(
        api_base_url=server.base_url, model=server.alias, api_key=Secret.from_env_var("SYNTHRANK_TEST_LLM_KEY"),
        timeout=600.0,
    )


@pytest.mark.llm_server
@pytest.mark.slow
def test_synthetic_data_pipeline_from_a_document_store(
    llm_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Store -> SyntheticQueryGenerator -> HardNegativeMiner on a real OpenAI-compatible server (llama.cpp)."""
    from haystack_synthrank import HardNegativeMiner, SyntheticQueryGenerator

    monkeypatch.setenv("SYNTHRANK_TEST_LLM_KEY", "sk-local-test-key")
    corpus = load_dataset(shared_dataset("medquad")).corpus
    docs = [Document(id=d.id, content=d.text, meta={"title": d.title}) for d in list(corpus.values())[:300]]
    store = InMemoryDocumentStore()
    store.write_documents(docs)

    def build() -> Pipeline:
        pipe = Pipeline()
        pipe.add_component(
            "generator",
            SyntheticQueryGenerator(
                chat_generator=_chat_generator(llm_server),
                query_types=["keyword"],
                json_mode=True,  # grammar-constrained JSON: the tiny model's answers parse
                max_tokens=64,
                max_passage_chars=600,
                min_words=1,
                output_dir=str(tmp_path / "generated"),
                cache_path=str(tmp_path / "llm.sqlite"),
            ),
        )
        pipe.add_component(
            "miner", HardNegativeMiner(retriever=InMemoryBM25Retriever(document_store=store), top_k=30, num_negatives=3)
        )
        pipe.connect("generator.queries", "miner.queries")
        return pipe

    yaml_text = build().dumps()
    assert "sk-local-test-key" not in yaml_text and "SYNTHRANK_TEST_LLM_KEY" in yaml_text
    pipe = Pipeline.loads(yaml_text)
    out = pipe.run({"generator": {"documents": docs[:3]}}, include_outputs_from={"generator"})
    report = out["generator"]["report"]
    assert report["slots"] == 3 and report["usage"]["calls"] == 3
    assert report["generated"] + sum(report["parse_failures"].values()) >= 1  # plumbing: what must be produced is in test_generation_must_produce.py
    queries = out["generator"]["queries"]
    assert all(q["model"] == llm_server.alias and q["source_doc_id"] in {d.id for d in docs[:3]} for q in queries)
    groups = out["miner"]["groups"]
    assert len(groups) <= len(queries)
    for group in groups:
        assert group["positive"]["doc_id"] == group["meta"]["source_doc_id"]
        assert group["negatives"] and group["positive"]["doc_id"] not in [n["doc_id"] for n in group["negatives"]]
    # a rerun makes zero LLM calls: everything is on disk and in the cache
    again = build().run({"generator": {"documents": docs[:3]}}, include_outputs_from={"generator"})
    assert again["generator"]["report"]["usage"]["calls"] == 0
    assert again["generator"]["queries"] == queries


@pytest.mark.llm_server
@pytest.mark.slow
def test_relevance_labeler_reads_probabilities_from_a_real_server(
    llm_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from haystack_synthrank import LLMRelevanceLabeler

    monkeypatch.setenv("SYNTHRANK_TEST_LLM_KEY", "sk-local-test-key")
    corpus = load_dataset(shared_dataset("medquad")).corpus
    docs = [Document(id=d.id, content=d.text, meta={"title": d.title}) for d in list(corpus.values())[:3]]
    labeler = LLMRelevanceLabeler(
        chat_generator=_chat_generator(llm_server), mode="binary", meta_fields_to_embed=["title"], max_passage_chars=600
    )
    out = labeler.run(query="what are the symptoms of this cancer", documents=docs)
    assert [d.id for d in out["documents"]] == [d.id for d in docs]
    for doc in out["documents"]:
        assert doc.meta["relevance_grade"] in (0, 3)
        assert 0.0 <= doc.meta["relevance_probability"] <= 1.0  # from the server's logprobs
        assert doc.meta["relevance_judge"]["model"] == llm_server.alias
    assert all("relevance_grade" not in d.meta for d in docs)  # inputs untouched
