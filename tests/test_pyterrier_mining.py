"""PyTerrier HardNegativeMiner: the core miner's groups from a query frame or from any first stage's results."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("pyterrier")

import pyterrier as pt

from pyterrier_synthrank import HardNegativeMiner, SynthBM25, groups_from_frame, write_groups_frame
from synthrank.data import Document, read_groups
from synthrank.errors import DataError
from synthrank.mine import MiningQuery, mine_hard_negatives

CORPUS = {
    "d0": Document("d0", "glaucoma damages the optic nerve of the eye", "Glaucoma"),
    "d1": Document("d1", "a cataract clouds the lens of the eye", "Cataract"),
    "d2": Document("d2", "the retina of the eye senses light", "Retina"),
    "d3": Document("d3", "diabetes means high blood sugar", "Diabetes"),
    "d4": Document("d4", "glaucoma damages the optic nerve of the eye", "Glaucoma"),
    "d5": Document("d5", "an eye exam checks the optic nerve", "Eye exam"),
    "d6": Document("d6", "dry eye needs eye drops and blood tests", "Dry eye"),
}
TOPICS = pd.DataFrame(
    {
        "qid": ["s1", "s2"],
        "query": ["optic nerve damage in the eye", "high blood sugar in the eye"],
        "source_doc_id": ["d0", "d3"],
    }
)


def test_query_frame_gives_the_core_groups() -> None:
    out = HardNegativeMiner(CORPUS, num_negatives=2, range_min=1).transform(TOPICS)
    core = mine_hard_negatives(
        [MiningQuery(r.qid, r.query, r.source_doc_id) for r in TOPICS.itertuples()],
        CORPUS,
        num_negatives=2,
        range_min=1,
    )
    assert [g.to_json() for g in groups_from_frame(out)] == [g.to_json() for g in core]
    assert list(out.columns) == ["qid", "query", "docno", "text", "rank", "score", "negatives", "meta"]
    assert out["docno"].tolist() == ["d0", "d3"]


def test_result_frame_from_any_first_stage_gives_the_same_groups() -> None:
    miner = HardNegativeMiner(CORPUS, num_negatives=2)
    from_hits = (SynthBM25.from_documents(CORPUS) >> miner).transform(TOPICS)
    direct = miner.transform(TOPICS)
    assert [g.to_json() for g in groups_from_frame(from_hits)] == [g.to_json() for g in groups_from_frame(direct)]
    assert "d4" not in [n["doc_id"] for n in from_hits.iloc[0]["negatives"]]  # near-duplicate of the positive


def test_known_positives_are_never_negatives() -> None:
    out = HardNegativeMiner(CORPUS, num_negatives=2, positives={"s1": ["d5"]}).transform(TOPICS.iloc[:1])
    assert out["docno"].tolist() == ["d0", "d5"]
    assert all("d5" not in [n["doc_id"] for n in negs] for negs in out["negatives"])


def test_write_groups_for_the_trainer(tmp_path: Path) -> None:
    out = HardNegativeMiner(CORPUS, num_negatives=2).transform(TOPICS)
    assert write_groups_frame(out, tmp_path / "groups.jsonl") == 2
    groups = read_groups(tmp_path / "groups.jsonl")
    assert groups[0].positive.text == "Glaucoma\nglaucoma damages the optic nerve of the eye"
    assert [g.to_json() for g in groups] == [g.to_json() for g in groups_from_frame(out)]


def test_empty_and_bad_input() -> None:
    miner = HardNegativeMiner(CORPUS, num_negatives=2)
    empty = miner.transform(TOPICS.iloc[:0])
    assert len(empty) == 0 and "negatives" in empty.columns
    with pytest.raises(pt.validate.InputValidationError, match="query"):
        miner.transform(pd.DataFrame({"qid": ["s1"]}))
    with pytest.raises(DataError, match="source_doc_id not in the documents"):
        miner.transform(TOPICS.assign(source_doc_id=["d0", "nope"]))
    with pytest.raises(DataError, match="empty query text for qid 's2'"):
        miner.transform(TOPICS.assign(query=["eye", ""]))
    with pytest.raises(ValueError, match="unknown mining options: num_negative"):
        HardNegativeMiner(CORPUS, num_negative=2)
    with pytest.raises(DataError, match="missing columns"):
        groups_from_frame(pd.DataFrame({"qid": ["s1"]}))
