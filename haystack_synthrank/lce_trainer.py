"""`LCETrainer`: training groups -> a trained synthrank reranker directory, with the core trainer."""

from __future__ import annotations

import copy
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from haystack import component, default_from_dict, default_to_dict

from synthrank.data.groups import TrainingGroup, read_groups
from synthrank.errors import DataError

logger = logging.getLogger(__name__)

EXPLICIT_OPTIONS = (
    "model",
    "loss",
    "group_size",
    "epochs",
    "batch_size",
    "learning_rate",
    "max_length",
    "seed",
    "max_steps",
)
"""The training options that are init parameters of their own; the rest go in ``training_options``."""


def groups_from_records(records: list[dict[str, Any]], *, name: str = "groups") -> list[TrainingGroup]:
    """Core training groups from JSON records (what :class:`HardNegativeMiner` outputs), validated by the core reader.

    A bad record raises :class:`~synthrank.errors.DataError` naming its position in the list and the field.
    """
    if not records:
        return []
    with tempfile.TemporaryDirectory(prefix="synthrank-groups-") as tmp:
        path = Path(tmp) / "groups.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for i, record in enumerate(records):
                if not isinstance(record, dict):
                    raise DataError(f"{name}[{i}]: expected a training-group dict, got {type(record).__name__}")
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        try:
            return read_groups(path)
        except DataError as exc:
            reason = str(exc).split(": ", 1)[-1]
            position = exc.line - 1 if exc.line is not None else "?"
            raise DataError(f"{name}[{position}]: {reason}", field=exc.field) from None


