"""The PyTerrier synthetic-data pipeline on a real OpenAI-compatible server: QueryGenerator >> BM25 >> miner, and labels."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

pytest.importorskip("pyterrier")

from integration.adapter_fixtures import local_llm_server
from integration.conftest import shared_dataset
from pyterrier_synthrank import HardNegativeMiner, QueryGenerator, RelevanceLabeler, SynthBM25
from synthrank.data import read_corpus
from synthrank.llm.client import LLMClient
from synthrank.llm.config import LLMConfig

pytestmark = [pytest.mark.llm_server, pytest.mark.slow]


@pytest.fixture(scope="module")
def llm() -> Iterator[LLMClient]:
    with local_llm_server() as server:
        client = LLMClient(LLMConfig(model=server.alias, base_url=server.base_url, api_key_env=None))
        yield client
        client.close()


@pytest.fixture(scope="module")
def corpus_frame() -> pd.DataFrame:
    corpus = read_corpus(shared_dataset("medquad"))
    docs = list(corpus.values())[:300]
    return pd.DataFrame(
        {"docno": [d.id for d in docs], "title": [d.title for d in docs], "text": [d.text for d in docs]}
    )


def test_querygen_to_training_groups(llm: Any, corpus_frame: pd.DataFrame) -> None:
    generate = QueryGenerator(
        llm, query_types=["keyword"], json_mode=True, max_tokens=64, max_passage_chars=600, as_topics=True
    )
    pipeline = (
        generate
        >> SynthBM25.from_documents(corpus_frame, num_results=30)
        >> HardNegativeMiner(corpus_frame, num_negatives=3)
    )
    groups = pipeline.transform(corpus_frame.iloc[:3])  # possibly none with SmolLM2: test_generation_must_produce.py checks output
    assert set(groups.columns) >= {"qid", "query", "docno", "text", "negatives"}
    assert set(groups["docno"]) <= set(corpus_frame["docno"].iloc[:3])  # positives are the source passages
    for negatives, positive in zip(groups["negatives"], groups["docno"], strict=True):
        assert negatives and positive not in [n["doc_id"] for n in negatives]
    assert llm.usage.calls + llm.usage.cache_hits >= 3


def test_labels_with_probabilities(llm: Any, corpus_frame: pd.DataFrame) -> None:
    res = SynthBM25.from_documents(corpus_frame, num_results=3).transform(
        pd.DataFrame({"qid": ["1"], "query": ["what are the symptoms of adult leukemia"]})
    )
    out = RelevanceLabeler(llm, mode="binary", max_passage_chars=600).transform(res)
    assert len(out) == len(res) == 3
    assert out["label"].isin([0, 3]).all()
    assert out["label_probability"].between(0.0, 1.0).all()
