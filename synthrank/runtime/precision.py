"""The one precision policy: what ``auto`` (or a named dtype) means on a device, for each kind of work.

Every model synthrank runs (the cross-encoder and bi-encoder scorers, the trainer, the LLM reranker and
its LoRA trainer, the pipeline's evaluation) resolves its dtype setting here, so "bf16 where it pays" is
decided in one place. The kinds of work differ only in the table below:

==============  ======================================  =================  ================
policy          ``auto`` on a CPU                       ``auto`` on CUDA   fp16 on a CPU
==============  ======================================  =================  ================
``SCORING``     fp32 (the same scores as any scorer)    bf16, else fp16    autocast
``EVALUATION``  bf16 with AMX or AVX512-BF16, else fp32 bf16, else fp16    autocast
``TRAINING``    bf16 with AMX or AVX512-BF16, else fp32 bf16, else fp16    refused (no loss scaling)
``CAUSAL_LM``   bf16 with AMX only, else fp32           bf16               autocast
==============  ======================================  =================  ================

On a CPU, bf16 runs as autocast over float32 weights for the encoders (:func:`split_dtype`; the trainer
keeps float32 weights and optimizer everywhere): the matrix multiplies take the CPU's bf16 units while layer
norms and softmax stay in float32. With AMX that trains MiniLM ~1.4-2.5x faster than fp32, with AVX512-BF16
(AMD Zen 4) 2.31x per step and 1.99x per scoring batch (``benchmarks/bench_bf16_cpu.py``); without either
bf16 gains little, and a half precision asked for on such a CPU logs one warning. The LLM keeps bf16
*weights*, which pay off with AMX tiles only.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from synthrank.errors import DataError, ModelError

if TYPE_CHECKING:  # pragma: no cover
    import torch

Precision = Literal["fp32", "bf16", "fp16"]
CpuBf16 = Literal["never", "fast", "amx"]

_ALIASES: dict[str, Precision] = {
    "float32": "fp32",
    "fp32": "fp32",
    "bfloat16": "bf16",
    "bf16": "bf16",
    "float16": "fp16",
    "fp16": "fp16",
}
DTYPE_NAMES: dict[Precision, str] = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
"""Each precision's torch dtype name (what scorers take as ``dtype=`` and what logs print)."""


@dataclass(frozen=True)
class PrecisionPolicy:
    """What ``auto`` means for one kind of work, and what that work refuses.

    Attributes:
        what: the work's name in warnings and errors ("scoring", "training"...).
        cpu_bf16: when ``auto`` takes bf16 on a CPU: ``"never"``, ``"fast"`` (AMX or AVX512-BF16, where bf16
            autocast beats fp32) or ``"amx"`` (AMX tiles only: bf16 *weights* need them to pay off).
        cuda_fp16_fallback: ``auto`` on a GPU without bf16 takes fp16 (``False``: bf16 regardless).
        cpu_fp16: whether fp16 may run on a CPU (training refuses it: fp16 needs CUDA's loss scaling).
    """

    what: str
    cpu_bf16: CpuBf16
    cuda_fp16_fallback: bool = True
    cpu_fp16: bool = True


SCORING = PrecisionPolicy("scoring", cpu_bf16="never")
EVALUATION = PrecisionPolicy("evaluation", cpu_bf16="fast")
TRAINING = PrecisionPolicy("training", cpu_bf16="fast", cpu_fp16=False)
CAUSAL_LM = PrecisionPolicy("LLM", cpu_bf16="amx", cuda_fp16_fallback=False)


def parse_precision(name: str) -> Precision:
    """A dtype name or alias (``float32``/``fp32``, ``bfloat16``/``bf16``, ``float16``/``fp16``) as a precision.

    Raises:
        ModelError: any other name.
    """
    found = _ALIASES.get(str(name).lower())
    if found is None:
        raise ModelError(f"unknown dtype {name!r}; use float32, bfloat16 or float16")
    return found


