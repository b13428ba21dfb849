"""What the CPU can do fast, so "auto" settings pick bf16 where it pays and fp32 where it doesn't.

On Intel CPUs with AMX (Sapphire Rapids and later) a bf16 matrix multiply runs ~10x faster
than an fp32 one (measured here: 650 vs 55 GFLOP/s on one core), so bf16 autocast speeds up
training and scoring several-fold. CPUs with AVX512-BF16 dot products (AMD Zen 4 and later,
Intel Cooper Lake) gain ~2x (MiniLM: 2.31x per training step, 1.99x per scoring batch on a 2-core
AMD EPYC; ``benchmarks/bench_bf16_cpu.py``). Elsewhere bf16 on a CPU is emulated or barely faster.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


@functools.cache
def cpu_has_amx() -> bool:
    """Whether torch can use AMX tiles here (the CPU has them and the kernel grants them)."""
    try:
        import torch

        init = getattr(torch._C._cpu, "_init_amx", None)
        return bool(init()) if init is not None else False
    except Exception:  # an old or unusual torch build: assume no AMX
        return False


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags as the kernel reports them (Linux), empty where unknown."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[-1].split())
    return frozenset()


@functools.cache
def cpu_bf16_is_fast() -> bool:
    """Whether bf16 autocast beats fp32 here: AMX tiles, or native AVX512-BF16 dot products."""
    return cpu_has_amx() or "avx512_bf16" in cpu_flags()


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether oneDNN has native bf16 kernels here (AVX512-BF16 or AMX); without them bf16 is slow."""
    try:
        import torch

        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        return False


def warn_if_bf16_is_slow(what: str) -> None:
    """One log line when bf16 was asked for on a CPU that emulates it."""
    if not cpu_has_bf16():
        logger.warning("%s: bf16 on this CPU has no native kernels and may be slower than fp32", what)


def cpu_name() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), for benchmark records; the architecture elsewhere."""
    import platform
    from pathlib import Path

    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()
