"""SynthRankRanker: serialisation round trips, the scorer's scores on the right pairs, no input mutation, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("haystack")

from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.utils import ComponentDevice
from scipy.special import expit

import haystack_synthrank.synth_rank_ranker as ranker_module
from haystack_synthrank import SynthRankRanker
from synthrank.errors import DataError
from tests.adapter_helpers import OverlapScorer

TYPE = "haystack_synthrank.synth_rank_ranker.SynthRankRanker"


@pytest.fixture
def scorer(monkeypatch: pytest.MonkeyPatch) -> OverlapScorer:
    """Patch model loading at its import path; record what the ranker asked for."""
    the_scorer = OverlapScorer()
    the_scorer.load_calls = []  # type: ignore[attr-defined]
    the_scorer.warm_ups = 0  # type: ignore[attr-defined]

    def warm_up() -> None:
        the_scorer.warm_ups += 1  # type: ignore[attr-defined]

    the_scorer.warm_up = warm_up  # type: ignore[attr-defined]

    def fake_load(model: str, **kwargs: Any) -> OverlapScorer:
        the_scorer.load_calls.append({"model": model, **kwargs})  # type: ignore[attr-defined]
        return the_scorer

    monkeypatch.setattr(ranker_module, "load_scorer_for", fake_load)
    return the_scorer


def _docs() -> list[Document]:
    return [
        Document(id="a", content="Glaucoma damages the optic nerve.", meta={"title": "Glaucoma"}),
        Document(id="b", content="Insulin lowers blood glucose.", meta={"title": "Insulin"}),
        Document(id="c", content="The optic nerve.", meta={"title": "Anatomy"}),
    ]


def test_to_dict_defaults() -> None:
    assert SynthRankRanker(model="runs/m").to_dict() == {
        "type": TYPE,
        "init_parameters": {
            "model": "runs/m",
            "device": None,
            "top_k": 10,
            "query_prefix": "",
            "document_prefix": "",
            "meta_fields_to_embed": [],
            "embedding_separator": "\n",
            "scale_score": True,
            "calibration_factor": None,
            "score_threshold": None,
            "batch_size": 16,
            "max_length": None,
            "kind": "auto",
            "fuse_with": None,
            "fusion_weight": 0.0,
            "first_stage_weight": "auto",
        },
    }


def test_to_dict_from_dict_round_trip_with_every_parameter() -> None:
    ranker = SynthRankRanker(
        model="runs/m",
        device=ComponentDevice.from_str("cpu"),
        top_k=3,
        query_prefix="query: ",
        document_prefix="passage: ",
        meta_fields_to_embed=["title"],
        embedding_separator=" | ",
        scale_score=False,
        calibration_factor=2.0,
        score_threshold=0.25,
        batch_size=4,
        max_length=128,
        kind="cross-encoder",
        fuse_with="minilm",
        fusion_weight=0.3,
        first_stage_weight=0.4,
    )
    data = ranker.to_dict()
    assert data == {
        "type": TYPE,
        "init_parameters": {
            "model": "runs/m",
            "device": {"type": "single", "device": "cpu"},
            "top_k": 3,
            "query_prefix": "query: ",
            "document_prefix": "passage: ",
            "meta_fields_to_embed": ["title"],
            "embedding_separator": " | ",
            "scale_score": False,
            "calibration_factor": 2.0,
            "score_threshold": 0.25,
            "batch_size": 4,
            "max_length": 128,
            "kind": "cross-encoder",
            "fuse_with": "minilm",
            "fusion_weight": 0.3,
            "first_stage_weight": 0.4,
        },
    }
    again = SynthRankRanker.from_dict(data)
    assert again.to_dict() == data
    assert again.device == ComponentDevice.from_str("cpu")


def test_pipeline_yaml_round_trip() -> None:
    store = InMemoryDocumentStore()
    pipe = Pipeline()
    pipe.add_component("retriever", InMemoryBM25Retriever(document_store=store, top_k=20))
    pipe.add_component("ranker", SynthRankRanker(model="runs/m", top_k=5, meta_fields_to_embed=["title"]))
    pipe.connect("retriever.documents", "ranker.documents")
    yaml_text = pipe.dumps()
    assert TYPE in yaml_text
    loaded = Pipeline.loads(yaml_text)
    loaded_ranker = loaded.get_component("ranker")
    assert isinstance(loaded_ranker, SynthRankRanker)
    assert loaded_ranker.to_dict() == SynthRankRanker(model="runs/m", top_k=5, meta_fields_to_embed=["title"]).to_dict()
    assert loaded.dumps() == yaml_text


def _load_in_a_fresh_process(code: str) -> list[str]:
    """Run ``code`` in a new interpreter with a one-ranker pipeline's YAML on stdin; the words it printed."""
    pipe = Pipeline()
    pipe.add_component("ranker", SynthRankRanker(model="runs/m"))
    proc = subprocess.run(
        [sys.executable, "-c", code], input=pipe.dumps(), capture_output=True, text=True, timeout=120, check=True
    )
    return proc.stdout.split()