def _cpu_takes_bf16(rule: CpuBf16) -> bool:
    from synthrank.models import cpu  # read at call time: tests patch these

    if rule == "fast":
        return cpu.cpu_bf16_is_fast()
    if rule == "amx":
        return cpu.cpu_has_amx()
    return False


def resolve_precision(setting: str | None, device: str, policy: PrecisionPolicy = SCORING) -> Precision:
    """The precision a model runs in on ``device`` for ``setting`` (``None``/``"auto"`` or a dtype name).

    Raises:
        ModelError: an unknown dtype name.
        DataError: fp16 asked for on a CPU by work that refuses it (``field="precision"``).
    """
    cuda = device.startswith("cuda")
    if setting is None or str(setting).lower() == "auto":
        if cuda:
            import torch

            if not policy.cuda_fp16_fallback:
                return "bf16"
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if _cpu_takes_bf16(policy.cpu_bf16) else "fp32"
    precision = _ALIASES.get(str(setting).lower())
    if precision is None:
        raise ModelError(f"unknown dtype {setting!r}; use auto, float32, bfloat16 or float16")
    if precision != "fp32" and not cuda:
        if precision == "fp16" and not policy.cpu_fp16:
            raise DataError(
                f"fp16 {policy.what} needs a CUDA GPU (loss scaling) and this run is on {device}; "
                "use 'bf16', 'fp32' or 'auto'",
                field="precision",
            )
        from synthrank.models.cpu import warn_if_bf16_is_slow

        warn_if_bf16_is_slow(f"{DTYPE_NAMES[precision]} {policy.what}")
    return precision


def evaluation_dtype(setting: str | None = "auto") -> str:
    """The ``dtype`` every scorer of one evaluation gets: ``auto`` -> bf16 where the hardware makes it fast.

    Every system of one evaluation scores in the same precision, so the comparison stays fair; bf16
    autocast keeps fp32's rankings (Spearman 0.9986 on MedQuAD pairs) at 2-3x the speed on CPUs with AMX
    or AVX512-BF16. On CUDA the scorers' own ``auto`` decides (the same bf16, or fp16 where bf16 is missing).
    A reranker served on its own keeps :data:`SCORING`'s ``auto``: exact fp32 on a CPU. A dtype asked for is kept.
    """
    if setting is not None and setting != "auto":
        return setting
    import torch

    if torch.cuda.is_available():
        return "auto"
    return DTYPE_NAMES[resolve_precision("auto", "cpu", EVALUATION)]


def torch_dtype(precision: str) -> torch.dtype:
    """The torch dtype of a precision or dtype name (``"bf16"``, ``"bfloat16"``...)."""
    import torch

    return getattr(torch, DTYPE_NAMES[parse_precision(precision)])  # type: ignore[no-any-return]


def split_dtype(precision: Precision, device: str) -> tuple[torch.dtype, torch.dtype | None]:
    """``(weights dtype, autocast dtype or None)`` for an encoder scored in ``precision`` on ``device``.

    On CUDA half-precision weights are the fast path. On a CPU, bf16/fp16 run as autocast over
    float32 weights: the matrix multiplies take the CPU's bf16 units (AMX: ~10x fp32 here) while
    layer norms and softmax stay in float32, which keeps the scores much closer to fp32.
    """
    import torch

    dtype = torch_dtype(precision)
    if device.startswith("cpu") and precision != "fp32":
        return torch.float32, dtype
    return dtype, None


def autocast_dtype(precision: Precision) -> torch.dtype | None:
    """The autocast dtype of a training precision over float32 weights (``None`` for fp32: no autocast)."""
    return None if precision == "fp32" else torch_dtype(precision)


def autocast_context(device: str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` on the device's type when ``dtype`` is set, else a no-op."""
    if dtype is None:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device.split(":")[0], dtype=dtype)
