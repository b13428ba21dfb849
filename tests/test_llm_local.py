"""The embedded default's server wrapper, without starting a model (the real start is in integration/)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import pytest

from synthrank.errors import ModelError
from synthrank.llm import LLMClient, LLMConfig, local
from synthrank.llm.local import LocalLlamaServer, free_port


def test_command_has_the_flags_llama_cpp_server_needs(tmp_path: Path) -> None:
    server = LocalLlamaServer(tmp_path / "m.gguf", alias="qwen2.5-coder-1.5b", port=1234, n_ctx=2048, n_threads=2)
    cmd = server.command()
    assert cmd[1:3] == ["-m", "synthrank.llm.llama_server_main"]  # llama_cpp.server behind the AMX guard
    flags = dict(zip(cmd[3::2], cmd[4::2], strict=True))
    assert flags["--host"] == "127.0.0.1" and flags["--port"] == "1234"
    assert flags["--model_alias"] == "qwen2.5-coder-1.5b"
    assert flags["--logits_all"] == "true"  # needed for logprobs
    assert flags["--n_ctx"] == "2048" and flags["--n_threads"] == "2"
    assert server.base_url is None and not server.running


def test_missing_model_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "check_server_dependencies", lambda: None)
    with pytest.raises(ModelError, match="does not exist"):
        LocalLlamaServer(tmp_path / "none.gguf").start()


def test_missing_server_extra_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sse_starlette" else real(name, *a))
    with pytest.raises(ModelError, match=r"pip install 'synthrank\[llama\]'"):
        local.check_server_dependencies()


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_local_client_reports_its_model_name_without_starting() -> None:
    client = LLMClient(LLMConfig(model="Qwen-1.5B"))
    assert client.model == "qwen2.5-coder-1.5b"
    assert client.base_url is None and "local llama.cpp" in repr(client)
    client.close()


def test_amx_guard_turns_extra_buffers_off_only_where_they_crash(tmp_path: Path) -> None:
    from synthrank.llm.llama_server_main import build_has_amx_kernels, cpu_has_amx_tiles, use_extra_buffers

    assert use_extra_buffers(None, cpu_amx=True, build_amx=True) is False
    assert use_extra_buffers("auto", cpu_amx=False, build_amx=True) is True
    assert use_extra_buffers("auto", cpu_amx=True, build_amx=False) is True
    assert use_extra_buffers("on", cpu_amx=True, build_amx=True) is True
    assert use_extra_buffers("OFF", cpu_amx=False, build_amx=False) is False
    with pytest.raises(SystemExit, match="use auto, on or off"):
        use_extra_buffers("maybe", cpu_amx=False, build_amx=False)
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f amx_bf16 amx_tile amx_int8\n", encoding="utf-8")
    assert cpu_has_amx_tiles(info)
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16x\n", encoding="utf-8")
    assert not cpu_has_amx_tiles(info)
    assert not cpu_has_amx_tiles(tmp_path / "absent")
    assert build_has_amx_kernels("CPU : AVX512 = 1 | AMX_INT8 = 1 | REPACK = 1 |")
    assert not build_has_amx_kernels("CPU : AVX2 = 1 | REPACK = 1 |")


def test_prompt_logits_setting_and_when_a_completion_reads_every_prompt_row() -> None:
    from synthrank.llm.prompt_logits import needs_prompt_logits, prompt_logits_setting

    assert prompt_logits_setting(None) == "last" and prompt_logits_setting(" ALL ") == "all"
    with pytest.raises(SystemExit, match="use last or all"):
        prompt_logits_setting("some")
    assert needs_prompt_logits(True, 3) and needs_prompt_logits(True, 0)
    assert not needs_prompt_logits(True, None)  # echo alone reads no logits
    assert not needs_prompt_logits(False, 20)  # the judge: only the answer token's logprobs


def test_lazy_logprob_rows_read_like_the_full_log_softmax() -> None:
    """What llama-cpp-python does with logits_to_logprobs(scores)[offset:]: iterate, index, len: all as computed eagerly."""
    import numpy as np

    from synthrank.llm.prompt_logits import LazyLogprobRows

    def log_softmax(x: np.ndarray) -> np.ndarray:
        m = x.max(axis=-1, keepdims=True)
        return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))

    logits = np.random.default_rng(0).normal(size=(6, 50)).astype(np.float32)
    full = log_softmax(logits)
    computed: list[int] = []

    def row_logprobs(row: np.ndarray) -> np.ndarray:
        computed.append(1)
        return log_softmax(row)

    lazy = LazyLogprobRows(logits, row_logprobs)
    assert computed == []  # nothing until read
    tail = lazy[4:]
    assert len(tail) == 2 and len(lazy) == 6 and len(lazy[9:]) == 0
    rows = list(tail)
    assert len(computed) == 2  # only the rows read
    np.testing.assert_allclose(np.array(rows), full[4:], rtol=1e-5, atol=1e-6)
    assert isinstance(rows[0], list) and len(rows[0]) == 50
    np.testing.assert_allclose(lazy[2:][1], full[3], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.array(lazy[-2:]), full[-2:], rtol=1e-5, atol=1e-6)  # other keys: computed eagerly


class SilentServer(LocalLlamaServer):
    """A 'server' that starts and never answers: a model still loading."""

    def command(self) -> list[str]:
        import sys

        return [sys.executable, "-c", "import time; time.sleep(120)"]


def _silent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SilentServer:
    monkeypatch.setattr(local, "check_server_dependencies", lambda: None)
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    return SilentServer(tmp_path / "m.gguf", alias="m", startup_timeout=60)


def test_ctrl_c_while_the_model_loads_leaves_no_server_or_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Caught: ``start`` without its ``except BaseException: close()`` (the server process and its temp log stayed
    until interpreter exit, and for good after a SIGTERM)."""
    import signal
    import threading

    server = _silent(tmp_path, monkeypatch)
    seen: list[tuple[Any, Path | None]] = []

    def interrupt() -> None:
        seen.append((server._process, server._log_path))
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # type: ignore[arg-type]

    threading.Timer(1.0, interrupt).start()
    with pytest.raises(KeyboardInterrupt):
        server.start()
    [(popen, log)] = seen
    assert popen is not None and log is not None
    assert popen.poll() is not None, "the server process outlived the interrupted start"
    assert not log.exists(), "the server's temp log outlived the interrupted start"
    assert not server.running


