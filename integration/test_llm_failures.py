"""Failures around a real run on the real local server (#21 item 5): the LLM server killed mid-generation, no space
left on the output device, a damaged response cache.

SmolLM2-135M stands in for the default model (the same llama.cpp code path, ~10x faster); the run settings are
integration/test_run_end_to_end.py's.

* Server killed: `synthrank run` starts its own llama.cpp server; the test SIGKILLs that server three times. The
  first two deaths are survived (the client starts it again on its port, one warning line each), the third stops
  the run with one line; the rerun finishes and asks the model nothing it had answered (its calls equal the new
  cache entries). Mutation seen to fail it: the client's call to ``_revive_server`` on a connection error removed
  (after the first kill every remaining call failed after its 5 retries, "no queries for ...: LLM call failed
  (connection)", and the run ended with no server left to kill, ~1 minute in).
* No space left: a real full filesystem, not a simulation: a 16 MiB tmpfs mounted in a private user and mount
  namespace (``unshare --user --map-root-user --mount``, no root needed; skipped where the kernel refuses it), filled
  up to two pages before the label step, so the kernel itself answers ENOSPC mid-step. Mutation seen to fail it:
  ``ResumableJsonlWriter.append`` without its ``except OSError`` (the error line then named no file: the CLI's
  fallback for any ENOSPC said only "Error: cannot write (No space left on device); ...").
* Damaged cache: the response cache of a real run overwritten with garbage, truncated, or with pages zeroed; the
  next run stops with one line naming the file before asking anything, and once the file is removed the run
  writes the very queries of the first run. Mutation seen to fail it: ``ResponseCache.__init__`` / ``_sql`` without
  their ``except sqlite3.Error`` (the raw sqlite3.DatabaseError, "file is not a database" or "database disk image is
  malformed", escaped the command: no "Error:" line, nothing naming the file).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from integration.llm_fixtures import llama_server  # noqa: F401  (fixture)
from integration.test_run_end_to_end import _cache_entries, _config, _marker, _medquad_slice
from integration.test_run_signals import _answered, _children
from synthrank.llm.local import LocalLlamaServer
from synthrank_cli.main import main

pytestmark = [pytest.mark.llm_server, pytest.mark.slow]

RESUME = "rerun the same command to resume (answered calls are cached)"


def _servers(pid: int) -> list[int]:
    """The llama.cpp server processes among the children of ``pid`` (the run)."""
    found: list[int] = []
    for child in _children(pid):
        try:
            if b"llama_server_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:
            continue
    return found


def _wait(condition: object, proc: subprocess.Popen[bytes], what: str, within: float = 600) -> None:
    deadline = time.monotonic() + within
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        assert proc.poll() is None, f"the run ended while waiting for {what}: " + proc.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
        time.sleep(0.2)
    assert condition(), f"timed out waiting for {what}"  # type: ignore[operator]


# ------------------------------------------------------------------------------------ (a) the server killed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_llm_server_is_restarted_twice_then_the_run_stops_in_one_line_and_resumes(tmp_path: Path) -> None:
    corpus = _medquad_slice(tmp_path / "medquad-slice")
    cache = tmp_path / "llm-cache.sqlite"
    config = _config(tmp_path / "run.yaml", cache)  # no base_url: the run starts its own llama.cpp server
    out = tmp_path / "out"
    args = ["run", "--corpus", str(corpus), "--output-dir", str(out), "--config", str(config),
            "--max-passages", "16", "--until", "generate", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "synthrank_cli.main", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    killed: list[int] = []
    try:
        for _ in range(3):
            before = _answered(cache)
            # a server of its own, new since the last kill, and answering (two more answers cached)
            _wait(lambda before=before: [p for p in _servers(proc.pid) if p not in killed]  # type: ignore[misc]
                  and _answered(cache) >= before + 2, proc, "a live server with new answers")  # fmt: skip
            [server] = [p for p in _servers(proc.pid) if p not in killed]
            os.kill(server, signal.SIGKILL)
            killed.append(server)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = [line for line in err.decode().splitlines() if line.strip()]
    assert proc.returncode == 1, stderr
    assert "Traceback" not in err.decode(), stderr
    restarts = [line for line in stderr if "exited with code -9 mid-run; starting it again" in line]
    assert len(restarts) == 2 and "(restart 1 of 2)" in restarts[0] and "(restart 2 of 2)" in restarts[1], stderr
    assert stderr[-1] == (
        "Error: LLM call failed (server_exited): the local llama.cpp server for smollm2-135m exited with code -9 "
        f"mid-run (restarted 2 of at most 2 times); {RESUME}"
    ), stderr
    assert not _marker_exists(out, "generate")
    time.sleep(2)  # the last server is gone (SIGKILLed) and the run with it: nothing to wait for

    answered = _answered(cache)
    kept_before = _lines(out / "queries.jsonl") + _lines(out / "rejected.jsonl")
    rerun = CliRunner().invoke(main, args)
    assert rerun.exit_code == 0, rerun.output
    usage = _marker(out, "generate")["summary"]["usage"]
    assert usage["calls"] == _cache_entries(cache) - answered  # no call answered before the kills was asked again
    assert usage["failures"] == {}
    assert _lines(out / "queries.jsonl") + _lines(out / "rejected.jsonl") >= kept_before


def _marker_exists(out: Path, step: str) -> bool:
    return (out / ".steps" / f"{step}.json").exists()


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


# ------------------------------------------------------------------------------- (b) no space left on device


def _user_namespaces_work(where: Path) -> str | None:
    """None if a tmpfs can be mounted in a private user+mount namespace here, else why not."""
    if shutil.which("unshare") is None or shutil.which("fallocate") is None:
        return "needs unshare and fallocate (util-linux)"
    probe = where / "probe"
    probe.mkdir()
    result = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {probe}"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    probe.rmdir()
    if result.returncode != 0:
        return f"cannot mount a tmpfs in a user namespace here ({result.stderr.strip()[:200]})"
    return None


DRIVER = r"""
set -u
mount -t tmpfs -o size=16m tmpfs "$DISK"
run() { "$PYTHON" -m synthrank_cli.main run --corpus "$CORPUS" --output-dir "$DISK/out" --config "$CONFIG" \
        --max-passages 24 --no-progress "$@"; }
