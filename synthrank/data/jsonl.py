"""JSONL and file plumbing shared by every stage: atomic writes (files and folders) and resumable appends.

Every long step of the method writes its results incrementally through
:class:`ResumableJsonlWriter`, so a killed run loses at most the record it was writing,
and every final artifact is written through :func:`atomic_write`, so nothing
half-written is ever left under the final name.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from synthrank.errors import DataError, SynthrankError

logger = logging.getLogger(__name__)

SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""Write errors that mean "no room": a full device, a spent quota, a file size limit."""


class OutputWriteError(SynthrankError, OSError):
    """An output file could not be written (a full disk, a quota, an I/O error); the message names the file.

    Also an :class:`OSError` carrying the original ``errno``, so code that handles OS errors still does.
    """

    def __init__(self, path: str | Path, cause: OSError) -> None:
        reason = cause.strerror or str(cause) or type(cause).__name__
        if cause.errno in SPACE_ERRNOS:
            advice = "free some space and rerun the same command to resume (what was written before is kept)"
        else:
            advice = "rerun the same command to resume once the device is writable (what was written before is kept)"
        self.message = f"{path}: cannot write ({reason}); {advice}"
        super().__init__(self.message)
        self.errno = cause.errno
        self.strerror = cause.strerror
        self.filename = str(path)

    def __str__(self) -> str:  # OSError's own would be "[Errno 28] ...: path", without the advice
        return self.message


def open_text(path: str | Path) -> IO[str]:
    """Open a text file for reading, transparently gunzipping ``*.gz``."""
    path = Path(path)
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux: ``/proc/self/status``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it (and put it back at once)
    os.umask(mask)
    return mask


def honour_umask(path: str | Path, *, directory: bool = False) -> None:
    """Give a file from ``mkstemp`` (always 0600) or a folder from ``mkdtemp`` (0700) the mode a plain
    ``open``/``mkdir`` would have given it, 0666/0777 minus the umask, so a model or report renamed into
    place is as readable by a teammate or a serving container as any other file the user writes."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Write to a temporary file beside ``path`` and rename it over ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left as it was; a full disk (or quota, or
    file size limit) is raised as :class:`OutputWriteError` naming ``path``. The file gets the mode the umask
    gives new files (not ``mkstemp``'s private 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        honour_umask(tmp_name)
        if "b" in mode:
            with os.fdopen(fd, mode) as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
        else:
            with os.fdopen(fd, mode, encoding="utf-8") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError) and not isinstance(exc, OutputWriteError) and exc.errno in SPACE_ERRNOS:
            raise OutputWriteError(path, exc) from exc  # the old file, if any, is left as it was
        raise


def atomic_dir(target: str | Path, fill: Callable[[Path], None]) -> None:
    """Fill a temporary folder beside ``target`` and rename it into place (replacing an older one).

    What :func:`atomic_write` is for a file, for a folder: models, checkpoints and conversions are
    assembled beside their final name, so a kill never leaves a half-written folder that a later run
    would trust. The folder gets the mode the umask gives new folders, not ``mkdtemp``'s private 0700.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        honour_umask(tmp, directory=True)
        fill(tmp)
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: str | Path, obj: Any, *, indent: int = 2) -> None:
    """Write one JSON document atomically."""
    with atomic_write(path) as fh:
        json.dump(obj, fh, indent=indent, ensure_ascii=False, default=_json_default)
        fh.write("\n")


def write_jsonl(path: str | Path, records: Iterable[Any]) -> int:
    """Write records as JSON lines atomically; returns how many were written."""
    n = 0
    with atomic_write(path) as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False, default=_json_default))
            fh.write("\n")
            n += 1
    return n


def iter_jsonl(path: str | Path, *, skip_blank: bool = True) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each line; a malformed line raises :class:`DataError`."""
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                if skip_blank:
                    continue
                raise DataError("blank line where a JSON object was expected", path=path, line=lineno)
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"malformed JSON ({exc.msg} at column {exc.colno})", path=path, line=lineno) from None
            if not isinstance(obj, dict):
                raise DataError(f"expected a JSON object, got {type(obj).__name__}", path=path, line=lineno)
            yield lineno, obj


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read every object of a JSONL file (see :func:`iter_jsonl`)."""
    return [obj for _, obj in iter_jsonl(path)]


