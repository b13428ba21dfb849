"""The end-to-end method on one corpus: generate -> mine -> label -> train -> evaluate, resumable."""

from __future__ import annotations

from synthrank.pipeline.config import DEFAULTS, load_run_config
from synthrank.pipeline.report import write_report
from synthrank.pipeline.run import run_pipeline
from synthrank.pipeline.stages import (
    STEP_NAMES,
    RunContext,
    build_steps,
    split_dev,
    subsample_queries,
    train_config_from_section,
)

__all__ = [
    "DEFAULTS",
    "STEP_NAMES",
    "RunContext",
    "build_steps",
    "load_run_config",
    "run_pipeline",
    "split_dev",
    "subsample_queries",
    "train_config_from_section",
    "write_report",
]