def test_importing_the_package_registers_it_for_a_fresh_process_load() -> None:
    code = (
        "import sys\n"
        "from haystack import Pipeline\n"
        "from haystack.core.errors import DeserializationError\n"
        "text = sys.stdin.read()\n"
        "try:\n"
        "    Pipeline.loads(text)\n"
        "    print('loaded-before-import')\n"
        "except DeserializationError:\n"
        "    print('refused-before-import')\n"
        "import haystack_synthrank\n"
        "print(type(Pipeline.loads(text).get_component('ranker')).__name__)\n"
    )
    assert _load_in_a_fresh_process(code) == ["refused-before-import", "SynthRankRanker"]


def test_scores_are_the_scorers_on_the_core_text(scorer: OverlapScorer) -> None:
    docs = _docs()
    ranker = SynthRankRanker(model="runs/m", meta_fields_to_embed=["title"])
    out = ranker.run(query="optic nerve damage", documents=docs)["documents"]
    texts = [f"{d.meta['title']}\n{d.content}" for d in docs]
    assert scorer.calls == [(["optic nerve damage"] * 3, texts)]
    raw = OverlapScorer().score_pairs(["optic nerve damage"] * 3, texts).astype(np.float64)
    expected = dict(zip("abc", expit(raw), strict=True))
    assert [d.id for d in out] == sorted("abc", key=lambda i: -expected[i])
    assert [d.score for d in out] == pytest.approx([expected[d.id] for d in out])
    assert all(d.score is None for d in docs)  # inputs never mutated
    assert scorer.load_calls == [  # type: ignore[attr-defined]
        {
            "model": "runs/m",
            "kind": "auto",
            "device": None,
            "batch_size": 16,
            "max_length": None,
            "fuse_with": None,
            "fusion_weight": 0.0,
        }
    ]


def test_runtime_overrides_including_false(scorer: OverlapScorer) -> None:
    ranker = SynthRankRanker(model="runs/m", top_k=3, scale_score=True)
    raw = ranker.run(query="optic nerve", documents=_docs(), scale_score=False)["documents"]
    assert max(d.score or 0.0 for d in raw) > 1.0  # raw scores: the False override was honoured
    one = ranker.run(query="optic nerve", documents=_docs(), top_k=1)["documents"]
    assert len(one) == 1
    kept = ranker.run(query="optic nerve", documents=_docs(), scale_score=False, score_threshold=2.0)["documents"]
    assert {d.id for d in kept} == {"a", "c"}


def test_prefixes_and_duplicates(scorer: OverlapScorer) -> None:
    docs = [*_docs(), Document(id="a", content="Glaucoma damages the optic nerve.", score=9.0)]
    ranker = SynthRankRanker(model="runs/m", query_prefix="q: ", document_prefix="p: ")
    out = ranker.run(query="nerve", documents=docs)["documents"]
    assert sorted(d.id for d in out) == ["a", "b", "c"]
    queries, texts = scorer.calls[-1]
    assert set(queries) == {"q: nerve"} and all(t.startswith("p: ") for t in texts)


def test_empty_and_bad_input(scorer: OverlapScorer) -> None:
    ranker = SynthRankRanker(model="runs/m")
    assert ranker.run(query="anything", documents=[]) == {"documents": []}
    assert scorer.load_calls == []  # type: ignore[attr-defined]  # nothing loaded for nothing
    with pytest.raises(DataError, match=r"no content to score.*'x'"):
        ranker.run(query="q", documents=[*_docs(), Document(id="x", content="")])
    with pytest.raises(ValueError, match="top_k"):
        ranker.run(query="q", documents=_docs(), top_k=0)
    with pytest.raises(ValueError, match="top_k"):
        SynthRankRanker(model="m", top_k=0)
    with pytest.raises(ValueError, match="calibration_factor"):
        SynthRankRanker(model="m", calibration_factor=0.0)


def test_an_empty_query_returns_the_documents_unranked_with_a_warning(
    scorer: OverlapScorer, caplog: pytest.LogCaptureFixture
) -> None:
    docs = [*_docs(), Document(id="a", content="Glaucoma damages the optic nerve.", score=9.0)]
    ranker = SynthRankRanker(model="runs/m", top_k=1)
    with caplog.at_level("WARNING"):
        out = ranker.run(query="  ", documents=docs)["documents"]
    assert [d.id for d in out] == ["a", "b", "c"]  # deduplicated, input order, no top_k cut (as LLMRanker)
    assert out[0].score == 9.0 and out[1].score is None  # not scored
    assert scorer.calls == []
    assert "empty query" in caplog.text


