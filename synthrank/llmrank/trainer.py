"""LoRA supervised fine-tuning of a causal LM into a pointwise reranker (LIMRANK-style).

The model learns to answer ``true``/``false`` to the prompt of :mod:`synthrank.llmrank.prompt`;
the loss is cross-entropy on the answer tokens only (and on the reason's tokens when
reasoning is on), never on the prompt. Batches are left-padded exactly as at inference, so
the answer sits at the last position and only the last few positions are projected onto
the vocabulary: a 150k-word head over every prompt token would cost more than the model.

Long runs survive a kill: every ``checkpoint_every`` optimizer steps the adapter, optimizer,
scheduler, all RNG states and the data position are written atomically, and ``resume``
continues from the last complete checkpoint to the same weights an uninterrupted run reaches
(bit-exact on CPU). The data order is a function of (seed, epoch) alone, so a resumed run
skips to its position without replaying anything.

Output folder::

    adapter/          peft adapter (+ tokenizer, llmrank.json): base + adapter, loaded by peft
    merged/           the adapter folded into the base: a plain transformers model (optional)
    checkpoints/      step-000050/ ... (the last ``keep_checkpoints``)
    metrics.json      config, data counts, loss curve, time
    README.md         model card

Example:
    >>> from synthrank.llmrank import LoRATrainingConfig, train_llm_reranker, examples_from_groups
    >>> config = LoRATrainingConfig(base_model="qwen2.5-coder-0.5b", max_length=256, batch_size=4)
    >>> result = train_llm_reranker(examples, "runs/llmrank", config)
    >>> result.model_dir
    PosixPath('runs/llmrank/merged')
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from synthrank.data.jsonl import atomic_dir, atomic_write, write_json
from synthrank.errors import DataError, ModelError, SynthrankError
from synthrank.llmrank.data import SFTExample, class_counts
from synthrank.llmrank.prompt import AnswerTokens, PointwisePrompt, PromptEncoder
from synthrank.llmrank.scorer import METADATA_FILE, forward_logits
from synthrank.runtime import (
    CAUSAL_LM,
    autocast_context,
    load_causal_lm,
    resolve_device,
    resolve_precision,
    torch_dtype,
)
from synthrank.train.checkpoint import (
    list_checkpoints,
    load_checkpoint_state,
    restore_trainer_state,
    set_seed,
    trainer_state,
    write_checkpoint,
)

logger = logging.getLogger(__name__)

CHECKPOINT_STATE = "trainer_state.pt"
ADAPTER_WEIGHTS = "adapter_model.safetensors"

# settings that do not change the trained weights (they may differ between a run and its resume)
_NON_SEMANTIC = {"checkpoint_every", "keep_checkpoints", "device", "merge", "output_dtype"}


@dataclass
class LoRATrainingConfig:
    """Every setting of a LoRA SFT run (written to metrics.json; a resume must use the same ones).

    Args:
        base_model: a packaged GGUF name (``qwen2.5-coder-0.5b``, converted once), an HF folder, or a hub id.
        max_length: tokens per example (prompt + answer); passages are cut to fit.
        epochs: passes over the examples.
        max_steps: stop after this many optimizer steps (``None``: the epochs decide).
        batch_size: examples per forward pass; ``gradient_accumulation_steps`` of them make one optimizer step.
        learning_rate, weight_decay, warmup_ratio, lr_scheduler, max_grad_norm: AdamW and its schedule.
        lora_r, lora_alpha, lora_dropout: the adapter's rank, scale and dropout.
        target_modules: module names to adapt; ``None``: every attention and MLP projection found.
        lora_layers: adapt only the last N transformer layers (``None``: all). Backpropagation then stops
            at the lowest adapted layer, so training costs ~1 + N/L forward passes instead of ~3: the CPU option.
        seed: seeds LoRA init, dropout and the data order.
        checkpoint_every: optimizer steps between checkpoints (0: only at the end).
        keep_checkpoints: how many recent checkpoints to keep.
        device: ``None`` picks CUDA when available.
        bf16: bf16 base weights and autocast on CUDA, and on CPUs with AMX (Intel Sapphire Rapids and later,
            several times faster there); ignored on other CPUs, where bf16 is slow. LoRA weights stay float32.
        gradient_checkpointing: trade compute for memory on long sequences.
        merge: also write ``merged/`` (the adapter folded into the base weights).
        output_dtype: dtype of the merged weights (``None``: that of the loaded base).
        prompt: the prompt settings (reasoning on/off, answer words...).
    """

    base_model: str = "qwen2.5-coder-0.5b"
    max_length: int = 256
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 4
    gradient_accumulation_steps: int = 4
    learning_rate: float = 2e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    lr_scheduler: str = "linear"
    max_grad_norm: float = 1.0
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] | None = None
    lora_layers: int | None = None
    seed: int = 42
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    device: str | None = None
    bf16: bool = True
    gradient_checkpointing: bool = False
    merge: bool = True
    output_dtype: str | None = None
    prompt: PointwisePrompt = field(default_factory=PointwisePrompt)

    def __post_init__(self) -> None:
        if isinstance(self.prompt, dict):
            self.prompt = PointwisePrompt.from_dict(self.prompt)
        for name in ("max_length", "epochs", "batch_size", "gradient_accumulation_steps", "lora_r", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise DataError(f"must be at least 1, got {getattr(self, name)}", field=name)
        if self.lora_layers is not None and self.lora_layers < 1:
            raise DataError(f"must be at least 1, got {self.lora_layers}", field="lora_layers")
        if self.max_steps is not None and self.max_steps < 1:
            raise DataError(f"must be at least 1, got {self.max_steps}", field="max_steps")
        if self.checkpoint_every < 0:
            raise DataError(f"must be 0 or more, got {self.checkpoint_every}", field="checkpoint_every")
        if self.learning_rate <= 0:
            raise DataError(f"must be positive, got {self.learning_rate}", field="learning_rate")
        if self.lr_scheduler not in ("linear", "cosine", "constant", "constant_with_warmup"):
            raise DataError(f"unknown scheduler {self.lr_scheduler!r}", field="lr_scheduler")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["prompt"] = self.prompt.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoRATrainingConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise DataError(f"unknown training settings: {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        return cls(**data)

    def fingerprint(self) -> dict[str, Any]:
        return {k: v for k, v in self.to_dict().items() if k not in _NON_SEMANTIC}


@dataclass
class TrainResult:
    """Where the model went and how training went."""

    output_dir: Path
    adapter_dir: Path | None
    merged_dir: Path | None
    completed: bool
    global_step: int
    total_steps: int
    metrics: dict[str, Any]

    @property
    def model_dir(self) -> Path:
        """The folder to score with: merged if written, else the adapter."""
        found = self.merged_dir or self.adapter_dir
        if found is None:
            raise SynthrankError(f"training in {self.output_dir} did not finish: no model was written yet")
        return found


@dataclass
class LoRAState:
    """What a checkpoint keeps besides the adapter, optimizer, scheduler and RNG.

    The step is the data position too: the example order is a function of (seed, epoch) alone.
    """

    global_step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0

    @classmethod
    def from_checkpoint(cls, saved: dict[str, Any]) -> LoRAState:
        return cls(
            global_step=int(saved["global_step"]),
            history=list(saved.get("history", [])),
            train_seconds=float(saved.get("train_seconds", 0.0)),
        )


@dataclass
class _LoRASession:
    """The live objects of one training session: rebuilt on every (re)start, never checkpointed themselves."""

    fingerprint: dict[str, Any]
    counts: dict[str, int]
    device: str
    use_bf16: bool
    model: Any  # the peft-wrapped base
    tokenizer: Any
    base_path: Path | str
    encoded: list[tuple[list[int], list[int]]]  # (input ids, labels) per example
    pad_id: int
    answers: AnswerTokens
    trainable: list[Any]
    optimizer: Any
    scheduler: Any
    total_steps: int
    steps_per_epoch: int
    state: LoRAState = field(default_factory=LoRAState)


def default_target_modules(model: Any) -> list[str]:
    """Attention and MLP projection names present in ``model`` (LLaMA/Qwen/Mistral/Gemma naming, else GPT-2's)."""
    import torch

    wanted = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    found = [w for w in wanted if w in names]
    if found:
        return found
    gpt2 = [w for w in ("c_attn", "c_proj", "c_fc", "query_key_value", "dense") if w in names]
    if gpt2:
        return gpt2
    raise ModelError(f"cannot tell which modules to adapt in {type(model).__name__}; pass target_modules")


def examples_fingerprint(examples: Sequence[SFTExample]) -> str:
    digest = hashlib.sha256()
    for e in examples:
        digest.update(json.dumps(e.to_json(), sort_keys=True, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()[:16]


class LoRATrainer:
    """Fine-tunes a causal LM with LoRA on :class:`SFTExample` s; see the module docstring.

    Args:
        config: the run's settings.
        output_dir: where checkpoints, the adapter, the merged model and metrics go.

    Example:
        >>> trainer = LoRATrainer(LoRATrainingConfig(base_model="qwen2.5-coder-0.5b"), "runs/llmrank")
        >>> result = trainer.train(examples)          # resumes from runs/llmrank/checkpoints if present
        >>> CausalLMReranker(result.model_dir).score_pairs(["q"], ["passage"])
    """

    def __init__(self, config: LoRATrainingConfig, output_dir: str | Path) -> None:
        self.config = config
        self.output_dir = Path(output_dir)
        self.checkpoint_root = self.output_dir / "checkpoints"

    # ------------------------------------------------------------------ checkpoints

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        return list_checkpoints(self.checkpoint_root, (CHECKPOINT_STATE,))

    def _save_checkpoint(self, model: Any, optimizer: Any, scheduler: Any, state: dict[str, Any]) -> Path:
        import torch
        from peft import get_peft_model_state_dict
        from safetensors.torch import save_file

        def fill(tmp: Path) -> None:
            weights = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(model).items()}
            save_file(weights, str(tmp / ADAPTER_WEIGHTS))
            torch.save(trainer_state(state, optimizer, scheduler), tmp / CHECKPOINT_STATE)

        return write_checkpoint(self.checkpoint_root, state["global_step"], fill, keep=self.config.keep_checkpoints,
                                required=(CHECKPOINT_STATE,))  # fmt: skip

    def _load_checkpoint(self, path: Path, model: Any, optimizer: Any, scheduler: Any) -> dict[str, Any]:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        weights = load_file(str(path / ADAPTER_WEIGHTS), device=str(next(model.parameters()).device))
        result = set_peft_model_state_dict(model, weights)
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise ModelError(f"checkpoint {path} does not fit this model: unexpected keys {unexpected[:5]}")
        state = load_checkpoint_state(path / CHECKPOINT_STATE)
        restore_trainer_state(state, optimizer, scheduler)
        return state

    # ------------------------------------------------------------------ training

    def train(
        self,
        examples: Sequence[SFTExample],
        *,
        resume: bool = True,
        stop_after_steps: int | None = None,
        show_progress: bool = True,
    ) -> TrainResult:
        """Train (or resume) and write the adapter, the merged model, metrics and the model card.

        Args:
            examples: the SFT examples (their order is kept; the trainer shuffles per epoch, seeded).
            resume: continue from the last checkpoint in ``output_dir``; ``False`` refuses to start over one.
            stop_after_steps: checkpoint and return after this optimizer step (``completed=False``), as if
                killed there; a later ``train`` resumes. For tests and time-boxed runs.
            show_progress: a tqdm bar over optimizer steps.
        """
        if not examples:
            raise DataError("no training examples")
        counts = class_counts(examples)
        if counts["positives"] == 0 or counts["negatives"] == 0:
            raise DataError(f"training needs both relevant and non-relevant examples, got {counts}")
        existing = self.output_dir / "metrics.json"
        fingerprint = {"config": self.config.fingerprint(), "examples": examples_fingerprint(examples)}
        if existing.exists():
            done = json.loads(existing.read_text(encoding="utf-8"))
            if done.get("completed") and done.get("fingerprint") == fingerprint and resume:
                logger.info("%s already holds this finished run; nothing to do", self.output_dir)
                return self._result_from_disk(done)
        checkpoints = self.checkpoints()
        if checkpoints and not resume:
            raise SynthrankError(
                f"{self.checkpoint_root} holds checkpoints of an earlier run; resume it or use an empty output folder"
            )
        started = time.perf_counter()
        session = self._start(examples, fingerprint, counts)
        if checkpoints:
            self._resume(session, checkpoints[-1])
        stopped_early = self._loop(session, stop_after_steps, show_progress)
        return self._finish(session, stopped_early, started)

    # ------------------------------------------------------------------ the loop's steps

    def _start(self, examples: Sequence[SFTExample], fingerprint: dict[str, Any], counts: dict[str, int]) -> _LoRASession:
        """Seed, device, precision, base model with its adapter, encoded examples, optimizer and schedule."""
        import torch
        from transformers import get_scheduler

        cfg = self.config
        set_seed(cfg.seed)
        device = resolve_device(cfg.device)
        use_bf16 = resolve_precision("auto" if cfg.bf16 else "fp32", device, CAUSAL_LM) == "bf16"
        model, tokenizer, base_path = self._load_base(device, use_bf16)
        encoder = PromptEncoder(tokenizer, cfg.prompt, cfg.max_length)
        encoded = [encoder.encode_example(e.query, e.passage, e.label, e.reason) for e in examples]
        model = self._add_adapter(model)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        micro_per_epoch = math.ceil(len(encoded) / cfg.batch_size)
        steps_per_epoch = math.ceil(micro_per_epoch / cfg.gradient_accumulation_steps)
        total_steps = steps_per_epoch * cfg.epochs
        if cfg.max_steps is not None:
            total_steps = min(total_steps, cfg.max_steps)
        scheduler = get_scheduler(
            cfg.lr_scheduler,
            optimizer=optimizer,
            num_warmup_steps=round(cfg.warmup_ratio * total_steps),
            num_training_steps=total_steps,
        )
        return _LoRASession(
            fingerprint=fingerprint, counts=counts, device=device, use_bf16=use_bf16, model=model,
            tokenizer=tokenizer, base_path=base_path, encoded=encoded, pad_id=_pad_id(tokenizer),
            answers=encoder.answers, trainable=trainable, optimizer=optimizer, scheduler=scheduler,
            total_steps=total_steps, steps_per_epoch=steps_per_epoch,
        )  # fmt: skip

    def _add_adapter(self, model: Any) -> Any:
        """The base wrapped by peft with fresh LoRA weights (seeded) on the configured modules and layers."""
        from peft import LoraConfig, get_peft_model

        cfg = self.config
        layers: list[int] | None = None
        if cfg.lora_layers is not None:
            total_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
            if total_layers < 1:
                raise ModelError(f"{type(model).__name__} does not say how many layers it has; drop lora_layers")
            layers = list(range(max(0, total_layers - cfg.lora_layers), total_layers))
        lora = LoraConfig(
            task_type="CAUSAL_LM",
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=cfg.target_modules or default_target_modules(model),
            layers_to_transform=layers,
        )
        model = get_peft_model(model, lora)
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.enable_input_require_grads()
        return model

    def _resume(self, s: _LoRASession, checkpoint: Path) -> None:
        """Load a checkpoint into the session; refuse one written for other settings or examples."""
        saved = self._load_checkpoint(checkpoint, s.model, s.optimizer, s.scheduler)
        if saved.get("fingerprint") != s.fingerprint:
            raise SynthrankError(
                f"{checkpoint} was written by a run with other settings or examples; "
                "use an empty output folder (or --overwrite) to start a new run"
            )
        s.state = LoRAState.from_checkpoint(saved)
        logger.info("resuming from %s (step %d of %d)", checkpoint, s.state.global_step, s.total_steps)

    def _loop(self, s: _LoRASession, stop_after_steps: int | None, show_progress: bool) -> bool:
        """Optimizer steps to the end or to ``stop_after_steps`` (then ``True``), checkpointing on the way."""
        from tqdm.auto import tqdm

        cfg, st = self.config, s.state
        s.model.train()
        bar = tqdm(total=s.total_steps, initial=st.global_step, desc="LoRA SFT", unit="step", disable=not show_progress)
        t_segment = time.perf_counter()
        try:
            while st.global_step < s.total_steps:
                self._step(s)
                bar.update(1)
                bar.set_postfix(loss=f"{st.history[-1]['loss']:.4f}")
                at_checkpoint = cfg.checkpoint_every > 0 and st.global_step % cfg.checkpoint_every == 0
                stop_now = stop_after_steps is not None and stop_after_steps <= st.global_step < s.total_steps
                if at_checkpoint or stop_now or st.global_step == s.total_steps:
                    now = time.perf_counter()
                    st.train_seconds += now - t_segment
                    t_segment = now
                    self._checkpoint(s)
                if stop_now:
                    return True
        finally:
            bar.close()
        return False

    def _step(self, s: _LoRASession) -> None:
        """One optimizer step over the next ``gradient_accumulation_steps`` micro-batches; its loss into the history."""
        import torch

        cfg, st = self.config, s.state
        epoch, step_in_epoch = divmod(st.global_step, s.steps_per_epoch)
        order = np.random.default_rng(cfg.seed + epoch).permutation(len(s.encoded))
        micro = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
        accumulation = cfg.gradient_accumulation_steps
        window = micro[step_in_epoch * accumulation : (step_in_epoch + 1) * accumulation]
        n_targets = sum(sum(1 for t in s.encoded[i][1] if t != -100) for mb in window for i in mb)
        loss_sum = 0.0
        correct = total = 0
        for mb in window:
            loss, right = self._backward(s, [s.encoded[i] for i in mb], n_targets)
            loss_sum += loss
            correct += right
            total += len(mb)
        if cfg.max_grad_norm and cfg.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(s.trainable, cfg.max_grad_norm)
        s.optimizer.step()
        s.scheduler.step()
        s.optimizer.zero_grad(set_to_none=True)
        st.global_step += 1
        st.history.append(
            {
                "step": st.global_step,
                "loss": loss_sum / max(n_targets, 1),
                "answer_accuracy": correct / max(total, 1),
                "lr": float(s.scheduler.get_last_lr()[0]),
            }
        )

    def _backward(self, s: _LoRASession, rows: list[tuple[list[int], list[int]]], n_targets: int) -> tuple[float, int]:
        """Forward and backward of one micro-batch: ``(summed answer loss, examples answered right)``.

        Only the last positions that carry targets are projected onto the vocabulary; the loss is divided by the
        step's target count, so accumulated micro-batches weigh every target token alike.
        """
        import torch

        inputs, labels, keep = _collate(rows, s.pad_id, s.device)
        with autocast_context(s.device, torch.bfloat16 if s.use_bf16 else None):
            logits = forward_logits(s.model, inputs, keep=keep + 1)[:, :-1, :].float()
        flat_labels = labels[:, -keep:].reshape(-1)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), flat_labels, ignore_index=-100, reduction="sum"
        )
        (loss / n_targets).backward()
        last = logits[:, -1, :].detach()
        pred_true = last[:, s.answers.true_id] > last[:, s.answers.false_id]
        gold_true = labels[:, -1] == s.answers.true_id
        return float(loss.detach()), int((pred_true == gold_true).sum())

    def _checkpoint(self, s: _LoRASession) -> None:
        """Save the adapter, optimizer, scheduler, RNG and the data position."""
        st = s.state
        state = {
            "global_step": st.global_step,
            "total_steps": s.total_steps,
            "history": st.history,
            "train_seconds": st.train_seconds,
            "fingerprint": s.fingerprint,
        }
        self._save_checkpoint(s.model, s.optimizer, s.scheduler, state)

    def _finish(self, s: _LoRASession, stopped_early: bool, started: float) -> TrainResult:
        """Metrics; for a completed run also the adapter, the merged model and the model card."""
        st = s.state
        metrics = self._metrics(s, completed=not stopped_early)
        if stopped_early:
            write_json(self.output_dir / "metrics.json", metrics)
            return TrainResult(self.output_dir, None, None, False, st.global_step, s.total_steps, metrics)
        adapter_dir, merged_dir = self._export(s.model, s.tokenizer, s.base_path, metrics)
        metrics["wall_seconds"] = round(time.perf_counter() - started, 2)
        write_json(self.output_dir / "metrics.json", metrics)
        self._write_model_card(metrics)
        return TrainResult(self.output_dir, adapter_dir, merged_dir, True, st.global_step, s.total_steps, metrics)

    def _metrics(self, s: _LoRASession, *, completed: bool) -> dict[str, Any]:
        """metrics.json: settings, data, loss and answer-accuracy curves, time and where it ran."""
        cfg, st = self.config, s.state
        examples_seen = max(1, st.global_step * cfg.batch_size * cfg.gradient_accumulation_steps)
        return {
            "completed": completed,
            "fingerprint": s.fingerprint,
            "config": cfg.to_dict(),
            "base_model_path": str(s.base_path),
            "data": s.counts,
            "global_step": st.global_step,
            "total_steps": s.total_steps,
            "steps_per_epoch": s.steps_per_epoch,
            "train_seconds": round(st.train_seconds, 2),
            "seconds_per_example": round(st.train_seconds / examples_seen, 4),
            "device": s.device,
            "bf16": s.use_bf16,
            "trainable_parameters": int(sum(p.numel() for p in s.trainable)),
            "history": st.history,
            "final_loss": _mean_tail([h["loss"] for h in st.history]),
            "final_answer_accuracy": _mean_tail([h["answer_accuracy"] for h in st.history]),
        }

    # ------------------------------------------------------------------ helpers

    def _load_base(self, device: str, use_bf16: bool) -> tuple[Any, Any, Path | str]:
        from synthrank.llmrank.convert import resolve_causal_lm

        base_path = resolve_causal_lm(self.config.base_model)
        # bf16 weights on CUDA and AMX CPUs (LoRA weights stay float32, peft's default); float32 elsewhere
        model, tokenizer = load_causal_lm(
            base_path, dtype=torch_dtype("bf16" if use_bf16 else "fp32"), describe=f"the base model {base_path}"
        )
        model.config.use_cache = False
        return model.to(device), tokenizer, base_path

    def _export(self, model: Any, tokenizer: Any, base_path: Path | str, metrics: dict[str, Any]) -> tuple[Path, Path | None]:
        import torch

        meta = {
            "format": "synthrank-llmrank",
            "version": 1,
            "prompt": self.config.prompt.to_dict(),
            "max_length": self.config.max_length,
            "base_model": str(base_path),
            "base_model_name": self.config.base_model,
        }
        def save(folder: Path, weights: Any, kind: str) -> None:
            weights.save_pretrained(str(folder), safe_serialization=True)
            tokenizer.save_pretrained(str(folder))
            _write_meta(folder, {**meta, "kind": kind})

        adapter_dir = self.output_dir / "adapter"
        atomic_dir(adapter_dir, lambda tmp: save(tmp, model, "adapter"))
        merged_dir: Path | None = None
        if self.config.merge:
            merged = model.merge_and_unload()
            if self.config.output_dtype:
                merged = merged.to(torch_dtype(self.config.output_dtype))
            merged.config.use_cache = True
            merged_dir = self.output_dir / "merged"
            atomic_dir(merged_dir, lambda tmp: save(tmp, merged, "merged"))
            del merged
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return adapter_dir, merged_dir

    def _result_from_disk(self, metrics: dict[str, Any]) -> TrainResult:
        adapter = self.output_dir / "adapter"
        merged = self.output_dir / "merged"
        return TrainResult(
            self.output_dir,
            adapter if adapter.exists() else None,
            merged if merged.exists() else None,
            True,
            int(metrics.get("global_step", 0)),
            int(metrics.get("total_steps", 0)),
            metrics,
        )

    def _write_model_card(self, metrics: dict[str, Any]) -> None:
        cfg = self.config
        data = metrics["data"]
        lines = [
            "# synthrank pointwise LLM reranker (LoRA)",
            "",
            f"A causal LM fine-tuned with LoRA to answer whether a passage is relevant to a query "
            f"(`{cfg.prompt.true_word}`/`{cfg.prompt.false_word}`); score = P(true) / (P(true) + P(false)).",
            "",
            f"- base model: `{cfg.base_model}` (`{metrics['base_model_path']}`)",
            f"- training examples: {data['examples']} ({data['positives']} relevant, {data['negatives']} not relevant)",
            f"- steps: {metrics['global_step']} (batch {cfg.batch_size} x accumulation {cfg.gradient_accumulation_steps}), "
            f"epochs {cfg.epochs}, lr {cfg.learning_rate}, LoRA r={cfg.lora_r} alpha={cfg.lora_alpha}",
            f"- max length {cfg.max_length} tokens; reasoning {'on' if cfg.prompt.reasoning else 'off'}; seed {cfg.seed}",
            f"- final training loss {metrics['final_loss']:.4f}, answer accuracy {metrics['final_answer_accuracy']:.3f}",
            f"- trained on {metrics['device']} in {metrics['train_seconds']:.0f} s",
            "",
            "## Use",
            "",
            "```python",
            "from synthrank.llmrank import CausalLMReranker",
            f"reranker = CausalLMReranker({str(self.output_dir / ('merged' if cfg.merge else 'adapter'))!r})",
            "scores = reranker.score_pairs([query, query], [passage_a, passage_b])",
            "```",
            "",
            "`adapter/` loads with `peft.PeftModel.from_pretrained(base, 'adapter')`; `merged/` with "
            "`transformers.AutoModelForCausalLM.from_pretrained('merged')`.",
            "",
            "Training data is synthetic (LLM-written queries, BM25-mined negatives, LLM labels): check the "
            "licence of the base model and of the corpus before redistributing.",
        ]
        with atomic_write(self.output_dir / "README.md") as fh:
            fh.write("\n".join(lines) + "\n")


