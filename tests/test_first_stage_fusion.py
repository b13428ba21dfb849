"""Fusing a reranker with BM25's scores, and the one-standard-error rule that picks the weight on synthetic queries."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from synthrank.rerank.first_stage import (
    bagged_one_standard_error_weight,
    fuse_with_first_stage,
    one_standard_error_weight,
    per_query_by_weight,
    pick_first_stage_weight,
    source_passages_of_run,
)
from tests.benchmark_modules import load_benchmark

FIRST = {"q": {"a": 10.0, "b": 5.0, "c": 1.0}}
MODEL = {"q": {"a": 0.1, "b": 0.2, "c": 0.9}}


def order(run: dict[str, dict[str, float]]) -> list[str]:
    return sorted(run["q"], key=lambda d: -run["q"][d])


def test_the_weight_moves_the_ranking_from_the_model_to_the_first_stage() -> None:
    assert order(fuse_with_first_stage(FIRST, MODEL, 0.0)) == ["c", "b", "a"]
    assert order(fuse_with_first_stage(FIRST, MODEL, 1.0)) == ["a", "b", "c"]
    fused = fuse_with_first_stage(FIRST, MODEL, 0.5)["q"]
    assert fused["b"] == pytest.approx(0.5 * (5 - 16 / 3) / np.std([10, 5, 1]) + 0.5 * (0.2 - 0.4) / np.std([0.1, 0.2, 0.9]))
    # a document the first stage never scored counts as its lowest
    assert fuse_with_first_stage({"q": {"a": 3.0, "b": 1.0}}, {"q": {"a": 0.0, "b": 0.0, "z": 0.0}}, 1.0)["q"]["z"] == (
        pytest.approx(fuse_with_first_stage({"q": {"a": 3.0, "b": 1.0}}, {"q": {"a": 0.0, "b": 0.0, "z": 0.0}}, 1.0)["q"]["b"])
    )
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fuse_with_first_stage(FIRST, MODEL, 1.5)


def test_the_rule_takes_the_least_first_stage_weight_within_one_standard_error_of_the_best() -> None:
    noisy_best = {f"q{i}": v for i, v in enumerate([1.0, 1.0, 1.0, 0.0])}  # mean 0.75, SE 0.25
    per_query = {
        0.0: {f"q{i}": v for i, v in enumerate([1.0, 1.0, 0.0, 0.0])},  # 0.50: exactly one SE below
        0.5: {f"q{i}": v for i, v in enumerate([1.0, 0.0, 0.0, 0.0])},
        1.0: noisy_best,
    }
    picked = one_standard_error_weight(per_query)
    assert picked["best_weight"] == 1.0 and picked["se"] == pytest.approx(0.25) and picked["weight"] == 0.0
    assert picked["table"] == {"0.0": 0.5, "0.5": 0.25, "1.0": 0.75}
    # a certain best (no spread over queries) is kept; ties go to the least first stage
    certain = {0.2: {"a": 1.0, "b": 1.0}, 0.6: {"a": 1.0, "b": 1.0}, 0.0: {"a": 0.5, "b": 0.5}}
    assert one_standard_error_weight(certain)["weight"] == 0.2 == one_standard_error_weight(certain)["best_weight"]
    with pytest.raises(ValueError):
        one_standard_error_weight({})


class WordOverlap:
    """A deterministic stand-in for a model: shared words between query and passage."""

    def score_pairs(self, queries: Sequence[str], documents: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        return np.array([len(set(q.split()) & set(d.split())) for q, d in zip(queries, documents, strict=True)], float)


def test_the_weight_is_picked_on_the_synthetic_queries_it_is_given() -> None:
    texts = {"src": "tides moon gravity bulge", "x": "volcano magma", "y": "tides harbour boats"}
    # BM25 puts the wrong passage first; the model (word overlap) finds the source: the model alone is best
    candidates = {"q1": ("why moon tides gravity", {"y": 9.0, "src": 3.0, "x": 1.0}),
                  "q2": ("no relevant passage here", {"x": 1.0}), "q3": ("empty", {})}  # fmt: skip
    relevant = {"q1": {"src": 1}, "q2": {}, "q3": {"src": 1}}
    picked = pick_first_stage_weight(candidates, relevant, WordOverlap(), texts)
    assert picked["queries"] == 1 and picked["weight"] == 0.0 and picked["table"]["1.0"] < picked["table"]["0.0"]
    with pytest.raises(ValueError, match="no query"):
        pick_first_stage_weight({"q2": candidates["q2"]}, relevant, WordOverlap(), texts)


def test_the_weight_stability_benchmark_resamples_whole_passages() -> None:
    """benchmarks/bench_weight_stability.py: a resample draws a passage with all its queries, and is seeded."""
    bench = load_benchmark("bench_weight_stability")
    # passage a's one query likes BM25 (weight 1), passage b's three like the model (weight 0)
    per_query = {0.0: {"a1": 0.2, "b1": 1.0, "b2": 1.0, "b3": 1.0}, 1.0: {"a1": 1.0, "b1": 0.2, "b2": 0.2, "b3": 0.2}}
    passage_of = {"a1": "a", "b1": "b", "b2": "b", "b3": "b"}
    chosen = bench.resampled_choices(per_query, passage_of, 400, seed=1)
    assert sum(chosen["best"].values()) == sum(chosen["one_se"].values()) == 400
    # by passage, BM25 is best only when both draws are a (1/4 of resamples); drawing queries one by one, a1
    # would have to fill 3 of 4 draws (5%)
    assert 70 < chosen["best"][1.0] < 130
    assert chosen == bench.resampled_choices(per_query, passage_of, 400, seed=1)
    spread = bench.spread(chosen["best"])
    assert set(spread) == {"counts", "median", "p05", "p95", "std"} and spread["p05"] == 0.0 and spread["p95"] == 1.0


def test_the_bagged_rule_averages_the_choice_over_resamples_of_whole_passages() -> None:
    # passage a's one query likes BM25 (weight 1), passage b's three like the model (weight 0): on all the data
    # the rule picks 0.0, on the resamples that draw a twice it picks 1.0 (1/4 of them, by passage)
    per_query = {0.0: {"a1": 0.2, "b1": 1.0, "b2": 1.0, "b3": 1.0}, 1.0: {"a1": 1.0, "b1": 0.2, "b2": 0.2, "b3": 0.2}}
    passage_of = {"a1": "a", "b1": "b", "b2": "b", "b3": "b"}
    assert one_standard_error_weight(per_query)["weight"] == 0.0
    bagged = bagged_one_standard_error_weight(per_query, passage_of, resamples=400, seed=1)
    assert bagged["units"] == 2 and bagged["resamples"] == 400
    assert 0.15 < bagged["weight"] < 0.35 and bagged["spread"] > 0.3  # between the grid's jumps, not on one
    assert bagged == bagged_one_standard_error_weight(per_query, passage_of, resamples=400, seed=1)
    # query by query (no passages given), a1 must fill 3 of 4 draws: BM25 is chosen far less often
    assert bagged_one_standard_error_weight(per_query, resamples=400, seed=1)["weight"] < 0.12
    # where one weight wins on every query, every resample agrees
    clear = {0.0: {"q1": 0.1, "q2": 0.2}, 0.4: {"q1": 0.9, "q2": 0.8}, 1.0: {"q1": 0.1, "q2": 0.1}}
    assert bagged_one_standard_error_weight(clear, resamples=50) == {"weight": 0.4, "spread": 0.0, "resamples": 50,
                                                                      "units": 2}  # fmt: skip
    with pytest.raises(ValueError, match="resamples"):
        bagged_one_standard_error_weight(clear, resamples=0)


def test_the_source_passages_of_a_run_come_from_its_candidates(tmp_path: Path) -> None:
    (tmp_path / "candidates.jsonl").write_text(
        '{"query_id": "q1", "query": "a", "source_doc_id": "d1", "candidates": []}\n'
        '{"query_id": "q2", "query": "b", "source_doc_id": "d1", "candidates": []}\n'
        '{"query_id": "q3", "query": "c", "source_doc_id": "d7", "candidates": []}\n',
        encoding="utf-8",
    )
    assert source_passages_of_run(tmp_path) == {"q1": "d1", "q2": "d1", "q3": "d7"}
    assert source_passages_of_run(tmp_path / "missing") == {}


def test_the_weight_rules_benchmark_lets_each_rule_pick_on_its_own_draw_of_passages() -> None:
    """benchmarks/bench_weight_rules.py: a draw keeps whole passages; each rule sees only its draw's queries."""
    bench = load_benchmark("bench_weight_rules")
    # passages a and b: their queries find the source only with BM25 (weight 1); c and d: only with the model
    per_query = {
        0.0: {"a1": 0.0, "a2": 0.0, "b1": 0.0, "c1": 1.0, "d1": 1.0, "d2": 1.0},
        1.0: {"a1": 1.0, "a2": 1.0, "b1": 1.0, "c1": 0.0, "d1": 0.0, "d2": 0.0},
    }
    passage_of = {q: q[0] for q in per_query[0.0]}
    served = {0.0: 0.5, 1.0: 0.7}
    out = bench.simulate(per_query, passage_of, lambda w: served.get(w, 0.6), passages=2, draws=60, resamples=20,
                         seed=3)  # fmt: skip
    assert (out["draws"], out["passages_per_draw"], out["pool_passages"], out["pool_queries"]) == (60, 2, 4, 6)
    rules = out["rules"]
    assert rules["model"]["weight_mean"] == 0.0 and rules["model"]["served_ndcg10"] == 0.5
    # a draw of {a, b} makes every rule pick BM25, {c, d} the model; a mixed draw ties at 0.5 nDCG: the best rule
    # takes the least BM25 (0.0) -> best picks 1.0 on exactly the {a, b} draws (1 in 6 of the pairs)
    assert 0.05 < rules["best"]["weight_mean"] < 0.35
    assert rules["one_se"]["vs_one_se"] == 0.0 and rules["one_se"]["vs_one_se_draws_better"] == 0
    assert 0.0 < rules["bagged"]["weight_mean"] < 1.0
    assert out == bench.simulate(per_query, passage_of, lambda w: served.get(w, 0.6), passages=2, draws=60,
                                 resamples=20, seed=3)  # fmt: skip
    assert all(len(set(d)) == 2 for d in bench.draw_passages(list("abcd"), 2, 10, seed=1))
    assert bench.draw_passages(list("ab"), 5, 1, seed=1) == [["a", "b"]]


