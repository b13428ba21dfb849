"""Ctrl-C and SIGTERM during `synthrank run`: one clear line, nothing left running, and the rerun resumes.

The run uses the embedded default path (a local llama.cpp server started by the run itself, with
SmolLM2-135M standing in for the default model), in a subprocess that gets SIGINT mid-generation
and, while it cleans up, SIGTERM: a supervisor giving up on a slow Ctrl-C, or Ctrl-C pressed twice.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from integration.test_run_end_to_end import _cache_entries, _config, _marker, _medquad_slice
from synthrank_cli.main import main

pytestmark = [pytest.mark.llm_server, pytest.mark.slow]


def _answered(cache: Path) -> int:
    """Responses in the cache; 0 while the run is still creating it."""
    try:
        return _cache_entries(cache)
    except sqlite3.OperationalError:  # the file exists, its table not yet
        return 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _gone(pid: int, within: float = 15.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            return True
        if state == "Z":  # exited; its parent (the killed run) is gone, so nobody reaps it yet
            return True
        time.sleep(0.2)
    return False


def _interrupt(args: list[str], cache: Path, signals: list[signal.Signals]) -> tuple[int, str, list[int], list[Path]]:
    """Run ``synthrank ARGS`` in a subprocess, send ``signals`` once it has a new answer cached; its exit code,
    stderr, its llama.cpp server processes and their temp logs."""
    before = _answered(cache)
    proc = subprocess.Popen([sys.executable, "-m", "synthrank_cli.main", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while _answered(cache) < before + 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.3)
        assert proc.poll() is None, "the run ended before it could be stopped: " + proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
        servers = _children(proc.pid)
        assert servers, "no llama.cpp server process under the run"
        logs = [Path(os.readlink(f"/proc/{pid}/fd/1")) for pid in servers]
        assert all(log.name.startswith("synthrank-llama-server-") for log in logs), logs
        for sig in signals:
            os.kill(proc.pid, sig)
            time.sleep(0.05)  # the next one arrives while the first one's cleanup runs
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err.decode(), servers, logs


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigint_then_sigterm_stop_cleanly_and_the_rerun_repeats_no_call(tmp_path: Path) -> None:
    """Caught, each with its fix reverted: no signal handler in `synthrank run` (the SIGTERM sent during the
    Ctrl-C cleanup killed the process on the spot: exit -15, not 130); ``LLMClient.close`` closing the HTTP
    clients under calls still in flight, and ``_run`` not cancelling them ("Task exception was never retrieved"
    with its traceback in stderr)."""
    corpus = _medquad_slice(tmp_path / "medquad-slice")
    cache = tmp_path / "llm-cache.sqlite"
    config = _config(tmp_path / "run.yaml", cache)  # no base_url: the run starts its own llama.cpp server
    out = tmp_path / "out"
    args = ["run", "--corpus", str(corpus), "--output-dir", str(out), "--config", str(config),
            "--max-passages", "16", "--until", "generate", "--no-progress"]  # fmt: skip
    resume_hint = f"stopped cleanly; rerun the same command to resume {out} (answered LLM calls are cached)"
    # Ctrl-C, then SIGTERM during its cleanup (a supervisor giving up); then the resumed run gets SIGTERM alone
    for signals, exit_code in (([signal.SIGINT, signal.SIGTERM], 130), ([signal.SIGTERM], 143)):
        code, stderr, servers, logs = _interrupt(args, cache, signals)
        assert code == exit_code, stderr
        assert "Traceback" not in stderr and "Task exception was never retrieved" not in stderr, stderr
        assert "Task was destroyed" not in stderr, stderr
        assert [line for line in stderr.splitlines() if line.strip()] == [
            f"Interrupted by {signals[0].name}: {resume_hint}"
        ]
        assert all(_gone(pid) for pid in servers), f"llama.cpp server left running: {servers}"
        assert not [log for log in logs if log.exists()], "the server's temp log was left behind"
        assert (out / ".steps").is_dir()  # the interrupted run's folder stays, to be resumed

    answered = _answered(cache)
    rerun = CliRunner().invoke(main, args)
    assert rerun.exit_code == 0, rerun.output
    generate = _marker(out, "generate")["summary"]
    assert generate["usage"]["calls"] == _cache_entries(cache) - answered  # no answered call was asked again
