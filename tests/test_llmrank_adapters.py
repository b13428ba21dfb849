"""The LLM reranker inside both adapters: a LoRA/merged LLM folder loads by path and gives the core's scores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from synthrank.errors import ModelError
from synthrank.llmrank import CausalLMReranker
from tests.llmrank_tiny import TOPICS, build_model

QUERY = "what is glaucoma"
TITLES = ["glaucoma", "asthma", "anemia", "insulin"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain causal LM folder (what any HF LLM looks like): not a synthrank-trained reranker."""
    return build_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def trained(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A training output folder as ``synthrank llmrank train`` lays it out: ``merged/`` with ``llmrank.json``."""
    run = tmp_path_factory.mktemp("run")
    shutil.copytree(tiny, run / "merged")
    meta = {"format": "synthrank-llmrank", "kind": "merged", "max_length": 256}
    (run / "merged" / "llmrank.json").write_text(json.dumps(meta), encoding="utf-8")
    return run


def _texts() -> list[str]:
    return [f"{t}\n{TOPICS[t]}" for t in TITLES]


def _core(model: Path, score: str) -> dict[str, float]:
    scores = CausalLMReranker(model, max_length=256, score=score).score_pairs([QUERY] * len(TITLES), _texts())
    return dict(zip(TITLES, (float(s) for s in scores), strict=True))


def test_haystack_ranker_detects_a_trained_llm_reranker_by_path(trained: Path) -> None:
    pytest.importorskip("haystack")
    from haystack import Document
    from haystack.utils import ComponentDevice

    from haystack_synthrank import SynthRankRanker

    docs = [Document(id=t, content=TOPICS[t], meta={"title": t}) for t in TITLES]
    ranker = SynthRankRanker(
        model=str(trained),
        device=ComponentDevice.from_str("cpu"),
        meta_fields_to_embed=["title"],
        top_k=4,
        batch_size=2,
    )
    out = ranker.run(query=QUERY, documents=docs)["documents"]
    expected = _core(trained, "probability")
    assert [d.id for d in out] == sorted(TITLES, key=lambda t: -expected[t])
    for doc in out:  # scale_score's sigmoid of the log-odds is exactly P(true) / (P(true) + P(false))
        assert doc.score == pytest.approx(expected[doc.id], abs=1e-5)
    assert docs[0].score is None  # inputs untouched


def test_haystack_ranker_takes_any_causal_lm_with_kind_llm_and_refuses_it_otherwise(tiny: Path) -> None:
    pytest.importorskip("haystack")
    from haystack import Document

    from haystack_synthrank import SynthRankRanker

    docs = [Document(id=t, content=f"{t}\n{TOPICS[t]}") for t in TITLES]
    raw = SynthRankRanker(model=str(tiny), kind="llm", scale_score=False, top_k=4, max_length=256)
    got = {d.id: d.score for d in raw.run(query=QUERY, documents=docs)["documents"]}
    expected = _core(tiny, "log_odds")
    for t in TITLES:
        assert got[t] == pytest.approx(expected[t], abs=1e-4)
    with pytest.raises(ModelError, match="generative"):  # auto on a plain LLM: not a cross-encoder, said clearly
        SynthRankRanker(model=str(tiny)).warm_up()


def test_pyterrier_reranker_loads_a_trained_llm_reranker_by_path(trained: Path) -> None:
    pytest.importorskip("pyterrier")
    import pandas as pd
    import pyterrier as pt

    from pyterrier_synthrank import SynthReranker, SynthRerankerArtifact

    frame = pd.DataFrame(
        {
            "qid": ["q1"] * len(TITLES),
            "query": [QUERY] * len(TITLES),
            "docno": TITLES,
            "text": _texts(),
            "score": [4.0, 3.0, 2.0, 1.0],
            "rank": [0, 1, 2, 3],
        }
    )
    out = SynthReranker(trained, batch_size=3).transform(frame)
    expected = _core(trained, "log_odds")
    got = dict(zip(out["docno"], out["score"], strict=True))
    for t in TITLES:
        assert got[t] == pytest.approx(expected[t], abs=1e-4)
    assert list(out.sort_values("rank")["docno"]) == sorted(TITLES, key=lambda t: -expected[t])
    # a ready core scorer works too (here: probabilities), and zero rows give typed zero rows
    ready = SynthReranker(CausalLMReranker(trained, max_length=256)).transform(frame)
    np.testing.assert_allclose(
        ready["score"].to_numpy(), [_core(trained, "probability")[t] for t in ready["docno"]], atol=1e-6
    )
    empty = SynthReranker(CausalLMReranker(trained)).transform(frame.iloc[:0])
    assert len(empty) == 0 and empty["score"].dtype == "float64"
    # the training output folder is a pt.Artifact like a cross-encoder directory
    SynthRerankerArtifact.mark(trained)
    artifact = pt.Artifact.load(str(trained))
    via_artifact = artifact.reranker(batch_size=3).transform(frame)  # type: ignore[attr-defined]
    np.testing.assert_allclose(via_artifact["score"].to_numpy(), out["score"].to_numpy(), atol=1e-6)
