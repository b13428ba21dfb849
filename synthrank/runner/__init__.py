"""The step runner behind `synthrank run`: artifacts in one folder, complete steps skipped."""

from __future__ import annotations

from synthrank.runner.steps import Step, StepContext, StepResult, StepRunner, fingerprint

__all__ = ["Step", "StepContext", "StepResult", "StepRunner", "fingerprint"]
