"""Evaluation: runs, ir_measures metrics, paired significance tests, reports."""

from __future__ import annotations

from synthrank.evaluate.metrics import DEFAULT_METRICS, Evaluation, Run, default_metrics, evaluate_run, to_ir_measure
from synthrank.evaluate.pipeline import EvaluationReport, evaluate_systems, first_stage, format_table, rerank_run
from synthrank.evaluate.significance import PairedTest, paired_t_test, paired_t_test_per_query

__all__ = [
    "DEFAULT_METRICS",
    "Evaluation",
    "EvaluationReport",
    "PairedTest",
    "Run",
    "default_metrics",
    "evaluate_run",
    "evaluate_systems",
    "first_stage",
    "format_table",
    "paired_t_test",
    "paired_t_test_per_query",
    "rerank_run",
    "to_ir_measure",
]
