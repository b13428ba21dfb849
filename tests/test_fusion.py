"""Score fusion, the remembering wrapper, fusion-weight tuning on a dev set, and extra paired tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from synthrank.data import load_dataset
from synthrank.data.groups import Passage, TrainingGroup
from synthrank.evaluate import evaluate_systems
from synthrank.rerank import FusedScorer, RememberingScorer, fuse_scores, standardise_per_query
from synthrank.retrieve import InMemoryBM25
from synthrank.train import DevSet


class Scorer:
    """Scores a pair with a plain function of (query, document); counts the pairs it was asked for."""

    def __init__(self, fn: Callable[[str, str], float]) -> None:
        self.fn = fn
        self.pairs_scored = 0

    def score_pairs(
        self, queries: Sequence[str], documents: Sequence[str], *, show_progress: bool = False
    ) -> np.ndarray:
        self.pairs_scored += len(queries)
        return np.asarray([self.fn(q, d) for q, d in zip(queries, documents, strict=True)], dtype=np.float32)


def test_standardise_is_per_query_and_constant_lists_become_zero() -> None:
    out = standardise_per_query(["a", "a", "b", "b", "a"], np.array([1.0, 3.0, 5.0, 5.0, 2.0]))
    a = out[[0, 1, 4]]
    assert a.mean() == pytest.approx(0.0) and a.std() == pytest.approx(1.0)
    assert list(out[[2, 3]]) == [0.0, 0.0]
    # a scale/shift of one scorer does not change the fusion
    q = ["a"] * 4
    x, y = np.array([0.1, 0.9, 0.5, 0.2]), np.array([3.0, 1.0, 2.0, 0.0])
    assert np.allclose(fuse_scores(q, [x, y], [0.5, 0.5]), fuse_scores(q, [100 * x - 7, y], [0.5, 0.5]), atol=1e-6)
    with pytest.raises(ValueError):
        standardise_per_query(["a"], np.array([1.0, 2.0]))


def test_fused_scorer_weights_and_validation() -> None:
    first = Scorer(lambda q, d: float(len(d)))
    second = Scorer(lambda q, d: -float(len(d)))
    docs = ["x", "xxx", "xx"]
    only_first = FusedScorer([first, second], [1.0, 0.0]).score_pairs(["q"] * 3, docs)
    assert list(np.argsort(-only_first)) == [1, 2, 0] and second.pairs_scored == 0  # a 0 weight is never run
    cancelled = FusedScorer([first, second], [0.5, 0.5]).score_pairs(["q"] * 3, docs)
    assert np.allclose(cancelled, 0.0)
    assert FusedScorer([first], [1.0]).score_pairs([], []).shape == (0,)
    for weights in ([1.0], [-1.0, 2.0], [0.0, 0.0]):
        with pytest.raises(ValueError):
            FusedScorer([first, second], weights)


def test_remembering_scorer_runs_each_pair_once() -> None:
    inner = Scorer(lambda q, d: float(len(q) + len(d)))
    memo = RememberingScorer(inner)
    first = memo.score_pairs(["a", "a", "bb"], ["x", "x", "yy"])
    assert inner.pairs_scored == 2  # the repeated pair is scored once
    again = memo.score_pairs(["bb", "a", "c"], ["yy", "x", "z"])
    assert inner.pairs_scored == 3 and list(again) == [4.0, 2.0, 2.0] and list(first) == [2.0, 2.0, 4.0]


def _group(i: int, texts: list[str]) -> TrainingGroup:
    passages = [Passage(doc_id=f"g{i}d{j}", text=t, rank=j + 1) for j, t in enumerate(texts)]
    return TrainingGroup(query_id=f"q{i}", query=f"query {i}", positive=passages[0], negatives=passages[1:])


def test_tune_fusion_picks_the_weight_that_ranks_dev_best() -> None:
    """Each scorer alone misranks half the groups; fused, both halves come out right."""
    groups = [
        _group(i, ["pos A", "neg B", "neg C"]) if i % 2 else _group(i, ["pos D", "neg E", "neg F"]) for i in range(8)
    ]
    # first: right on A-groups only (strongly), weakly wrong on the others; second: the mirror image
    first = Scorer(lambda q, d: {"pos A": 5, "neg B": 0, "neg C": 0, "pos D": 0.9, "neg E": 1, "neg F": 0}[d])
    second = Scorer(lambda q, d: {"pos A": 0.9, "neg B": 1, "neg C": 0, "pos D": 5, "neg E": 0, "neg F": 0}[d])
    dev = DevSet.from_groups(groups)
    tuned = dev.tune_fusion([first, second])
    table = tuned["table"]
    assert table[0.5] == pytest.approx(1.0) and table[0.0] < 1.0 and table[1.0] < 1.0
    assert tuned["weight"] == pytest.approx(0.1)  # 0.1..0.9 all rank dev perfectly: ties go to the smaller weight
    assert tuned["weights"] == pytest.approx([1 - tuned["weight"], tuned["weight"]])
    assert table[tuned["weight"]] == max(table.values())
    assert first.pairs_scored == dev.num_pairs  # every weight re-sorts the same scores
    fused = FusedScorer([first, second], tuned["weights"])
    assert dev.evaluate(fused)["nDCG@10"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        dev.tune_fusion([first])


def test_evaluate_systems_also_tests_against_a_named_baseline(tiny_beir: Path) -> None:
    dataset = load_dataset(tiny_beir)
    bm25 = InMemoryBM25()
    bm25.index(dataset.corpus.values())
    overlap = Scorer(lambda q, d: float(len(set(q.lower().split()) & set(d.lower().split()))))
    flat = Scorer(lambda q, d: 0.0)
    report = evaluate_systems(dataset, bm25, {"overlap": overlap, "flat": flat}, top_k=5, compare_to=["flat"])
    pairs = {(s["system"], s["baseline"]) for s in report.significance}
    assert pairs == {("overlap", "bm25"), ("flat", "bm25"), ("overlap", "flat")}
    with pytest.raises(ValueError, match="compare_to"):
        evaluate_systems(dataset, bm25, {"overlap": overlap}, top_k=5, compare_to=["zero-shot"])


def test_fused_loading_in_the_core_and_both_adapters_with_a_real_model() -> None:
    """MiniLM fused with itself is MiniLM's own per-query z-scores, through every entry point."""
    from haystack import Document

    from haystack_synthrank import SynthRankRanker
    from pyterrier_synthrank.reranker import load_pair_scorer
    from synthrank.rerank import BiEncoderScorer, load_fused_scorer

    query = "what damages the optic nerve"
    docs = ["Glaucoma damages the optic nerve.", "Insulin lowers blood glucose.", "The retina senses light."]
    plain = BiEncoderScorer("minilm").score_pairs([query] * 3, docs)
    expected = standardise_per_query([query] * 3, plain)
    fused = load_fused_scorer("minilm", "minilm", 0.4, kind="bi-encoder")
    assert isinstance(fused, FusedScorer) and fused.weights == pytest.approx([0.6, 0.4])
    assert np.allclose(fused.score_pairs([query] * 3, docs), expected, atol=1e-5)
    via_pyterrier = load_pair_scorer("minilm", kind="bi-encoder", fuse_with="minilm", fusion_weight=0.4)
    assert np.allclose(via_pyterrier.score_pairs([query] * 3, docs), expected, atol=1e-5)
    ranker = SynthRankRanker(
        model="minilm", kind="bi-encoder", fuse_with="minilm", fusion_weight=0.4, scale_score=False
    )
    ranked = ranker.run(query=query, documents=[Document(content=d) for d in docs])["documents"]
    assert [d.content for d in ranked] == [docs[i] for i in np.argsort(-plain)]
    assert np.allclose([d.score for d in ranked], sorted(expected, reverse=True), atol=1e-5)
    with pytest.raises(ValueError):
        SynthRankRanker(model="minilm", fuse_with="minilm", fusion_weight=1.5)
    with pytest.raises(ValueError):
        load_fused_scorer("minilm", "minilm", -0.1)
