"""One entry point from "a model name or folder" to a :class:`PairScorer`, whatever kind of model it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from synthrank.errors import ModelError
from synthrank.rerank.base import PairScorer
from synthrank.rerank.bi_encoder import BiEncoderScorer
from synthrank.rerank.cross_encoder import CrossEncoderReranker
from synthrank.runtime.models import inspect_model

ScorerKind = Literal["auto", "cross-encoder", "bi-encoder", "llm"]


def load_scorer(
    model: str | Path,
    kind: ScorerKind | str = "auto",
    *,
    fuse_with: str | Path | None = None,
    fusion_weight: float = 0.0,
    **kwargs: Any,
) -> PairScorer:
    """Build the right scorer for ``model``; keyword arguments go to its constructor.

    ``fuse_with`` names a second model mixed in with weight ``fusion_weight`` (see :func:`load_fused_scorer`).

    ``kind="auto"`` reads the model's config: a folder the LoRA trainer wrote becomes the LLM
    reranker (:class:`~synthrank.llmrank.CausalLMReranker`), a one-logit ``*ForSequenceClassification``
    model a :class:`CrossEncoderReranker`, a plain encoder (e.g. the packaged ``"minilm"``
    sentence embedder) a zero-shot :class:`BiEncoderScorer`. ``kind="llm"`` takes any causal LM
    (a packaged GGUF name, a ``.gguf`` file, a folder) as an untuned LLM reranker. Anything else (a multi-class
    classifier, a generative LLM, a folder without a recognisable architecture) raises
    :class:`~synthrank.errors.ModelError` saying what was found.

    Example:
        >>> load_scorer("runs/medquad/model")        # a trained cross-encoder
        >>> load_scorer("minilm")                    # the zero-shot bi-encoder baseline
        >>> load_scorer("minilm", kind="cross-encoder", fresh_head=True)  # untrained head, for plumbing
        >>> load_scorer("qwen2.5-coder-0.5b", kind="llm")  # an untuned LLM as a pointwise reranker
    """
    if fuse_with:
        return load_fused_scorer(model, fuse_with, fusion_weight, kind=kind, **kwargs)
    if kind == "llm" or (kind == "auto" and _is_llm_reranker(model)):
        from synthrank.llmrank import load_llm_scorer  # torch + peft only when an LLM is asked for

        return load_llm_scorer(str(model), **kwargs)
    if kind == "cross-encoder":
        return CrossEncoderReranker(model, **kwargs)
    if kind == "bi-encoder":
        return BiEncoderScorer(model, **kwargs)
    if kind != "auto":
        raise ValueError(f"kind must be 'auto', 'cross-encoder', 'bi-encoder' or 'llm', got {kind!r}")
    info = inspect_model(model, trust_remote_code=bool(kwargs.get("trust_remote_code", False)))
    if info.kind == "cross-encoder":
        return CrossEncoderReranker(model, **kwargs)
    if info.kind == "encoder":
        return BiEncoderScorer(model, **kwargs)
    if info.kind == "classifier":
        raise ModelError(
            f"{info.source} is {info.describe()}: a reranker needs exactly one relevance logit "
            "(num_labels=1); train one with `synthrank train`"
        )
    if info.kind == "generative":
        raise ModelError(
            f"{info.source} is {info.describe()}: generative LLMs rerank through the LLM judge "
            "(synthrank.label), not through load_scorer"
        )
    raise ModelError(
        f"{info.source} is not a model synthrank can rerank with: {info.describe()}; expected a one-logit "
        "sequence-classification cross-encoder or a transformer encoder"
    )


def load_fused_scorer(
    model: str | Path, fuse_with: str | Path, weight: float, *, kind: ScorerKind | str = "auto", **kwargs: Any
) -> PairScorer:
    """``model`` fused with a second model (e.g. the zero-shot ``"minilm"``): ``(1 - weight) * model + weight * other``.

    Both are loaded by :func:`load_scorer` with the same keyword arguments (device, batch size...);
    scores are per-query z-scores (see :class:`~synthrank.rerank.fusion.FusedScorer`). ``synthrank run``
    picks ``weight`` on held-out synthetic groups and writes it to ``OUT/evaluation.json``.

    Example:
        >>> load_fused_scorer("runs/medquad/train/model", "minilm", 0.3)
    """
    from synthrank.rerank.fusion import FusedScorer

    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"fusion weight must lie in [0, 1], got {weight}")
    first = load_scorer(model, kind=kind, **kwargs)
    second = load_scorer(fuse_with, kind="auto", **kwargs)
    return FusedScorer([first, second], [1.0 - weight, weight], [Path(str(model)).name, Path(str(fuse_with)).name])


def _is_llm_reranker(model: str | Path) -> bool:
    from synthrank.llmrank.scorer import is_llmrank_model

    return is_llmrank_model(model)
