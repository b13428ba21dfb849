"""A full output device (ENOSPC) while a step writes: one clear error naming the file, earlier records intact,
no torn line and no temp file left, and the rerun resumes (#21 item 5).

Simulated, honestly said: the file object's ``write`` is replaced by one that writes part of a record and then
raises ``OSError(ENOSPC)``, as a real write(2) on a filling disk does (a short write, then ENOSPC). The same path on
a real full filesystem (a tiny tmpfs) is in integration/test_llm_failures.py.

Mutations seen to fail these tests: ``ResumableJsonlWriter.append`` without its ``except OSError`` (a raw
``OSError`` naming no file); ``append`` without its ``os.ftruncate`` back to the last whole record (the
half record stayed on disk as a torn line); ``atomic_write`` re-raising the raw ``OSError``; ``friendly_errors`` without its
``except OSError`` (a traceback from `synthrank`).
"""

from __future__ import annotations

import errno
import io
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from synthrank.data import ResumableJsonlWriter, atomic_write, read_jsonl, write_jsonl
from synthrank.data.jsonl import OutputWriteError
from synthrank.errors import SynthrankError


class FillingDisk:
    """Stands in for the writer's file: ``room`` more bytes fit, then a short write, then ENOSPC."""

    def __init__(self, fh: io.FileIO, room: int) -> None:
        self._fh = fh
        self.room = room

    def write(self, data: bytes | memoryview) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        chunk = bytes(data[: self.room])
        self.room -= len(chunk)
        written = self._fh.write(chunk)
        assert written == len(chunk)
        return written

    def __getattr__(self, name: str) -> object:
        return getattr(self._fh, name)


def _line(i: int) -> bytes:
    return (json.dumps({"id": i, "text": "x" * 40}) + "\n").encode()


def test_a_full_disk_mid_record_raises_naming_the_file_and_leaves_only_whole_records(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    with ResumableJsonlWriter(path, key=lambda r: r["id"]) as w:
        for i in range(3):
            w.append({"id": i, "text": "x" * 40})
    before = path.read_bytes()

    writer = ResumableJsonlWriter(path, key=lambda r: r["id"])
    with pytest.raises(OutputWriteError) as caught, writer:
        assert writer._fh is not None
        room = 2 * len(_line(3)) + len(_line(5)) // 2  # two more records fit, the third only in part
        writer._fh = FillingDisk(writer._fh, room)  # type: ignore[assignment]
        for i in range(3, 10):
            writer.append({"id": i, "text": "x" * 40})
    error = caught.value
    assert isinstance(error, SynthrankError) and isinstance(error, OSError) and error.errno == errno.ENOSPC
    assert str(error).startswith(f"{path}: cannot write (No space left on device); free some space")
    assert "\n" not in str(error)
    # the records written before, and the two that fit, are intact; the half record was cut off
    assert path.read_bytes() == before + _line(3) + _line(4)
    assert writer.done == {0, 1, 2, 3, 4}

    with ResumableJsonlWriter(path, key=lambda r: r["id"]) as again:  # space freed: the rerun resumes
        assert again.done == {0, 1, 2, 3, 4}
        for i in range(10):
            if i not in again.done:
                again.append({"id": i, "text": "x" * 40})
    assert [r["id"] for r in read_jsonl(path)] == list(range(10))


def test_a_full_disk_on_the_first_byte_keeps_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "queries.jsonl"
    path.write_bytes(_line(0))
    with pytest.raises(OutputWriteError, match=r"queries\.jsonl: cannot write"), ResumableJsonlWriter(path) as w:
        w._fh = FillingDisk(w._fh, 0)  # type: ignore[arg-type, assignment]
        w.append({"id": 1})
    assert path.read_bytes() == _line(0)


def test_atomic_write_on_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "groups.jsonl"
    target.write_text("old\n", encoding="utf-8")

    def records() -> object:
        yield {"id": 1}
        raise OSError(errno.ENOSPC, "No space left on device")  # what the temp file's write raised

    with pytest.raises(OutputWriteError) as caught:
        write_jsonl(target, records())  # type: ignore[arg-type]
    assert str(caught.value).startswith(f"{target}: cannot write (No space left on device)")
    assert target.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["groups.jsonl"]  # no temp file left
    with pytest.raises(KeyError), atomic_write(target) as fh:  # any other error passes through unchanged
        fh.write("new")
        raise KeyError("not a write error")
    assert target.read_text(encoding="utf-8") == "old\n"


def test_the_cli_reports_a_full_disk_in_one_line() -> None:
    from synthrank_cli.options import friendly_errors

    @click.command()
    @click.argument("kind")
    @friendly_errors
    def save(kind: str) -> None:
        if kind == "ours":
            raise OutputWriteError("/out/labels.jsonl", OSError(errno.ENOSPC, "No space left on device"))
        if kind == "library":  # e.g. torch.save of a checkpoint
            raise OSError(errno.ENOSPC, "No space left on device", "/out/model/model.safetensors")
        raise OSError(errno.EACCES, "Permission denied", "/out/x")

    runner = CliRunner()
    ours = runner.invoke(save, ["ours"])
    assert ours.exit_code == 1
    assert ours.output.splitlines() == [
        "Error: /out/labels.jsonl: cannot write (No space left on device); free some space and rerun the same "
        "command to resume (what was written before is kept)"
    ]
    library = runner.invoke(save, ["library"])
    assert library.exit_code == 1
    assert library.output.splitlines() == [
        "Error: /out/model/model.safetensors: cannot write (No space left on device); free some space and rerun "
        "the same command to resume"
    ]
    other = runner.invoke(save, ["other"])  # not a space problem: not dressed up as one
    assert isinstance(other.exception, PermissionError)
