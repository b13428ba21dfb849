"""`RelevanceLabeler`: a result frame -> ``label`` (0-3) from the core's LLM judge."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import pyterrier as pt

from pyterrier_synthrank.frames import document_texts, query_texts
from synthrank.label.judge import JudgeItem, LLMJudge

logger = logging.getLogger(__name__)


class RelevanceLabeler(pt.Transformer):
    """Labels each (query, document) row of a result frame with the core's pointwise LLM judge.

    Adds ``label`` (grade 0-3, nullable: ``<NA>`` where the judge gave no usable answer),
    ``label_probability`` (P(relevant) from log-probabilities, when the endpoint gives them) and
    ``label_reason``. Rows and all other columns are kept; the input is never modified. The
    judge itself is a ``PairScorer``, so ``SynthReranker(judge)`` uses it as a (slow) reranker.

    Args:
        llm: a :class:`synthrank.llm.LLMClient`; ``None`` starts the packaged local model on first use.
        judge: a ready :class:`~synthrank.label.judge.LLMJudge` (then ``llm``/``options`` are not used).
        text_field: column holding the document text.
        verbose: progress bar.
        **options: :class:`~synthrank.label.judge.LLMJudge` options (``mode``, ``relevant_grade``, ``self_consistency``…).

    Example:
        >>> labelled = (bm25 % 10 >> RelevanceLabeler(llm)).transform(topics)
        >>> labelled[labelled.label >= 2]
    """

    def __init__(
        self,
        llm: Any = None,
        *,
        judge: LLMJudge | None = None,
        text_field: str = "text",
        verbose: bool = False,
        **options: Any,
    ) -> None:
        if judge is not None and (llm is not None or options):
            raise ValueError("pass either judge= or llm and judge options, not both")
        self.llm = llm
        self.options = options
        self._judge = judge
        self.text_field = text_field
        self.verbose = verbose
        if judge is None and llm is not None:
            self._judge = LLMJudge(llm, **options)

    def __repr__(self) -> str:
        return f"RelevanceLabeler({self._judge!r}, text_field={self.text_field!r})"

    @property
    def judge(self) -> LLMJudge:
        if self._judge is None:
            from synthrank.llm.client import LLMClient

            self.llm = LLMClient()
            self._judge = LLMJudge(self.llm, **self.options)
        return self._judge

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        pt.validate.result_frame(inp, extra_columns=["query", self.text_field])
        out = inp.drop(columns=["label", "label_probability", "label_reason"], errors="ignore").reset_index(drop=True)
        if len(out) == 0:
            out["label"] = pd.Series(dtype="Int64")
            out["label_probability"] = pd.Series(dtype="float64")
            out["label_reason"] = pd.Series(dtype="object")
            return out
        who = repr(self)
        queries = query_texts(out, who=who)
        texts = document_texts(out, self.text_field, who=who)
        instructions = out["instruction"].tolist() if "instruction" in out.columns else [None] * len(out)
        items = [
            JudgeItem(q, t, i if isinstance(i, str) and i.strip() else None)
            for q, t, i in zip(queries, texts, instructions, strict=True)
        ]
        judgements = self.judge.judge_many(items, show_progress=self.verbose)
        out["label"] = pd.array([j.grade for j in judgements], dtype="Int64")
        out["label_probability"] = pd.Series(
            [j.probability if j.probability is not None else float("nan") for j in judgements], dtype="float64"
        )
        out["label_reason"] = [j.reason for j in judgements]
        failed = sum(1 for j in judgements if j.grade is None)
        if failed:
            logger.warning("the judge gave no usable answer for %d of %d rows", failed, len(judgements))
        return out
