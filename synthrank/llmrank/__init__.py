"""LIMRANK-style pointwise LLM reranker: a causal LM fine-tuned with LoRA to answer "relevant? true/false".

The second model family of synthrank, beside the LCE cross-encoder, trained on the same
synthetic data: more expensive per pair, stronger per example. The pieces:

- :mod:`~synthrank.llmrank.convert`: packaged GGUF models -> ordinary HF folders (once, cached);
- :mod:`~synthrank.llmrank.prompt`: the one prompt, shared by training and both scorers;
- :mod:`~synthrank.llmrank.data`: balanced SFT examples from training groups or judge labels;
- :mod:`~synthrank.llmrank.trainer`: LoRA SFT with exact resume; adapter and merged outputs;
- :mod:`~synthrank.llmrank.scorer`: :class:`CausalLMReranker`, P(true) from next-token logits;
- :mod:`~synthrank.llmrank.endpoint`: :class:`EndpointLLMReranker`, the same through an OpenAI-compatible server.

Both rerankers implement :class:`synthrank.rerank.base.PairScorer`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthrank.llmrank.convert import convert_gguf_to_hf, resolve_causal_lm
from synthrank.llmrank.data import (
    SFTExample,
    class_counts,
    examples_from_groups,
    examples_from_labels,
    read_examples,
    read_query_texts,
    write_examples,
)
from synthrank.llmrank.endpoint import EndpointLLMReranker, answer_probability
from synthrank.llmrank.prompt import AnswerTokens, PointwisePrompt, PromptEncoder, resolve_answer_tokens
from synthrank.llmrank.scorer import CausalLMReranker, find_model_dir, is_llmrank_model
from synthrank.llmrank.trainer import LoRATrainer, LoRATrainingConfig, TrainResult, train_llm_reranker


def load_llm_scorer(
    model: str | Path,
    *,
    device: str | None = None,
    batch_size: int | None = None,
    max_length: int | None = None,
    score: str = "log_odds",
    **options: Any,
) -> CausalLMReranker:
    """A :class:`CausalLMReranker` from the options the adapters pass to ``load_scorer`` (for ``kind="llm"``).

    Scores are log-odds by default, the analogue of a cross-encoder's raw logit: the Haystack
    ranker's ``scale_score`` sigmoid then gives exactly P(true) / (P(true) + P(false)).
    ``max_length`` defaults to the one the model was trained with (else 512).
    """
    from synthrank.llmrank.scorer import read_metadata

    found = find_model_dir(model)
    trained_length = read_metadata(found).get("max_length") if found is not None else None
    return CausalLMReranker(
        model,
        device=device,
        batch_size=batch_size or 8,
        max_length=max_length or int(trained_length or 512),
        score=score,
        **options,
    )


__all__ = [
    "AnswerTokens",
    "CausalLMReranker",
    "EndpointLLMReranker",
    "LoRATrainer",
    "LoRATrainingConfig",
    "PointwisePrompt",
    "PromptEncoder",
    "SFTExample",
    "TrainResult",
    "answer_probability",
    "class_counts",
    "convert_gguf_to_hf",
    "examples_from_groups",
    "examples_from_labels",
    "find_model_dir",
    "is_llmrank_model",
    "load_llm_scorer",
    "read_examples",
    "read_query_texts",
    "resolve_answer_tokens",
    "resolve_causal_lm",
    "train_llm_reranker",
    "write_examples",
]
