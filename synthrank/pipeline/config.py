"""The settings of one end-to-end run, as one YAML file with a section per step.

Each section starts from its step's own defaults (the step's config dataclass, as `synthrank generate|mine|
label|train` use them), then :data:`RECIPE` lays the run's own choices over them: :data:`DEFAULTS` runs on one
laptop (local LLM, in-memory BM25). An unknown key is an error naming the section and the key, so a typo never
silently falls back to a default.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from synthrank.errors import DataError

QUERY_TYPES = ["keyword", "natural", "persona", "reasoning", "instruction"]

# Settings of a step that no step dataclass holds (passage sampling and query filters, the BM25 backend, the
# label ablation, the dev split): their defaults are those of the step commands, where one has the flag.
STEP_ONLY: dict[str, dict[str, Any]] = {
    "generate": {
        "max_passages": 100,  # `synthrank generate --max-passages`
        "sampling": "random",
        "stratify_field": None,
        "min_chars": 50,
        "max_chars": None,
        # passages never given to the LLM: a file of document ids (one per line, '#' comments) or a list of ids,
        # e.g. every passage relevant to an evaluation question, so no score leans on queries written from test answers
        "exclude_ids": None,
        # the user's own example queries (JSON lines: {"query", "doc_id"} or {"query", "text"}), replayed to the LLM
        # as its earlier answers for the "demonstrated" query type; their passages are never generated for
        "demonstrations": None,
        "dedup": True,
        "min_words": 2,
        "max_words": 40,
        "max_copy_ratio": 0.75,
        "roundtrip_k": 20,
    },
    "mine": {
        "backend": "memory",  # or "elasticsearch"
        # a cheap second opinion against false negatives: candidates this model (e.g. "minilm", the
        # zero-shot bi-encoder) scores above the source passage (minus denoise_margin) are not negatives
        "denoise_model": None,
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
    "label": {"enabled": True},  # false: the source passage is the only positive, mined negatives as they come
    "train": {
        "dev_fraction": 0.0,  # synthetic queries held out for dev nDCG@10 and best-checkpoint choice
        # what is held out whole: "passage" (every query written from one source passage: none of its siblings
        # trains on the passage a dev query must find) or "query" (runs made before passages were the unit)
        "dev_holdout": "passage",
        "options": {},  # any other synthrank.train.TrainConfig field
    },
}

# The keys of each section, in the order `--print-config` shows them (a run folder's fingerprints hold them too):
# each one's default is its step dataclass' field, or STEP_ONLY's.
SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "generate": ("max_passages", "sampling", "stratify_field", "min_chars", "max_chars", "exclude_ids", "seed",
                 "query_types", "types_per_passage", "n_per_type", "personas_per_passage", "temperature",
                 "max_tokens", "max_passage_chars", "json_mode", "batch_size", "max_queries", "max_tokens_total",
                 "search_task", "demonstrations",
                 "dedup", "min_words", "max_words", "max_copy_ratio", "roundtrip_k"),
    "mine": ("backend", "top_k", "num_negatives", "range_min", "range_max", "margin", "sampling",
             "exclude_near_duplicates", "denoise_model", "denoise_margin", "seed", "elasticsearch"),
    "label": ("enabled", "judge_mode", "yes_threshold", "judge_top_k", "fill_negatives", "positive_min_grade",
              "negative_max_grade", "min_negatives", "self_consistency", "max_passage_chars", "batch_size"),
    "train": ("model", "architecture", "merge_with_base", "loss", "group_size", "epochs", "batch_size",
              "learning_rate", "max_length", "seed", "dev_fraction", "dev_holdout", "options"),
}  # fmt: skip

# `synthrank run`'s own recipe: the choices it makes over the steps' defaults, each with its reason. A step
# command given these same settings (`synthrank label --judge-mode binary --judge-top-k 3 ...`) builds the
# same artifact as the run.
RECIPE: dict[str, Any] = {
    "generate": {
        # a laptop budget for the local LLM: 20 calls (issue #19: the quickstart in <= 5 minutes on 2 cores)
        "max_passages": 20,
        "query_types": list(QUERY_TYPES),  # LIMRANK's five ("realistic" is a lever, not a default)
        "types_per_passage": 1,  # one type per passage (seeded rotation): the same diversity for a fifth of the calls
        # three queries per call: the prompt's prefill (~2.4 s of a ~3 s call on 2 CPU cores) is paid once for
        # three queries, so the same minutes write ~2x the queries (benchmarks/configs/scorecard-quick.yaml)
        "n_per_type": 3,
        "max_tokens": 256,  # room for three queries in JSON
        # a passage's first 1,000 characters (MedQuAD's median passage is 902): longer prompts only make the
        # local LLM slower
        "max_passage_chars": 1000,
    },
    "mine": {
        "top_k": 30,  # BM25 candidates per query: the judged top and the negative pool come from these
        "num_negatives": 15,  # a pool of 15 below the judged top: LCE samples G-1 = 7 of them per epoch
    },
    "label": {
        # no LLM judge by default: at this budget its calls bought less than spending them on more queries
        # (scorecard lever nolabel: the judge's calls writing queries instead gained on 3 of 4 corpora); the
        # source passage is each query's positive, the round-trip filter drops queries BM25 cannot tie to it.
        # `--label` (label.enabled: true) judges with the settings below.
        "enabled": False,
        "judge_mode": "binary",  # one Yes/No answer token instead of a grade and a reason: far fewer tokens
        "judge_top_k": 3,  # false negatives hide in BM25's first ranks; judge only those ...
        "fill_negatives": True,  # ... and fill each group up to mine.num_negatives with the mined candidates below
        "max_passage_chars": 1000,  # what the judge reads of each passage (as in every benchmark run)
    },
    "train": {
        # the default budget writes tens of queries: too few for a fresh cross-encoder head (it needs many
        # hundreds of groups), while a bi-encoder starts as the zero-shot model and gains from a hundred;
        # "cross-encoder" is the stronger in-domain recipe for large budgets (benchmarks/configs/medquad-amx.yaml)
        "architecture": "bi-encoder",
        "merge_with_base": None,  # share of the untuned weights averaged back; None: 0.5 (bi-encoder), 0 (cross-encoder)
        "learning_rate": None,  # None: 2e-5 for a bi-encoder, 7e-5 for a cross-encoder's fresh head
        # two passes (the best epoch kept by dev nDCG@10 when the dev set is large enough): a third pass over tens
        # of groups changed no corpus's served nDCG@10 significantly on the scorecard (lever quick-2ep, 3 seeds:
        # -0.0018..+0.0004) and cost a third of the quickstart's training time (#19)
        "epochs": 2,
        # trained and served on 128 tokens (all-MiniLM-L6-v2's own training length): half the compute of 256
        "max_length": 128,
        "dev_fraction": 0.1,  # synthetic queries held out for dev nDCG@10, best-checkpoint choice and fusion weight
    },
}


def _step_dataclasses() -> dict[str, type]:
    from synthrank.label.labeler import LabelConfig
    from synthrank.mine.miner import MiningConfig
    from synthrank.synthesize.generator import GenerationConfig
    from synthrank.train.config import TrainConfig

    return {"generate": GenerationConfig, "mine": MiningConfig, "label": LabelConfig, "train": TrainConfig}


def step_defaults() -> dict[str, Any]:
    """Every section at the step's own defaults (the dataclasses', then STEP_ONLY's), before the recipe."""
    from synthrank.config_fields import field_defaults
    from synthrank.llm.config import llm_option_defaults

    out: dict[str, Any] = {"corpus": None, "llm": llm_option_defaults()}
    for name, cls in _step_dataclasses().items():
        fields = {**field_defaults(cls), **STEP_ONLY.get(name, {})}
        out[name] = {key: copy.deepcopy(fields[key]) for key in SECTION_KEYS[name]}
    out["evaluate"] = copy.deepcopy(EVALUATE)
    return out


def _evaluate_defaults() -> dict[str, Any]:
    from synthrank.config_fields import field_defaults
    from synthrank.evaluate.config import EvaluateConfig

    return field_defaults(EvaluateConfig)


# the evaluate section's defaults: EvaluateConfig's fields (its docstring says what each one does)
EVALUATE: dict[str, Any] = _evaluate_defaults()


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


# the steps' defaults with the recipe laid over them: what `synthrank run` runs when nothing else is said
DEFAULTS: dict[str, Any] = _merge(step_defaults(), RECIPE, "", "the recipe")


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
    from synthrank.evaluate.config import EvaluateConfig

    EvaluateConfig.from_dict(config["evaluate"])  # a wrong value fails now, not after the LLM steps
    return config


def section_fingerprint(config: Mapping[str, Any], *names: str) -> dict[str, Any]:
    """The parts of the config that decide a step's result (its marker fingerprint)."""
    return {name: copy.deepcopy(config.get(name)) for name in names}
