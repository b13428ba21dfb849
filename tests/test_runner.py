from __future__ import annotations

import sys
from pathlib import Path

import pytest

from synthrank.errors import SynthrankError
from synthrank.runner import Step, StepContext, StepRunner


def make_steps(calls: list[str], cfg_b: dict | None = None) -> list[Step]:
    def a(ctx: StepContext) -> dict:
        calls.append("a")
        ctx.path("a.txt").write_text("a")
        return {"n": 1}

    def b(ctx: StepContext) -> dict:
        calls.append("b")
        ctx.path("b.txt").write_text(ctx.path("a.txt").read_text() + "b")
        return {"n": 2}

    def c(ctx: StepContext) -> dict:
        calls.append("c")
        ctx.path("c.txt").write_text("c")
        return {}

    return [Step("a", ["a.txt"], a, {"x": 1}), Step("b", ["b.txt"], b, cfg_b or {"y": 1}), Step("c", ["c.txt"], c)]


def test_complete_steps_are_skipped_and_summaries_kept(tmp_path: Path) -> None:
    calls: list[str] = []
    first = StepRunner(tmp_path).run(make_steps(calls))
    assert [r.status for r in first] == ["ran", "ran", "ran"] and calls == ["a", "b", "c"]
    second = StepRunner(tmp_path).run(make_steps(calls))
    assert [r.status for r in second] == ["skipped"] * 3 and calls == ["a", "b", "c"]
    assert second[1].summary["n"] == 2
    # every step that ran records the process's memory, after releasing what the step left behind
    if sys.platform.startswith("linux"):
        assert second[1].summary["peak_rss_mb"] >= second[1].summary["rss_after_mb"] > 0


def test_changed_settings_rerun_that_step_and_downstream(tmp_path: Path) -> None:
    calls: list[str] = []
    StepRunner(tmp_path).run(make_steps(calls))
    calls.clear()
    StepRunner(tmp_path).run(make_steps(calls, cfg_b={"y": 2}))
    assert calls == ["b", "c"]


def test_missing_output_or_killed_step_reruns(tmp_path: Path) -> None:
    calls: list[str] = []
    StepRunner(tmp_path).run(make_steps(calls))
    (tmp_path / "b.txt").unlink()
    calls.clear()
    StepRunner(tmp_path).run(make_steps(calls))
    assert calls == ["b", "c"]  # what follows a rerun step reruns: its input may have changed
    (tmp_path / ".steps" / "c.json").unlink()  # killed before its marker was written
    calls.clear()
    StepRunner(tmp_path).run(make_steps(calls))
    assert calls == ["c"]


def test_force_and_errors(tmp_path: Path) -> None:
    calls: list[str] = []
    StepRunner(tmp_path).run(make_steps(calls))
    calls.clear()
    StepRunner(tmp_path).run(make_steps(calls), force=["b"])
    assert calls == ["b", "c"]
    with pytest.raises(SynthrankError, match="unknown step"):
        StepRunner(tmp_path).run(make_steps(calls), force=["zz"])
    bad = Step("bad", ["never.txt"], lambda ctx: {})
    with pytest.raises(SynthrankError, match="finished without writing"):
        StepRunner(tmp_path).run([bad])


def test_partial_work_kept_for_same_settings_cleared_for_others(tmp_path: Path) -> None:
    seen: list[str] = []

    def partial(ctx: StepContext) -> dict:
        log = ctx.path("work.jsonl")
        seen.append(log.read_text() if log.exists() else "")
        with log.open("a") as fh:
            fh.write("x")
        if ctx.config.get("fail"):
            raise RuntimeError("killed")
        ctx.path("done.txt").write_text("ok")
        return {}

    def steps(cfg: dict) -> list[Step]:
        return [Step("p", ["done.txt"], partial, cfg, scratch=["work.jsonl"])]

    with pytest.raises(RuntimeError):
        StepRunner(tmp_path).run(steps({"v": 1, "fail": True}))
    with pytest.raises(RuntimeError):
        StepRunner(tmp_path).run(steps({"v": 1, "fail": True}))
    assert seen == ["", "x"]  # the interrupted step resumed on its own partial work
    StepRunner(tmp_path).run(steps({"v": 2}))
    assert seen[-1] == ""  # other settings: the earlier partial work was removed first
    StepRunner(tmp_path).run(steps({"v": 2}), force=["p"])
    assert seen[-1] == "" and (tmp_path / "work.jsonl").read_text() == "x"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim and /proc/self/statm are glibc/Linux")
def test_release_memory_returns_freed_heap_to_the_system() -> None:
    """Freed small allocations stay resident in glibc's heap until trimmed: the runner trims after each step."""
    import ctypes

    from synthrank.runner.memory import release_memory, resident_mb

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    chunk = 64 * 1024  # below glibc's mmap threshold: served from the heap, not returned on free
    blocks = [libc.malloc(chunk) for _ in range(3000)]
    for b in blocks:
        ctypes.memset(b, 1, chunk)
    for b in blocks[:-1]:  # the last block pins the heap's top, so free() alone cannot shrink it
        libc.free(b)
    held = resident_mb()
    before, after = release_memory()
    libc.free(blocks[-1])
    assert held is not None and before is not None and after is not None
    assert before - after > 100, (held, before, after)  # ~190 MB were freed but resident


def test_a_failed_start_is_undone_but_partial_work_is_kept(tmp_path: Path) -> None:
    """Caught (as mutations of ``holds_work``): treating any file as work (the failed start stayed) and treating
    only bookkeeping as work (an interrupted run's partial queries were deleted)."""
    from synthrank.runner.output_dir import removed_if_no_work

    def fail_after(out: Path, files: dict[str, str], error: type[BaseException] = SynthrankError) -> None:
        with pytest.raises(error), removed_if_no_work(out, bookkeeping=[".steps", "run_config.json"]):
            (out / ".steps").mkdir(parents=True, exist_ok=True)
            (out / ".steps" / "generate.started.json").write_text("{}")
            (out / "run_config.json").write_text("{}")
            for name, text in files.items():
                (out / name).write_text(text)
            raise error("bad corpus")

    fail_after(tmp_path / "new", {"queries.jsonl": ""})  # an empty artifact is no work
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()
    fail_after(tmp_path / "mine", {})
    assert (tmp_path / "mine").is_dir() and list((tmp_path / "mine").iterdir()) == []
    fail_after(tmp_path / "partial", {"queries.jsonl": '{"query_id": "q1"}\n'})
    assert (tmp_path / "partial" / "queries.jsonl").exists() and (tmp_path / "partial" / ".steps").is_dir()
    fail_after(tmp_path / "interrupted", {}, KeyboardInterrupt)  # Ctrl-C is no failure: the run resumes
    assert (tmp_path / "interrupted" / ".steps" / "generate.started.json").exists()
