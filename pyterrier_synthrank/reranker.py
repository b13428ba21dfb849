"""`SynthReranker`: any synthrank scorer (LCE cross-encoder, LoRA LLM reranker, bi-encoder, judge) as a re-ranker."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyterrier as pt

from pyterrier_synthrank.frames import document_texts, query_texts
from synthrank.rerank.base import PairScorer
from synthrank.rerank.fusion import fuse_scores
from synthrank.rerank.serving import AUTO, check_first_stage_setting, resolve_first_stage_weight

logger = logging.getLogger(__name__)


def load_pair_scorer(
    model: str | Path,
    *,
    kind: str = "auto",
    device: str | None = None,
    batch_size: int | None = None,
    max_length: int | None = None,
    fuse_with: str | Path | None = None,
    fusion_weight: float = 0.0,
    **kwargs: Any,
) -> PairScorer:
    """Build a core scorer by name or path through the core loaders (the adapters never load models themselves).

    ``kind="llm"``, or ``"auto"`` on a folder the LoRA trainer wrote, gives the core's LLM reranker
    (``synthrank.llmrank.load_llm_scorer``); anything else goes to ``synthrank.rerank.load_scorer``.
    ``fuse_with`` mixes in a second model's per-query z-scores with weight ``fusion_weight``
    (``synthrank.rerank.load_fused_scorer``).
    """
    options: dict[str, Any] = dict(kwargs)
    if device is not None:
        options["device"] = device
    if batch_size is not None:
        options["batch_size"] = batch_size
    if max_length is not None:
        options["max_length"] = max_length
    from synthrank.rerank.factory import load_scorer

    return load_scorer(str(model), kind=kind, fuse_with=fuse_with, fusion_weight=fusion_weight, **options)


class SynthReranker(pt.Transformer):
    """Re-ranks a result frame with a synthrank model: ``qid, query, docno, text`` in, ``score, rank`` out.

    The scores are exactly the core scorer's on the same (query, text) pairs. Old ``score`` and
    ``rank`` columns are replaced; every other column is kept; the input frame is never modified.
    A zero-row input returns a zero-row frame with typed ``score``/``rank`` columns, as
    ``pt.Experiment`` probes transformers that way.

    Args:
        model: a trained model directory or name (loaded with the core's ``load_scorer``), or a
            ready :class:`~synthrank.rerank.base.PairScorer` (e.g. the LLM judge or a bi-encoder).
        batch_size: pairs per forward pass when loading by name (a ready scorer keeps its own).
        text_field: column holding the document text.
        verbose: progress bar while scoring.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``…; ``None`` picks CUDA when available.
        kind: ``"auto"`` (detected from the folder: LCE cross-encoder, LoRA/merged LLM reranker, or a plain
            encoder as bi-encoder), ``"cross-encoder"``, ``"bi-encoder"`` or ``"llm"`` (any causal LM, true/false).
        max_length: token limit of a (query, document) pair when loading by name.
        fuse_with: a second model (e.g. ``"minilm"``, the zero-shot bi-encoder) mixed in by per-query
            z-scores with weight ``fusion_weight`` (``synthrank run`` writes the weight it picked on held-out
            synthetic data to ``evaluation.json``); for a model given by name.
        fusion_weight: the second model's weight in [0, 1].
        first_stage_weight: the input frame's own ``score`` (e.g. BM25's) mixed in by per-query z-scores with
            this weight in [0, 1]: ``w x z(score) + (1 - w) x z(model)``. ``"auto"`` (the default): the weight
            ``synthrank run`` picked for BM25 on its synthetic queries and wrote into the model folder
            (``synthrank_serving.json``; :func:`synthrank.rerank.first_stage.pick_first_stage_weight`, the
            one-standard-error rule), 0 for a folder without one or a ready scorer; a frame without ``score``
            is then ranked by the model alone, with a warning. Pass ``0`` after a first stage other than BM25.

    Example:
        >>> reranker = SynthReranker("runs/medquad/model", batch_size=64)
        >>> pipeline = SynthBM25.from_documents(corpus_iter, num_results=100) >> reranker
        >>> pt.Experiment([bm25, pipeline], topics, qrels, eval_metrics=[pt.measures.nDCG @ 10])
    """

    def __init__(
        self,
        model: str | Path | PairScorer,
        *,
        batch_size: int = 32,
        text_field: str = "text",
        verbose: bool = False,
        device: str | None = None,
        kind: str = "auto",
        max_length: int | None = None,
        fuse_with: str | Path | None = None,
        fusion_weight: float = 0.0,
        first_stage_weight: float | str = "auto",
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        setting = check_first_stage_setting(first_stage_weight)
        self.first_stage_explicit = setting != AUTO
        self.first_stage_weight = resolve_first_stage_weight(setting, model if isinstance(model, (str, Path)) else None)
        self.batch_size = batch_size
        self.text_field = text_field
        self.verbose = verbose
        self.device = device
        self.kind = kind
        self.max_length = max_length
        if isinstance(model, (str, Path)):
            self.model_name = str(model)
            self.scorer = load_pair_scorer(
                model,
                kind=kind,
                device=device,
                batch_size=batch_size,
                max_length=max_length,
                fuse_with=fuse_with,
                fusion_weight=fusion_weight,
            )
        elif isinstance(model, PairScorer):
            self.model_name = type(model).__name__
            self.scorer = model
        else:
            raise TypeError(
                f"model must be a model path/name or an object with score_pairs(queries, documents), got {type(model).__name__}"
            )

    def __repr__(self) -> str:
        return (
            f"SynthReranker({self.model_name!r}, batch_size={self.batch_size}, text_field={self.text_field!r}, "
            f"device={self.device!r}"
            + (f", first_stage_weight={self.first_stage_weight}" if self.first_stage_weight else "")
            + ")"
        )

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        weight = self.first_stage_weight
        if weight and not self.first_stage_explicit and "score" not in inp.columns:
            logger.warning("%r: the input frame has no 'score' column: ranked by the model alone, without the model "
                           "folder's first-stage weight", self)  # fmt: skip
            weight = 0.0
        extra = ["query", self.text_field] + (["score"] if weight else [])
        pt.validate.result_frame(inp, extra_columns=extra)
        first_stage = inp["score"].to_numpy(dtype=np.float64) if weight else None
        out = inp.drop(columns=["score", "rank"], errors="ignore").reset_index(drop=True)
        if len(out) == 0:
            out["score"] = pd.Series(dtype="float64")
            out["rank"] = pd.Series(dtype="int64")
            return out
        who = repr(self)
        queries = query_texts(out, who=who)
        texts = document_texts(out, self.text_field, who=who)
        scores = np.asarray(self.scorer.score_pairs(queries, texts, show_progress=self.verbose), dtype=np.float64)
        if scores.shape != (len(out),):
            raise ValueError(f"{who}: the scorer returned {scores.shape} scores for {len(out)} pairs")
        if first_stage is not None:
            if not np.isfinite(first_stage).all():
                raise ValueError(f"{who}: first_stage_weight needs a numeric 'score' on every row")
            w = weight
            qids = out["qid"].astype(str).tolist()
            scores = fuse_scores(qids, [scores, first_stage], [1.0 - w, w]).astype(np.float64)
        out["score"] = scores
        return pt.model.add_ranks(out)
