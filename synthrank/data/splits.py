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
from synthrank.errors import DataError

DEV_HOLDOUTS = ("passage", "query")


def split_dev(
    groups: Sequence[TrainingGroup], fraction: float, seed: int, *, holdout: str = "passage"
) -> tuple[list[TrainingGroup], list[TrainingGroup]]:
    """Hold out whole source passages (``holdout="passage"``: every query written from one passage, and all of
    its groups, go to one side) or whole queries (``"query"``), seeded and stable under resume.

    By passage, because a run writes several queries per passage: holding out one of them while its siblings
    train on the same positive lets the dev set reward memorising that passage. A group without
    ``meta.source_doc_id`` (a hand-made groups file) is its own query's unit.
    """
    if holdout not in DEV_HOLDOUTS:
        raise DataError(f"unknown dev holdout {holdout!r}; known: {', '.join(DEV_HOLDOUTS)}", field="dev_holdout")
    if fraction <= 0:
        return list(groups), []
    unit_of: dict[str, str] = {}
    for g in groups:  # a query's first group decides its unit, so a query never straddles the split
        source = g.meta.get("source_doc_id") if holdout == "passage" else None
        unit_of.setdefault(g.query_id, f"passage:{source}" if source not in (None, "") else f"query:{g.query_id}")

    def bucket(unit: str) -> float:
        # a query unit keeps the digest of its bare id: the split of runs from before passages were the unit
        digest = hashlib.sha256(f"{seed}:{unit.removeprefix('query:')}".encode()).hexdigest()
        return int(digest[:8], 16) / 0xFFFFFFFF

    train = [g for g in groups if bucket(unit_of[g.query_id]) >= fraction]
    dev = [g for g in groups if bucket(unit_of[g.query_id]) < fraction]
    if not dev or not train:  # tiny runs: keep at least one unit on each side when possible
        units = sorted(set(unit_of.values()))
        if len(units) < 2:
            return list(groups), []
        held = random.Random(seed).choice(units)  # with query units: the same query as before passage units
        train = [g for g in groups if unit_of[g.query_id] != held]
        dev = [g for g in groups if unit_of[g.query_id] == held]
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
