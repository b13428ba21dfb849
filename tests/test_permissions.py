"""Outputs honour the umask: a model, a report or a run file is as readable as any file the user writes.

``mkstemp``/``mkdtemp`` (behind every atomic write) create 0600 files and 0700 folders whatever the
umask; renamed into place as they were, a serving container or a teammate running as another user
could not read them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from synthrank.data import atomic_write, write_json, write_jsonl
from synthrank.data.jsonl import atomic_dir, current_umask
from synthrank.evaluate.runs import write_trec_run


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    before = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(before)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_current_umask_reads_without_changing_it(umask: int) -> None:
    assert current_umask() == umask
    assert current_umask() == umask


def test_atomic_files_get_the_umask_mode(tmp_path: Path, umask: int) -> None:
    with atomic_write(tmp_path / "a.txt") as fh:
        fh.write("x")
    write_json(tmp_path / "evaluation.json", {"a": 1})
    write_jsonl(tmp_path / "groups.jsonl", [{"a": 1}])
    write_trec_run(tmp_path / "bm25.trec", {"q": {"d": 1.0}})
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    for name in ("a.txt", "evaluation.json", "groups.jsonl", "bm25.trec"):
        assert _mode(tmp_path / name) == 0o666 & ~umask == _mode(plain), name


def test_atomic_model_folders_get_the_umask_mode(tmp_path: Path, umask: int) -> None:
    def fill(folder: Path) -> None:
        (folder / "config.json").write_text("{}")

    target = tmp_path / "train" / "model"
    atomic_dir(target, fill)
    assert _mode(target) == 0o777 & ~umask
    assert _mode(target / "config.json") == 0o666 & ~umask
    atomic_dir(target, fill)  # replacing an older model keeps the mode too
    assert _mode(target) == 0o777 & ~umask