def train_llm_reranker(
    examples: Sequence[SFTExample],
    output_dir: str | Path,
    config: LoRATrainingConfig | None = None,
    *,
    resume: bool = True,
    show_progress: bool = True,
) -> TrainResult:
    """Fine-tune a pointwise LLM reranker with LoRA; see :class:`LoRATrainer`."""
    return LoRATrainer(config or LoRATrainingConfig(), output_dir).train(examples, resume=resume, show_progress=show_progress)


def _collate(rows: Sequence[tuple[list[int], list[int]]], pad_id: int, device: str) -> tuple[dict[str, Any], Any, int]:
    """Left-padded batch (as at inference); returns inputs, labels and how many final positions carry targets."""
    import torch

    width = max(len(ids) for ids, _ in rows)
    ids_t = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels_t = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    keep = 1
    for j, (ids, labels) in enumerate(rows):
        n = len(ids)
        ids_t[j, width - n :] = torch.tensor(ids, dtype=torch.long)
        labels_t[j, width - n :] = torch.tensor(labels, dtype=torch.long)
        mask[j, width - n :] = 1
        first = next(i for i, t in enumerate(labels) if t != -100)
        keep = max(keep, n - first)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    inputs = {"input_ids": ids_t.to(device), "attention_mask": mask.to(device), "position_ids": positions.to(device)}
    return inputs, labels_t.to(device), keep


def _pad_id(tokenizer: Any) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def _mean_tail(values: list[float], n: int = 10) -> float:
    tail = values[-n:]
    return float(sum(tail) / len(tail)) if tail else float("nan")


def _write_meta(folder: Path, meta: dict[str, Any]) -> None:
    (folder / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
