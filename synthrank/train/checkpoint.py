"""Seeding, RNG state, checkpoint folders and safe reading of trainer checkpoints, shared by both trainers.

A checkpoint is a ``step-NNNNNN/`` folder written atomically (:func:`write_checkpoint`): a kill mid-write
leaves the previous checkpoint as the newest complete one. Only the ``keep`` newest are kept.

A checkpoint folder may come from someone else (a shared disk, a download), so its state file
is read with ``torch.load(..., weights_only=True)``: tensors, containers and plain Python values
only, never an arbitrary pickle. Everything the trainers save fits that: the RNG states are
written as plain ints, floats and tensors (:func:`rng_state`), and the optimizer, scheduler
and grad-scaler state dicts are tensors and numbers.

Checkpoints written before this module stored numpy's RNG state as a numpy array; the exact
numpy globals such an array needs (and nothing else) are allowlisted while reading, so an
interrupted run from an older version still resumes.

Example:
    >>> set_seed(13)
    >>> torch.save({"rng": rng_state()}, "state.pt")
    >>> set_rng_state(load_checkpoint_state(Path("state.pt"))["rng"])  # the generators are back where they were
"""

from __future__ import annotations

import logging
import pickle
import random
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthrank.data.jsonl import atomic_dir
from synthrank.errors import ModelError

logger = logging.getLogger(__name__)


def set_seed(seed: int) -> None:
    """Seed python's, numpy's and torch's (and CUDA's) generators from one integer."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def rng_state() -> dict[str, Any]:
    """Every generator's state as tensors and plain values, loadable with ``weights_only=True``."""
    import torch

    version, internal, gauss = random.getstate()
    kind, key, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [int(version), [int(x) for x in internal], gauss],
        "numpy": {
            "bit_generator": str(kind),
            "key": torch.from_numpy(np.asarray(key, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved (or an older checkpoint's pickled states)."""
    import torch

    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(x) for x in internal), gauss))
    saved_numpy = state["numpy"]
    if isinstance(saved_numpy, dict):
        key = np.asarray(saved_numpy["key"].numpy() if hasattr(saved_numpy["key"], "numpy") else saved_numpy["key"])
        np.random.set_state(
            (
                saved_numpy["bit_generator"],
                key.astype(np.uint32),
                int(saved_numpy["pos"]),
                int(saved_numpy["has_gauss"]),
                float(saved_numpy["cached_gaussian"]),
            )
        )
    else:  # an older checkpoint: numpy's own tuple
        np.random.set_state(saved_numpy)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _legacy_numpy_globals() -> list[Any]:
    """The numpy globals an older checkpoint's ``np.random.get_state()`` array unpickles through."""
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    return [_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def _unpickler_reason(err: Exception) -> str:
    """The part of torch's long weights-only message that says what was refused (e.g. ``Unsupported global: ...``)."""
    boilerplate = ("Weights only load failed", "Check the documentation", "(1)", "(2)")
    lines = [line.strip() for line in str(err).splitlines()]
    reasons = [line for line in lines if line and not line.startswith(boilerplate)]
    if not reasons:
        return type(err).__name__
    reason = reasons[0].removeprefix("WeightsUnpickler error:").strip() or (reasons[1:] or [type(err).__name__])[0]
    return reason.split(" Please use ")[0].split(" was not an allowed global")[0]


def load_checkpoint_state(path: Path) -> dict[str, Any]:
    """Read a trainer state file without running any code it might carry.

    Raises:
        ModelError: naming ``path`` when the file holds anything but tensors and plain values
            (a tampered or foreign pickle), or is not a torch checkpoint at all.
    """
    import torch

    try:
        with torch.serialization.safe_globals(_legacy_numpy_globals()):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ModelError(
            f"refusing to load checkpoint state {path}: it holds more than tensors and plain values "
            f"({_unpickler_reason(err)}); it was not written by synthrank's trainer or was tampered with. "
            "Delete that checkpoint folder (or restart the run) if you do not trust where it came from"
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise ModelError(f"cannot read checkpoint state {path}: {err}") from err
    if not isinstance(state, dict):
        raise ModelError(f"checkpoint state {path} holds a {type(state).__name__}, expected a dict")
    return state


def list_checkpoints(root: Path, required: Sequence[str]) -> list[Path]:
    """The complete ``step-*`` folders under ``root`` (each holding every ``required`` file), oldest first."""
    if not root.exists():
        return []
    found = [p for p in root.glob("step-*") if p.is_dir() and all((p / name).exists() for name in required)]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def write_checkpoint(
    root: Path, step: int, fill: Callable[[Path], None], *, keep: int, required: Sequence[str]
) -> Path:
    """Write checkpoint ``step`` atomically (``fill`` writes its files), then drop all but the ``keep`` newest."""
    target = root / f"step-{step:06d}"
    atomic_dir(target, fill)
    for old in list_checkpoints(root, required)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    logger.info("checkpoint %s", target)
    return target


def trainer_state(state: dict[str, Any], optimizer: Any, scheduler: Any, **extra: Any) -> dict[str, Any]:
    """A checkpoint's state file: the trainer's ``state``, optimizer, scheduler, ``extra`` and every RNG state."""
    return {
        **state,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        **extra,
        "rng": rng_state(),
    }


def restore_trainer_state(state: dict[str, Any], optimizer: Any, scheduler: Any) -> None:
    """Put the optimizer, the scheduler and every RNG back where :func:`trainer_state` found them."""
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