snapshot() { mkdir -p "$SAVE/$1" && cp -a "$DISK/out/." "$SAVE/$1/"; }
run --until mine 2> "$SAVE/err1"; echo $? > "$SAVE/rc1"; snapshot 1
# the disk full but for two pages: enough to start the label step, not to finish it
avail=$(df -B1 --output=avail "$DISK" | tail -1)
fallocate -l $((avail - 8192)) "$DISK/filler"
df -B1 --output=avail "$DISK" | tail -1 > "$SAVE/avail2"
run --until label 2> "$SAVE/err2"; echo $? > "$SAVE/rc2"; snapshot 2
"$PYTHON" -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM responses").fetchone()[0])' \
    "$CACHE" > "$SAVE/entries2"
rm "$DISK/filler"  # space freed: the same command resumes
run --until label 2> "$SAVE/err3"; echo $? > "$SAVE/rc3"; snapshot 3
"""


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a tmpfs in a user namespace is Linux only")
def test_a_full_output_disk_mid_label_is_one_clear_error_and_earlier_artifacts_stay_intact(
    tmp_path: Path,
    llama_server: LocalLlamaServer,  # noqa: F811
) -> None:
    why_not = _user_namespaces_work(tmp_path)
    if why_not:
        pytest.skip(why_not)
    corpus = _medquad_slice(tmp_path / "medquad-slice")
    cache = tmp_path / "llm-cache.sqlite"  # on the real disk: answers already paid for survive the full one
    config = _config(tmp_path / "run.yaml", cache, model=llama_server.alias, base_url=llama_server.base_url)
    disk, save = tmp_path / "disk", tmp_path / "save"
    disk.mkdir()
    save.mkdir()
    env = {**os.environ, "DISK": str(disk), "SAVE": str(save), "PYTHON": sys.executable, "CORPUS": str(corpus),
           "CONFIG": str(config), "CACHE": str(cache)}  # fmt: skip
    driver = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "bash", "-c", DRIVER], env=env,
                            capture_output=True, text=True, timeout=1500)  # fmt: skip
    assert driver.returncode == 0, driver.stderr
    rc = {n: int((save / f"rc{n}").read_text()) for n in (1, 2, 3)}
    err = {n: (save / f"err{n}").read_text() for n in (1, 2, 3)}
    assert rc[1] == 0, err[1]
    assert int((save / "avail2").read_text()) == 8192

    # the full disk: exit 1, one line naming the file it could not write, no traceback
    assert rc[2] == 1, err[2]
    lines = [line for line in err[2].splitlines() if line.strip()]
    assert "Traceback" not in err[2] and len(lines) == 1, err[2]
    assert lines[0].startswith(f"Error: {disk}/out/") and "cannot write (No space left on device)" in lines[0], lines
    assert lines[0].endswith("free some space and rerun the same command to resume (what was written before is kept)")
    # mid-step: while appending judgements to labels.jsonl (24 queries' judgements need more than the page left)
    assert lines[0].startswith(f"Error: {disk}/out/labels.jsonl: cannot write"), lines
    # earlier artifacts intact: every file of the finished steps byte for byte, their markers, no temp file
    first, second = save / "1", save / "2"
    for name in ("queries.jsonl", "rejected.jsonl", "candidates.jsonl", "mined_groups.jsonl", "generate_stats.json",
                 "mine_stats.json", ".steps/generate.json", ".steps/mine.json"):  # fmt: skip
        assert _digest(second / name) == _digest(first / name), name
    assert not list(second.rglob(".*.tmp")), "a temp file was left on the full disk"
    assert not (second / ".steps" / "label.json").exists(), "the failed step must not look complete"
    data = (second / "labels.jsonl").read_bytes()  # what was judged before the disk filled: whole records only
    assert data.endswith(b"\n"), "a torn line was left in labels.jsonl"
    written = [json.loads(line) for line in data.decode().splitlines()]
    assert written and all(r["grade"] is not None or r["error"] for r in written)
    print(f"labels written before ENOSPC: {len(written)} ({len(data)} bytes)")

    # space freed: the same command finishes, and every judgement answered before the failure comes from the cache
    assert rc[3] == 0, err[3]
    assert (save / "3" / ".steps" / "label.json").exists() and (save / "3" / "groups.jsonl").exists()
    usage = json.loads((save / "3" / "label_stats.json").read_text())["usage"]
    assert usage["calls"] == _cache_entries(cache) - int((save / "entries2").read_text()), usage
    assert usage["failures"] == {}, usage


# ----------------------------------------------------------------------------------- (c) a damaged cache


def _generate(corpus: Path, out: Path, cache: Path, server: LocalLlamaServer) -> object:
    args = ["generate", "--corpus", str(corpus), "--output-dir", str(out), "--base-url", str(server.base_url),
            "--model", server.alias, "--cache", str(cache), "--max-passages", "3", "--query-types", "keyword",
            "--json-mode", "--max-tokens", "64", "--roundtrip-k", "0"]  # fmt: skip
    return CliRunner().invoke(main, args)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "zeroed-pages"])
def test_a_damaged_response_cache_stops_the_run_in_one_line_naming_it(
    damage: str,
    tmp_path: Path,
    llama_server: LocalLlamaServer,  # noqa: F811
) -> None:
    corpus = _medquad_slice(tmp_path / "medquad-slice")
    cache = tmp_path / "llm-cache.sqlite"
    first = _generate(corpus, tmp_path / "gen1", cache, llama_server)
    assert first.exit_code == 0, first.output  # type: ignore[attr-defined]
    assert not Path(f"{cache}-wal").exists()  # closed cleanly: every answer is in the file itself
    data = cache.read_bytes()
    with contextlib.closing(sqlite3.connect(cache)) as db:
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 3
    if damage == "garbage":
        cache.write_bytes(os.urandom(len(data)))
    elif damage == "truncated":
        cache.write_bytes(data[: len(data) // 2])
    else:  # the header and schema intact, the table's pages zeroed: the file opens, its rows cannot be read
        cache.write_bytes(data[:4096] + bytes(len(data) - 4096))
    damaged = cache.read_bytes()

    second = _generate(corpus, tmp_path / "gen2", cache, llama_server)
    assert second.exit_code == 1, second.output  # type: ignore[attr-defined]
    # one line, besides the progress bar of the calls it was about to make (a damaged page is found on first read)
    output = second.output  # type: ignore[attr-defined]
    lines = [line for line in output.splitlines() if line.strip() and not line.startswith("generate:")]
    assert "Traceback" not in output and len(lines) == 1, output
    assert lines[0].startswith(f"Error: {cache}: LLM response cache unusable"), lines
    assert "delete it" in lines[0]
    assert cache.read_bytes() == damaged, "the damaged cache was written to"
    assert not (tmp_path / "gen2" / "queries.jsonl").exists() or not (tmp_path / "gen2" / "queries.jsonl").read_text()

    cache.unlink()  # what the message says to do: the next run asks again, and gets the same answers
    third = _generate(corpus, tmp_path / "gen3", cache, llama_server)
    assert third.exit_code == 0, third.output  # type: ignore[attr-defined]
    for name in ("queries.jsonl", "rejected.jsonl"):
        assert (tmp_path / "gen3" / name).read_text() == (tmp_path / "gen1" / name).read_text(), name
