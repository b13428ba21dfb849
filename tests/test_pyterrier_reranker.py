"""SynthReranker and its artifact: the core scorer's scores on the same pairs, typed empty frames, clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ir_measures
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyterrier")

import pyterrier as pt

import pyterrier_synthrank.reranker as reranker_module
from pyterrier_synthrank import SynthBM25, SynthReranker, SynthRerankerArtifact, qrels_frame, topics_frame
from synthrank.data import load_dataset
from synthrank.errors import DataError, ModelError
from synthrank.evaluate import evaluate_run, first_stage, rerank_run
from synthrank.retrieve import InMemoryBM25
from tests.adapter_helpers import OverlapScorer


def _results() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "qid": ["1", "1", "1", "2"],
            "query": ["optic nerve damage", "optic nerve damage", "optic nerve damage", "blood glucose"],
            "docno": ["a", "b", "c", "a"],
            "text": [
                "Glaucoma damages the optic nerve.",
                "Insulin lowers blood glucose.",
                "The optic nerve.",
                "Glaucoma damages the optic nerve.",
            ],
            "score": [3.0, 2.0, 1.0, 5.0],
            "rank": [0, 1, 2, 0],
            "source": ["bm25"] * 4,
        }
    )


def test_scores_are_the_scorers_on_the_same_pairs() -> None:
    scorer = OverlapScorer()
    inp = _results()
    before = inp.copy()
    out = SynthReranker(scorer).transform(inp)
    pd.testing.assert_frame_equal(inp, before)  # input never modified
    expected = OverlapScorer().score_pairs(inp["query"].tolist(), inp["text"].tolist())
    assert out["score"].to_numpy() == pytest.approx(expected.astype(np.float64))
    assert scorer.calls == [(inp["query"].tolist(), inp["text"].tolist())]
    q1 = out[out.qid == "1"].sort_values("rank")
    assert q1["docno"].tolist() == ["c", "a", "b"]  # "a" and "c" share 2 words; shorter "c" first
    assert q1["rank"].tolist() == [0, 1, 2]
    assert out["source"].tolist() == ["bm25"] * 4  # other columns kept
    assert out["score"].dtype == "float64" and out["rank"].dtype == "int64"


def test_zero_rows_in_typed_zero_rows_out() -> None:
    reranker = SynthReranker(OverlapScorer())
    out = reranker.transform(_results().iloc[:0])
    assert len(out) == 0
    assert out["score"].dtype == "float64" and out["rank"].dtype == "int64"
    assert pt.inspect.transformer_outputs(reranker, ["qid", "query", "docno", "text"]) == [
        "qid", "query", "docno", "text", "score", "rank",
    ]  # fmt: skip


def test_bad_input_is_named() -> None:
    reranker = SynthReranker(OverlapScorer())
    with pytest.raises(pt.validate.InputValidationError, match="text"):
        reranker.transform(_results().drop(columns=["text"]))
    with pytest.raises(DataError, match="empty 'text' for docno 'b'"):
        reranker.transform(_results().assign(text=["x", None, "y", "z"]))
    with pytest.raises(DataError, match="empty query text for qid '2'"):
        reranker.transform(_results().assign(query=["q", "q", "q", ""]))
    with pytest.raises(TypeError, match="score_pairs"):
        SynthReranker(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        SynthReranker(OverlapScorer(), batch_size=0)


def test_text_field_and_repr() -> None:
    inp = _results().rename(columns={"text": "body"})
    out = SynthReranker(OverlapScorer(), text_field="body").transform(inp)
    assert len(out) == 4
    assert repr(SynthReranker(OverlapScorer(), text_field="body")) == (
        "SynthReranker('OverlapScorer', batch_size=32, text_field='body', device=None)"
    )


def test_loading_by_name_goes_through_the_core_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_load(model: str, **kwargs: Any) -> OverlapScorer:
        seen.update(model=model, **kwargs)
        return OverlapScorer()

    monkeypatch.setattr(reranker_module, "load_pair_scorer", fake_load)
    reranker = SynthReranker("some/model", batch_size=8, device="cpu", max_length=128)
    assert seen == {
        "model": "some/model",
        "kind": "auto",
        "device": "cpu",
        "batch_size": 8,
        "max_length": 128,
        "fuse_with": None,
        "fusion_weight": 0.0,
    }
    assert "some/model" in repr(reranker)


def test_experiment_equals_core_evaluation(tiny_beir: Path) -> None:
    """`pt.Experiment([bm25, bm25 >> reranker])` gives the core's nDCG@10 for both systems."""
    dataset = load_dataset(tiny_beir)
    bm25 = SynthBM25.from_documents(dataset.corpus, num_results=6)
    topics, qrels = topics_frame(dataset), qrels_frame(dataset)
    assert list(qrels.columns) == ["qid", "docno", "label"] and len(qrels) == 4
    table = pt.Experiment(
        [bm25, bm25 >> SynthReranker(OverlapScorer())], topics, qrels, eval_metrics=[ir_measures.nDCG @ 10, ir_measures.RR @ 10],
        names=["bm25", "reranked"],
    )  # fmt: skip
    core = InMemoryBM25()
    core.index(dataset.corpus.values())
    run, _ = first_stage(dataset, core, top_k=6)
    reranked, _ = rerank_run(dataset, run, OverlapScorer(), top_k=6)
    by_name = table.set_index("name")
    assert by_name.loc["bm25", "nDCG@10"] == pytest.approx(evaluate_run(run, dataset.qrels).aggregate["nDCG@10"])
    assert by_name.loc["reranked", "nDCG@10"] == pytest.approx(
        evaluate_run(reranked, dataset.qrels).aggregate["nDCG@10"]
    )