def test_the_pick_applies_the_rule_it_is_asked_for() -> None:
    texts = {"a": "tides moon gravity", "b": "volcano magma lava", "c": "harbour boats tides", "d": "magma chamber"}
    # q1's source is found by the model (word overlap), q2's only by BM25: the rules weigh the two
    candidates = {"q1": ("moon gravity tides", {"c": 9.0, "a": 3.0}), "q2": ("eruption", {"b": 9.0, "d": 3.0}),
                  "q3": ("lava volcano", {"d": 9.0, "b": 3.0})}  # fmt: skip
    relevant = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"b": 1}}
    one_se = pick_first_stage_weight(candidates, relevant, WordOverlap(), texts)
    bagged = pick_first_stage_weight(candidates, relevant, WordOverlap(), texts, rule="bagged",
                                     units={"q1": "a", "q2": "b", "q3": "b"})  # fmt: skip
    assert one_se["rule"] == "one_se" and one_se["weight"] == one_se["one_se_weight"] and "spread" not in one_se
    assert bagged["rule"] == "bagged" and bagged["one_se_weight"] == one_se["weight"] and bagged["units"] == 2
    table = per_query_by_weight(candidates, relevant, WordOverlap(), texts)
    assert bagged["weight"] == bagged_one_standard_error_weight(table, {"q1": "a", "q2": "b", "q3": "b"})["weight"]
    with pytest.raises(ValueError, match="unknown first-stage weight rule"):
        pick_first_stage_weight(candidates, relevant, WordOverlap(), texts, rule="median")


def test_the_run_config_names_a_bad_rule() -> None:
    from synthrank.errors import DataError
    from synthrank.evaluate.config import EvaluateConfig

    assert EvaluateConfig.from_dict({"first_stage_rule": "bagged"}).first_stage_rule == "bagged"
    with pytest.raises(DataError, match=r"evaluate\.first_stage_rule"):
        EvaluateConfig.from_dict({"first_stage_rule": "median"})
