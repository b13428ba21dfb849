"""Run the steps of one config over one output folder, then write the report."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from synthrank.data import write_json
from synthrank.errors import SynthrankError
from synthrank.pipeline.report import write_report
from synthrank.pipeline.stages import STEP_NAMES, RunContext, build_steps
from synthrank.runner.output_dir import removed_if_no_work
from synthrank.runner.steps import MARKER_DIR, Step, StepResult, StepRunner

logger = logging.getLogger(__name__)


def run_pipeline(
    config: Mapping[str, Any],
    output_dir: str | Path,
    *,
    until: str | None = None,
    force: Sequence[str] = (),
    show_progress: bool = True,
) -> list[StepResult]:
    """Run (or resume) the method; steps whose artifacts are complete for the same settings are skipped.

    Args:
        config: a run config from :func:`~synthrank.pipeline.load_run_config`.
        output_dir: every artifact, the step markers and ``report.md`` go here.
        until: stop after this step (e.g. ``"label"`` to build training data only).
        force: rerun these steps (and, as their outputs change, everything after them).

    Example:
        >>> results = run_pipeline(load_run_config(overrides={"corpus": "data/medquad"}), "runs/medquad")
    """
    out = Path(output_dir)
    if until is not None and until not in STEP_NAMES:
        raise SynthrankError(f"unknown step {until!r}; steps are {', '.join(STEP_NAMES)}")
    run = RunContext(config, out, show_progress=show_progress)
    steps = build_steps(run)
    if until is not None:
        steps = steps[: STEP_NAMES.index(until) + 1]
    if any(step.name == "train" for step in steps):
        check_train_memory(config["train"])  # before the LLM steps: minutes of LLM time for a run that cannot train
    if (out / MARKER_DIR).is_dir():
        return _run(out, config, steps, force)
    # a new run: a failure before any work (a bad corpus, no LLM) leaves no folder that looks like a run to resume
    with removed_if_no_work(out, bookkeeping=[MARKER_DIR, "run_config.json"]):
        return _run(out, config, steps, force)


def check_train_memory(section: Mapping[str, Any]) -> None:
    """Refuse, with what it needs, a run whose training cannot fit this machine's memory even with every pass
    recomputed (the trainer checks again when it starts and lowers ``activation_budget_mb`` where that fits)."""
    from synthrank.pipeline.stages import train_config_from_section
    from synthrank.runtime import resolve_device
    from synthrank.train.memory import backbone_config, fit_train_memory

    config = train_config_from_section(section)
    if resolve_device(config.device) == "cpu":
        fit_train_memory(config, backbone_config(config))


def _run(out: Path, config: Mapping[str, Any], steps: Sequence[Step], force: Sequence[str]) -> list[StepResult]:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "run_config.json", _redacted(config))
    results = StepRunner(out).run(steps, force=force)
    write_report(out, config, results)
    return results


def _redacted(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config as run; it names environment variables for secrets, never their values."""
    return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in config.items()}
