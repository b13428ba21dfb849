"""synthrank: a domain corpus in, a trained reranker out, with no human labels.

The core package holds every piece of the method and imports no framework
(Haystack, PyTerrier, Elasticsearch); the adapters and the CLI wrap it. The main entry
points are importable from here; each loads its subpackage (and torch) only when first used,
so ``import synthrank`` stays instant.

Example:
    >>> import synthrank
    >>> config = synthrank.load_run_config(overrides={"corpus": "data/medquad"})
    >>> synthrank.run_pipeline(config, "runs/medquad")                      # the whole method
    >>> scorer = synthrank.load_scorer("runs/medquad/train/model")           # a trained reranker
    >>> scorer.score_pairs(["what damages the optic nerve"], ["Glaucoma damages the optic nerve."])
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

# public name -> the subpackage that defines it (imported on first access)
_EXPORTS: dict[str, str] = {
    # data
    "Dataset": "synthrank.data",
    "Document": "synthrank.data",
    "Query": "synthrank.data",
    "TrainingGroup": "synthrank.data",
    "load_dataset": "synthrank.data",
    "read_groups": "synthrank.data",
    # first stage
    "InMemoryBM25": "synthrank.retrieve",
    # the method's steps
    "LLMClient": "synthrank.llm",
    "LLMConfig": "synthrank.llm",
    "generate_queries": "synthrank.synthesize",
    "mine_hard_negatives": "synthrank.mine",
    "LLMJudge": "synthrank.label",
    "Labeler": "synthrank.label",
    "TrainConfig": "synthrank.train",
    "DevSet": "synthrank.train",
    "train_reranker": "synthrank.train",
    # serving and measuring
    "PairScorer": "synthrank.rerank",
    "CrossEncoderReranker": "synthrank.rerank",
    "BiEncoderScorer": "synthrank.rerank",
    "load_scorer": "synthrank.rerank",
    "evaluate_systems": "synthrank.evaluate",
    "evaluate_run": "synthrank.evaluate",
    # the whole run
    "load_run_config": "synthrank.pipeline",
    "run_pipeline": "synthrank.pipeline",
    # errors
    "SynthrankError": "synthrank.errors",
    "DataError": "synthrank.errors",
    "ModelError": "synthrank.errors",
}

__all__ = [
    "BiEncoderScorer",
    "CrossEncoderReranker",
    "DataError",
    "Dataset",
    "DevSet",
    "Document",
    "InMemoryBM25",
    "LLMClient",
    "LLMConfig",
    "LLMJudge",
    "Labeler",
    "ModelError",
    "PairScorer",
    "Query",
    "SynthrankError",
    "TrainConfig",
    "TrainingGroup",
    "__version__",
    "evaluate_run",
    "evaluate_systems",
    "generate_queries",
    "load_dataset",
    "load_run_config",
    "load_scorer",
    "mine_hard_negatives",
    "read_groups",
    "run_pipeline",
    "train_reranker",
]

if TYPE_CHECKING:  # pragma: no cover
    from synthrank.data import Dataset, Document, Query, TrainingGroup, load_dataset, read_groups
    from synthrank.errors import DataError, ModelError, SynthrankError
    from synthrank.evaluate import evaluate_run, evaluate_systems
    from synthrank.label import Labeler, LLMJudge
    from synthrank.llm import LLMClient, LLMConfig
    from synthrank.mine import mine_hard_negatives
    from synthrank.pipeline import load_run_config, run_pipeline
    from synthrank.rerank import BiEncoderScorer, CrossEncoderReranker, PairScorer, load_scorer
    from synthrank.retrieve import InMemoryBM25
    from synthrank.synthesize import generate_queries
    from synthrank.train import DevSet, TrainConfig, train_reranker


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'synthrank' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
