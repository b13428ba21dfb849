"""Leave no trace of a job that failed before it wrote any work.

A run given a bad corpus (a malformed JSONL line, a missing file) fails before its first step
writes anything, but by then it has made its output folder and written its own bookkeeping (the
resolved config, ``.steps/generate.started.json``). Left behind, that folder looks like a run to
resume, and the next ``synthrank run`` into it is treated as one. :func:`removed_if_no_work`
removes such bookkeeping (and the folder itself, when the job made it) when the job fails; a
folder that holds any real work (a non-empty artifact) is kept, so an interrupted run resumes.

Example:
    >>> with removed_if_no_work(Path("runs/medquad"), bookkeeping=["run_config.json", ".steps"]):
    ...     run_everything()
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)


def holds_work(folder: Path, bookkeeping: Sequence[str]) -> bool:
    """Whether ``folder`` holds a non-empty file outside ``bookkeeping`` (names or folders directly inside it)."""
    ours = {folder / name for name in bookkeeping}
    for path in folder.rglob("*"):
        if any(path == b or b in path.parents for b in ours):
            continue
        if path.is_file() and path.stat().st_size > 0:
            return True
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            return True  # not ours to judge
    return False


@contextmanager
def removed_if_no_work(folder: Path, *, bookkeeping: Sequence[str]) -> Iterator[None]:
    """When the body fails with an error, undo a start that wrote no work into ``folder``.

    An interruption (Ctrl-C, SIGTERM) is no failure: the folder stays, to be resumed.

    Args:
        folder: the job's output folder; it may or may not exist yet.
        bookkeeping: files and folders directly in ``folder`` that the job writes before any work
            (configs, step markers); they are removed, and empty files beside them are not work.
            When ``folder`` did not exist before, the whole folder goes.
    """
    existed = folder.exists()
    try:
        yield
    except Exception:  # not on Ctrl-C: an interrupted run keeps its folder, to be resumed
        if folder.is_dir() and not holds_work(folder, bookkeeping):
            if not existed:
                shutil.rmtree(folder, ignore_errors=True)
                logger.info("removed %s: the job failed before writing anything to resume", folder)
            else:
                for name in bookkeeping:
                    target = folder / name
                    if target.is_dir() and not target.is_symlink():
                        shutil.rmtree(target, ignore_errors=True)
                    else:
                        target.unlink(missing_ok=True)
        raise
