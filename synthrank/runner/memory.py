"""Give memory back to the system between steps of one long process.

Why: ``synthrank run`` trains and then evaluates in the same process. Training leaves
gigabytes of freed tensors in glibc's arenas (one per OpenMP thread), which the allocator keeps
for reuse instead of returning, so the evaluation step started at the training step's peak
(15.5 GB resident on a 24 GB machine, measured) and two such processes could not share it.
Collecting the garbage and trimming the heap after a step returns that memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


def resident_mb() -> float | None:
    """This process's resident memory now (Linux ``/proc/self/statm``), or None elsewhere."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_resident_mb() -> float | None:
    """The process's peak resident memory so far (``ru_maxrss``), or None where unknown."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mb = peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux
    now = resident_mb()  # the kernel updates its high-water mark lazily: it can trail the current value
    return max(peak_mb, now) if now is not None else peak_mb


@functools.cache
def _malloc_trim() -> object | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None)
    except OSError:
        return None


def release_memory() -> tuple[float | None, float | None]:
    """Free what the last step left behind; returns the resident MB before and after."""
    before = resident_mb()
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)  # type: ignore[operator]
    after = resident_mb()
    if before is not None and after is not None:
        logger.info("released memory: %.0f MB -> %.0f MB resident", before, after)
    return before, after