def test_close_from_another_thread_stops_a_start_in_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """How an interrupted run stops a server its LLM thread is still starting. Caught: ``start`` polling a process
    ``close`` already took (it reported "exited at start-up", as if the model were broken)."""
    import threading
    import time

    server = _silent(tmp_path, monkeypatch)
    started = threading.Event()
    outcome: list[BaseException] = []

    def start() -> None:
        started.set()
        try:
            server.start()
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=start)
    worker.start()
    started.wait()
    time.sleep(1.0)
    popen = server._process
    assert popen is not None and popen.poll() is None
    log = server._log_path
    server.close()
    worker.join(timeout=15)
    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], ModelError) and "stopped while starting" in str(outcome[0])
    assert popen.poll() is not None and log is not None and not log.exists()


def test_ctrl_c_while_a_client_starts_its_server_stops_it_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Ctrl-C during the local model's start-up (which blocks the client's loop thread): ``close`` stops the
    starting server first. Caught: ``close`` without that step (it waited 25 s on the blocked loop, and the server
    was never stopped at all while the client only learned of it once started)."""
    import signal
    import threading
    import time

    from synthrank.models import gguf

    silent = _silent(tmp_path, monkeypatch)
    monkeypatch.setattr(gguf, "resolve_gguf", lambda name: silent.model_path)
    monkeypatch.setattr(local, "LocalLlamaServer", SilentServer)
    client = LLMClient(LLMConfig(model="m"))
    seen: list[tuple[Any, Path | None]] = []

    def interrupt() -> None:
        server = client._server
        seen.append((server._process, server._log_path) if server is not None else (None, None))
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # type: ignore[arg-type]

    threading.Timer(1.5, interrupt).start()
    with caplog.at_level(logging.ERROR, logger="asyncio"), pytest.raises(KeyboardInterrupt):
        client.warm_up()
    began = time.monotonic()
    client.close()
    assert time.monotonic() - began < 5.0
    [(popen, log)] = seen
    assert popen is not None and popen.poll() is not None, "the starting server was not stopped"
    assert log is not None and not log.exists()
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


# ---------------------------------------------------------------------------- the server dies mid-run (#21 item 5)
# Mutations seen to fail these tests: `_call_with_retries` without its call to `_revive_server` on a connection error
# (every later call failed: "connection" after its retries, and no restart); `acomplete_many` re-raising only
# `LLMAuthError` (the dead server came back as one LLMCallError per request instead of stopping the batch).


class EchoProcessServer(LocalLlamaServer):
    """The real start/stop/exit logic around a small echo server process (tests/fake_openai_server.py) instead of
    llama.cpp: it can be killed like the real one, and starts in a fraction of a second."""

    def command(self) -> list[str]:
        import sys

        root = str(Path(__file__).resolve().parents[1])
        code = f"import sys; sys.path.insert(0, {root!r}); from tests.fake_openai_server import main; main()"
        return [sys.executable, "-c", code, "--port", str(self.port), "--model", self.alias]


def _echo_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **local_settings: Any) -> LLMClient:
    import asyncio

    from synthrank.llm import LocalServerSettings
    from synthrank.models import gguf

    monkeypatch.setattr(local, "check_server_dependencies", lambda: None)
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    monkeypatch.setattr(gguf, "resolve_gguf", lambda name: tmp_path / "m.gguf")
    monkeypatch.setattr(local, "LocalLlamaServer", EchoProcessServer)

    async def no_wait(seconds: float) -> None:
        await asyncio.sleep(0)

    config = LLMConfig(model="m", max_retries=3, local=LocalServerSettings(startup_timeout=30, **local_settings))
    return LLMClient(config, sleep=no_wait)


def _kill_server(client: LLMClient) -> int:
    import os
    import signal

    process = client._server._process
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    return int(process.pid)


def _ask(text: str) -> Any:
    from synthrank.llm import LLMRequest

    return LLMRequest.chat([{"role": "user", "content": text}], max_tokens=8)


def test_a_local_server_killed_mid_run_is_started_again_and_every_call_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client = _echo_client(tmp_path, monkeypatch)
    with client:
        assert client.complete(_ask("first")).text == "echo: first"
        url = client.base_url
        killed = _kill_server(client)
        with caplog.at_level(logging.WARNING, logger="synthrank.llm.client"):
            results = client.complete_many([_ask(f"q{i}") for i in range(5)])
        assert [getattr(r, "text", r) for r in results] == [f"echo: q{i}" for i in range(5)]
        assert client.server_restarts == 1 and client.base_url == url  # the same port
        assert client._server._process.pid != killed and client._server.running
        assert client.usage.calls == 6 and client.usage.failures == {}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("synthrank")]
    assert warnings == ["the local llama.cpp server for m exited with code -9 mid-run; starting it again (restart 1 of 2)"]


def test_a_local_server_that_keeps_dying_stops_the_batch_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from synthrank.llm import LLMFatalError, LLMServerError

    client = _echo_client(tmp_path, monkeypatch, max_restarts=1)
    with client:
        client.complete(_ask("first"))
        _kill_server(client)
        client.complete(_ask("second"))  # restarted once
        _kill_server(client)
        with pytest.raises(LLMServerError) as stopped:
            client.complete_many([_ask(f"q{i}") for i in range(4)])
        assert client.server_restarts == 1
    assert isinstance(stopped.value, LLMFatalError)
    message = str(stopped.value)
    assert "\n" not in message
    assert message == (
        "LLM call failed (server_exited): the local llama.cpp server for m exited with code -9 mid-run (restarted 1 "
        "of at most 1 times); rerun the same command to resume (answered calls are cached)"
    )


def test_a_local_server_that_cannot_start_again_stops_the_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from synthrank.llm import LLMServerError

    client = _echo_client(tmp_path, monkeypatch)
    with client:
        client.complete(_ask("first"))
        (tmp_path / "m.gguf").unlink()  # the model file went away with the server
        _kill_server(client)
        with pytest.raises(LLMServerError, match=r"exited with code -9 mid-run and could not be started again \(GGUF"):
            client.complete_many([_ask("q")])
