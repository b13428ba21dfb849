"""fit_reranker: the miner's groups frame -> the core LCE trainer -> a SynthReranker and a pt.Artifact (tiny model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

pytest.importorskip("pyterrier")

import pyterrier as pt

from pyterrier_synthrank import HardNegativeMiner, SynthBM25, SynthReranker, fit_reranker, write_groups_frame
from synthrank.data import Document
from synthrank.errors import DataError
from tests.adapter_helpers import build_tiny_encoder

CORPUS = {
    "d0": Document("d0", "glaucoma damages the optic nerve of the eye", "Glaucoma"),
    "d1": Document("d1", "a cataract clouds the lens of the eye", "Cataract"),
    "d2": Document("d2", "the retina of the eye senses light", "Retina"),
    "d3": Document("d3", "diabetes means high blood sugar", "Diabetes"),
    "d4": Document("d4", "insulin lowers blood sugar in the body", "Insulin"),
    "d5": Document("d5", "an eye exam checks the optic nerve", "Eye exam"),
    "d6": Document("d6", "dry eye needs eye drops and blood tests", "Dry eye"),
}
TOPICS = pd.DataFrame(
    {
        "qid": ["s1", "s2", "s3"],
        "query": ["optic nerve damage in the eye", "high blood sugar", "lens of the eye"],
        "source_doc_id": ["d0", "d3", "d1"],
    }
)
OPTIONS: dict[str, Any] = {"group_size": 3, "batch_size": 2, "max_length": 64, "max_steps": 2}


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny") / "bert")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def groups() -> pd.DataFrame:
    return HardNegativeMiner(CORPUS, num_negatives=3).transform(TOPICS)


def test_trains_on_the_miners_frame_and_returns_a_reranker(
    tiny_encoder: Path, groups: pd.DataFrame, tmp_path: Path
) -> None:
    before = groups.copy()
    reranker = fit_reranker(
        groups,
        tmp_path / "run",
        model=str(tiny_encoder),
        show_progress=False,
        reranker_options={"batch_size": 8},
        **OPTIONS,
    )
    assert isinstance(reranker, SynthReranker) and reranker.batch_size == 8
    pd.testing.assert_frame_equal(groups, before)  # input untouched
    model_dir = Path(reranker.model_name)
    assert json.loads((model_dir / "pt_meta.json").read_text())["format"] == "synthrank"
    bm25 = SynthBM25.from_documents(CORPUS, num_results=3)
    res = (bm25 >> reranker).transform(TOPICS[["qid", "query"]])
    assert len(res) == 9 and res["score"].notna().all()
    # the saved model reopens as a PyTerrier artifact with the same scores
    loaded = pt.Artifact.load(str(model_dir))
    again = (bm25 >> loaded.reranker(batch_size=8)).transform(TOPICS[["qid", "query"]])  # type: ignore[attr-defined]
    pd.testing.assert_series_equal(again["score"], res["score"], atol=1e-6)


def test_groups_file_and_dev_groups(tiny_encoder: Path, groups: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "groups.jsonl"
    write_groups_frame(groups, path)
    reranker = fit_reranker(
        path,
        tmp_path / "run",
        dev_groups=groups.iloc[:1],
        model=str(tiny_encoder),
        show_progress=False,
        mark_artifact=False,
        **OPTIONS,
    )
    model_dir = Path(reranker.model_name)
    assert not (model_dir / "pt_meta.json").exists()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["global_step"] == 2


def test_bad_input_is_named(groups: pd.DataFrame, tmp_path: Path) -> None:
    from synthrank.train import TrainConfig

    with pytest.raises(ValueError, match="either config= or training options"):
        fit_reranker(groups, tmp_path / "a", config=TrainConfig(), epochs=2)
    with pytest.raises(DataError, match="no training groups"):
        fit_reranker(groups.iloc[:0], tmp_path / "b")
    with pytest.raises(DataError, match="no groups file"):
        fit_reranker(tmp_path / "missing.jsonl", tmp_path / "c")
    with pytest.raises(DataError, match="missing columns"):
        fit_reranker(groups.drop(columns=["negatives"]), tmp_path / "d")
    with pytest.raises(DataError, match="warmup_steps"):
        fit_reranker(groups, tmp_path / "e", warmup_steps=3)
