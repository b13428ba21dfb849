"""The settings of one end-to-end run, as one YAML file with a section per step.

Every section has defaults that run on one laptop (local LLM, in-memory BM25); an unknown key is
an error naming the section and the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from synthrank.errors import DataError

QUERY_TYPES = ["keyword", "natural", "persona", "reasoning", "instruction"]

DEFAULTS: dict[str, Any] = {
    # BEIR folder, corpus JSONL/TSV file, or irds:<id>; only its passages are used for training
    "corpus": None,
    "llm": {
        "model": "qwen2.5-coder-1.5b",  # packaged GGUF run by llama.cpp, or the model name at base_url
        "base_url": None,  # any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp, Ollama)
        "api_key_env": "OPENAI_API_KEY",
        "concurrency": None,
        "timeout": 600.0,
        "max_retries": 5,
        "cache": None,  # SQLite response cache; default $SYNTHRANK_CACHE/llm-cache.sqlite
        "no_cache": False,
        "price_table": None,
        "n_ctx": 4096,
        "n_threads": None,
    },
    "generate": {
        "max_passages": 32,
        "sampling": "random",
        "stratify_field": None,
        "min_chars": 50,
        "max_chars": None,
        # passages never given to the LLM: a file of document ids (one per line, '#' comments) or a list of ids,
        # e.g. every passage relevant to an evaluation question, so no score leans on queries written from test answers
        "exclude_ids": None,
        "seed": 0,
        "query_types": list(QUERY_TYPES),
        "types_per_passage": 1,
        "n_per_type": 1,
        "personas_per_passage": 1,
        "temperature": 0.7,
        # the settings every MedQuAD benchmark run used: a passage's first 1,000 characters (MedQuAD's median
        # passage is 902) and room for a JSON answer; longer prompts only make the local LLM slower
        "max_tokens": 160,
        "max_passage_chars": 1000,
        "json_mode": False,  # grammar-constrained JSON answers (for weak models; ~2x slower on llama.cpp)
        "batch_size": 4,
        "max_queries": None,  # budget: stop once this many queries are kept
        "max_tokens_total": None,  # budget: stop once the LLM has answered this many tokens
        "dedup": True,
        "min_words": 2,
        "max_words": 40,
        "max_copy_ratio": 0.75,
        "roundtrip_k": 20,
    },
    "mine": {
        "backend": "memory",  # or "elasticsearch"
        "top_k": 30,
        "num_negatives": 15,
        "range_min": 0,
        "range_max": None,
        "margin": None,
        "sampling": "top",
        "exclude_near_duplicates": True,
        # a cheap second opinion against false negatives: candidates this model (e.g. "minilm", the
        # zero-shot bi-encoder) scores above the source passage (minus denoise_margin) are not negatives
        "denoise_model": None,
        "denoise_margin": 0.0,
        "seed": 42,
        "elasticsearch": {
            "url": None,  # default $ELASTICSEARCH_URL or http://localhost:9200
            "index": None,  # default synthrank-<corpus name>
            "api_key_env": "ELASTICSEARCH_API_KEY",
            "username": None,
            "password_env": "ELASTICSEARCH_PASSWORD",
            "ca_certs": None,
            "verify_certs": True,
            "reuse_index": True,
        },
    },
    "label": {
        "enabled": True,  # false: the source passage is the only positive, mined negatives as they come
        "judge_mode": "binary",
        "yes_threshold": 0.5,  # binary judge: P(yes) that counts as relevant
        "judge_top_k": 3,
        "fill_negatives": True,  # mined candidates below the judged top-k fill each group up to mine.num_negatives
        "positive_min_grade": 2,
        "negative_max_grade": 1,
        "min_negatives": 1,
        "self_consistency": 1,
        "max_passage_chars": 1000,  # what the judge reads of each passage (as in every benchmark run)
        "batch_size": 8,
    },
    "train": {
        "model": "minilm",
        # the default budget writes tens of queries: too few for a fresh cross-encoder head (it needs many
        # hundreds of groups), while a bi-encoder starts as the zero-shot model and gains from a hundred;
        # "cross-encoder" is the stronger in-domain recipe for large budgets (benchmarks/configs/medquad-amx.yaml)
        "architecture": "bi-encoder",
        "merge_with_base": None,  # share of the untuned weights averaged back; None: 0.5 (bi-encoder), 0 (cross-encoder)
        "loss": "lce",
        "group_size": 8,
        "epochs": 3,
        "batch_size": 8,
        "learning_rate": None,  # None: 2e-5 for a bi-encoder, 7e-5 for a cross-encoder's fresh head
        "max_length": 256,  # tokens per query-passage pair (cross-encoder) or per text (bi-encoder)
        "seed": 42,
        "dev_fraction": 0.1,  # synthetic queries held out for dev nDCG@10 and best-checkpoint choice
        "options": {},  # any other synthrank.train.TrainConfig field
    },
    "evaluate": {
        "data": None,  # judged queries (BEIR folder / irds id); default: the corpus when it has qrels
        "split": "test",
        "top_k": 30,
        "max_queries": None,
        "baselines": ["bm25", "zero-shot"],  # + "llm-judge": the LLM itself as a reranker (slow)
        "zero_shot_model": "minilm",
        # + a row fusing the trained model with the zero-shot one, weight picked on the held-out synthetic groups
        "fusion": True,
        "llm_judge_max_queries": 50,
        "llm_judge_top_k": None,  # BM25 depth the judge (and, on its subset, every system) reranks; None: top_k
        "batch_size": 64,
        # "auto": bf16/fp16 on CUDA, bf16 autocast on a CPU with AMX or AVX512-BF16 (2-3x faster, rankings as
        # in fp32), fp32 on other CPUs; every system of the evaluation scores in the same precision
        "dtype": "auto",
    },
}


def _merge(base: dict[str, Any], update: Mapping[str, Any], where: str, source: str) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if key not in base:
            known = ", ".join(sorted(base))
            raise DataError(f"unknown setting {where}{key!r} (known: {known})", path=source, field=f"{where}{key}")
        if isinstance(base[key], dict) and key != "options":
            if not isinstance(value, Mapping):
                raise DataError(f"must be a mapping, got {type(value).__name__}", path=source, field=f"{where}{key}")
            out[key] = _merge(base[key], value, f"{where}{key}.", source)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_run_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then the YAML file, then ``overrides`` (nested, e.g. ``{"llm": {"base_url": ...}}``)."""
    config = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise DataError("config file does not exist", path=path) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise DataError(f"not valid YAML: {exc}", path=path, line=mark.line + 1 if mark else None) from None
        if not isinstance(data, Mapping):
            raise DataError("a run config must be a mapping of sections", path=path)
        config = _merge(config, data, "", str(path))
    if overrides:
        config = _merge(config, overrides, "", "command line")
    return config


def section_fingerprint(config: Mapping[str, Any], *names: str) -> dict[str, Any]:
    """The parts of the config that decide a step's result (its marker fingerprint)."""
    return {name: copy.deepcopy(config.get(name)) for name in names}
