"""`synthrank train` trains the recipe `synthrank run` trains for the same architecture, and its help says so."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

import synthrank.train
from synthrank.pipeline.stages import ARCHITECTURE_DEFAULTS
from synthrank_cli.main import main


@pytest.fixture
def trained(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Capture the TrainConfig the command builds instead of training."""
    seen: list[Any] = []

    def fake_train(groups: Any, out: Path, config: Any, **kwargs: Any) -> Any:
        seen.append(config)
        metrics = {"global_step": 1, "total_steps": 1, "final_loss": 0.5, "groups_per_second": 1.0}
        return SimpleNamespace(model_dir=Path(out) / "model", metrics=metrics)

    monkeypatch.setattr(synthrank.train, "train_reranker", fake_train)
    return seen


def _train(tmp_path: Path, *args: str) -> None:
    groups = tmp_path / "groups.jsonl"
    groups.touch()
    out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
    result = CliRunner().invoke(main, ["train", "--groups", str(groups), "--output-dir", str(out), "--no-progress", *args])
    assert result.exit_code == 0, result.output


def test_learning_rate_and_merge_follow_the_architecture_as_in_a_run(tmp_path: Path, trained: list[Any]) -> None:
    (bi_lr, ce_lr), (bi_merge, ce_merge) = ARCHITECTURE_DEFAULTS["learning_rate"], ARCHITECTURE_DEFAULTS["merge_with_base"]
    _train(tmp_path)
    _train(tmp_path, "--architecture", "bi-encoder")
    _train(tmp_path, "--architecture", "bi-encoder", "--learning-rate", "1e-5", "--merge-with-base", "0")
    ce, bi, explicit = trained
    assert (ce.architecture, ce.learning_rate, ce.merge_with_base) == ("cross-encoder", ce_lr, ce_merge)
    assert (bi.architecture, bi.learning_rate, bi.merge_with_base) == ("bi-encoder", bi_lr, bi_merge)
    assert (explicit.learning_rate, explicit.merge_with_base) == (1e-5, 0.0)  # a flag the user typed wins


def test_help_tells_the_recipe_and_the_cpu_precision() -> None:
    text = re.sub(r"-\s+", "-", " ".join(CliRunner().invoke(main, ["train", "--help"]).output.split()))  # unwrap
    assert "2e-5 for a bi-encoder, 7e-5 for a cross-encoder" in text
    assert "0.5 for a bi-encoder, 0 for a cross-encoder" in text
    assert "--architecture bi-encoder" in text and "--epochs 2" in text  # how to get a run's recipe
    assert "bf16 autocast on a CPU with AMX or AVX512-BF16" in text
    assert "fp32 on CPU." not in text