class CosineScorer(OverlapScorer):
    """A bi-encoder stand-in: cosines in [-1, 1], declared as such (as ``BiEncoderScorer`` does)."""

    score_scale = "cosine"

    def score_pairs(self, queries: Any, documents: Any, *, show_progress: bool = False) -> np.ndarray:
        self.calls.append((list(queries), list(documents)))
        table = {"Glaucoma": 0.62, "Insulin": 0.05, "Anatomy": 0.48}
        return np.array([next(v for k, v in table.items() if k in d) for d in documents], dtype=np.float32)


def test_bi_encoder_scores_are_scaled_like_haystack_cosines_so_a_threshold_means_something(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ranker_module, "load_scorer_for", lambda model, **kw: CosineScorer())
    ranker = SynthRankRanker(model="minilm", meta_fields_to_embed=["title"])
    out = ranker.run(query="optic nerve", documents=_docs())["documents"]
    assert {d.id: d.score for d in out} == pytest.approx({"a": 0.81, "c": 0.74, "b": 0.525})  # (cosine + 1) / 2
    kept = ranker.run(query="optic nerve", documents=_docs(), score_threshold=0.75)["documents"]
    assert [d.id for d in kept] == ["a"]  # cosine >= 0.5
    calibrated = SynthRankRanker(model="minilm", meta_fields_to_embed=["title"], calibration_factor=10.0)
    out = calibrated.run(query="optic nerve", documents=_docs())["documents"]
    assert {d.id: d.score for d in out} == pytest.approx(dict(zip("acb", expit([6.2, 4.8, 0.5]), strict=True)))
    raw = ranker.run(query="optic nerve", documents=_docs(), scale_score=False)["documents"]
    assert {d.id: d.score for d in raw} == pytest.approx({"a": 0.62, "c": 0.48, "b": 0.05})


def test_a_calibration_factor_scales_logits_before_the_sigmoid(scorer: OverlapScorer) -> None:
    ranker = SynthRankRanker(model="runs/m", calibration_factor=0.5)
    out = ranker.run(query="optic nerve damage", documents=_docs())["documents"]
    raw = {d.id: d.score for d in ranker.run(query="optic nerve damage", documents=_docs(), scale_score=False)["documents"]}
    assert {d.id: d.score for d in out} == pytest.approx({k: float(expit(0.5 * v)) for k, v in raw.items()})


def test_warm_up_once_and_close(scorer: OverlapScorer) -> None:
    ranker = SynthRankRanker(model="runs/m", device=ComponentDevice.from_str("cpu"))
    ranker.warm_up()
    ranker.warm_up()
    ranker.run(query="nerve", documents=_docs())
    assert len(scorer.load_calls) == 1  # type: ignore[attr-defined]
    assert scorer.warm_ups == 1  # type: ignore[attr-defined]  # the weights were loaded in warm_up, once
    ranker.close()
    ranker.run(query="nerve", documents=_docs())
    assert len(scorer.load_calls) == 2  # type: ignore[attr-defined]


def test_in_a_query_pipeline_after_haystack_bm25(scorer: OverlapScorer) -> None:
    store = InMemoryDocumentStore()
    store.write_documents(_docs())
    pipe = Pipeline()
    pipe.add_component("retriever", InMemoryBM25Retriever(document_store=store, top_k=3))
    pipe.add_component("ranker", SynthRankRanker(model="runs/m", top_k=2, meta_fields_to_embed=["title"]))
    pipe.connect("retriever.documents", "ranker.documents")
    result = pipe.run({"retriever": {"query": "optic nerve"}, "ranker": {"query": "optic nerve"}})
    assert [d.id for d in result["ranker"]["documents"]] == ["c", "a"]


def test_a_folder_that_is_not_a_model_is_refused_at_warm_up(tmp_path: Any) -> None:
    from synthrank.errors import ModelError

    ranker = SynthRankRanker(model=str(tmp_path))  # cheap: nothing is loaded yet
    with pytest.raises(ModelError, match=r"without config\.json: not a Hugging Face model directory"):
        ranker.warm_up()


def test_warm_up_loads_the_weights_so_errors_surface_at_start_up(tmp_path: Any) -> None:
    from synthrank.errors import ModelError

    ranker = SynthRankRanker(model="minilm", device=ComponentDevice.from_str("cpu"))
    ranker.warm_up()
    assert ranker._scorer is not None and ranker._scorer._model is not None  # type: ignore[attr-defined]
    missing = SynthRankRanker(model=str(tmp_path / "runs" / "a" / "train" / "model"))
    with pytest.raises(ModelError, match="does not exist"):
        missing.warm_up()


