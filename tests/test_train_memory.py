"""Training memory: the activation estimate, and recomputed passes training exactly what kept passes train."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from synthrank.errors import DataError  # noqa: E402
from synthrank.train import TrainConfig, train_reranker  # noqa: E402
from synthrank.train.memory import MIB, EncoderShape, activation_bytes, release_free_memory  # noqa: E402
from tests.test_train import make_groups, tiny_config, weights  # noqa: E402
from tests.test_train import tiny_model as tiny_model  # noqa: E402  (the session fixture)

MINILM = EncoderShape(layers=6, hidden=384, heads=12, intermediate=1536)


def test_activation_estimate_matches_minilm_and_grows_with_the_square_of_the_width() -> None:
    # 8 texts of 256 tokens keep 663 MiB under bf16 autocast (counted with saved-tensor hooks)
    assert activation_bytes([(8, 256)], MINILM) / MIB == pytest.approx(663, rel=0.02)
    assert activation_bytes([(8, 256), (8, 128)], MINILM) == activation_bytes([(8, 256)], MINILM) + activation_bytes(
        [(8, 128)], MINILM
    )
    short, long = activation_bytes([(8, 64)], MINILM), activation_bytes([(8, 256)], MINILM)
    assert 4 < long / short < 16  # linear terms and the quadratic attention matrices
    assert activation_bytes([], MINILM) == 0


def test_encoder_shape_reads_bert_names_and_falls_back_to_minilm() -> None:
    from transformers import BertConfig

    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    assert EncoderShape.from_config(config) == EncoderShape(layers=2, hidden=32, heads=2, intermediate=64)
    assert EncoderShape.from_config(object()) == MINILM


def test_budget_setting_is_checked_and_does_not_change_the_fingerprint() -> None:
    assert TrainConfig().activation_budget_mb == 1536
    for bad in (-1, 1.5, True, "1g"):
        with pytest.raises(DataError, match="activation_budget_mb"):
            TrainConfig(activation_budget_mb=bad)  # type: ignore[arg-type]
    # a budget changes memory and speed, never the weights: a run resumes under another budget
    assert TrainConfig(activation_budget_mb=None).fingerprint() == TrainConfig(activation_budget_mb=0).fingerprint()
    assert "activation_budget_mb" not in TrainConfig().fingerprint()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_release_free_memory_trims_the_heap_on_linux() -> None:
    assert release_free_memory() is True


@pytest.mark.parametrize("architecture", ["bi-encoder", "cross-encoder"])
def test_recomputed_passes_train_the_same_weights(tmp_path: Path, tiny_model: Path, architecture: str) -> None:
    """Budget 0 recomputes every pass in backward, None keeps them all: with dropout on, 2-3 passes of 8 rows
    per batch and 2 batches per optimizer step, both reach the same weights and losses."""
    groups = make_groups(n=16)
    common = {"architecture": architecture, "epochs": 2, "gradient_accumulation": 2, "save_every": 0}
    kept = train_reranker(groups, tmp_path / "kept", tiny_config(tiny_model, activation_budget_mb=None, **common),
                          show_progress=False)  # fmt: skip
    redone = train_reranker(groups, tmp_path / "redone", tiny_config(tiny_model, activation_budget_mb=0, **common),
                            show_progress=False)  # fmt: skip
    assert kept.metrics["recomputed_batches"] == 0 and redone.metrics["recomputed_batches"] == 8  # 2 epochs x 2 steps x 2
    a, b = weights(kept.model_dir), weights(redone.model_dir)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)
    base = _base(tiny_model)  # training moved the weights: the comparison is not vacuous
    moved = [key for key in a if key.removeprefix("bert.") in base]
    assert moved and any(not torch.equal(a[key], base[key.removeprefix("bert.")]) for key in moved)
    losses = [h["loss"] for h in kept.metrics["history"]]
    assert [h["loss"] for h in redone.metrics["history"]] == pytest.approx(losses, rel=1e-5)


def test_a_budget_above_the_estimate_keeps_the_passes(tmp_path: Path, tiny_model: Path) -> None:
    result = train_reranker(make_groups(n=8), tmp_path / "run", tiny_config(tiny_model, save_every=0),
                            show_progress=False)  # fmt: skip
    assert result.metrics["recomputed_batches"] == 0  # a tiny model's batch is far below 1536 MiB


def _base(model: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return dict(load_file(str(model / "model.safetensors")))
