"""`fit_reranker`: mined training groups -> a trained :class:`SynthReranker`, with the core LCE trainer."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeAlias

import pandas as pd

from pyterrier_synthrank.mining import groups_from_frame
from pyterrier_synthrank.reranker import SynthReranker
from synthrank.data.groups import TrainingGroup
from synthrank.errors import DataError

logger = logging.getLogger(__name__)

GroupsLike: TypeAlias = "pd.DataFrame | str | Path | Sequence[TrainingGroup]"
"""A miner's groups frame, a groups JSONL path, or core training groups."""


def _training_input(groups: GroupsLike, name: str) -> list[TrainingGroup] | str:
    if isinstance(groups, pd.DataFrame):
        return groups_from_frame(groups)
    if isinstance(groups, (str, Path)):
        if not Path(groups).is_file():
            raise DataError(f"{name}: no groups file at {groups}", path=groups)
        return str(groups)
    return list(groups)


def fit_reranker(
    groups: GroupsLike,
    output_dir: str | Path,
    *,
    config: Any = None,
    dev_groups: GroupsLike | None = None,
    restart: bool = False,
    mark_artifact: bool = True,
    show_progress: bool = True,
    reranker_options: dict[str, Any] | None = None,
    **train_options: Any,
) -> SynthReranker:
    """Train a cross-encoder with LCE on mined groups and return it as a ready :class:`SynthReranker`.

    ``groups`` is :class:`HardNegativeMiner`'s output frame, a groups JSONL, or core
    :class:`~synthrank.data.TrainingGroup` objects. Training is the core's
    :func:`synthrank.train.train_reranker` (checkpoints in ``output_dir``; a rerun with the same
    settings resumes). The trained model is marked as a ``pt.Artifact`` unless ``mark_artifact=False``,
    so ``pt.Artifact.load(model_dir).reranker()`` reopens it later.

    Args:
        groups: the training groups.
        output_dir: where checkpoints and the model go.
        config: a :class:`synthrank.train.TrainConfig`; or pass its fields as ``**train_options``
            (``model="minilm"``, ``group_size=8``, ``epochs=1``, ``max_steps``…).
        dev_groups: held-out groups to keep the best checkpoint by.
        restart: ignore an existing checkpoint and start over.
        mark_artifact: write ``pt_meta.json`` into the model directory.
        show_progress: the trainer's progress bar.
        reranker_options: options of the returned :class:`SynthReranker` (``batch_size``, ``text_field``,
            ``verbose``, ``device``…); the training options of the same names are ``**train_options``.

    Example:
        >>> groups = (QueryGenerator(llm, as_topics=True) >> bm25 >> HardNegativeMiner(corpus))(docs)
        >>> reranker = fit_reranker(groups, "runs/pt-model", epochs=1)
        >>> pt.Experiment([bm25, bm25 % 50 >> reranker], topics, qrels, ["nDCG@10"])
    """
    from synthrank.train import DevSet, TrainConfig, train_reranker

    if config is not None and train_options:
        raise ValueError("pass either config= or training options, not both")
    cfg = config if config is not None else TrainConfig.from_dict(train_options)
    training = _training_input(groups, "groups")
    if not training:
        raise DataError("fit_reranker got no training groups (is the miner's output empty?)", field="groups")
    dev = DevSet.from_groups(_training_input(dev_groups, "dev_groups")) if dev_groups is not None else None
    result = train_reranker(training, output_dir, cfg, dev=dev, show_progress=show_progress, restart=restart)
    logger.info("trained %s (best step %s)", result.model_dir, result.best_step)
    if mark_artifact:
        from pyterrier_synthrank.artifact import SynthRerankerArtifact

        SynthRerankerArtifact.mark(result.model_dir)
    return SynthReranker(result.model_dir, **(reranker_options or {}))
