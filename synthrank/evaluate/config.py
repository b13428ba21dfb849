"""The settings of a run's evaluate step, as one dataclass: its defaults and validation live here only.

`synthrank run`'s ``evaluate`` section starts from :func:`~synthrank.config_fields.field_defaults` of
:class:`EvaluateConfig`, and the step builds one from the section, so a wrong value (an unknown baseline, a depth
of 0) is an error naming ``evaluate.<field>`` before any model is scored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from synthrank.config_fields import strict_from_dict
from synthrank.errors import DataError, ModelError

BASELINES: tuple[str, ...] = ("bm25", "zero-shot", "llm-judge")


@dataclass
class EvaluateConfig:
    """How a run scores its trained model on judged queries.

    Args:
        data: judged queries (a BEIR folder or an ``ir_datasets`` id); ``None``: the corpus, when it has qrels.
        split: the split of ``data`` evaluated.
        top_k: BM25 candidates reranked per query.
        max_queries: a seeded sample of this many judged queries (``None``: all).
        baselines: rows besides the trained model: ``bm25``, ``zero-shot`` (the untuned encoder) and
            ``llm-judge`` (the LLM itself as a reranker: slow, on ``llm_judge_max_queries`` queries).
        zero_shot_model: the untuned encoder of the ``zero-shot`` row.
        fusion: add a row fusing the trained model with the zero-shot one (weight picked on held-out synthetic groups).
        first_stage_fusion: add a row fusing the trained model with BM25's own scores, the weight picked on the
            run's kept synthetic queries by the one-standard-error rule
            (:func:`~synthrank.rerank.first_stage.pick_first_stage_weight`); serve it with ``first_stage_weight``.
        first_stage_rule: how that weight is picked: ``one_se`` (the least BM25 weight within one standard error
            of the best) or ``bagged`` (that rule averaged over 200 resamples of the source passages: steadier at
            small budgets, where the ``one_se`` choice jumps between grid points as a few passages come and go).
        llm_judge_max_queries: queries the LLM judge reranks.
        llm_judge_top_k: BM25 depth the judge (and, on its subset, every system) reranks; ``None``: ``top_k``.
        batch_size: pairs per forward pass.
        dtype: ``"auto"``: bf16/fp16 on CUDA, bf16 autocast on a CPU with AMX or AVX512-BF16 (2-3x faster, rankings
            as in fp32), fp32 on other CPUs; every system of the evaluation scores in the same precision.
    """

    data: str | None = None
    split: str = "test"
    top_k: int = 30
    max_queries: int | None = None
    baselines: list[str] = field(default_factory=lambda: ["bm25", "zero-shot"])
    zero_shot_model: str = "minilm"
    fusion: bool = True
    first_stage_fusion: bool = True
    first_stage_rule: str = "one_se"
    llm_judge_max_queries: int = 50
    llm_judge_top_k: int | None = None
    batch_size: int = 64
    dtype: str = "auto"

    def __post_init__(self) -> None:
        from synthrank.runtime.precision import parse_precision

        for name in ("top_k", "batch_size", "llm_judge_max_queries"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DataError(f"must be an integer of at least 1, got {value!r}", field=f"evaluate.{name}")
        for name in ("max_queries", "llm_judge_top_k"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise DataError(f"must be an integer of at least 1 or null, got {value!r}", field=f"evaluate.{name}")
        if isinstance(self.baselines, str) or not isinstance(self.baselines, list):
            raise DataError(f"must be a list, got {self.baselines!r}", field="evaluate.baselines")
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise DataError(f"unknown baselines {unknown}; known: {', '.join(BASELINES)}", field="evaluate.baselines")
        from synthrank.rerank.first_stage import FIRST_STAGE_RULES

        if self.first_stage_rule not in FIRST_STAGE_RULES:
            raise DataError(f"unknown rule {self.first_stage_rule!r}; known: {', '.join(FIRST_STAGE_RULES)}",
                            field="evaluate.first_stage_rule")  # fmt: skip
        if self.dtype != "auto":
            try:
                parse_precision(self.dtype)
            except ModelError as exc:
                raise DataError(str(exc), field="evaluate.dtype") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluateConfig:
        """Build from the ``evaluate`` section; an unknown key is a :class:`DataError` naming it."""
        return strict_from_dict(cls, data, section="evaluate")
