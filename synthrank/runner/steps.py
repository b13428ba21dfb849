"""The step runner: each step writes its artifacts in one output folder and is skipped when complete.

A step is complete when its marker ``OUT/.steps/<name>.json`` exists, every declared output
exists, and the marker's fingerprint matches the step's configuration chained with the
fingerprints of the steps before it, and no step before it ran in this invocation. Changing a
step's settings, or losing one of its outputs, therefore reruns that step and everything
downstream, and nothing else. Work inside a step is resumed by the step itself
(append-only JSONL outputs), so a kill loses at most the record being written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from synthrank.data.jsonl import write_json
from synthrank.errors import SynthrankError
from synthrank.runner.memory import peak_resident_mb, release_memory

logger = logging.getLogger(__name__)

MARKER_DIR = ".steps"


@dataclass
class StepContext:
    """What a step function receives: where to write, its settings, and the fingerprints so far."""

    output_dir: Path
    config: dict[str, Any]
    results: dict[str, StepResult] = field(default_factory=dict)

    def path(self, name: str) -> Path:
        return self.output_dir / name


@dataclass
class Step:
    """One stage of the method.

    Args:
        name: short name, also the CLI subcommand's name.
        outputs: artifact paths relative to the output folder; all must exist after the step.
        run: does the work; returns a JSON-able summary (counts, usage, metrics) kept in the marker.
        config: the settings that determine the step's result (part of its fingerprint).
        scratch: further files or folders the step writes (partial work, checkpoints). With
            ``outputs`` they are kept when an interrupted step resumes with the same settings, and
            removed before it reruns with other settings or by force, so no stale work leaks in.
    """

    name: str
    outputs: Sequence[str]
    run: Callable[[StepContext], dict[str, Any]]
    config: dict[str, Any] = field(default_factory=dict)
    scratch: Sequence[str] = ()


@dataclass
class StepResult:
    name: str
    status: str  # "ran" or "skipped"
    seconds: float
    fingerprint: str
    summary: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "seconds": self.seconds, "fingerprint": self.fingerprint, "summary": self.summary}


def _rounded(mb: float | None) -> float | None:
    return None if mb is None else round(mb, 1)


def fingerprint(config: dict[str, Any], upstream: str = "") -> str:
    payload = json.dumps({"config": config, "upstream": upstream}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


class StepRunner:
    """Runs steps in order, skipping those whose artifacts are complete for the same settings.

    Example:
        >>> runner = StepRunner(Path("out"))
        >>> results = runner.run([Step("generate", ["queries.jsonl"], generate_fn, cfg["generate"]), ...])
    """

    def __init__(self, output_dir: str | Path) -> None:
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / MARKER_DIR).mkdir(exist_ok=True)

    def marker_path(self, name: str) -> Path:
        return self.output_dir / MARKER_DIR / f"{name}.json"

    def is_complete(self, step: Step, fp: str) -> dict[str, Any] | None:
        marker = self.marker_path(step.name)
        if not marker.exists():
            return None
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return None
        if data.get("fingerprint") != fp:
            logger.info("step %s: settings or upstream changed, rerunning", step.name)
            return None
        if not all((self.output_dir / out).exists() for out in step.outputs):
            return None
        return data

    def _prepare(self, step: Step, fp: str, *, forced: bool) -> None:
        """Keep an interrupted step's partial work for the same settings; clear it otherwise."""
        started = self.output_dir / MARKER_DIR / f"{step.name}.started.json"
        previous = None
        if started.exists():
            try:
                previous = json.loads(started.read_text(encoding="utf-8")).get("fingerprint")
            except json.JSONDecodeError:
                previous = None
        if forced or (previous is not None and previous != fp):
            for name in [*step.outputs, *step.scratch]:
                target = self.output_dir / name
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink(missing_ok=True)
            logger.info("step %s: cleared the work of an earlier run with other settings", step.name)
        write_json(started, {"name": step.name, "fingerprint": fp})

    def run(self, steps: Sequence[Step], *, force: Sequence[str] = ()) -> list[StepResult]:
        names = [s.name for s in steps]
        unknown = set(force) - set(names)
        if unknown:
            raise SynthrankError(f"unknown step(s) to force: {sorted(unknown)}; steps are {names}")
        ctx = StepContext(self.output_dir, {})
        results: list[StepResult] = []
        upstream = ""
        forced = False
        for step in steps:
            fp = fingerprint(step.config, upstream)
            forced = forced or step.name in force
            done = None if forced else self.is_complete(step, fp)
            if done is not None:
                result = StepResult(step.name, "skipped", 0.0, fp, done.get("summary", {}))
                logger.info("step %s: complete, skipped", step.name)
            else:
                self.marker_path(step.name).unlink(missing_ok=True)
                self._prepare(step, fp, forced=forced)
                ctx.config = step.config
                logger.info("step %s: running", step.name)
                t0 = time.perf_counter()
                summary = step.run(ctx) or {}
                seconds = time.perf_counter() - t0
                _, resident = release_memory()
                summary = {**summary, "peak_rss_mb": _rounded(peak_resident_mb()), "rss_after_mb": _rounded(resident)}
                missing = [out for out in step.outputs if not (self.output_dir / out).exists()]
                if missing:
                    raise SynthrankError(f"step {step.name!r} finished without writing {missing}")
                result = StepResult(step.name, "ran", seconds, fp, summary)
                write_json(
                    self.marker_path(step.name),
                    {**result.to_json(), "finished_at": datetime.now(UTC).isoformat(timespec="seconds")},
                )
            ctx.results[step.name] = result
            results.append(result)
            upstream = fp
            forced = forced or result.status == "ran"  # its inputs may have changed: rerun what follows
        return results
