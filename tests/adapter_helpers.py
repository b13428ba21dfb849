"""Shared by the adapter tests: a tiny, deterministic, real PairScorer (no model weights needed).

It is a genuine implementation of the core protocol (term overlap), so adapter tests check the
plumbing — which pairs reach the scorer, and how the scores come back — against a scorer whose
output is easy to recompute by hand. Tests with the real cross-encoder live beside them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

_WORD = re.compile(r"[a-z0-9]+")


class OverlapScorer:
    """Score = distinct query words found in the document + 1 / (1 + document length in words)."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[str]]] = []

    def score_pairs(
        self, queries: Sequence[str], documents: Sequence[str], *, show_progress: bool = False
    ) -> np.ndarray:
        if len(queries) != len(documents):
            raise ValueError(f"{len(queries)} queries for {len(documents)} documents")
        self.calls.append((list(queries), list(documents)))
        out = np.empty(len(queries), dtype=np.float32)
        for i, (q, d) in enumerate(zip(queries, documents, strict=True)):
            qw = set(_WORD.findall(q.lower()))
            dw = _WORD.findall(d.lower())
            out[i] = len(qw & set(dw)) + 1.0 / (1.0 + len(dw))
        return out


class ScriptedLLM:
    """The part of the core LLM client interface the stages use (``complete_many``, ``usage``, ``model``),
    answering every request with ``answer(messages) -> text``; counts the calls.

    Adapter unit tests use it to check what reaches the core stages and what comes back; the real
    OpenAI-compatible path (llama.cpp server) is exercised by the integration tests.
    """

    def __init__(self, answer: Callable[[list[dict[str, str]]], str], model: str = "scripted") -> None:
        from synthrank.llm.usage import Usage

        self.answer = answer
        self.model = model
        self.usage = Usage()
        self.calls = 0

    def complete_many(self, requests: Sequence[Any], *, on_done: Callable[[int, Any], None] | None = None) -> list[Any]:
        from synthrank.llm.client import Completion

        out = []
        for i, request in enumerate(requests):
            self.calls += 1
            text = self.answer(request.message_dicts())
            completion = Completion(
                text=text, finish_reason="stop", model=self.model, prompt_tokens=10, completion_tokens=5
            )
            self.usage.record_call(self.model, 10, 5, 0.0)
            if on_done is not None:
                on_done(i, completion)
            out.append(completion)
        return out


def build_tiny_encoder(folder: Any) -> Any:
    """A 2-layer, 32-wide BERT encoder (no head) with MiniLM's tokenizer, saved to ``folder``: trains in seconds.

    Skips the calling test when the packaged MiniLM tokenizer is not installed.
    """
    from pathlib import Path

    import pytest

    torch = pytest.importorskip("torch")
    from transformers import AutoTokenizer, BertConfig, BertModel

    from synthrank.errors import ModelError
    from synthrank.models import resolve_encoder

    try:
        source = resolve_encoder("minilm")
    except ModelError as exc:
        pytest.skip(str(exc))
    folder = Path(folder)
    if (folder / "config.json").exists():
        return folder
    tokenizer = AutoTokenizer.from_pretrained(source)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
