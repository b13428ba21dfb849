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


def test_passes_over_the_budget_are_the_longest_and_the_shortest_that_fit_are_kept() -> None:
    from synthrank.train.memory import passes_to_recompute

    longest_first = [5, 4, 3, 2, 1]
    assert passes_to_recompute(longest_first, 15) == 0  # all fit
    assert passes_to_recompute(longest_first, 14) == 1  # 4 + 3 + 2 + 1 = 10 kept; the 5 would make 15
    assert passes_to_recompute(longest_first, 3) == 3  # 2 + 1 kept
    assert passes_to_recompute(longest_first, 0) == 5  # budget 0: every pass
    assert passes_to_recompute([], 0) == 0


@pytest.mark.parametrize("architecture", ["bi-encoder", "cross-encoder"])
def test_a_partly_recomputed_step_trains_the_same_weights(
    tmp_path: Path, tiny_model: Path, architecture: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A budget that holds some passes of a step: those keep their activations, the longer ones are recomputed,
    and the weights are those of a run that kept everything."""
    import synthrank.train.trainer as trainer

    # a pass "costs" one MiB per 40 tokens: a 3 MiB budget holds the short passes of a step, not all of them
    monkeypatch.setattr(trainer, "activation_bytes", lambda passes, shape: sum(r * w for r, w in passes) * MIB // 40)
    groups = make_groups(n=16)
    common = {"architecture": architecture, "epochs": 2, "save_every": 0}
    kept = train_reranker(groups, tmp_path / "kept", tiny_config(tiny_model, activation_budget_mb=None, **common),
                          show_progress=False)  # fmt: skip
    partly = train_reranker(groups, tmp_path / "partly", tiny_config(tiny_model, activation_budget_mb=3, **common),
                            show_progress=False)  # fmt: skip
    assert kept.metrics["recomputed_passes"] == 0
    assert 0 < partly.metrics["recomputed_passes"] < partly.metrics["passes"]
    assert partly.metrics["recomputed_batches"] == partly.metrics["global_step"]  # every step kept some, redid some
    a, b = weights(kept.model_dir), weights(partly.model_dir)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)


def test_a_budget_above_the_estimate_keeps_the_passes(tmp_path: Path, tiny_model: Path) -> None:
    result = train_reranker(make_groups(n=8), tmp_path / "run", tiny_config(tiny_model, save_every=0),
                            show_progress=False)  # fmt: skip
    assert result.metrics["recomputed_batches"] == 0  # a tiny model's batch is far below 1536 MiB


def _base(model: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return dict(load_file(str(model / "model.safetensors")))


# --------------------------------------------------------------------------- the run's peak, before it starts


def _minilm_config() -> object:
    from transformers import BertConfig

    return BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)


def test_worst_case_peak_of_the_run_defaults_matches_what_was_measured() -> None:
    from synthrank.train.memory import estimate_train_peak, parameter_count

    assert parameter_count(_minilm_config()) == pytest.approx(22_713_216, rel=0.01)  # all-MiniLM-L6-v2
    bi = TrainConfig(architecture="bi-encoder")  # `synthrank run`'s train step: 8 groups of 1 + 8 texts, 256 tokens
    kept = estimate_train_peak(TrainConfig(architecture="bi-encoder", activation_budget_mb=None), _minilm_config())
    assert not kept.recomputed and 9000 < kept.total < 10500  # measured: 9.2 GB on SciFact's long passages
    default = estimate_train_peak(bi, _minilm_config())
    assert default.recomputed and default.total < 3300  # a batch just under the 1536 MiB budget is the worst case
    floor = estimate_train_peak(TrainConfig(architecture="bi-encoder", activation_budget_mb=0), _minilm_config())
    assert floor.total < 1900 < default.total  # measured: 1.8 GB with every pass recomputed


def test_fit_train_memory_keeps_lowers_the_budget_or_refuses(caplog: pytest.LogCaptureFixture) -> None:
    from synthrank.errors import SynthrankError
    from synthrank.train.memory import fit_train_memory

    cfg = TrainConfig(architecture="bi-encoder")
    assert fit_train_memory(cfg, _minilm_config(), available_mb=8000) is cfg
    with caplog.at_level("WARNING"):
        lowered = fit_train_memory(cfg, _minilm_config(), available_mb=2500)
    assert lowered.activation_budget_mb is not None and lowered.activation_budget_mb < cfg.activation_budget_mb  # type: ignore[operator]
    assert lowered.fingerprint() == cfg.fingerprint()  # the same run: only memory and speed change
    assert "activation_budget_mb lowered from 1536" in caplog.text and "2500 MiB are available" in caplog.text
    with pytest.raises(SynthrankError, match=r"needs about \d+ MiB .* 1000 MiB are available: lower train max_length"):
        fit_train_memory(cfg, _minilm_config(), available_mb=1000)


def test_training_refuses_before_loading_when_memory_is_short(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psutil

    from synthrank.errors import SynthrankError

    class Short:
        available = 100 * MIB

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Short())
    with pytest.raises(SynthrankError, match="100 MiB are available"):
        train_reranker(make_groups(n=4), tmp_path / "run", tiny_config(tiny_model, device="cpu"), show_progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()
