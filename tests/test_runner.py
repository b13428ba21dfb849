from __future__ import annotations

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
    assert second[1].summary == {"n": 2}


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
