"""How much memory a training step's activations take, and giving freed memory back to the system.

A forward pass with gradients keeps, until its backward, every layer's intermediate tensors: with
attention dropout on (BERT-style models train with 0.1), CPU SDPA falls back to its math kernel and
keeps three float32 ``[heads, L, L]`` matrices per text and layer. For a batch of 8 groups of 8
passages of 256 tokens that is 5.2 GB for MiniLM-L6 (22M parameters), and glibc's heap roughly
doubles it in resident memory (``benchmarks/bench_train_memory.py``).

:func:`activation_bytes` estimates those saved tensors from a step's padded pass shapes; the trainer
recomputes (activation checkpointing) the passes of a step whose estimate exceeds
``TrainConfig.activation_budget_mb``: the same gradients, one more forward per pass.
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
from typing import Any

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
    is live. A trim costs a walk over the free lists (well under a millisecond here).
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
