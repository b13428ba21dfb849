"""Where a model runs: the device, the CPU threads, and a quiet transformers while it loads."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from synthrank.errors import ModelError


def resolve_device(device: str | None) -> str:
    """``None``/``""``/``"auto"`` -> ``"cuda"`` when a GPU is visible, else ``"cpu"``; anything else as given.

    Raises:
        ModelError: a CUDA device asked for where torch sees none (a clear message, not a late CUDA error).
    """
    import torch

    if not device or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} was asked for but torch sees no CUDA GPU")
    return device


def set_torch_threads(num_threads: int | None) -> None:
    """Set torch's intra-op CPU threads for the rest of the process (``None`` leaves torch's setting).

    The trainer owns its process while it runs; scorers, which share theirs, use :func:`torch_threads`.
    """
    if num_threads is None:
        return
    import torch

    torch.set_num_threads(num_threads)


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run a block with ``num_threads`` intra-op CPU threads and restore the process setting afterwards."""
    if num_threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports (e.g. 'classifier newly initialised') where we expect them."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)
        if bars:
            hf_logging.enable_progress_bar()
