"""Training groups -> per-epoch LCE groups: 1 positive + G-1 negatives drawn from the mined pool.

The "localized" part of Localized Contrastive Estimation: negatives come from the first stage's
top ranks (the mined pool, optionally cut to its first ``negative_pool``), and a fresh G-1 of
them is drawn every epoch, so a pool larger than the group is seen whole over a few epochs.

Everything random here is a pure function of (seed, epoch, group index): the epoch's order and
each group's draw do not depend on what ran before, so a resumed run lands on exactly the data
an uninterrupted run would have seen, without replaying anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthrank.data.groups import Passage, TrainingGroup, iter_groups
from synthrank.data.jsonl import iter_jsonl
from synthrank.errors import DataError
from synthrank.train.config import TrainConfig

logger = logging.getLogger(__name__)

MAX_GRADE = 3


@dataclass(frozen=True, slots=True)
class SampledGroup:
    """One group as the loss sees it: passage 0 is the positive.

    ``labels`` are pointwise targets in [0, 1] (BCE); ``grades`` the graded relevance the listwise
    loss distils (the positive counts as ``MAX_GRADE`` when ungraded, negatives as 0).
    """

    query: str
    passages: tuple[str, ...]
    labels: tuple[float, ...]
    grades: tuple[float, ...]


def load_groups(source: str | Path | Sequence[TrainingGroup]) -> tuple[list[TrainingGroup], list[int] | None, str | None]:
    """Groups from a JSONL path (with each group's line number, for error messages) or from memory."""
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.exists():
            raise DataError("no such groups file", path=path)
        lines = [lineno for lineno, _ in iter_jsonl(path)]
        groups = list(iter_groups(path))
        return groups, lines, str(path)
    groups = list(source)
    for i, g in enumerate(groups):
        if not isinstance(g, TrainingGroup):
            raise DataError(f"expected TrainingGroup objects, got {type(g).__name__} at position {i}")
    return groups, None, None


def groups_fingerprint(groups: Sequence[TrainingGroup]) -> str:
    """A short hash of the groups' content: a checkpoint resumes only over the same data."""
    digest = hashlib.sha256()
    for g in groups:
        digest.update(json.dumps(g.to_json(), sort_keys=True, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def _validate_passage(p: Passage, where: str, path: str | None, line: int | None) -> None:
    if p.grade is not None and not 0 <= p.grade <= MAX_GRADE:
        raise DataError(f"grade must be in 0..{MAX_GRADE}, got {p.grade}", path=path, line=line, field=f"{where}.grade")
    if p.probability is not None and not 0.0 <= p.probability <= 1.0:
        raise DataError(
            f"probability must be in [0, 1], got {p.probability}", path=path, line=line, field=f"{where}.probability"
        )


class GroupSampler:
    """Turns training groups into the per-epoch groups of a run; see the module docstring.

    Args:
        groups: the training groups (their order is kept; epochs shuffle it, seeded).
        config: the run's settings (loss, group size, sampling, pool depth, grades).
        path, lines: where the groups came from, so a bad group is reported by file and line.

    Example:
        >>> sampler = GroupSampler(read_groups("groups.jsonl"), TrainConfig(group_size=8))
        >>> order = sampler.epoch_order(0)
        >>> sampler.sample(int(order[0]), epoch=0).passages[0]  # the positive
    """

    def __init__(
        self,
        groups: Sequence[TrainingGroup],
        config: TrainConfig,
        *,
        path: str | None = None,
        lines: Sequence[int] | None = None,
    ) -> None:
        self.config = config
        self.path = path
        kept: list[TrainingGroup] = []
        pools: list[list[Passage]] = []
        dropped_groups = dropped_negatives = short = 0
        for i, g in enumerate(groups):
            line = lines[i] if lines is not None else None
            if not g.query.strip():
                raise DataError("empty query", path=path, line=line, field="query")
            _validate_passage(g.positive, "positive", path, line)
            for j, n in enumerate(g.negatives):
                _validate_passage(n, f"negatives[{j}]", path, line)
            pool = sorted(g.negatives, key=lambda n: (n.rank if n.rank is not None else 1 << 30))
            if config.negative_pool is not None:
                pool = pool[: config.negative_pool]
            if config.loss not in ("bce", "margin_mse") and config.drop_false_negatives:  # soft targets keep them
                clean = [n for n in pool if n.grade is None or n.grade < config.relevant_grade]
                dropped_negatives += len(pool) - len(clean)
                pool = clean
            if not pool:
                dropped_groups += 1
                continue
            if len(pool) < config.group_size - 1:
                short += 1
            kept.append(g)
            pools.append(pool)
        if dropped_groups:
            logger.warning("%d groups have no usable negatives and are left out", dropped_groups)
        if dropped_negatives:
            logger.info("%d negatives graded relevant (>= %d) were left out as false negatives",
                        dropped_negatives, config.relevant_grade)
        if short:
            logger.info("%d groups have fewer than %d negatives: some are drawn twice", short, config.group_size - 1)
        if not kept:
            raise DataError(
                f"no training group has a usable negative ({len(groups)} groups read)", path=path, field="negatives"
            )
        self.groups = kept
        self.pools = pools
        self.stats = {
            "groups_read": len(groups),
            "groups_used": len(kept),
            "groups_without_negatives": dropped_groups,
            "false_negatives_dropped": dropped_negatives,
            "groups_with_small_pool": short,
            "mean_pool_size": float(np.mean([len(p) for p in pools])),
        }

    def __len__(self) -> int:
        return len(self.groups)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The order groups are visited in ``epoch`` (a permutation seeded by seed and epoch alone)."""
        return np.random.default_rng([self.config.seed, epoch, 0x5EED]).permutation(len(self.groups))

    def sample(self, index: int, epoch: int) -> SampledGroup:
        """Group ``index`` as seen in ``epoch``: the positive, then G-1 negatives from its pool."""
        cfg = self.config
        g = self.groups[index]
        pool = self.pools[index]
        need = cfg.group_size - 1
        if cfg.negative_sampling == "top" and len(pool) >= need:
            chosen = pool[:need]
        else:
            rng = np.random.default_rng([cfg.seed, epoch, index])
            if len(pool) >= need:
                picks = np.sort(rng.choice(len(pool), size=need, replace=False))
            else:  # a small pool: every negative once, the rest drawn again
                extra = rng.choice(len(pool), size=need - len(pool), replace=True)
                picks = np.concatenate([np.arange(len(pool)), np.sort(extra)])
            chosen = [pool[int(k)] for k in picks]
        passages = (g.positive.text, *(n.text for n in chosen))
        labels = (self._label(g.positive, positive=True), *(self._label(n, positive=False) for n in chosen))
        grades = (
            float(g.positive.grade) if g.positive.grade is not None else float(MAX_GRADE),
            *(float(n.grade) if n.grade is not None else 0.0 for n in chosen),
        )
        return SampledGroup(g.query, passages, labels, grades)

    def _label(self, p: Passage, *, positive: bool) -> float:
        """BCE target: the judge's probability if any, else its grade thresholded, else the group role."""
        if p.probability is not None:
            return float(p.probability)
        if p.grade is not None:
            return 1.0 if p.grade >= self.config.relevant_grade else 0.0
        return 1.0 if positive else 0.0
