"""The embedded default: a real local GGUF model behind llama.cpp's OpenAI-compatible server.

Why a subprocess server rather than an in-process ``llama_cpp.Llama``: the client then has
exactly one code path (the OpenAI protocol, with its cache, retries, timeouts and usage)
whether the model is local or remote, so the local default tests what production runs;
the model's native threads and gigabyte of weights live in a process that is killed cleanly
on close (or at exit) instead of inside the caller; and a hung generation is bounded by the
same per-call timeout as any endpoint. The cost is a few seconds of start-up per run.

Example:
    >>> with LocalLlamaServer(resolve_gguf("smollm2-135m"), alias="smollm2-135m") as server:
    ...     print(server.base_url)          # http://127.0.0.1:<free port>/v1
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable
from pathlib import Path

from synthrank.errors import ModelError

logger = logging.getLogger(__name__)

_SERVER_DEPS = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
_LIVE: weakref.WeakSet[LocalLlamaServer] = weakref.WeakSet()


def _stop_all() -> None:  # pragma: no cover - runs at interpreter exit
    for server in list(_LIVE):
        server.close()


atexit.register(_stop_all)


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """Linux: a pre-exec hook asking the kernel to SIGKILL the server when its parent dies (even by SIGKILL).

    SIGKILL, not SIGTERM: on SIGTERM the server finishes the requests in flight first, which on a
    CPU can take minutes of computing answers nobody will read.

    Everything is resolved here, in the parent: the hook itself only calls one C function, which
    is safe between fork and exec even with other threads running.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        import signal

        prctl = ctypes.CDLL(None, use_errno=True).prctl
        sigkill = int(signal.SIGKILL)
    except (OSError, AttributeError):
        return None

    def hook() -> None:  # pragma: no cover - runs in the child
        prctl(1, sigkill)  # PR_SET_PDEATHSIG

    return hook


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def check_server_dependencies() -> None:
    """Raise a clear :class:`ModelError` if llama.cpp's server extra is not installed."""
    missing = [m for m in _SERVER_DEPS if importlib.util.find_spec(m) is None]
    if missing:
        raise ModelError(
            f"the local LLM needs llama-cpp-python's server ({', '.join(missing)} missing): "
            "pip install 'synthrank[llama]'  (llama-cpp-python compiles from source, ~12 minutes on 2 cores)"
        )


class LocalLlamaServer:
    """``python -m llama_cpp.server`` on 127.0.0.1 and a free port, started and stopped by this object.

    It runs through :mod:`synthrank.llm.llama_server_main`, which keeps llama.cpp off its AMX
    kernels where they crash.

    Args:
        model_path: a GGUF file.
        alias: the model name the server answers to (what requests send and caches key on).
        n_ctx: context window in tokens (prompt + answer).
        n_threads: CPU threads (default: all cores).
        startup_timeout: seconds to wait for the model to load and the server to answer.
        logits_all: keep logits for every position, which the server needs to return ``logprobs``.
        extra_args: more ``llama_cpp.server`` flags, passed as given.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        alias: str = "local",
        host: str = "127.0.0.1",
        port: int | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        startup_timeout: float = 300.0,
        logits_all: bool = True,
        extra_args: list[str] | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        self.alias = alias
        self.host = host
        self.port = port
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.startup_timeout = startup_timeout
        self.logits_all = logits_all
        self.extra_args = list(extra_args or [])
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    def __repr__(self) -> str:
        return f"LocalLlamaServer(model={self.model_path.name!r}, alias={self.alias!r}, url={self.base_url!r})"

    def __enter__(self) -> LocalLlamaServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def base_url(self) -> str | None:
        return f"http://{self.host}:{self.port}/v1" if self.port is not None and self.running else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def exit_code(self) -> int | None:
        """The exit status of a server that stopped on its own (killed, crashed); ``None`` while it runs or after
        :meth:`close` (a negative status is the signal that ended it: -9 for SIGKILL, the out-of-memory killer's)."""
        return None if self._process is None else self._process.poll()

    def command(self) -> list[str]:
        n_threads = self.n_threads or os.cpu_count() or 1
        return [
            sys.executable, "-m", "synthrank.llm.llama_server_main",  # llama_cpp.server, safe on AMX CPUs
            "--model", str(self.model_path),
            "--host", self.host,
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(n_threads),
            "--n_threads_batch", str(n_threads),
            "--model_alias", self.alias,
            "--logits_all", "true" if self.logits_all else "false",
            *self.extra_args,
        ]  # fmt: skip

    def start(self) -> None:
        """Start the server and wait until it serves ``/v1/models``; raises :class:`ModelError` with its log if not."""
        if self.running:
            return
        check_server_dependencies()
        if not self.model_path.exists():
            raise ModelError(f"GGUF file {self.model_path} does not exist")
        if self.port is None:
            self.port = free_port(self.host)
        fd, log_name = tempfile.mkstemp(prefix="synthrank-llama-server-", suffix=".log")
        self._log_path = Path(log_name)
        logger.info("starting llama.cpp server for %s on %s:%d (log: %s)", self.model_path.name, self.host, self.port, log_name)
        with os.fdopen(fd, "wb") as log:
            self._process = process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_pdeathsig_preexec(),
            )
        _LIVE.add(self)
        deadline = time.monotonic() + self.startup_timeout
        url = f"http://{self.host}:{self.port}/v1/models"
        try:
            while time.monotonic() < deadline:
                if self._process is not process:  # close() from another thread (an interrupted run)
                    raise ModelError(f"the llama.cpp server for {self.model_path} was stopped while starting")
                if process.poll() is not None:
                    tail = self.log_tail()
                    self.close()  # removes the log; its tail is in the error
                    raise ModelError(f"the llama.cpp server for {self.model_path} exited at start-up:\n{tail}")
                try:
                    with urllib.request.urlopen(url, timeout=2) as resp:
                        body = json.loads(resp.read().decode("utf-8"))
                    if any(m.get("id") == self.alias for m in body.get("data", [])):
                        logger.info("llama.cpp server ready at %s", self.base_url)
                        return
                except (urllib.error.URLError, OSError, ValueError):
                    pass
                time.sleep(0.25)
            tail = self.log_tail()
            self.close()
            raise ModelError(f"the llama.cpp server did not answer within {self.startup_timeout:g}s:\n{tail}")
        except BaseException:  # Ctrl-C or SIGTERM while the model loads: no server or log is left behind
            self.close()
            raise

    def log_tail(self, lines: int = 20) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        text = self._log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def close(self) -> None:
        """Terminate the server (kill it if it does not stop within 10 s) and remove its log."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        _LIVE.discard(self)
        if self._log_path is not None:
            with contextlib.suppress(OSError):
                self._log_path.unlink()
            self._log_path = None
