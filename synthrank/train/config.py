"""Every setting of a reranker training run (cross-encoder or bi-encoder), in one YAML-serialisable dataclass.

A run writes its config beside its checkpoints; a resumed run must have the same *semantic*
settings (those that change the trained weights), so a changed learning rate cannot silently
continue an old run. Operational settings (how often to checkpoint, CPU threads...) may differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from synthrank.errors import DataError

LossName = Literal["lce", "bce", "listwise", "margin_mse"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
NegativeSampling = Literal["random", "top"]
Architecture = Literal["cross-encoder", "bi-encoder"]

LOSSES: tuple[str, ...] = ("lce", "bce", "listwise", "margin_mse")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
ARCHITECTURES: tuple[str, ...] = ("cross-encoder", "bi-encoder")

# settings that never change the trained weights: a resumed run may change them
NON_SEMANTIC: frozenset[str] = frozenset(
    {"save_every", "keep_checkpoints", "num_threads", "dev_batch_size", "device", "log_every", "activation_budget_mb"}
)
# settings whose default follows the architecture: a None given to from_dict takes (bi-encoder, cross-encoder)'s
# value. A bi-encoder starts as the zero-shot model and needs a gentle rate; a cross-encoder's fresh head a faster one.
ARCHITECTURE_DEFAULTS: dict[str, tuple[Any, Any]] = {"learning_rate": (2e-5, 7e-5), "merge_with_base": (0.5, 0.0)}
# settings added after runs were checkpointed: left out of the fingerprint at their default, so those runs still resume
LATER_DEFAULTS: dict[str, Any] = {"architecture": "cross-encoder", "similarity_temperature": 0.05, "merge_with_base": 0.0,
                                  "dev_min_queries": 20}


@dataclass
class TrainConfig:
    """Settings of an LCE (or comparison-loss) training run.

    Args:
        model: backbone: a packaged short name (``"minilm"``), a local HF folder or a hub id. A plain
            encoder gets a fresh one-logit head; a one-logit cross-encoder is fine-tuned as is.
        architecture: ``"cross-encoder"`` (query and passage read together, one relevance logit: the most
            accurate in domain) or ``"bi-encoder"`` (the plain encoder itself is tuned; the score is the
            cosine of pooled embeddings divided by ``similarity_temperature``). A bi-encoder starts as the
            zero-shot baseline, so with ``merge_with_base`` it keeps that model's out-of-domain quality.
        similarity_temperature: bi-encoder only: cosine / T are the logits the loss sees.
        merge_with_base: bi-encoder only: the share of the untuned weights averaged into the final model
            (weight-space ensembling, WiSE-FT: ``(1 - m) * tuned + m * base``; 0: the tuned weights).
        tokenizer: tokenizer folder/id when it is not beside the weights.
        loss: ``"lce"`` (softmax cross-entropy of the positive over its group: Localized Contrastive
            Estimation), ``"bce"`` (pointwise binary cross-entropy on labels/grades) or ``"listwise"``
            (KL divergence to a softmax over the LLM grades: distillation) or ``"margin_mse"`` (GPL's MarginMSE:
            the positive-negative score margin regresses on the judge's log-odds margin; passages the judge did
            not score count as P = 1 (positive) / 0 (negative), so give it groups of judged passages).
        group_size: G, passages scored jointly per query: 1 positive + G-1 negatives.
        negative_sampling: ``"random"`` draws G-1 negatives from the mined pool anew each epoch (seeded);
            ``"top"`` always takes the G-1 best-ranked.
        negative_pool: only the first this-many negatives of the pool (by first-stage rank) are eligible:
            the "localized" depth. ``None``: the whole pool.
        relevant_grade: an LLM grade at or above this counts as relevant (BCE label; LCE drops such
            "negatives" as false negatives when ``drop_false_negatives``).
        drop_false_negatives: leave judged-relevant negatives out of LCE/listwise groups.
        listwise_temperature: temperature of the softmax over grades that the listwise loss imitates.
        epochs, max_steps: passes over the groups; ``max_steps`` (optimizer steps) caps them.
        batch_size: groups per forward/backward; ``gradient_accumulation`` of them make one optimizer step.
        learning_rate, weight_decay, warmup_ratio: AdamW with linear warm-up then linear decay to 0.
        max_grad_norm: gradient clipping (0: off).
        max_length: tokens per (query, passage) input.
        seed: seeds head init, dropout, data order and negative sampling.
        eval_every: optimizer steps between dev evaluations (0: at the end of every epoch); needs a dev set.
        early_stopping_patience: stop after this many evaluations without improvement (0: never).
        dev_min_queries: a dev set of fewer queries is scored and logged, but neither picks the checkpoint nor
            stops early: the last step's weights are kept. A choice among checkpoints on a handful of queries is
            noise, and synthetic dev queries that BM25 already answers tie at nDCG@10 1.0 from the first step,
            which kept the first step's, barely tuned, weights (every default-budget scorecard run did). Among
            checkpoints that tie on a large enough dev set, the later one is kept.
        save_every: optimizer steps between checkpoints (0: only when stopped early or at the end).
        keep_checkpoints: how many recent checkpoints to keep on disk.
        precision: ``"auto"`` (bf16 on a CUDA GPU that has it, else fp16 there; on a CPU bf16 where it has
            AMX, else fp32), or forced. bf16 on a CPU is autocast over fp32 weights; fp16 needs CUDA.
        gradient_checkpointing: recompute activations in backward (less memory, ~30% slower).
        length_bucket_rows: rows per forward pass after sorting a batch's pairs by token length, so each
            pass pads to almost nothing (0: one pass over the whole batch).
        device: ``None`` picks CUDA when present.
        num_threads: CPU intra-op threads (``None``: torch's default).
        dev_batch_size: pairs per forward pass when scoring the dev set.
        log_every: optimizer steps between log lines (the progress bar updates every step).
        trust_remote_code: allow model code shipped with the model (off: it runs arbitrary code).
        activation_budget_mb: a training step whose kept activations would exceed this many MiB (estimated
            from its passes' token counts, :func:`synthrank.train.memory.activation_bytes`) recomputes its longest
            passes in backward and keeps the shortest that fit within the budget: the same weights, one more
            forward per recomputed pass (0: every pass of every step; ``None``: never). Ignored with
            ``gradient_checkpointing`` (already per layer) or DDP.

    Example:
        >>> cfg = TrainConfig(model="minilm", loss="lce", group_size=8, epochs=1, batch_size=8)
        >>> TrainConfig.from_dict(cfg.to_dict()) == cfg
        True
    """

    model: str = "minilm"
    tokenizer: str | None = None
    architecture: Architecture = "cross-encoder"
    similarity_temperature: float = 0.05
    merge_with_base: float = 0.0
    loss: LossName = "lce"
    group_size: int = 8
    negative_sampling: NegativeSampling = "random"
    negative_pool: int | None = None
    relevant_grade: int = 2
    drop_false_negatives: bool = True
    listwise_temperature: float = 1.0
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 8
    gradient_accumulation: int = 1
    learning_rate: float = 7e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    max_length: int = 256
    seed: int = 42
    eval_every: int = 0
    early_stopping_patience: int = 0
    save_every: int = 50
    keep_checkpoints: int = 2
    precision: Precision = "auto"
    gradient_checkpointing: bool = False
    length_bucket_rows: int = 8
    device: str | None = None
    num_threads: int | None = None
    dev_batch_size: int = 64
    log_every: int = 50
    trust_remote_code: bool = False
    activation_budget_mb: int | None = 1536
    dev_min_queries: int = 20

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise DataError(f"unknown loss {self.loss!r}; use one of {', '.join(LOSSES)}", field="loss")
        if self.architecture not in ARCHITECTURES:
            raise DataError(f"unknown architecture {self.architecture!r}; use one of {', '.join(ARCHITECTURES)}",
                            field="architecture")
        if not self.similarity_temperature > 0:
            raise DataError(f"must be positive, got {self.similarity_temperature}", field="similarity_temperature")
        if not 0.0 <= self.merge_with_base < 1.0:
            raise DataError(f"must be in [0, 1), got {self.merge_with_base}", field="merge_with_base")
        if self.merge_with_base and self.architecture != "bi-encoder":
            raise DataError("a cross-encoder's fresh head has no untuned weights to merge with; "
                            "merge_with_base needs architecture: bi-encoder", field="merge_with_base")
        if self.precision not in PRECISIONS:
            raise DataError(f"unknown precision {self.precision!r}; use one of {', '.join(PRECISIONS)}", field="precision")
        if self.negative_sampling not in ("random", "top"):
            raise DataError(f"must be 'random' or 'top', got {self.negative_sampling!r}", field="negative_sampling")
        at_least_one = ("epochs", "batch_size", "gradient_accumulation", "keep_checkpoints", "dev_batch_size", "log_every")
        for name in at_least_one:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise DataError(f"must be an integer of at least 1, got {value!r}", field=name)
        if not isinstance(self.group_size, int) or self.group_size < 2:
            raise DataError(f"a group needs a positive and at least one negative: group_size >= 2, got {self.group_size!r}",
                            field="group_size")
        if self.max_length < 16:
            raise DataError(f"must be at least 16 tokens, got {self.max_length}", field="max_length")
        for name in ("eval_every", "early_stopping_patience", "save_every", "length_bucket_rows", "dev_min_queries"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise DataError(f"must be an integer of 0 or more, got {value!r}", field=name)
        budget = self.activation_budget_mb
        if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool) or budget < 0):
            raise DataError(f"must be an integer of 0 or more or null, got {budget!r}", field="activation_budget_mb")
        for name in ("max_steps", "negative_pool", "num_threads"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise DataError(f"must be an integer of at least 1 or null, got {value!r}", field=name)
        if not self.learning_rate > 0:
            raise DataError(f"must be positive, got {self.learning_rate}", field="learning_rate")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise DataError(f"must be in [0, 1), got {self.warmup_ratio}", field="warmup_ratio")
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            name = "weight_decay" if self.weight_decay < 0 else "max_grad_norm"
            raise DataError(f"must be 0 or more, got {getattr(self, name)}", field=name)
        if not self.listwise_temperature > 0:
            raise DataError(f"must be positive, got {self.listwise_temperature}", field="listwise_temperature")

    @property
    def groups_per_step(self) -> int:
        return self.batch_size * self.gradient_accumulation

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from a mapping (YAML keys may use dashes); an unknown key raises :class:`DataError` naming it.

        A ``None`` for a setting of :data:`ARCHITECTURE_DEFAULTS` (``learning_rate``, ``merge_with_base``) takes
        the chosen architecture's value; a key left out keeps the dataclass default.
        """
        known = {f.name for f in fields(cls)}
        clean: dict[str, Any] = {}
        for key, value in data.items():
            name = str(key).replace("-", "_")
            if name not in known:
                raise DataError(f"unknown training setting; known: {', '.join(sorted(known))}", field=str(key))
            clean[name] = value
        bi = clean.get("architecture", cls.architecture) == "bi-encoder"
        for name, (bi_default, ce_default) in ARCHITECTURE_DEFAULTS.items():
            if name in clean and clean[name] is None:
                clean[name] = bi_default if bi else ce_default
        try:
            return cls(**clean)
        except TypeError as exc:  # pragma: no cover - all fields have defaults
            raise DataError(str(exc)) from None

    def fingerprint(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run that wrote the checkpoint."""
        return {
            k: v for k, v in self.to_dict().items()
            if k not in NON_SEMANTIC and not (k in LATER_DEFAULTS and v == LATER_DEFAULTS[k])
        }  # fmt: skip
