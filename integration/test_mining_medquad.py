"""Mining hard negatives over the whole MedQuAD corpus with the in-memory backend.

The synthetic-query generator writes the real queries; until its file is plugged in, these tests
use a clearly labelled STAND-IN: a passage's title plus the first words of its text, with that
passage as ``source_doc_id``. MedQuAD's own questions (with their qrels as known positives) test
false-negative exclusion, which is what they may be used for: never for training.
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from integration.conftest import shared_dataset
from synthrank.data import Dataset, Document, load_dataset, read_groups
from synthrank.mine import HardNegativeMiner, MiningConfig, MiningQuery, duplicate_groups, text_hash
from synthrank.retrieve import InMemoryBM25

logger = logging.getLogger(__name__)


def pseudo_query(doc: Document, words: int = 10) -> str:
    """STAND-IN for an LLM-written synthetic query: the passage's title and the start of its text."""
    return f"{doc.title} {' '.join(doc.text.split()[:words])}".strip()


@pytest.fixture(scope="module")
def medquad() -> Dataset:
    return load_dataset(shared_dataset("medquad"), split="test_sample1000")


@pytest.fixture(scope="module")
def bm25(medquad: Dataset) -> InMemoryBM25:
    index = InMemoryBM25()
    index.index(medquad.corpus.values())
    return index


@pytest.fixture(scope="module")
def stand_in_queries(medquad: Dataset) -> list[MiningQuery]:
    """400 stand-in queries: every passage of a duplicate group (so near-duplicates get exercised) plus a sample."""
    corpus = medquad.corpus
    duplicated = sorted({d for group in duplicate_groups(corpus) for d in group})
    others = random.Random(11).sample(sorted(set(corpus) - set(duplicated)), 400 - len(duplicated))
    return [MiningQuery(f"sq-{i:05d}", pseudo_query(corpus[d]), d, {"query_type": "stand-in"})
            for i, d in enumerate(duplicated + others)]


def test_near_duplicates_of_positives_are_excluded_on_real_data(
    medquad: Dataset, bm25: InMemoryBM25, stand_in_queries: list[MiningQuery]
) -> None:
    corpus = medquad.corpus
    config = MiningConfig(num_negatives=8, top_k=50)
    miner = HardNegativeMiner(bm25, corpus, config)
    groups = miner.mine_groups(stand_in_queries)
    assert len(groups) >= 0.95 * len(stand_in_queries)
    assert miner.stats["near_duplicate"] >= 10, dict(miner.stats)
    for group in groups:
        positive_hash = text_hash(corpus[group.positive.doc_id].full_text(" "))
        hashes = [text_hash(corpus[n.doc_id].full_text(" ")) for n in group.negatives]
        assert positive_hash not in hashes, group.query_id
        assert len(set(hashes)) == len(hashes), "a duplicated negative was kept twice"
    # The same queries without the exclusion do mine copies of their own positive: the test can fail.
    loose = HardNegativeMiner(bm25, corpus, MiningConfig(num_negatives=8, top_k=50, exclude_near_duplicates=False))
    leaked = sum(
        text_hash(corpus[g.positive.doc_id].full_text(" ")) in {text_hash(corpus[n.doc_id].full_text(" ")) for n in g.negatives}
        for g in loose.mine_groups(stand_in_queries)
    )
    assert leaked >= 10


def test_top_ranks_are_skipped_and_ranks_kept(
    medquad: Dataset, bm25: InMemoryBM25, stand_in_queries: list[MiningQuery]
) -> None:
    queries = stand_in_queries[:150]
    full = {g.query_id: g for g in HardNegativeMiner(bm25, medquad.corpus, MiningConfig(num_negatives=10)).mine_groups(queries)}
    skipped = HardNegativeMiner(bm25, medquad.corpus, MiningConfig(num_negatives=7, range_min=3)).mine_groups(queries)
    compared = 0
    for group in skipped:
        reference = full[group.query_id].negatives
        if len(reference) == 10:
            assert [(n.doc_id, n.rank) for n in group.negatives] == [(n.doc_id, n.rank) for n in reference[3:10]]
            compared += 1
    assert compared >= 100


def test_qrels_positives_are_never_negatives(medquad: Dataset, bm25: InMemoryBM25) -> None:
    # MedQuAD questions often have several answers; an unlisted one would be a false negative.
    judged = sorted(medquad.qrels)[:300]
    queries = [MiningQuery(qid, medquad.queries[qid].text) for qid in judged]
    positives = {qid: {d for d, rel in medquad.qrels[qid].items() if rel > 0} for qid in judged}
    miner = HardNegativeMiner(bm25, medquad.corpus, MiningConfig(num_negatives=8), positives=positives)
    groups = miner.mine_groups(queries)
    assert sum(len(p) for p in positives.values()) >= len(groups) >= 280
    assert miner.stats["positive"] >= 250, "most positives are retrieved in the top 100 and had to be excluded"
    for group in groups:
        assert group.positive.doc_id in positives[group.query_id]
        assert not {n.doc_id for n in group.negatives} & positives[group.query_id]


def test_whole_corpus_throughput_is_logged(medquad: Dataset, bm25: InMemoryBM25, tmp_path: Path) -> None:
    rng = random.Random(5)
    sources = rng.sample(sorted(medquad.corpus), 2000)
    queries = [MiningQuery(f"sq-{i}", pseudo_query(medquad.corpus[d]), d) for i, d in enumerate(sources)]
    miner = HardNegativeMiner(bm25, medquad.corpus, MiningConfig(num_negatives=16, range_min=2, margin=0.05))
    started = time.perf_counter()
    summary = miner.mine_to_files(queries, tmp_path / "candidates.jsonl", tmp_path / "groups.jsonl")
    seconds = time.perf_counter() - started
    logger.warning("mined %d MedQuAD queries over %d passages in %.1f s (%.0f queries/s)",
                   len(queries), len(medquad.corpus), seconds, len(queries) / seconds)
    groups = read_groups(tmp_path / "groups.jsonl")
    assert summary["groups_total"] == len(groups) >= 1800
    assert all(n.score <= g.positive.score * 0.95 + 1e-4 for g in groups for n in g.negatives if g.positive.score)


def test_cli_mines_medquad_stand_in_queries(tmp_path: Path, stand_in_queries: list[MiningQuery]) -> None:
    from synthrank_cli.main import main

    queries_file = tmp_path / "queries.jsonl"
    queries_file.write_text("".join(
        json.dumps({"query_id": q.query_id, "query": q.query, "source_doc_id": q.source_doc_id, **q.meta}) + "\n"
        for q in stand_in_queries[:200]), encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [
        "mine", "--corpus", str(shared_dataset("medquad")), "--queries", str(queries_file), "--output-dir", str(out),
        "--num-negatives", "8", "--range-min", "1", "--sampling", "random", "--no-progress",
    ])
    assert result.exit_code == 0, result.output
    groups = read_groups(out / "groups.jsonl")
    assert len(groups) >= 190
    assert all(g.meta["query_type"] == "stand-in" and len(g.negatives) == 8 for g in groups)
    stats = json.loads((out / "mine_stats.json").read_text())
    assert stats["skipped"]["near_duplicate"] >= 1
