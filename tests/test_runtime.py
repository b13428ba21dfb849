"""The one precision policy and device choice of synthrank.runtime (no GPU needed: CUDA is monkeypatched)."""

from __future__ import annotations

import logging

import pytest

torch = pytest.importorskip("torch")

from synthrank import runtime  # noqa: E402
from synthrank.errors import DataError, ModelError  # noqa: E402
from synthrank.models import cpu  # noqa: E402
from synthrank.runtime import CAUSAL_LM, EVALUATION, SCORING, TRAINING, resolve_precision  # noqa: E402

POLICIES = [SCORING, EVALUATION, TRAINING, CAUSAL_LM]


def _cpu(monkeypatch: pytest.MonkeyPatch, *, amx: bool, avx512_bf16: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(cpu, "cpu_has_amx", lambda: amx)
    monkeypatch.setattr(cpu, "cpu_bf16_is_fast", lambda: amx or avx512_bf16)
    monkeypatch.setattr(cpu, "cpu_has_bf16", lambda: amx or avx512_bf16)


def test_auto_on_a_cpu_without_fast_bf16_is_fp32_for_every_kind_of_work(monkeypatch: pytest.MonkeyPatch) -> None:
    _cpu(monkeypatch, amx=False, avx512_bf16=False)
    for policy in POLICIES:
        assert resolve_precision("auto", "cpu", policy) == "fp32", policy.what
        assert resolve_precision(None, "cpu", policy) == "fp32", policy.what
    assert runtime.evaluation_dtype("auto") == "float32"


def test_auto_on_a_cpu_takes_bf16_where_each_kind_of_work_gains(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scoring stays exact fp32; training and evaluation take bf16 with AMX or AVX512-BF16; the LLM with AMX only."""
    _cpu(monkeypatch, amx=True, avx512_bf16=False)
    assert [resolve_precision("auto", "cpu", p) for p in POLICIES] == ["fp32", "bf16", "bf16", "bf16"]
    assert runtime.evaluation_dtype("auto") == "bfloat16"
    _cpu(monkeypatch, amx=False, avx512_bf16=True)
    assert [resolve_precision("auto", "cpu", p) for p in POLICIES] == ["fp32", "bf16", "bf16", "fp32"]


def test_forced_values_are_honoured_and_named_in_any_spelling(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _cpu(monkeypatch, amx=True, avx512_bf16=True)
    for policy in POLICIES:
        assert resolve_precision("float32", "cpu", policy) == "fp32"
        assert resolve_precision("fp32", "cuda", policy) == "fp32"
        assert resolve_precision("BF16", "cpu", policy) == "bf16"
    assert runtime.evaluation_dtype("float32") == "float32"  # asked for: kept as written
    assert resolve_precision("fp16", "cpu", SCORING) == "fp16"  # CPU autocast
    with pytest.raises(DataError, match="fp16 training needs a CUDA GPU") as err:
        resolve_precision("fp16", "cpu", TRAINING)
    assert err.value.field == "precision"
    with pytest.raises(ModelError, match="unknown dtype 'int3'"):
        resolve_precision("int3", "cpu", SCORING)
    with pytest.raises(ModelError, match="unknown dtype"):
        runtime.torch_dtype("auto")
    assert runtime.torch_dtype("bfloat16") == runtime.torch_dtype("bf16") == torch.bfloat16
    # a half precision asked for on a CPU that emulates bf16 says so once
    _cpu(monkeypatch, amx=False, avx512_bf16=False)
    with caplog.at_level(logging.WARNING, logger="synthrank.models.cpu"):
        assert resolve_precision("bfloat16", "cpu", TRAINING) == "bf16"
    assert "bfloat16 training" in caplog.text and "no native kernels" in caplog.text


def test_cuda_takes_bf16_where_supported_else_fp16_except_the_llm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    for policy in POLICIES:
        assert resolve_precision("auto", "cuda", policy) == "bf16", policy.what
    assert runtime.evaluation_dtype("auto") == "auto"  # the scorers' own auto decides on the GPU
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert [resolve_precision("auto", "cuda:1", p) for p in POLICIES] == ["fp16", "fp16", "fp16", "bf16"]
    assert resolve_precision("fp16", "cuda", TRAINING) == "fp16"
    assert resolve_precision("float32", "cuda", SCORING) == "fp32"


def test_split_dtype_autocasts_over_fp32_weights_on_a_cpu_only() -> None:
    assert runtime.split_dtype("bf16", "cpu") == (torch.float32, torch.bfloat16)
    assert runtime.split_dtype("fp32", "cpu") == (torch.float32, None)
    assert runtime.split_dtype("fp16", "cuda:0") == (torch.float16, None)
    assert runtime.autocast_dtype("fp32") is None and runtime.autocast_dtype("bf16") == torch.bfloat16


def test_device_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.resolve_device(None) == runtime.resolve_device("auto") == runtime.resolve_device("") == "cuda"
    assert runtime.resolve_device("cuda:1") == "cuda:1"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.resolve_device(None) == runtime.resolve_device("cpu") == "cpu"
    with pytest.raises(ModelError, match="no CUDA GPU"):
        runtime.resolve_device("cuda")


def test_thread_settings_are_scoped_or_process_wide() -> None:
    before = torch.get_num_threads()
    with runtime.torch_threads(3):
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == before
    runtime.set_torch_threads(None)
    assert torch.get_num_threads() == before
    try:
        runtime.set_torch_threads(2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
