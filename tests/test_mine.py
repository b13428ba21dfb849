"""Hard-negative mining: exclusions (positives, near-duplicates, top ranks, margins), sampling, groups, resume."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from synthrank.data import Document, read_groups, read_jsonl
from synthrank.errors import DataError, SynthrankError
from synthrank.mine import (
    HardNegativeMiner,
    MiningConfig,
    MiningQuery,
    duplicate_groups,
    mine_hard_negatives,
    normalize_text,
    read_mining_queries,
    read_positives,
    text_hash,
)
from synthrank.retrieve import Hit, InMemoryBM25

# Eye-disease passages of decreasing overlap with "glaucoma optic nerve damage"; e2 is a
# near-duplicate of the positive e1 (case, punctuation and spacing differ), e5/e6 duplicate each other.
DOCS = [
    Document("e1", "Glaucoma damages the optic nerve; eye pressure is often high.", "Glaucoma"),
    Document("e2", "glaucoma damages the OPTIC nerve -- eye pressure is often high!!", "GLAUCOMA"),
    Document(
        "e3", "Optic nerve damage from glaucoma can be slowed with eye drops that lower pressure.", "Glaucoma treatment"
    ),
    Document("e4", "Optic neuritis is inflammation that damages the optic nerve.", "Optic neuritis"),
    Document("e5", "Nerve damage in diabetes can affect the eyes and the feet.", "Diabetic neuropathy"),
    Document("e6", "Nerve damage in diabetes can affect the eyes and the feet.", "Diabetic neuropathy"),
    Document("e7", "Glaucoma is a leading cause of blindness in older adults.", "Glaucoma in adults"),
    Document("e8", "Cataracts cloud the lens of the eye.", "Cataract"),
    Document("e9", "Macular degeneration damages central vision.", "Macular degeneration"),
    Document("e10", "High eye pressure without optic nerve damage is ocular hypertension.", "Ocular hypertension"),
    Document("e11", "Asthma inflames the airways of the lungs.", "Asthma"),
]
CORPUS = {d.id: d for d in DOCS}
QUERY = MiningQuery("s1", "glaucoma optic nerve damage eye pressure", "e1", {"query_type": "keyword"})


@pytest.fixture(scope="module")
def bm25() -> InMemoryBM25:
    index = InMemoryBM25()
    index.index(DOCS)
    return index


def mine_one(bm25: InMemoryBM25, query: MiningQuery = QUERY, positives=None, **options):
    miner = HardNegativeMiner(bm25, CORPUS, MiningConfig(**options), positives=positives)
    return next(iter(miner.mine([query])))


def ids(hits: Sequence[Hit]) -> list[str]:
    return [h.doc_id for h in hits]


# ----------------------------------------------------------------------------- dedup


def test_normalize_text_ignores_case_punctuation_and_spacing() -> None:
    assert normalize_text("  Glaucoma:  the  *optic* nerve!") == "glaucoma the optic nerve"
    assert text_hash("Optic NERVE, damage.") == text_hash("optic nerve damage")
    assert text_hash("optic nerve damage") != text_hash("optic nerve")
    assert len(text_hash("x")) == 16


def test_duplicate_groups_finds_copies_under_other_ids() -> None:
    assert sorted(sorted(g) for g in duplicate_groups(CORPUS)) == [["e1", "e2"], ["e5", "e6"]]


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"range_min": 5, "range_max": 5}, "range_max"),
        ({"range_min": -1}, "range_min"),
        ({"num_negatives": 0}, "num_negatives"),
        ({"num_negatives": 8, "range_min": 95}, "cannot mine 8 negatives"),
        ({"num_negatives": 4, "top_k": 3}, "cannot mine 4 negatives"),
        ({"margin": 1.5}, "margin"),
        ({"absolute_margin": -1.0}, "absolute_margin"),
        ({"sampling": "hardest"}, "sampling"),
    ],
)
def test_config_rejects_inconsistent_options(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MiningConfig(**options)


def test_config_round_trips_and_names_unknown_options() -> None:
    config = MiningConfig(num_negatives=4, range_min=2, margin=0.1, sampling="random", seed=3)
    assert MiningConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="num_negative"):
        MiningConfig.from_dict({"num_negative": 2})


# ----------------------------------------------------------------------------- exclusions


def test_positive_and_its_near_duplicate_are_never_negatives(bm25: InMemoryBM25) -> None:
    mined = mine_one(bm25, num_negatives=6)
    hit_ids = ids(mined.hits)
    assert {"e1", "e2"} <= set(hit_ids[:3])  # both rank at the very top: the classic false negative
    assert "e1" not in ids(mined.negatives) and "e2" not in ids(mined.negatives)
    assert mined.skipped["positive"] == 1 and mined.skipped["near_duplicate"] == 1
    assert mined.positive_ids == ["e1"]


def test_without_dedup_the_near_duplicate_becomes_a_negative(bm25: InMemoryBM25) -> None:
    mined = mine_one(bm25, num_negatives=6, exclude_near_duplicates=False)
    assert "e2" in ids(mined.negatives)


def test_duplicated_negatives_are_kept_once(bm25: InMemoryBM25) -> None:
    mined = mine_one(bm25, QUERY, num_negatives=9)
    assert {"e5", "e6"} & set(ids(mined.hits)) == {"e5", "e6"}
    assert len({"e5", "e6"} & set(ids(mined.negatives))) == 1
    assert mined.skipped["duplicate"] == 1


def test_known_positives_from_qrels_are_excluded_and_get_their_own_group(bm25: InMemoryBM25) -> None:
    mined = mine_one(bm25, positives={"s1": {"e3", "missing-doc"}}, num_negatives=4)
    assert mined.positive_ids == ["e1", "e3"]  # source first; unknown ids are ignored
    assert "e3" not in ids(mined.negatives)
    groups = mined.groups(CORPUS)
    assert [g.positive.doc_id for g in groups] == ["e1", "e3"]
    assert ids(groups[0].negatives) == ids(groups[1].negatives)  # type: ignore[arg-type]


def test_range_min_skips_the_top_valid_candidates_and_keeps_bm25_ranks(bm25: InMemoryBM25) -> None:
    full = mine_one(bm25, num_negatives=5)
    skipped = mine_one(bm25, num_negatives=3, range_min=2)
    assert ids(skipped.negatives) == ids(full.negatives)[2:5]
    by_id = {h.doc_id: h for h in full.hits}
    for hit in skipped.negatives:
        assert hit.rank == by_id[hit.doc_id].rank and hit.score == by_id[hit.doc_id].score
    assert skipped.skipped["range_min"] == 2


def test_range_max_caps_the_window(bm25: InMemoryBM25) -> None:
    full = mine_one(bm25, num_negatives=6)
    capped = mine_one(bm25, num_negatives=2, range_min=1, range_max=3, sampling="random")
    assert set(ids(capped.negatives)) <= set(ids(full.negatives)[1:3])
    assert len(capped.negatives) == 2


def test_relative_margin_drops_candidates_too_close_to_the_positive(bm25: InMemoryBM25) -> None:
    mined = mine_one(bm25, num_negatives=4, margin=0.4)
    positive_score = mined.positive_scores["e1"]
    assert positive_score > 0
    assert mined.negatives, "some candidates are far enough below the positive"
    assert all(h.score <= positive_score * 0.6 + 1e-6 for h in mined.negatives)
    unfiltered = mine_one(bm25, num_negatives=4)
    assert any(h.score > positive_score * 0.6 for h in unfiltered.negatives)
    assert mined.skipped["margin"] >= 1


def test_absolute_margin(bm25: InMemoryBM25) -> None:
    mined = mine_one(bm25, num_negatives=3, absolute_margin=1.0)
    assert all(h.score <= mined.positive_scores["e1"] - 1.0 + 1e-6 for h in mined.negatives)


def test_margin_scores_a_positive_outside_top_k(bm25: InMemoryBM25) -> None:
    query = MiningQuery("s2", "glaucoma optic nerve damage", "e11")  # the asthma passage: not retrieved
    mined = mine_one(bm25, query, num_negatives=2, margin=0.1, top_k=5)
    assert "e11" not in ids(mined.hits)
    assert mined.positive_scores == {"e11": 0.0}
    assert mined.negatives == []  # every candidate outscores a positive with no query term


def test_margin_needs_a_retriever_that_can_score(bm25: InMemoryBM25) -> None:
    class NoScore:
        def index(self, documents):  # pragma: no cover - not called
            pass

        def retrieve(self, queries, k=100, *, show_progress=False):
            return bm25.retrieve(queries, k=k)

        def __len__(self) -> int:
            return len(bm25)

    miner = HardNegativeMiner(NoScore(), CORPUS, MiningConfig(num_negatives=2, margin=0.1, top_k=3))
    with pytest.raises(SynthrankError, match="cannot score"):
        list(miner.mine([MiningQuery("s2", "glaucoma optic nerve", "e11")]))


def test_max_and_min_score(bm25: InMemoryBM25) -> None:
    full = mine_one(bm25, num_negatives=6)
    cap = full.negatives[1].score
    capped = mine_one(bm25, num_negatives=2, max_score=cap)
    assert all(h.score <= cap for h in capped.negatives)
    floor = mine_one(bm25, num_negatives=6, min_score=cap)
    assert all(h.score >= cap for h in floor.negatives)


def test_random_sampling_is_seeded_per_query_and_sorted_by_rank(bm25: InMemoryBM25) -> None:
    first = mine_one(bm25, num_negatives=3, sampling="random", seed=1)
    again = mine_one(bm25, num_negatives=3, sampling="random", seed=1)
    assert ids(first.negatives) == ids(again.negatives)
    ranks = [h.rank for h in first.negatives]
    assert ranks == sorted(ranks)
    window = set(ids(mine_one(bm25, num_negatives=8).negatives))
    drawn = {tuple(ids(mine_one(bm25, num_negatives=3, sampling="random", seed=s).negatives)) for s in range(12)}
    assert len(drawn) > 1, "different seeds draw different negatives"
    assert all(set(d) <= window for d in drawn)


def test_retriever_returning_an_unknown_document_is_an_error() -> None:
    miner = HardNegativeMiner(InMemoryBM25(), CORPUS, MiningConfig(num_negatives=1))
    with pytest.raises(SynthrankError, match="not in the corpus"):
        miner.select(QUERY, [Hit("e1", 3.0, 1), Hit("zzz", 2.0, 2)])


# ----------------------------------------------------------------------------- groups


def test_groups_carry_texts_ranks_scores_and_query_meta(bm25: InMemoryBM25) -> None:
    groups = mine_hard_negatives([QUERY], CORPUS, retriever=bm25, num_negatives=3, range_min=1)
    assert len(groups) == 1
    group = groups[0]
    assert group.query_id == "s1" and group.query == QUERY.query
    assert group.positive.doc_id == "e1" and group.positive.text == CORPUS["e1"].full_text()
    assert group.positive.rank is not None and group.positive.score is not None
    assert len(group.negatives) == 3
    assert all(n.text == CORPUS[n.doc_id].full_text() and n.rank and n.score for n in group.negatives)
    assert group.meta == {"source_doc_id": "e1", "query_type": "keyword"}


def test_convenience_function_builds_its_own_index() -> None:
    groups = mine_hard_negatives([QUERY], CORPUS, num_negatives=2)
    assert [g.positive.doc_id for g in groups] == ["e1"] and len(groups[0].negatives) == 2


def test_queries_without_positive_or_negatives_make_no_group(bm25: InMemoryBM25) -> None:
    no_positive = MiningQuery("s3", "glaucoma optic nerve")
    nothing_found = MiningQuery("s4", "zebra quantum", "e8")
    groups = mine_hard_negatives([no_positive, nothing_found], CORPUS, retriever=bm25, num_negatives=2)
    assert groups == []


# ----------------------------------------------------------------------------- files and resume

QUERIES = [
    MiningQuery("s1", "glaucoma optic nerve damage", "e1"),
    MiningQuery("s2", "diabetes nerve damage feet", "e5"),
    MiningQuery("s3", "clouded eye lens", "e8"),
    MiningQuery("s4", "airway inflammation lungs", "e11"),
    MiningQuery("s5", "central vision loss macula", "e9"),
]


def test_mine_to_files_writes_both_artifacts(bm25: InMemoryBM25, tmp_path: Path) -> None:
    miner = HardNegativeMiner(bm25, CORPUS, MiningConfig(num_negatives=2, top_k=6, batch_size=2))
    summary = miner.mine_to_files(QUERIES, tmp_path / "candidates.jsonl", tmp_path / "groups.jsonl")
    candidates = read_jsonl(tmp_path / "candidates.jsonl")
    assert [c["query_id"] for c in candidates] == ["s1", "s2", "s3", "s4", "s5"]
    first = candidates[0]
    assert set(first) == {"query_id", "query", "source_doc_id", "candidates"}
    assert first["candidates"][0] == {
        "doc_id": first["candidates"][0]["doc_id"],
        "rank": 1,
        "score": first["candidates"][0]["score"],
    }
    groups = read_groups(tmp_path / "groups.jsonl")
    assert summary["groups_written"] == len(groups) == summary["groups_total"]
    assert summary["queries_mined"] == 5 and summary["queries_resumed"] == 0
    assert summary["queries_per_second"] > 0
    assert all(len(g.negatives) <= 2 for g in groups)


def test_mine_to_files_resumes_after_a_kill(bm25: InMemoryBM25, tmp_path: Path) -> None:
    config = MiningConfig(num_negatives=2, top_k=6, batch_size=2, sampling="random", range_min=1)
    fresh = tmp_path / "fresh"
    HardNegativeMiner(bm25, CORPUS, config).mine_to_files(QUERIES, fresh / "c.jsonl", fresh / "g.jsonl")

    run = tmp_path / "run"
    HardNegativeMiner(bm25, CORPUS, config).mine_to_files(QUERIES[:2], run / "c.jsonl", run / "g.jsonl")
    # The kill: s3's group was written but not its candidates line, and a line was cut halfway.
    fresh_groups = (fresh / "g.jsonl").read_text().splitlines()
    s3_group = next(line for line in fresh_groups if json.loads(line)["query_id"] == "s3")
    with open(run / "g.jsonl", "a") as fh:
        fh.write(s3_group + "\n" + s3_group[:40])
    with open(run / "c.jsonl", "a") as fh:
        fh.write('{"query_id": "s3", "qu')

    summary = HardNegativeMiner(bm25, CORPUS, config).mine_to_files(QUERIES, run / "c.jsonl", run / "g.jsonl")
    assert summary["queries_resumed"] == 2 and summary["queries_mined"] == 3
    assert (run / "c.jsonl").read_text() == (fresh / "c.jsonl").read_text()
    assert (run / "g.jsonl").read_text() == (fresh / "g.jsonl").read_text()
    assert summary["groups_total"] == len(fresh_groups)

    again = HardNegativeMiner(bm25, CORPUS, config).mine_to_files(QUERIES, run / "c.jsonl", run / "g.jsonl")
    assert again["queries_mined"] == 0 and again["queries_resumed"] == 5
    assert (run / "g.jsonl").read_text() == (fresh / "g.jsonl").read_text()


# ----------------------------------------------------------------------------- inputs


def write_lines(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def test_read_mining_queries_keeps_meta(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "q.jsonl",
        [
            {
                "query_id": "s1",
                "query": "optic nerve",
                "source_doc_id": "e1",
                "query_type": "keyword",
                "persona": "nurse",
            },
            {"_id": 7, "text": "blood sugar"},
        ],
    )
    first, second = read_mining_queries(path, corpus=CORPUS)
    assert first == MiningQuery("s1", "optic nerve", "e1")
    assert first.meta == {"query_type": "keyword", "persona": "nurse"}
    assert second.query_id == "7" and second.source_doc_id is None


@pytest.mark.parametrize(
    ("records", "line", "field"),
    [
        ([{"query_id": "s1", "query": "x", "source_doc_id": "nope"}], 1, "source_doc_id"),
        ([{"query_id": "s1", "query": "x"}, {"query_id": "s1", "query": "y"}], 2, "query_id"),
        ([{"query_id": "s1", "query": "  "}], 1, "query"),
        ([{"query": "x"}], 1, "query_id"),
        (["{not json"], 1, None),
    ],
)
def test_read_mining_queries_names_the_bad_line(tmp_path: Path, records: list, line: int, field: str | None) -> None:
    path = write_lines(tmp_path / "q.jsonl", records)
    with pytest.raises(DataError) as err:
        read_mining_queries(path, corpus=CORPUS)
    assert err.value.line == line and err.value.field == field
    assert str(path) in str(err.value)


def test_read_positives_from_qrels_and_labels(tmp_path: Path) -> None:
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\ns1\te3\t2\ns1\te4\t0\ns2\te5\t1\n", encoding="utf-8")
    assert read_positives(qrels) == {"s1": {"e3"}, "s2": {"e5"}}
    assert read_positives(qrels, min_grade=2) == {"s1": {"e3"}}
    labels = write_lines(
        tmp_path / "labels.jsonl",
        [
            {"query_id": "s1", "doc_id": "e3", "grade": 3, "probability": 0.9, "reason": "answers it"},
            {"query_id": "s1", "doc_id": "e4", "grade": 0, "probability": 0.1, "reason": "other disease"},
        ],
    )
    assert read_positives(labels, min_grade=2) == {"s1": {"e3"}}
    bad = write_lines(tmp_path / "bad.jsonl", [{"query_id": "s1", "doc_id": "e3"}])
    with pytest.raises(DataError, match="grade") as err:
        read_positives(bad)
    assert err.value.line == 1


def test_scores_of_in_memory_backend_match_its_hits(bm25: InMemoryBM25) -> None:
    # The margin relies on score() agreeing with retrieve(); guard that contract here.
    hits = bm25.retrieve([QUERY.query], k=4)[0]
    np.testing.assert_allclose(bm25.score(QUERY.query, ids(hits)), [h.score for h in hits], rtol=1e-5)


class TitleScorer:
    """A stand-in second model: scores a passage by a fixed table keyed on its title; counts calls."""

    def __init__(self, table: dict[str, float]) -> None:
        self.table = table
        self.calls: list[int] = []

    def score_pairs(
        self, queries: Sequence[str], documents: Sequence[str], *, show_progress: bool = False
    ) -> np.ndarray:
        self.calls.append(len(queries))
        return np.asarray([self.table.get(d.split("\n")[0], 0.0) for d in documents], dtype=np.float32)


def test_denoiser_vetoes_candidates_it_prefers_to_the_positive(bm25: InMemoryBM25) -> None:
    """e3 (treatment) is what the second model likes best: an unlabelled positive, not a negative."""
    plain = mine_one(bm25, top_k=10, num_negatives=5)
    assert "e3" in ids(plain.negatives)
    scorer = TitleScorer({"Glaucoma": 0.8, "Glaucoma treatment": 0.9, "Glaucoma in adults": 0.75})
    miner = HardNegativeMiner(bm25, CORPUS, MiningConfig(top_k=10, num_negatives=5), denoiser=scorer)
    mined = next(iter(miner.mine([QUERY, MiningQuery("s2", "asthma airways", "e11")])))
    assert "e3" not in ids(mined.negatives) and mined.skipped["denoised"] == 1
    assert "e7" in ids(mined.negatives)  # below the positive: kept
    assert len(scorer.calls) == 1  # one scoring call for the whole batch of queries
    # a margin widens the veto to candidates within it of the positive
    strict = HardNegativeMiner(
        bm25, CORPUS, MiningConfig(top_k=10, num_negatives=5, denoise_margin=0.1), denoiser=scorer
    )
    mined = next(iter(strict.mine([QUERY])))
    assert not {"e3", "e7"} & set(ids(mined.negatives)) and mined.skipped["denoised"] == 2
