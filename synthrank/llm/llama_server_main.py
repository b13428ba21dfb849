"""``python -m synthrank.llm.llama_server_main``: llama.cpp's OpenAI server, safe on CPUs with AMX.

Why this exists: llama.cpp builds compiled with ``-march=native`` on an Intel CPU with AMX
(Sapphire Rapids and later) put the model's weights in an AMX buffer whose kernels die with
SIGILL on the first request under some kernels and hypervisors (``tilezero`` on an OpenMP
worker thread; ggml-org/llama.cpp#26954). The server starts, answers ``/v1/models`` and
crashes on the first completion. Turning off llama.cpp's "extra buffer types" (AMX and
weight repacking) avoids those kernels; everything else is unchanged.

``SYNTHRANK_LLAMA_EXTRA_BUFFERS`` decides: ``auto`` (default: off only when the CPU has AMX
tiles and the build has AMX kernels), ``on`` or ``off``. The arguments are those of
``python -m llama_cpp.server``.

It also computes a prompt's logits only where a response reads them
(:mod:`synthrank.llm.prompt_logits`; ``SYNTHRANK_LLAMA_PROMPT_LOGITS=all`` keeps llama-cpp-python's
own every-position logits), which halves a yes/no judgement's time on a CPU (1.94x measured).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

ENV_VAR = "SYNTHRANK_LLAMA_EXTRA_BUFFERS"


def cpu_has_amx_tiles(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the kernel reports AMX tile support (``amx_tile`` in the CPU flags; Linux only)."""
    from synthrank.models.cpu import cpu_flags

    return "amx_tile" in cpu_flags(cpuinfo)


def build_has_amx_kernels(system_info: str) -> bool:
    """Whether llama.cpp's ``llama_print_system_info()`` reports AMX kernels compiled in."""
    return "AMX_INT8 = 1" in system_info


def use_extra_buffers(setting: str | None, *, cpu_amx: bool, build_amx: bool) -> bool:
    """The decision, separate from the probing so it can be tested on any machine."""
    value = (setting or "auto").strip().lower()
    if value in ("on", "1", "true", "yes"):
        return True
    if value in ("off", "0", "false", "no"):
        return False
    if value != "auto":
        raise SystemExit(f"{ENV_VAR}={setting!r}: use auto, on or off")
    return not (cpu_amx and build_amx)


def _disable_extra_buffers() -> None:
    import llama_cpp.llama_cpp as bindings

    default_params = bindings.llama_model_default_params

    def without_extra_buffers():  # type: ignore[no-untyped-def]
        params = default_params()
        params.use_extra_bufts = False
        return params

    # llama_cpp.Llama reads the function from this module at load time.
    bindings.llama_model_default_params = without_extra_buffers


def main(argv: list[str] | None = None) -> None:
    import llama_cpp

    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="synthrank: %(message)s")
    info = llama_cpp.llama_print_system_info().decode("utf-8", errors="replace")
    if not use_extra_buffers(
        os.environ.get(ENV_VAR), cpu_amx=cpu_has_amx_tiles(), build_amx=build_has_amx_kernels(info)
    ):
        _disable_extra_buffers()
        logger.warning("llama.cpp extra buffer types (AMX, weight repacking) are off on this AMX CPU (%s)", ENV_VAR)
    from synthrank.llm import prompt_logits

    if prompt_logits.prompt_logits_setting(os.environ.get(prompt_logits.ENV_VAR)) == "last" and prompt_logits.install():
        logger.info("%s: prompt logits only where a response reads them", prompt_logits.ENV_VAR)
    from llama_cpp.server.__main__ import main as server_main

    sys.argv = [sys.argv[0], *(sys.argv[1:] if argv is None else argv)]
    server_main()


if __name__ == "__main__":  # pragma: no cover - runs as the server subprocess
    main()
