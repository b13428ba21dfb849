"""Helpers of the adapter integration tests: a real cross-encoder directory and shared-data subsets.

No trained relevance cross-encoder ships offline, so the tests build one the way training
starts: all-MiniLM-L6-v2 with a one-logit head initialised from a fixed seed, saved as a
standard Hugging Face directory. Its scores are not meaningful rankings, but they are real
model outputs, which is what "the adapters give the core's scores" needs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synthrank.data.records import Dataset
from synthrank.errors import ModelError

LOCAL_LLM = "smollm2-135m"
"""The packaged GGUF the plumbing tests run on: fast, poor quality (its queries are not results)."""


def make_cross_encoder(encoder_dir: Path, out_dir: Path, *, seed: int = 13) -> Path:
    """Save ``encoder_dir`` with a seeded one-logit classification head to ``out_dir`` (safetensors)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if (out_dir / "config.json").exists():
        return out_dir
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(str(encoder_dir), num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(str(encoder_dir))
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    return out_dir


def subset(dataset: Dataset, num_queries: int | None) -> Dataset:
    """The first ``num_queries`` judged queries (sorted ids), with their qrels and the whole corpus."""
    qids = sorted(dataset.judged_queries())
    if num_queries is not None:
        qids = qids[:num_queries]
    return Dataset(
        name=dataset.name,
        corpus=dataset.corpus,
        queries={q: dataset.queries[q] for q in qids},
        qrels={q: dataset.qrels[q] for q in qids},
    )


@contextlib.contextmanager
def local_llm_server(model: str = LOCAL_LLM) -> Iterator[Any]:
    """A real OpenAI-compatible llama.cpp server on 127.0.0.1 serving a packaged GGUF; skips if it cannot run."""
    from synthrank.llm.local import LocalLlamaServer, check_server_dependencies
    from synthrank.models.gguf import model_alias, resolve_gguf

    try:
        check_server_dependencies()
        path = resolve_gguf(model)
    except ModelError as exc:
        pytest.skip(str(exc))
    with LocalLlamaServer(path, alias=model_alias(model), n_ctx=2048, n_threads=2, startup_timeout=300) as server:
        yield server