def test_a_real_bi_encoder_scores_on_the_cosine_scale() -> None:
    ranker = SynthRankRanker(model="minilm", device=ComponentDevice.from_str("cpu"), meta_fields_to_embed=["title"])
    out = ranker.run(query="what damages the optic nerve", documents=_docs())["documents"]
    raw = ranker.run(query="what damages the optic nerve", documents=_docs(), scale_score=False)["documents"]
    assert {d.id: d.score for d in out} == pytest.approx({d.id: (d.score + 1) / 2 for d in raw})  # type: ignore[operator]
    assert max(d.score or 0.0 for d in out) - min(d.score or 0.0 for d in out) > 0.15  # not squeezed by a sigmoid


def test_a_fresh_process_loads_with_allowed_modules_without_importing_the_package() -> None:
    # Haystack refuses to import a module off its allowlist *before* importing it (a security property), so
    # the package cannot register itself when only its component path is named; the documented ways are
    # `import haystack_synthrank`, `allowed_modules=["haystack_synthrank"]` or HAYSTACK_DESERIALIZATION_ALLOWLIST.
    code = (
        "import sys\n"
        "from haystack import Pipeline\n"
        "p = Pipeline.loads(sys.stdin.read(), allowed_modules=['haystack_synthrank'])\n"
        "print(type(p.get_component('ranker')).__name__)\n"
    )
    assert _load_in_a_fresh_process(code) == ["SynthRankRanker"]


def test_first_stage_weight_fuses_the_retrievers_scores_as_the_core_does(scorer: OverlapScorer) -> None:
    from dataclasses import replace

    from synthrank.rerank.first_stage import fuse_with_first_stage

    docs = [replace(d, score=s) for d, s in zip(_docs(), [1.0, 9.0, 0.5], strict=True)]  # BM25 prefers "b"
    query = "optic nerve damage"
    raw = OverlapScorer().score_pairs([query] * 3, [d.content or "" for d in docs])
    model = {"q": {d.id: float(r) for d, r in zip(docs, raw, strict=True)}}
    expected = fuse_with_first_stage({"q": {d.id: float(d.score or 0.0) for d in docs}}, model, 0.3)
    out = SynthRankRanker(model="runs/m", first_stage_weight=0.3, scale_score=False).run(query=query, documents=docs)
    assert {d.id: d.score for d in out["documents"]} == pytest.approx(expected["q"], abs=1e-6)
    top = SynthRankRanker(model="runs/m", first_stage_weight=1.0).run(query=query, documents=docs)["documents"][0]
    assert top.id == "b" and top.score is not None and 0.0 < top.score < 1.0  # the retriever's order back, a z-score sum scaled by a sigmoid
    with pytest.raises(DataError, match=r"retriever score.*'a'"):
        SynthRankRanker(model="runs/m", first_stage_weight=0.3).run(query=query, documents=_docs())
    with pytest.raises(ValueError, match="first_stage_weight"):
        SynthRankRanker(model="runs/m", first_stage_weight=-0.1)


def test_auto_serves_the_model_folders_first_stage_weight(
    scorer: OverlapScorer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from dataclasses import replace

    from synthrank.rerank.serving import write_serving_settings

    write_serving_settings(tmp_path, 0.3)
    docs = [replace(d, score=s) for d, s in zip(_docs(), [1.0, 9.0, 0.5], strict=True)]
    query = "optic nerve damage"

    def ranked(**kwargs: Any) -> dict[str, float | None]:
        out = SynthRankRanker(model=tmp_path, scale_score=False, **kwargs).run(query=query, documents=docs)
        return {d.id: d.score for d in out["documents"]}

    auto = ranked()
    assert auto == ranked(first_stage_weight=0.3) != ranked(first_stage_weight=0.0)
    assert SynthRankRanker.from_dict(SynthRankRanker(model=tmp_path).to_dict()).first_stage_weight == "auto"
    # documents without a retriever score: "auto" ranks by the model alone and says so; an explicit weight refuses
    alone = SynthRankRanker(model=tmp_path, first_stage_weight=0.0, scale_score=False).run(query=query, documents=_docs())
    with caplog.at_level("WARNING"):
        unscored = SynthRankRanker(model=tmp_path, scale_score=False).run(query=query, documents=_docs())
    assert [(d.id, d.score) for d in unscored["documents"]] == [(d.id, d.score) for d in alone["documents"]]
    assert "no retriever score" in caplog.text and "0.3" in caplog.text
