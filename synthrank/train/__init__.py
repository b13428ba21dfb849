"""Training: cross-encoder rerankers on synthetic groups with Localized Contrastive Estimation.

Example:
    >>> from synthrank.train import TrainConfig, DevSet, train_reranker
    >>> cfg = TrainConfig(model="minilm", loss="lce", group_size=8, epochs=1, batch_size=8)
    >>> result = train_reranker("out/groups.jsonl", "runs/lce", cfg, dev=DevSet.from_groups(held_out))
    >>> result.model_dir          # a standard HF folder: load_scorer(), transformers, sentence-transformers
    PosixPath('runs/lce/model')
"""

from __future__ import annotations

from synthrank.train.config import LOSSES, TrainConfig
from synthrank.train.data import GroupSampler, SampledGroup, groups_fingerprint, load_groups
from synthrank.train.dev import DevSet
from synthrank.train.losses import bce_loss, lce_loss, listwise_loss
from synthrank.train.trainer import RerankerTrainer, TrainResult, train_reranker

__all__ = [
    "LOSSES",
    "DevSet",
    "GroupSampler",
    "RerankerTrainer",
    "SampledGroup",
    "TrainConfig",
    "TrainResult",
    "bce_loss",
    "groups_fingerprint",
    "lce_loss",
    "listwise_loss",
    "load_groups",
    "train_reranker",
]