def _model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"num_labels": 1}), encoding="utf-8")
    return folder


def test_artifact_marks_and_loads_through_pyterrier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reranker_module, "load_pair_scorer", lambda model, **kw: OverlapScorer())
    folder = _model_dir(tmp_path)
    SynthRerankerArtifact.mark(folder)
    meta = json.loads((folder / "pt_meta.json").read_text(encoding="utf-8"))
    assert meta["type"] == "reranker" and meta["format"] == "synthrank"
    artifact = SynthRerankerArtifact.load(str(folder))
    assert isinstance(artifact, SynthRerankerArtifact)
    assert isinstance(artifact.reranker(batch_size=4), SynthReranker)
    assert pt.inspect.artifact_type_format(artifact) == ("reranker", "synthrank")
    import importlib.metadata

    if not any(ep.name == "reranker.synthrank" for ep in importlib.metadata.entry_points(group="pyterrier.artifact")):
        pytest.skip("synthrank is not pip-installed, so its pyterrier.artifact entry point is not registered")
    loaded = pt.Artifact.load(str(folder))
    assert isinstance(loaded, SynthRerankerArtifact)
    out = loaded.reranker().transform(_results())
    assert len(out) == 4


def test_artifact_rejects_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no config\.json"):
        SynthRerankerArtifact.mark(tmp_path)
    with pytest.raises(ModelError, match="not a synthrank model directory"):
        SynthRerankerArtifact(tmp_path)


def test_a_folder_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"without config\.json: not a Hugging Face model directory"):
        SynthReranker(tmp_path)


def test_first_stage_weight_fuses_the_input_score_as_the_core_does() -> None:
    from synthrank.rerank.first_stage import fuse_with_first_stage

    inp = _results()
    model = OverlapScorer().score_pairs(inp["query"].tolist(), inp["text"].tolist())
    out = SynthReranker(OverlapScorer(), first_stage_weight=0.3).transform(inp)
    runs = {"first": {}, "model": {}}  # type: dict[str, dict[str, dict[str, float]]]
    for (qid, docno, bm25), s in zip(inp[["qid", "docno", "score"]].itertuples(index=False), model, strict=True):
        runs["first"].setdefault(qid, {})[docno] = bm25
        runs["model"].setdefault(qid, {})[docno] = float(s)
    expected = fuse_with_first_stage(runs["first"], runs["model"], 0.3)
    assert out["score"].tolist() == pytest.approx([expected[q][d] for q, d in zip(out.qid, out.docno, strict=True)], abs=1e-6)
    # all first stage: BM25's own order back; the model's "c" first otherwise
    q1 = SynthReranker(OverlapScorer(), first_stage_weight=1.0).transform(inp).query("qid == '1'").sort_values("rank")
    assert q1["docno"].tolist() == ["a", "b", "c"]
    assert "first_stage_weight=0.3" in repr(SynthReranker(OverlapScorer(), first_stage_weight=0.3))
    with pytest.raises(pt.validate.InputValidationError, match="score"):
        SynthReranker(OverlapScorer(), first_stage_weight=0.3).transform(inp.drop(columns=["score"]))
    with pytest.raises(ValueError, match="numeric 'score'"):
        SynthReranker(OverlapScorer(), first_stage_weight=0.3).transform(inp.assign(score=[1.0, float("nan"), 2.0, 3.0]))
    with pytest.raises(ValueError, match="first_stage_weight"):
        SynthReranker(OverlapScorer(), first_stage_weight=1.5)


def test_auto_serves_the_model_folders_first_stage_weight(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from synthrank.rerank.serving import write_serving_settings

    monkeypatch.setattr(reranker_module, "load_pair_scorer", lambda model, **kwargs: OverlapScorer())
    write_serving_settings(tmp_path, 0.3)
    inp = _results()
    auto = SynthReranker(tmp_path)
    assert auto.first_stage_weight == 0.3 and "first_stage_weight=0.3" in repr(auto)
    pd.testing.assert_frame_equal(auto.transform(inp), SynthReranker(tmp_path, first_stage_weight=0.3).transform(inp))
    alone = SynthReranker(tmp_path, first_stage_weight=0).transform(inp.drop(columns=["score"]))
    assert not alone.equals(auto.transform(inp))
    with caplog.at_level("WARNING"):  # no first-stage score: "auto" ranks by the model alone and says so
        pd.testing.assert_frame_equal(auto.transform(inp.drop(columns=["score"])), alone)
    assert "no 'score' column" in caplog.text
    assert SynthReranker(OverlapScorer()).first_stage_weight == 0.0  # a ready scorer has no folder to read
