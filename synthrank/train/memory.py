"""How much memory a training step's activations take, and giving freed memory back to the system.

A forward pass with gradients keeps, until its backward, every layer's intermediate tensors: with
attention dropout on (BERT-style models train with 0.1), CPU SDPA falls back to its math kernel and
keeps three float32 ``[heads, L, L]`` matrices per text and layer. For a batch of 8 groups of 8
passages of 256 tokens that is 5.2 GB for MiniLM-L6 (22M parameters), and glibc's heap roughly
doubles it in resident memory (``benchmarks/bench_train_memory.py``).

:func:`activation_bytes` estimates those saved tensors from a step's padded pass shapes; when a step's
estimate exceeds ``TrainConfig.activation_budget_mb`` the trainer recomputes (activation checkpointing) its
longest passes and keeps the shortest that fit within the budget (:func:`passes_to_recompute`): the same
gradients, one more forward for each recomputed pass.
:func:`release_free_memory` hands glibc's freed heap pages back to the kernel, which keeps the
resident peak near what is live.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from synthrank.train.config import TrainConfig

MIB = 2**20


@dataclass(frozen=True)
class EncoderShape:
    """The sizes of a transformer encoder that its activations scale with."""

    layers: int
    hidden: int
    heads: int
    intermediate: int

    @classmethod
    def from_config(cls, config: Any) -> EncoderShape:
        """From a transformers config (BERT names, with common aliases); MiniLM-L6's sizes for what is missing."""

        def size(*names: str, default: int) -> int:
            for name in names:
                value = getattr(config, name, None)
                if isinstance(value, int) and value > 0:
                    return value
            return default

        hidden = size("hidden_size", "d_model", "dim", default=384)
        return cls(
            layers=size("num_hidden_layers", "n_layers", "num_layers", default=6),
            hidden=hidden,
            heads=size("num_attention_heads", "n_heads", default=12),
            intermediate=size("intermediate_size", "hidden_dim", "ffn_dim", default=4 * hidden),
        )


def activation_bytes(passes: Sequence[tuple[int, int]], shape: EncoderShape) -> int:
    """Bytes of the tensors kept for backward by forward passes of ``(rows, padded width)``.

    Per token and layer: ``36 * hidden + 4 * intermediate`` bytes of projections, norms, dropout masks and
    bf16 autocast copies, plus ``12 * heads * width`` for three float32 attention matrices (SDPA's math
    kernel, which dropout forces on a CPU). Calibrated on MiniLM-L6 under bf16 autocast: 8 x 256 tokens
    keep 663 MiB (counted with saved-tensor hooks), this gives 666 MiB.
    """
    per_layer = 0
    for rows, width in passes:
        tokens = rows * width
        per_layer += tokens * (36 * shape.hidden + 4 * shape.intermediate) + tokens * 12 * shape.heads * width
    return per_layer * shape.layers


def passes_to_recompute(pass_bytes: Sequence[int], budget_bytes: int) -> int:
    """How many of a step's passes (longest first) to recompute in backward: none when all fit the budget, else
    the longest ones, keeping as many of the shortest (which run last) as fit within the budget together."""
    if sum(pass_bytes) <= budget_bytes:
        return 0
    kept, start = 0, len(pass_bytes)
    while start > 0 and kept + pass_bytes[start - 1] <= budget_bytes:
        start -= 1
        kept += pass_bytes[start]
    return start


@functools.cache
def _malloc_trim() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim  # glibc only (musl has none)
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system (glibc ``malloc_trim``); ``False`` where there is none.

    Tensors of a few MB come from glibc's heap, which keeps them after they are freed; the next pass's
    tensors do not fit the holes exactly, so without this the resident size climbs to about twice what
    is live. A trim costs ~10 ms when it returns a GB of holes (0.03 ms when there are none), plus the
    page faults of reusing them.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@functools.cache
def _release_on_backward() -> Any:
    import torch

    class ReleaseOnBackward(torch.autograd.Function):
        """Identity whose backward first trims the heap: placed on each recomputed pass's output, it frees the
        pages of the pass recomputed before it."""

        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            return x.view_as(x)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            release_free_memory()
            return grad

    return ReleaseOnBackward


def release_on_backward(tensor: Any) -> Any:
    """``tensor`` unchanged, with a heap trim just before autograd reaches it in backward."""
    return _release_on_backward().apply(tensor)


# --------------------------------------------------------------------------- a training run's peak, before it starts

BASE_PROCESS_MIB = 450  # python, torch, transformers and a tokenizer, before the weights (measured ~400 MiB)
HEAP_FACTOR = 1.5  # resident memory per byte of kept activations (glibc's heap; measured 1.36 on MiniLM)
BYTES_PER_PARAMETER = 16  # fp32 weights, gradients, AdamW's two moments


