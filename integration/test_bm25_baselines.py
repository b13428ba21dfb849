"""BM25 baselines on the four shared sets: the numbers docs/data-and-bm25.md reports, reproduced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from integration.conftest import shared_dataset
from synthrank_cli.main import main

# nDCG@10, MRR@10, Recall@100 of `synthrank evaluate --top-k 100` (BM25 k1=0.9, b=0.4, Porter2, Lucene stopwords).
EXPECTED = {
    ("vaswani", "test"): (0.4412, 0.6765, 0.6226),
    ("beir-scifact", "test"): (0.6804, 0.6475, 0.9220),
    ("agentset-msmarco-subset", "test"): (0.7334, 1.0000, 0.7785),
    ("medquad", "test_sample1000"): (0.6252, 0.5460, 0.9870),
}


@pytest.mark.parametrize(("name", "split"), list(EXPECTED))
def test_bm25_numbers_in_readme_are_reproduced(name: str, split: str, tmp_path: Path) -> None:
    data = shared_dataset(name)
    out = tmp_path / "report.json"
    result = CliRunner().invoke(main, ["evaluate", "--data", str(data), "--split", split, "--top-k", "100", "--no-progress",
                                       "--output", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())["systems"][0]["metrics"]
    got = (metrics["nDCG@10"], metrics["MRR@10"], metrics["Recall@100"])
    assert got == pytest.approx(EXPECTED[(name, split)], abs=6e-5)
