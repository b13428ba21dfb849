"""LLM relevance labelling: a pointwise judge, and positives / hard negatives from its verdicts."""

from __future__ import annotations

from synthrank.label.judge import JudgeItem, Judgement, LLMJudge, grade_probability, yes_probability
from synthrank.label.labeler import (
    CandidateQuery,
    LabelConfig,
    Labeler,
    LabelReport,
    candidates_from_retriever,
    read_candidates,
)
from synthrank.label.negatives import fill_negatives
from synthrank.label.prompts import JUDGE_PROMPT_VERSION
from synthrank.label.step import label_to_groups

__all__ = [
    "JUDGE_PROMPT_VERSION",
    "CandidateQuery",
    "JudgeItem",
    "Judgement",
    "LLMJudge",
    "LabelConfig",
    "LabelReport",
    "Labeler",
    "candidates_from_retriever",
    "fill_negatives",
    "grade_probability",
    "label_to_groups",
    "read_candidates",
    "yes_probability",
]