@component
class LCETrainer:
    """Fine-tunes a cross-encoder on training groups with Localized Contrastive Estimation (the core trainer).

    Each group is one query, its positive and a pool of BM25 hard negatives, as
    :class:`HardNegativeMiner` outputs them; every step scores the positive with ``group_size - 1``
    negatives sampled from the pool and minimises the cross-entropy of the positive. The output is a
    standard Hugging Face model directory that :class:`SynthRankRanker` (and ``transformers``,
    sentence-transformers' ``CrossEncoder``, the CLI) loads. Training writes checkpoints to
    ``output_dir`` and a rerun with the same settings resumes where it stopped (the core
    trainer's behaviour); ``restart=True`` starts over.

    Together with :class:`SyntheticQueryGenerator` and :class:`HardNegativeMiner` this takes a
    Haystack user from a document store to a trained reranker inside one pipeline.

    Usage example:

    ```python
    from haystack import Pipeline
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
    from haystack_synthrank import HardNegativeMiner, LCETrainer, SyntheticQueryGenerator

    pipe = Pipeline()
    pipe.add_component("generator", SyntheticQueryGenerator(query_types=["keyword", "natural"]))
    pipe.add_component("miner", HardNegativeMiner(retriever=InMemoryBM25Retriever(document_store=store)))
    pipe.add_component("trainer", LCETrainer(output_dir="runs/my-reranker", epochs=1))
    pipe.connect("generator.queries", "miner.queries")
    pipe.connect("miner.groups", "trainer.groups")
    model_dir = pipe.run({"generator": {"documents": store.filter_documents()}})["trainer"]["model_dir"]
    ```
    """

    def __init__(
        self,
        *,
        output_dir: str,
        model: str = "minilm",
        loss: str = "lce",
        group_size: int = 8,
        epochs: int = 1,
        batch_size: int = 8,
        learning_rate: float = 7e-5,
        max_length: int = 256,
        seed: int = 42,
        max_steps: int | None = None,
        training_options: dict[str, Any] | None = None,
        restart: bool = False,
        show_progress: bool = True,
    ) -> None:
        """
        Create the trainer; nothing is loaded until :meth:`run`.

        :param output_dir: where checkpoints and the trained model go (a rerun resumes from its checkpoint).
        :param model: the backbone: ``"minilm"`` (the packaged all-MiniLM-L6-v2), a model folder or a hub name.
        :param loss: ``"lce"``; ``"bce"`` and ``"listwise"`` (on LLM grades) are there to compare against.
        :param group_size: passages per group: the positive and ``group_size - 1`` sampled negatives.
        :param epochs: passes over the groups.
        :param batch_size: groups per step.
        :param learning_rate: peak AdamW learning rate.
        :param max_length: token limit of a (query, passage) pair.
        :param seed: seed of initialisation and negative sampling.
        :param max_steps: stop after this many steps (``None``: run all epochs).
        :param training_options: any other :class:`synthrank.train.TrainConfig` field (``warmup_ratio``,
            ``gradient_accumulation``, ``precision``, ``eval_every``…).
        :param restart: ignore a checkpoint in ``output_dir`` and start over.
        :param show_progress: progress bar with loss and throughput.
        :raises ValueError: when ``training_options`` repeats one of the explicit parameters.
        """
        self.output_dir = str(output_dir)
        self.model = str(model)
        self.loss = loss
        self.group_size = group_size
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_length = max_length
        self.seed = seed
        self.max_steps = max_steps
        self.training_options = dict(training_options or {})
        self.restart = restart
        self.show_progress = show_progress
        repeated = sorted(set(self.training_options) & set(EXPLICIT_OPTIONS))
        if repeated:
            raise ValueError(f"training_options repeats {repeated}: set them as LCETrainer parameters instead")

    def config(self) -> Any:
        """The core :class:`synthrank.train.TrainConfig` these parameters describe (validated by the core)."""
        from synthrank.train import TrainConfig

        options = {name: getattr(self, name) for name in EXPLICIT_OPTIONS}
        return TrainConfig.from_dict({**options, **self.training_options})

    def warm_up(self) -> None:
        """Validate the training options early (an unknown one raises naming the field)."""
        self.config()

    def to_dict(self) -> dict[str, Any]:
        """Serialise every init parameter."""
        return default_to_dict(
            self,
            output_dir=self.output_dir,
            **{name: getattr(self, name) for name in EXPLICIT_OPTIONS},
            training_options=self.training_options,
            restart=self.restart,
            show_progress=self.show_progress,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LCETrainer:
        """Rebuild the component from :meth:`to_dict`'s output."""
        return default_from_dict(cls, copy.deepcopy(data))

    @component.output_types(model_dir=str, metrics=dict[str, Any], best_step=int | None)
    def run(
        self,
        groups: list[dict[str, Any]] | None = None,
        groups_path: str | None = None,
        dev_groups: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """
        Train on ``groups`` (records) or the groups JSONL at ``groups_path``.

        :param groups: training groups as :class:`HardNegativeMiner` outputs them.
        :param groups_path: a groups JSONL (``synthrank mine``'s output) instead of ``groups``.
        :param dev_groups: held-out groups: the trainer ranks each positive among its negatives (MRR/nDCG)
            to keep the best checkpoint.
        :returns: ``model_dir`` (the trained model, for :class:`SynthRankRanker`), ``metrics`` (the trainer's
            final metrics) and ``best_step``.
        :raises ValueError: when neither or both of ``groups`` and ``groups_path`` are given.
        :raises DataError: on a malformed group (naming its position and field) or an empty training set.
        """
        from synthrank.train import DevSet, train_reranker

        if (groups is None) == (groups_path is None):
            raise ValueError("LCETrainer needs exactly one of groups (records) or groups_path (a groups JSONL)")
        training: list[TrainingGroup] | str = groups_from_records(groups) if groups is not None else str(groups_path)
        if not training:
            raise DataError(
                "LCETrainer got no training groups: the miner found no query with a positive and enough negatives",
                field="groups",
            )
        dev = None
        if dev_groups:
            dev = DevSet.from_groups(groups_from_records(dev_groups, name="dev_groups"))
        result = train_reranker(
            training, self.output_dir, self.config(), dev=dev, show_progress=self.show_progress, restart=self.restart
        )
        logger.info("trained %s (best step %s)", result.model_dir, result.best_step)
        return {"model_dir": str(result.model_dir), "metrics": dict(result.metrics), "best_step": result.best_step}
