"""benchmarks/bench_real_queries.py builds its real-query rows the way the pipeline builds synthetic ones: every
judged positive of a training query is a positive, none is ever mined as its negative, and the sample is seeded."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from synthrank.data import load_dataset
from tests.benchmark_modules import load_benchmark


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_benchmark("bench_real_queries")


def test_real_training_groups_use_the_train_split_and_never_mine_a_judged_positive(bench: ModuleType,
                                                                                    tiny_beir: Path) -> None:  # fmt: skip
    queries = {
        "q1": "what damages the optic nerve",
        "q2": "disease of blood glucose and the eye",
        "q3": "chronic disease of the lungs or head pain",
    }
    (tiny_beir / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n"
                                                     for q, t in queries.items()), encoding="utf-8")  # fmt: skip
    (tiny_beir / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq2\td2\t1\nq2\td5\t1\nq3\td3\t1\nq3\td6\t0\n", encoding="utf-8"
    )
    corpus = load_dataset(tiny_beir, split="train").corpus
    mine = {"backend": "memory", "top_k": 6, "num_negatives": 5, "elasticsearch": {}}
    groups = bench.real_training_groups(tiny_beir, "train", None, 42, mine, corpus)
    by_query: dict[str, list] = {}
    for g in groups:
        by_query.setdefault(g.query_id, []).append(g)
    assert sorted(by_query) == ["real-q2", "real-q3"]  # q1 is a test query only
    assert sorted(g.positive.doc_id for g in by_query["real-q2"]) == ["d2", "d5"]  # one group per judged positive
    assert {n.doc_id for g in by_query["real-q2"] for n in g.negatives} == {"d1", "d3", "d4"}  # d5 never negative
    assert "d3" not in {n.doc_id for g in by_query["real-q3"] for n in g.negatives}
    assert all("d6" in {n.doc_id for n in g.negatives} for g in by_query["real-q3"])  # grade 0: not a positive
    one = bench.real_training_groups(tiny_beir, "train", 1, 7, mine, corpus)
    assert len({g.query_id for g in one}) == 1
    assert one == bench.real_training_groups(tiny_beir, "train", 1, 7, mine, corpus)  # seeded


def test_each_real_row_is_compared_with_the_synthetic_row_of_its_own_recipe(bench: ModuleType) -> None:
    def row(*scores: float) -> dict:
        per_query = {f"q{i}": s for i, s in enumerate(scores)}
        return {"per_query": per_query, "served": {"per_query": {q: s + 0.1 for q, s in per_query.items()}}}

    rows = {"zero-shot": row(0.5, 0.5, 0.5), "synthetic/seed42": row(0.5, 0.6, 0.5),
            "synthetic-strong/seed42": row(0.2, 0.2, 0.3), "real-all/seed42": row(0.6, 0.7, 0.7),
            "real-9-strong/seed42": row(0.3, 0.4, 0.4)}  # fmt: skip
    bench.compare(rows)
    assert rows["real-all/seed42"]["vs_synthetic"]["delta"] == pytest.approx(0.1333, abs=1e-4)
    assert rows["real-9-strong/seed42"]["vs_synthetic"]["delta"] == pytest.approx(0.1333, abs=1e-4)  # not -0.1667
    assert "vs_synthetic" not in rows["synthetic/seed42"]
    served = rows["real-all/seed42"]["served"]
    assert served["vs_zero_shot"]["delta"] == pytest.approx(0.2667, abs=1e-4)
    assert served["vs_zero_shot_served"]["delta"] == pytest.approx(0.1667, abs=1e-4)


def test_how_easy_the_queries_are_counts_first_hits_and_misses(bench: ModuleType) -> None:
    from synthrank.data import Passage, TrainingGroup

    groups = [TrainingGroup(f"q{i}", "q", Passage("d", "t", rank=rank)) for i, rank in enumerate((1, 3, None, 1))]
    assert bench.positives_in_first_stage(groups) == {"first": 0.5, "outside_top_k": 0.25}


def test_synthetic_subsets_keep_the_groups_they_name_and_are_compared_with_the_whole(bench: ModuleType) -> None:
    from synthrank.data import Passage, TrainingGroup

    def group(qid: str, query: str, qtype: str, roundtrip_rank: int | None) -> TrainingGroup:
        meta = {"query_type": qtype, "roundtrip_rank": roundtrip_rank}
        return TrainingGroup(qid, query, Passage("d", "t", rank=roundtrip_rank), meta=meta)

    groups = [group("a", "apoptosis mice", "keyword", 11), group("b", "how does ApoE4 change tau in neurons", "natural", 1),
              group("c", "apoptosis in null mice embryos", "keyword", 2), group("d", "can Nanog keep stem cells", "persona", 3),
              group("e", "tb control", "terse", 1)]  # fmt: skip
    ids = lambda kept: [g.query_id for g in kept]  # noqa: E731
    assert ids(bench.synthetic_subset("long")(groups)) == ["b", "d"]
    assert ids(bench.synthetic_subset("bm25-hard")(groups)) == ["a", "c", "d"]
    sample = bench.synthetic_subset("random-3")
    assert ids(sample(groups)) == ids(sample(list(reversed(groups)))) and len(sample(groups)) == 3
    with pytest.raises(ValueError, match="only 5 groups"):
        bench.synthetic_subset("random-9")(groups)
    with pytest.raises(ValueError, match="unknown synthetic subset"):
        bench.synthetic_subset("hard")

    def row(*scores: float, **extra: str) -> dict:
        per_query = {f"q{i}": s for i, s in enumerate(scores)}
        return {"per_query": per_query, "served": {"per_query": dict(per_query)}, **extra}

    rows = {"zero-shot": row(0.5, 0.5), "synthetic-strong/seed42": row(0.2, 0.3),
            "synthetic-bm25-hard-strong/seed42": row(0.4, 0.4, peer="synthetic-strong/seed42")}  # fmt: skip
    bench.compare(rows)
    assert rows["synthetic-bm25-hard-strong/seed42"]["vs_synthetic"]["delta"] == pytest.approx(0.15)
    assert "vs_synthetic" not in rows["synthetic-strong/seed42"]
