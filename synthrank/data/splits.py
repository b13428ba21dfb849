"""How a run's data is divided: held-out synthetic queries for dev, and a fixed sample of judged queries.

Both are seeded and stable, so every step, command and benchmark that splits the same data gets the same sides.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import replace

from synthrank.data.groups import TrainingGroup
from synthrank.data.records import Dataset


def split_dev(
    groups: Sequence[TrainingGroup], fraction: float, seed: int
) -> tuple[list[TrainingGroup], list[TrainingGroup]]:
    """Hold out whole queries (all groups of a query go to one side), seeded and stable under resume."""
    if fraction <= 0:
        return list(groups), []

    def bucket(qid: str) -> float:
        digest = hashlib.sha256(f"{seed}:{qid}".encode()).hexdigest()
        return int(digest[:8], 16) / 0xFFFFFFFF

    train = [g for g in groups if bucket(g.query_id) >= fraction]
    dev = [g for g in groups if bucket(g.query_id) < fraction]
    if not dev or not train:  # tiny runs: keep at least one query on each side when possible
        qids = sorted({g.query_id for g in groups})
        if len(qids) < 2:
            return list(groups), []
        held = random.Random(seed).choice(qids)
        train = [g for g in groups if g.query_id != held]
        dev = [g for g in groups if g.query_id == held]
    return train, dev


def subsample_queries(dataset: Dataset, n: int | None, seed: int = 0) -> Dataset:
    """At most ``n`` judged queries, drawn with a fixed seed (the same ones in every run)."""
    qids = sorted(dataset.judged_queries())
    if n is None or n >= len(qids):
        return dataset
    keep = set(random.Random(seed).sample(qids, n))
    return replace(
        dataset,
        queries={q: v for q, v in dataset.queries.items() if q in keep},
        qrels={q: v for q, v in dataset.qrels.items() if q in keep},
    )
