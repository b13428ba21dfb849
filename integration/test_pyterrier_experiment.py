"""pt.Experiment([bm25, bm25 >> SynthReranker]) on vaswani and MedQuAD, checked against the core's evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pyterrier")

import ir_measures
import numpy as np
import pyterrier as pt

from integration.adapter_fixtures import make_cross_encoder, subset
from integration.conftest import shared_dataset
from pyterrier_synthrank import SynthBM25, SynthReranker, SynthRerankerArtifact, qrels_frame, topics_frame
from synthrank.data import load_dataset
from synthrank.evaluate import evaluate_run, first_stage, rerank_run
from synthrank.retrieve import InMemoryBM25

METRICS = [ir_measures.nDCG @ 10, ir_measures.RR @ 10, ir_measures.R @ 100]
CORE_NAMES = {"nDCG@10": "nDCG@10", "RR@10": "MRR@10", "R@100": "Recall@100"}
MAX_LENGTH = 256
"""Tokens per (query, passage) pair on both sides, as in training: MedQuAD answers are long, and 512 doubles the cost."""


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Path:
    return make_cross_encoder(minilm_dir, tmp_path_factory.mktemp("ce") / "model")


def _core_scorer(model_dir: Path):  # type: ignore[no-untyped-def]
    from synthrank.rerank.cross_encoder import CrossEncoderReranker

    return CrossEncoderReranker(str(model_dir), batch_size=32, max_length=MAX_LENGTH)


@pytest.mark.parametrize(
    ("name", "split", "num_queries", "depth"),
    [
        ("vaswani", "test", None, 20),
        pytest.param("medquad", "test_sample1000", 100, 20, marks=pytest.mark.slow),
    ],
)
def test_experiment_matches_core_evaluation(
    name: str, split: str, num_queries: int | None, depth: int, cross_encoder: Path
) -> None:
    dataset = subset(load_dataset(shared_dataset(name), split=split), num_queries)
    topics, qrels = topics_frame(dataset), qrels_frame(dataset)
    bm25 = SynthBM25.from_documents(dataset.corpus, num_results=100)
    reranker = SynthReranker(cross_encoder, batch_size=32, max_length=MAX_LENGTH)
    table = pt.Experiment(
        [bm25, (bm25 % depth) >> reranker],
        topics,
        qrels,
        eval_metrics=METRICS,
        names=["bm25", "bm25>>synthrank"],
    ).set_index("name")

    # the core on the same queries: its BM25 gives the first-stage numbers ...
    core_bm25 = InMemoryBM25()
    core_bm25.index(dataset.corpus.values())
    run, _ = first_stage(dataset, core_bm25, top_k=100)
    # ... and its scorer reranks the same top-`depth` pairs `bm25 % depth` kept (on a score tie at the cutoff,
    # `%` keeps the first-stage order while the core's rerank_run keeps the lower doc id: MedQuAD has such ties)
    kept = (bm25 % depth).transform(topics)
    candidates = {str(q): dict(zip(g["docno"], g["score"], strict=True)) for q, g in kept.groupby("qid")}
    reranked, _ = rerank_run(dataset, candidates, _core_scorer(cross_encoder), top_k=depth)
    core_first = evaluate_run(run, dataset.qrels, list(CORE_NAMES.values())).aggregate
    core_reranked = evaluate_run(reranked, dataset.qrels, list(CORE_NAMES.values())).aggregate
    for pt_name, core_name in CORE_NAMES.items():
        assert table.loc["bm25", pt_name] == pytest.approx(core_first[core_name], abs=1e-6), pt_name
    # Recall@100 of the reranked system only sees the top `depth`, in both worlds
    for pt_name in ("nDCG@10", "RR@10"):
        core_value = core_reranked[CORE_NAMES[pt_name]]
        assert table.loc["bm25>>synthrank", pt_name] == pytest.approx(core_value, abs=1e-4), pt_name


def test_same_scores_as_the_core_scorer_on_the_same_pairs(cross_encoder: Path) -> None:
    dataset = subset(load_dataset(shared_dataset("vaswani")), 10)
    bm25 = SynthBM25.from_documents(dataset.corpus, num_results=10)
    res = (bm25 >> SynthReranker(cross_encoder, batch_size=16, max_length=MAX_LENGTH)).transform(topics_frame(dataset))
    core = _core_scorer(cross_encoder).score_pairs(
        res["query"].tolist(), [dataset.corpus[d].full_text("\n") for d in res["docno"]]
    )
    np.testing.assert_allclose(res["score"].to_numpy(), np.asarray(core, dtype=np.float64), rtol=0, atol=1e-5)
    assert len(res) == 100


def test_saved_model_loads_as_a_pyterrier_artifact(cross_encoder: Path) -> None:
    import importlib.metadata

    if not any(ep.name == "reranker.synthrank" for ep in importlib.metadata.entry_points(group="pyterrier.artifact")):
        pytest.skip("synthrank is not pip-installed, so its pyterrier.artifact entry point is not registered")
    SynthRerankerArtifact.mark(cross_encoder)
    artifact = pt.Artifact.load(str(cross_encoder))
    assert isinstance(artifact, SynthRerankerArtifact)
    dataset = subset(load_dataset(shared_dataset("vaswani")), 3)
    bm25 = SynthBM25.from_documents(dataset.corpus, num_results=5)
    via_artifact = (bm25 >> artifact.reranker(batch_size=8)).transform(topics_frame(dataset))
    direct = (bm25 >> SynthReranker(cross_encoder, batch_size=8)).transform(topics_frame(dataset))
    np.testing.assert_allclose(via_artifact["score"].to_numpy(), direct["score"].to_numpy(), atol=1e-6)


def test_pisa_first_stage_feeds_the_reranker(cross_encoder: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyterrier_pisa")
    from pyterrier_synthrank import pisa_bm25

    dataset = subset(load_dataset(shared_dataset("vaswani")), None)
    pisa = pisa_bm25(dataset.corpus, tmp_path / "pisa", num_results=100)
    table = pt.Experiment([pisa], topics_frame(dataset), qrels_frame(dataset), eval_metrics=METRICS[:1])
    # PISA's BM25 has its own tokeniser and Terrier stopword list: 0.4667 here, against 0.4412 for ours
    assert table["nDCG@10"].iloc[0] == pytest.approx(0.4667, abs=0.005)
    res = (pisa % 3 >> SynthReranker(cross_encoder)).transform(topics_frame(subset(dataset, 2)))
    assert len(res) == 6 and res["score"].notna().all()