def parameter_count(model_config: Any) -> int:
    """Parameters of a BERT-like encoder from its config: embeddings plus ``layers x (4 H^2 + 2 H I)``."""
    shape = EncoderShape.from_config(model_config)
    vocab = getattr(model_config, "vocab_size", None) or 30522
    positions = getattr(model_config, "max_position_embeddings", None) or 512
    per_layer = 4 * shape.hidden * shape.hidden + 2 * shape.hidden * shape.intermediate
    return int((vocab + positions) * shape.hidden + shape.layers * per_layer)


@dataclass(frozen=True)
class TrainMemoryEstimate:
    """The resident peak a training run can reach on a CPU, in MiB, and what it is made of."""

    process: float
    model_and_optimizer: float
    activations: float
    recomputed: bool

    @property
    def total(self) -> float:
        return self.process + self.model_and_optimizer + self.activations


def estimate_train_peak(config: TrainConfig, model_config: Any) -> TrainMemoryEstimate:
    """The worst case of a run's resident peak: every text ``max_length`` tokens long, as many as a batch holds.

    A batch under ``activation_budget_mb`` keeps all its passes (so the worst kept is the budget itself); one over it
    keeps its shortest passes up to the budget and recomputes the others one at a time after those are freed.
    """
    budget = config.activation_budget_mb
    shape = EncoderShape.from_config(model_config)
    bi = config.architecture == "bi-encoder"
    rows = config.batch_size * (config.group_size + 1 if bi else config.group_size)
    per_pass = config.length_bucket_rows or rows
    passes = [(min(per_pass, rows - start), config.max_length) for start in range(0, rows, per_pass)]
    full = activation_bytes(passes, shape) / MIB
    one = activation_bytes(passes[:1], shape) / MIB
    if config.gradient_checkpointing:  # per layer: a layer's worth of one pass, plus every layer's input
        inputs = rows * config.max_length * shape.hidden * 4 * shape.layers / MIB
        kept, recomputed = one / max(1, shape.layers) + inputs, True
    elif budget is None or full <= budget:
        kept, recomputed = full, False
    else:
        kept, recomputed = max(float(budget), one), True
    return TrainMemoryEstimate(
        process=float(BASE_PROCESS_MIB),
        model_and_optimizer=parameter_count(model_config) * BYTES_PER_PARAMETER / MIB,
        activations=kept * HEAP_FACTOR,
        recomputed=recomputed,
    )


def backbone_config(config: TrainConfig) -> Any:
    """The backbone's transformers config (no weights loaded): what the memory estimate reads."""
    from transformers import AutoConfig

    from synthrank.runtime import inspect_model

    info = inspect_model(config.model, trust_remote_code=config.trust_remote_code)
    return AutoConfig.from_pretrained(info.source, trust_remote_code=config.trust_remote_code)


def fit_train_memory(config: TrainConfig, model_config: Any, available_mb: float | None = None) -> TrainConfig:
    """``config`` if its worst case fits the available memory, else one with a lower ``activation_budget_mb``
    that fits (the same weights, slower steps; logged), else a :class:`~synthrank.errors.SynthrankError`
    saying what it needs and what to lower.

    ``available_mb``: ``None`` reads ``psutil.virtual_memory().available``.

    Example:
        >>> cfg = fit_train_memory(TrainConfig(architecture="bi-encoder"), AutoConfig.from_pretrained(path))
    """
    import dataclasses
    import logging

    from synthrank.errors import SynthrankError

    if available_mb is None:
        import psutil

        available_mb = psutil.virtual_memory().available / MIB
    needed = estimate_train_peak(config, model_config)
    if needed.total <= available_mb:
        return config
    floor = estimate_train_peak(dataclasses.replace(config, activation_budget_mb=0), model_config)
    if floor.total <= available_mb and not config.gradient_checkpointing:
        spare = available_mb - floor.process - floor.model_and_optimizer
        budget = max(0, int(spare / HEAP_FACTOR))
        logging.getLogger(__name__).warning(
            "training could reach %.0f MiB of memory and %.0f MiB are available: activation_budget_mb lowered "
            "from %s to %d (batches over it recompute their passes in backward: the same weights, slower steps)",
            needed.total, available_mb, config.activation_budget_mb, budget,
        )  # fmt: skip
        return dataclasses.replace(config, activation_budget_mb=budget)
    raise SynthrankError(
        f"training needs about {floor.total:.0f} MiB of memory even with every pass recomputed "
        f"({floor.process:.0f} for the process, {floor.model_and_optimizer:.0f} for the model and AdamW, "
        f"{floor.activations:.0f} for a pass of {config.length_bucket_rows} texts of {config.max_length} tokens), "
        f"and {available_mb:.0f} MiB are available: lower train max_length or length_bucket_rows, use a smaller "
        "model, or free memory"
    )