class ResumableJsonlWriter:
    """Append-only JSONL output that survives a kill and tells what is already done.

    On open, a trailing partial line (the record being written when the process died)
    is cut off, and the key of every complete record is collected in :attr:`done`;
    the step then skips those keys and appends the rest, flushing each line.

    Example:
        >>> with ResumableJsonlWriter(out / "queries.jsonl", key=lambda r: r["passage_id"]) as w:
        ...     for passage in passages:
        ...         if passage.id in w.done:
        ...             continue
        ...         w.append(make_record(passage))
    """

    def __init__(
        self,
        path: str | Path,
        *,
        key: Callable[[dict[str, Any]], Any] | None = None,
        fsync_every: int = 50,
    ) -> None:
        self.path = Path(path)
        self._key = key
        self._fsync_every = fsync_every
        self.done: set[Any] = set()
        self.records_on_open = 0
        self._fh: io.FileIO | None = None
        self._size = 0
        self._since_sync = 0

    def __enter__(self) -> ResumableJsonlWriter:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # the error that stopped the block is the one to report, not a second one from closing
            self.close()
        except OSError as close_error:
            logger.debug("%s: closing after an error also failed: %s", self.path, close_error)

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._truncate_partial_tail()
            for _, obj in iter_jsonl(self.path):
                self.records_on_open += 1
                if self._key is not None:
                    self.done.add(self._key(obj))
        # unbuffered bytes: each record is one write(2) at the end of the file, and nothing of a record that
        # failed stays in a buffer to be written by a later flush or close
        self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 - held open across appends
        self._size = self._fh.seek(0, os.SEEK_END)

    def _truncate_partial_tail(self) -> None:
        """Cut a last line with no newline: the record being written when the process was killed.

        Every record is written as one JSON line ending in ``\n`` (JSON escapes newlines inside
        strings), so a last line without one is torn; its record was never counted as done, and
        the step redoes it (from the response cache, for an LLM step).
        """
        with open(self.path, "rb+") as fh:
            data = fh.read()
            if not data or data.endswith(b"\n"):
                return
            cut = data.rfind(b"\n") + 1
            fh.truncate(cut)
        logger.warning(
            "%s: removed a torn last line (line %d, %d bytes with no newline) left by an interrupted run; "
            "its record is redone",
            self.path,
            data.count(b"\n", 0, cut) + 1,
            len(data) - cut,
        )

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as a line; on a failed write (a full disk) the file is cut back to its complete records.

        Raises:
            OutputWriteError: the record could not be written; the message names the file.
        """
        if self._fh is None:
            raise RuntimeError("ResumableJsonlWriter used outside its context")
        data = (json.dumps(record, ensure_ascii=False, default=_json_default) + "\n").encode("utf-8")
        try:
            view = memoryview(data)
            while view:
                written = self._fh.write(view)
                if not written:  # pragma: no cover - a regular file either writes or raises
                    raise OSError(errno.EIO, "write returned 0 bytes")
                view = view[written:]
        except OSError as exc:
            with contextlib.suppress(OSError):  # shrinking needs no space: leave no torn line behind
                os.ftruncate(self._fh.fileno(), self._size)
            raise OutputWriteError(self.path, exc) from exc
        self._size += len(data)
        if self._key is not None:
            self.done.add(self._key(record))
        self._since_sync += 1
        if self._since_sync >= self._fsync_every:
            self._sync(self._fh)
            self._since_sync = 0

    def _sync(self, fh: io.FileIO) -> None:
        try:
            os.fsync(fh.fileno())
        except OSError as exc:  # a device that accepted the write but cannot store it (delayed allocation)
            raise OutputWriteError(self.path, exc) from exc

    def close(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            try:
                self._sync(fh)
            finally:
                fh.close()


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
