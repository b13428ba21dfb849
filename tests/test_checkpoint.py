"""Trainer checkpoints: RNG states round-trip through a weights-only file, and a pickle that runs code is refused."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from synthrank.errors import ModelError  # noqa: E402
from synthrank.train.checkpoint import load_checkpoint_state, rng_state, set_rng_state, set_seed  # noqa: E402


class CodeRunningPickle:
    """Unpickling this writes ``marker``: what a checkpoint from someone else could do under ``weights_only=False``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def write_tampered_state(path: Path, marker: Path) -> None:
    """A state file that looks like a checkpoint but runs code when unpickled with ``weights_only=False``."""
    torch.save({"global_step": 3, "rng": CodeRunningPickle(marker)}, path)


def draws() -> tuple[float, float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(1)), float(np.random.randn())


def test_rng_states_round_trip_through_a_weights_only_file(tmp_path: Path) -> None:
    """Caught: saving ``np.random.get_state()`` as is (a numpy array, refused by ``weights_only=True`` without the
    allowlist) and dropping numpy's cached Gaussian (``has_gauss``) from the saved state."""
    set_seed(11)
    np.random.randn()  # leaves a cached Gaussian behind
    torch.save({"rng": rng_state()}, tmp_path / "state.pt")
    expected = draws()
    torch.load(tmp_path / "state.pt", weights_only=True)  # plain torch accepts it too, without any allowlist
    set_rng_state(load_checkpoint_state(tmp_path / "state.pt")["rng"])
    assert draws() == expected


def test_an_older_checkpoints_numpy_rng_state_still_loads(tmp_path: Path) -> None:
    """A run interrupted under the previous version (numpy's tuple with its array) resumes; caught: an allowlist
    without numpy's ``UInt32DType`` (torch refuses the file)."""
    set_seed(5)
    legacy = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    torch.save({"rng": legacy}, tmp_path / "old.pt")
    expected = draws()
    set_rng_state(load_checkpoint_state(tmp_path / "old.pt")["rng"])
    assert draws() == expected


def test_a_pickle_that_runs_code_is_refused_before_it_runs(tmp_path: Path) -> None:
    """Caught: ``torch.load(..., weights_only=False)`` (the marker file appears: the checkpoint ran code)."""
    marker = tmp_path / "ran.txt"
    state = tmp_path / "trainer_state.pt"
    write_tampered_state(state, marker)
    with pytest.raises(ModelError, match=rf"refusing to load checkpoint state {state}.*exec"):
        load_checkpoint_state(state)
    assert not marker.exists()


def test_a_file_that_is_no_checkpoint_is_named(tmp_path: Path) -> None:
    state = tmp_path / "trainer_state.pt"
    state.write_bytes(b"not a torch file")
    with pytest.raises(ModelError, match=str(state)):
        load_checkpoint_state(state)
