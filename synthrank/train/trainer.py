"""Reranker training with LCE (or BCE / listwise distillation), checkpoints and exact resume.

The model is a cross-encoder (one relevance logit over the joint query-passage input; the default)
or, with ``architecture="bi-encoder"``, the plain encoder itself: the logits are the cosines of
pooled query and passage embeddings over a temperature, so step 0 *is* the zero-shot baseline,
and ``merge_with_base`` averages the untuned weights back in (WiSE-FT) to keep its breadth.

One optimizer step = ``batch_size x gradient_accumulation`` groups of G (query, passage) pairs.
A batch's B x G pairs are tokenized together, sorted by token length and run in passes of
``length_bucket_rows`` rows, so each pass pads to almost nothing; the logits are put back in
group order and the loss sees the whole ``[B, G]`` matrix, so bucketing changes speed, not the
loss. (sentence-transformers' trainer pads each column of a batch to its longest member.)

A batch whose kept activations would exceed ``activation_budget_mb`` (estimated from its token counts)
checkpoints its passes instead: backward recomputes each one (same dropout draws), so the gradients are the
same for one more forward per pass; see :mod:`synthrank.train.memory`.

A kill -9 costs at most ``save_every`` steps: a checkpoint holds the weights (safetensors),
AdamW's moments, the scheduler, the fp16 grad scaler, the python/numpy/torch(/CUDA) RNG states,
the step (the data position: epoch order and negative draws are functions of seed, epoch and
group alone) and the dev history. Resuming restores all of it and reaches the same weights as
an uninterrupted run (bit-identical on CPU).

Output folder::

    model/            the trained cross-encoder: safetensors + tokenizer + config (num_labels=1) + README.md
                      (the best dev checkpoint when a dev set was given, else the last step); a bi-encoder
                      is a plain encoder folder that is also a sentence-transformers model
    metrics.json      config, data counts, loss per step, dev metrics, timings
    README.md         the model card (also inside model/)
    loss.png, dev_ndcg.png
    run_config.yaml   the resolved settings
    checkpoints/      step-NNNNNN/ while training (removed once the run completes)
    best/             best dev checkpoint while training (removed once copied to model/)
    merged/           the best weights merged with the base (merge_with_base), until copied to model/

Multi-GPU: launch the same script with ``accelerate launch`` or ``torchrun``; when the environment
says ``WORLD_SIZE > 1`` the trainer wraps the model with :mod:`accelerate` (DDP) and each process
takes its share of every batch. The single-process path never imports accelerate.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import resource
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from synthrank.data.groups import TrainingGroup
from synthrank.data.jsonl import atomic_dir, atomic_write, write_json
from synthrank.errors import DataError, ModelError, SynthrankError
from synthrank.runtime import (
    TRAINING,
    Precision,
    autocast_context,
    autocast_dtype,
    batch_tensors,
    borrow_pad_token,
    inspect_model,
    load_encoder,
    load_encoder_weights,
    pool_embeddings,
    quiet_transformers,
    read_sentence_transformers_settings,
    resolve_device,
    resolve_precision,
    set_torch_threads,
    write_sentence_transformers_files,
)
from synthrank.train.checkpoint import (
    list_checkpoints,
    load_checkpoint_state,
    restore_trainer_state,
    set_seed,
    trainer_state,
    write_checkpoint,
)
from synthrank.train.config import TrainConfig
from synthrank.train.data import GroupSampler, SampledGroup, groups_fingerprint, load_groups
from synthrank.train.dev import DevSet
from synthrank.train.memory import (
    MIB,
    EncoderShape,
    activation_bytes,
    backbone_config,
    fit_train_memory,
    passes_to_recompute,
    release_free_memory,
    release_on_backward,
)
from synthrank.train.report import write_model_card, write_plots

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "trainer_state.pt"
DEV_METRIC = "nDCG@10"


@dataclass
class TrainResult:
    """Where the model went and how training went.

    ``model_dir`` is the folder to load (``load_scorer(result.model_dir)``); ``completed`` is
    ``False`` when the run was stopped on purpose before its end (``stop_after_steps``).
    """

    output_dir: Path
    model_dir: Path
    metrics: dict[str, Any]
    best_step: int | None
    completed: bool = True
    global_step: int = 0
    total_steps: int = 0


@dataclass
class TrainState:
    """What a checkpoint keeps besides weights, optimizer, scheduler and RNG: the data position and dev history.

    The step is the data position too: epoch order and negative draws are functions of seed, epoch and group.
    """

    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    dev_history: list[dict[str, Any]] = field(default_factory=list)
    best_metric: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    train_seconds: float = 0.0
    groups_trained: int = 0
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint's state entries (plain values and lists: loadable with ``weights_only=True``)."""
        return asdict(self)

    @classmethod
    def from_checkpoint(cls, saved: dict[str, Any]) -> TrainState:
        """The state a checkpoint saved (entries it lacks keep their defaults)."""
        fresh = cls()
        return cls(**{f.name: saved.get(f.name, getattr(fresh, f.name)) for f in fields(cls)})


@dataclass
class _Session:
    """The live objects of one training session: rebuilt on every (re)start, never checkpointed themselves."""

    sampler: GroupSampler
    dev: DevSet | None
    fingerprint: dict[str, Any]
    device: str
    precision: Precision
    rank: int
    world: int
    model: Any  # what runs forward and backward (DDP-wrapped when distributed)
    raw_model: Any  # the model itself: saved, evaluated, merged
    tokenizer: Any
    base_path: str
    optimizer: Any
    scheduler: Any
    scaler: Any  # fp16's gradient scaler (single process on CUDA), else None
    total_steps: int
    steps_per_epoch: int
    shape: EncoderShape
    state: TrainState = field(default_factory=TrainState)
    recomputed_batches: int = 0  # batches with passes recomputed in backward (this session)
    recomputed_passes: int = 0  # of which passes (the rest of those batches kept their activations)
    passes: int = 0  # forward passes with gradients (this session)
    ema: float | None = None  # smoothed loss for the progress bar and log

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


# --------------------------------------------------------------------------- small helpers


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


# --------------------------------------------------------------------------- the trainer


class RerankerTrainer:
    """Trains a one-logit cross-encoder on training groups; see the module docstring.

    Args:
        config: the run's settings.
        output_dir: checkpoints, the model folder, metrics, plots and the model card go here.

    Example:
        >>> trainer = RerankerTrainer(TrainConfig(model="minilm", loss="lce", group_size=8), "runs/lce")
        >>> result = trainer.train("out/groups.jsonl", dev=DevSet.from_dataset(dev_data, top_k=30))
        >>> CrossEncoderReranker(result.model_dir).score_pairs(["q"], ["passage"])
    """

    def __init__(self, config: TrainConfig, output_dir: str | Path) -> None:
        self.config = config
        self.output_dir = Path(output_dir)
        self.checkpoint_root = self.output_dir / "checkpoints"
        self.best_dir = self.output_dir / "best"
        self.merged_dir = self.output_dir / "merged"
        self.model_dir = self.output_dir / "model"
        self._accelerator: Any = None
        self._pooling: Any = "mean"  # bi-encoder pooling, read from the base folder

    # ------------------------------------------------------------------ checkpoints

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        return list_checkpoints(self.checkpoint_root, (STATE_FILE, WEIGHTS_FILE))

    def _save_checkpoint(self, model: Any, optimizer: Any, scheduler: Any, scaler: Any, state: dict[str, Any]) -> None:
        import torch
        from safetensors.torch import save_model

        def fill(tmp: Path) -> None:
            save_model(model, str(tmp / WEIGHTS_FILE))
            scaler_state = scaler.state_dict() if scaler is not None else None
            torch.save(trainer_state(state, optimizer, scheduler, scaler=scaler_state), tmp / STATE_FILE)

        write_checkpoint(self.checkpoint_root, state["global_step"], fill, keep=self.config.keep_checkpoints,
                         required=(STATE_FILE, WEIGHTS_FILE))  # fmt: skip

    def _load_checkpoint(self, path: Path, model: Any, optimizer: Any, scheduler: Any, scaler: Any) -> dict[str, Any]:
        from safetensors.torch import load_model

        device = str(next(model.parameters()).device)
        missing, unexpected = load_model(model, str(path / WEIGHTS_FILE), strict=False, device=device)
        if missing or unexpected:
            raise ModelError(
                f"checkpoint {path} does not fit this model (missing {sorted(missing)[:3]}, unexpected "
                f"{sorted(unexpected)[:3]}); was it written for another backbone?"
            )
        state = load_checkpoint_state(path / STATE_FILE)
        restore_trainer_state(state, optimizer, scheduler)
        if scaler is not None and state.get("scaler") is not None:
            scaler.load_state_dict(state["scaler"])
        return state

    def _clear(self) -> None:
        for path in (self.checkpoint_root, self.best_dir, self.merged_dir, self.model_dir):
            if path.exists():
                shutil.rmtree(path)
        for name in ("metrics.json", "README.md", "loss.png", "dev_ndcg.png", "run_config.yaml"):
            (self.output_dir / name).unlink(missing_ok=True)

    # ------------------------------------------------------------------ loading

    def _load_model(self, device: str) -> tuple[Any, Any, str]:
        """The backbone in float32 (a fresh one-logit head on a plain encoder), its tokenizer and its source."""
        import torch

        cfg = self.config
        info = inspect_model(cfg.model, trust_remote_code=cfg.trust_remote_code)
        bi = cfg.architecture == "bi-encoder"
        if bi and info.kind != "encoder":
            raise ModelError(
                f"{info.source} is {info.describe()}: a bi-encoder is trained from a plain transformer encoder "
                "(e.g. a sentence-transformers model)"
            )
        if info.kind not in ("encoder", "cross-encoder"):
            raise ModelError(
                f"{info.source} is {info.describe()}: training starts from a transformer encoder (a fresh "
                "one-logit head is added) or from a one-logit cross-encoder"
            )
        model, tokenizer = load_encoder(
            info,
            head="none" if bi else "relevance",
            dtype=torch.float32,
            describe=f"{info.source!r} as a cross-encoder to train",
            trust_remote_code=cfg.trust_remote_code,
            tokenizer=cfg.tokenizer,
        )
        borrow_pad_token(tokenizer, info.source)
        model.config.pad_token_id = tokenizer.pad_token_id
        if tokenizer.padding_side != "right":
            tokenizer.padding_side = "right"
        limit = int(getattr(model.config, "max_position_embeddings", 512) or 512)
        if cfg.max_length > limit:
            raise DataError(f"max_length {cfg.max_length} exceeds the model's {limit} positions", field="max_length")
        if bi:
            self._pooling = (read_sentence_transformers_settings(Path(info.source))[1] if info.local else None) or "mean"
            logger.info("training %s as a bi-encoder (%s pooling, cosine / %g)", info.source, self._pooling,
                        cfg.similarity_temperature)
        elif info.kind == "encoder":
            logger.info("%s is a plain encoder: training a fresh one-logit head on it", info.source)
        return model.to(device), tokenizer, info.source

    # ------------------------------------------------------------------ training

    def train(
        self,
        groups: str | Path | Sequence[TrainingGroup],
        dev: DevSet | None = None,
        *,
        restart: bool = False,
        stop_after_steps: int | None = None,
        show_progress: bool = True,
    ) -> TrainResult:
        """Train (resuming from this folder's checkpoint when its settings match) and write the outputs.

        Args:
            groups: a groups JSONL path or training groups in memory.
            dev: scored every ``eval_every`` steps (or each epoch); keeps the best checkpoint, drives early stopping.
            restart: delete this folder's checkpoints and outputs and start over.
            stop_after_steps: checkpoint and return after this optimizer step (``completed=False``), as if
                killed there; a later call resumes. For tests and time-boxed runs.
            show_progress: a tqdm bar with loss and throughput.

        Raises:
            SynthrankError: the folder holds a run with other settings or data (pass ``restart=True``).
            DataError: bad groups (file, line and field named) or bad settings.
        """
        cfg = self.config
        started = time.perf_counter()
        group_list, lines, source = load_groups(groups)
        if not group_list:
            raise DataError("no training groups", path=source)
        sampler = GroupSampler(group_list, cfg, path=source, lines=lines)
        fingerprint: dict[str, Any] = {
            "config": cfg.fingerprint(),
            "groups": groups_fingerprint(group_list),
            "dev": None if dev is None else {"name": dev.name, "queries": len(dev), "pairs": dev.num_pairs},
        }
        if restart:
            self._clear()
        done = self._finished_run()
        if done is not None:
            if done.get("fingerprint") == fingerprint:
                logger.info("%s already holds this finished run; nothing to do", self.output_dir)
                return self._result(done)
            raise SynthrankError(
                f"{self.output_dir} holds a finished run with other settings or data; "
                "use another output folder or restart (--restart) to overwrite it"
            )
        checkpoints = self.checkpoints()
        if checkpoints:
            saved = load_checkpoint_state(checkpoints[-1] / STATE_FILE)
            if saved.get("fingerprint") != fingerprint:
                ours: dict[str, Any] = fingerprint["config"]
                theirs: dict[str, Any] = (saved.get("fingerprint") or {}).get("config") or {}
                changed = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
                what = f"settings {', '.join(changed)}" if changed else "training groups or dev set"
                raise SynthrankError(
                    f"{checkpoints[-1]} was written by a run with other settings ({what} differ); resume with the "
                    "same settings, use another output folder, or restart (--restart) to start over"
                )
        self.output_dir.mkdir(parents=True, exist_ok=True)
        return self._run(sampler, dev, fingerprint, checkpoints, source, started, stop_after_steps, show_progress)

    def _finished_run(self) -> dict[str, Any] | None:
        path = self.output_dir / "metrics.json"
        if not path.exists():
            return None
        try:
            metrics: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return None
        return metrics if metrics.get("completed") and self.model_dir.exists() else None

    def _result(self, metrics: dict[str, Any]) -> TrainResult:
        return TrainResult(
            output_dir=self.output_dir,
            model_dir=self.model_dir,
            metrics=metrics,
            best_step=metrics.get("best_step"),
            completed=bool(metrics.get("completed")),
            global_step=int(metrics.get("global_step", 0)),
            total_steps=int(metrics.get("total_steps", 0)),
        )

    def _run(
        self,
        sampler: GroupSampler,
        dev: DevSet | None,
        fingerprint: dict[str, Any],
        checkpoints: list[Path],
        source: str | None,
        started: float,
        stop_after_steps: int | None,
        show_progress: bool,
    ) -> TrainResult:
        """Set up, resume, run the steps and write the outputs; the loop's pieces are the methods below."""
        session = self._start(sampler, dev, fingerprint)
        self._resume(session, checkpoints)
        stopped_on_request = self._loop(session, stop_after_steps, show_progress)
        return self._finish(session, stopped_on_request, source, started)

    # ------------------------------------------------------------------ the loop's steps

    def _start(self, sampler: GroupSampler, dev: DevSet | None, fingerprint: dict[str, Any]) -> _Session:
        """Device, precision, seed, model, optimizer and schedule of a session (DDP-wrapped when distributed)."""
        import torch
        from transformers import get_linear_schedule_with_warmup

        cfg = self.config
        set_torch_threads(cfg.num_threads)
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1:
            device, precision = self._setup_accelerate()
            rank = int(self._accelerator.process_index)
        else:
            device = resolve_device(cfg.device)
            precision = resolve_precision(cfg.precision, device, TRAINING)
            rank = 0
            if device == "cpu":  # activations live in RAM: lower the budget, or refuse, before anything is loaded
                cfg = self.config = fit_train_memory(cfg, backbone_config(cfg))
        set_seed(cfg.seed)
        model, tokenizer, base_path = self._load_model(device)
        if cfg.gradient_checkpointing:
            if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5 (the old name is deprecated)
                model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
        params = [
            {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)], "weight_decay": cfg.weight_decay},
            {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate)
        steps_per_epoch = math.ceil(len(sampler) / cfg.groups_per_step)
        total_steps = steps_per_epoch * cfg.epochs
        if cfg.max_steps is not None:
            total_steps = min(total_steps, cfg.max_steps)
        scheduler = get_linear_schedule_with_warmup(optimizer, round(cfg.warmup_ratio * total_steps), total_steps)
        scaler = torch.amp.GradScaler("cuda") if precision == "fp16" and world == 1 else None
        raw_model = model
        if world > 1:
            model, optimizer = self._accelerator.prepare(model, optimizer)
        return _Session(
            sampler=sampler, dev=dev, fingerprint=fingerprint, device=device, precision=precision, rank=rank,
            world=world, model=model, raw_model=raw_model, tokenizer=tokenizer, base_path=base_path,
            optimizer=optimizer, scheduler=scheduler, scaler=scaler, total_steps=total_steps,
            steps_per_epoch=steps_per_epoch, shape=EncoderShape.from_config(raw_model.config),
        )  # fmt: skip

    def _resume(self, s: _Session, checkpoints: list[Path]) -> None:
        """Load the newest checkpoint (weights, optimizer, scheduler, scaler, RNG, state) into the session."""
        if not checkpoints:
            return
        loaded = self._load_checkpoint(checkpoints[-1], s.raw_model, s.optimizer, s.scheduler, s.scaler)
        s.state = TrainState.from_checkpoint(loaded)
        logger.info("resuming from %s (step %d of %d)", checkpoints[-1], s.state.global_step, s.total_steps)

    def _loop(self, s: _Session, stop_after_steps: int | None, show_progress: bool) -> bool:
        """Optimizer steps until the end, an early stop or ``stop_after_steps``; ``True`` when stopped on request."""
        from tqdm.auto import tqdm

        cfg, st = self.config, s.state
        if s.dev is not None and not st.dev_history and st.global_step == 0 and s.is_main:
            logger.info("dev set %s: %d queries, first stage %s", s.dev.name, len(s.dev), s.dev.baseline)
            if len(s.dev) < self.config.dev_min_queries:
                logger.info("the dev set has fewer than dev_min_queries (%d) queries: it is scored for the record, "
                            "the last step's weights are kept", self.config.dev_min_queries)  # fmt: skip
        s.model.train()
        bar = tqdm(total=s.total_steps, initial=st.global_step, desc=f"train {cfg.loss}", unit="step",
                   disable=not (show_progress and s.is_main), smoothing=0.05)  # fmt: skip
        t_segment = time.perf_counter()  # training time excludes dev evaluations and checkpoints
        try:
            while st.global_step < s.total_steps and not st.stopped_early:
                t_step = time.perf_counter()
                epoch, groups, loss = self._step(s)
                self._record(s, bar, epoch, groups, loss, time.perf_counter() - t_step)
                st.train_seconds += time.perf_counter() - t_segment
                st.groups_trained += groups
                at_end = st.global_step == s.total_steps
                if self._evaluation_due(s, at_end):
                    self._evaluate_and_keep_best(s, bar)
                stop_now = stop_after_steps is not None and st.global_step >= stop_after_steps and not at_end
                if (cfg.save_every > 0 and st.global_step % cfg.save_every == 0) or stop_now or at_end or st.stopped_early:
                    self._checkpoint(s)
                t_segment = time.perf_counter()
                if st.stopped_early:
                    if s.is_main:
                        logger.info("early stop at step %d: no dev improvement in %d evaluations", st.global_step,
                                    cfg.early_stopping_patience)  # fmt: skip
                    return False
                if stop_now:
                    return True
        finally:
            bar.close()
        return False

    def _step(self, s: _Session) -> tuple[int, int, float]:
        """One optimizer step over the next ``groups_per_step`` groups: ``(epoch, groups, mean loss)``."""
        import torch

        cfg = self.config
        epoch, step_in_epoch = divmod(s.state.global_step, s.steps_per_epoch)
        order = s.sampler.epoch_order(epoch)
        window = order[step_in_epoch * cfg.groups_per_step : (step_in_epoch + 1) * cfg.groups_per_step]
        micro = [window[i : i + cfg.batch_size] for i in range(0, len(window), cfg.batch_size)]
        loss_sum = 0.0
        for k, mb in enumerate(micro):
            loss_sum += self._backward(s, mb, epoch, len(window), last=k == len(micro) - 1)
        if s.distributed:
            loss_sum = float(self._accelerator.reduce(torch.tensor(loss_sum, device=s.device), "sum"))
        self._optimizer_step(s)
        s.state.global_step += 1
        return epoch, len(window), loss_sum

    def _backward(self, s: _Session, mb: np.ndarray, epoch: int, window: int, *, last: bool) -> float:
        """Forward and backward of one micro-batch (this process's share of it); its part of the step's mean loss."""
        local = mb[s.rank :: s.world] if s.distributed else mb
        weight = len(local) * s.world / window
        if len(local) == 0:  # this process has nothing in a tiny last batch: join with a zero loss
            local, weight = mb[:1], 0.0
        batch = [s.sampler.sample(int(i), epoch) for i in local]
        sync = self._accelerator.no_sync(s.model) if s.distributed and not last else contextlib.nullcontext()
        with sync:
            loss = self._batch_loss(s, batch)
            scaled = loss * weight
            if s.distributed:
                self._accelerator.backward(scaled)
            elif s.scaler is not None:
                s.scaler.scale(scaled).backward()
            else:
                scaled.backward()
        return float(loss.detach()) * len(local) / window * (weight > 0)

    def _optimizer_step(self, s: _Session) -> None:
        """Clip the gradients, step the optimizer (through the fp16 scaler) and the schedule, free the gradients."""
        import torch

        cfg = self.config
        if cfg.max_grad_norm > 0:
            if s.distributed:
                self._accelerator.clip_grad_norm_(s.model.parameters(), cfg.max_grad_norm)
            else:
                if s.scaler is not None:
                    s.scaler.unscale_(s.optimizer)
                torch.nn.utils.clip_grad_norm_(s.model.parameters(), cfg.max_grad_norm)
        if s.scaler is not None:
            s.scaler.step(s.optimizer)
            s.scaler.update()
        else:
            s.optimizer.step()
        s.scheduler.step()
        s.optimizer.zero_grad(set_to_none=True)
        release_free_memory()

    def _record(self, s: _Session, bar: Any, epoch: int, groups: int, loss: float, seconds: float) -> None:
        """The step's loss and rate into the history, the progress bar and (every ``log_every`` steps) the log."""
        st = s.state
        st.history.append({"step": st.global_step, "epoch": epoch, "loss": loss, "lr": float(s.scheduler.get_last_lr()[0])})
        s.ema = loss if s.ema is None else 0.9 * s.ema + 0.1 * loss
        bar.update(1)
        bar.set_postfix(loss=f"{s.ema:.4f}", groups_s=f"{groups / max(seconds, 1e-9):.1f}")
        if st.global_step % self.config.log_every == 0 and s.is_main:
            logger.info("step %d/%d loss %.4f lr %.2e", st.global_step, s.total_steps, s.ema, s.scheduler.get_last_lr()[0])

    def _evaluation_due(self, s: _Session, at_end: bool) -> bool:
        """Every ``eval_every`` steps (0: each epoch's end) and at the last step, when there is a dev set."""
        cfg, step = self.config, s.state.global_step
        return s.dev is not None and (
            at_end
            or (cfg.eval_every > 0 and step % cfg.eval_every == 0)
            or (cfg.eval_every == 0 and step % s.steps_per_epoch == 0)
        )

    def _evaluate_and_keep_best(self, s: _Session, bar: Any) -> None:
        """Score the dev set; keep the weights in ``best/`` when they improve, else count towards early stopping."""
        cfg, st = self.config, s.state
        found = self._evaluate(s)
        st.dev_history.append({"step": st.global_step, **found})
        value = found[DEV_METRIC]
        if s.dev is not None and len(s.dev) < cfg.dev_min_queries:  # too few queries to choose by: recorded, the last step is kept
            if s.is_main:
                bar.write(f"step {st.global_step}: dev {DEV_METRIC} {value:.4f}")
            return
        # a tie keeps the later weights: they trained more on the same data for the same dev score
        improved = st.best_metric is None or value >= st.best_metric
        if improved:
            st.best_metric, st.best_step, st.bad_evals = value, st.global_step, 0
            if s.is_main:
                self._save_model(s.raw_model, s.tokenizer, self.best_dir)
        else:
            st.bad_evals += 1
        if s.is_main:
            bar.write(f"step {st.global_step}: dev {DEV_METRIC} {value:.4f}{' (best)' if improved else ''}")
        if cfg.early_stopping_patience and st.bad_evals >= cfg.early_stopping_patience:
            st.stopped_early = True

    def _checkpoint(self, s: _Session) -> None:
        """Save the session's resumable state (the main process writes; the others wait for it)."""
        if s.is_main:
            state = {**s.state.to_dict(), "fingerprint": s.fingerprint}
            self._save_checkpoint(s.raw_model, s.optimizer, s.scheduler, s.scaler, state)
        if s.distributed:
            self._accelerator.wait_for_everyone()

    def _finish(self, s: _Session, stopped_on_request: bool, source: str | None, started: float) -> TrainResult:
        """Merge with the base (bi-encoder), write metrics and, for a completed run, the model and its card."""
        cfg = self.config
        merged_dev = None
        if cfg.merge_with_base and not stopped_on_request and s.is_main:
            evaluate = (lambda: self._evaluate(s)) if s.dev is not None else None
            merged_dev = self._merge_with_base(s.raw_model, s.tokenizer, s.base_path, s.state.best_step is not None,
                                               evaluate)  # fmt: skip
        metrics = self._metrics(s, source, started)
        metrics["recomputed_batches"] = s.recomputed_batches
        metrics["recomputed_passes"] = s.recomputed_passes
        metrics["passes"] = s.passes
        if cfg.merge_with_base:
            metrics["merge_with_base"] = cfg.merge_with_base
            metrics["merged_dev"] = merged_dev
        if stopped_on_request:
            metrics["completed"] = False
            if s.is_main:
                write_json(self.output_dir / "metrics.json", metrics)
            return TrainResult(self.output_dir, self.model_dir, metrics, s.state.best_step, False, s.state.global_step,
                               s.total_steps)  # fmt: skip
        if s.is_main:
            self._export(s.raw_model, s.tokenizer, metrics)
        if s.distributed:
            self._accelerator.wait_for_everyone()
        return self._result(metrics)

    # ------------------------------------------------------------------ forward passes and losses

    def _autocast(self, s: _Session) -> contextlib.AbstractContextManager[Any]:
        """Mixed precision for one forward: accelerate's under DDP, else the resolved precision's autocast."""
        if s.distributed:
            return self._accelerator.autocast()  # type: ignore[no-any-return]
        return autocast_context(s.device, autocast_dtype(s.precision))

    def _in_length_order(
        self, s: _Session, ids: list[list[int]], types: list[list[int]] | None, run: Callable[[Any], Any]
    ) -> Any:
        """``run(inputs)`` over the rows of ``ids`` in length-sorted passes of ``bucket`` rows, back in row order.

        When the passes' activations would exceed the budget, the longest passes are checkpointed (only their
        inputs and outputs kept; backward recomputes each, with the same RNG draws and autocast, just before its
        gradient) and the shortest that fit within the budget keep theirs: only the passes over the budget pay a
        second forward. Measured on the quickstart's groups, the peak (2.8 GB at 256 tokens) stays within
        :func:`~synthrank.train.memory.estimate_train_peak`'s worst case of a batch kept up to the budget.
        """
        import torch
        from torch.utils.checkpoint import checkpoint

        cfg = self.config
        bucket = 0 if s.distributed else cfg.length_bucket_rows  # DDP wants one forward per backward
        # passes of a step over the activation budget are recomputed in backward (see synthrank.train.memory)
        budget = None if s.distributed or cfg.gradient_checkpointing else cfg.activation_budget_mb
        n = len(ids)
        rows = max(1, bucket) if bucket else n
        order = np.argsort(-np.fromiter((len(r) for r in ids), np.int64, n), kind="stable")
        passes = [order[start : start + rows] for start in range(0, n, rows)]
        recomputed = 0  # passes[:recomputed] are checkpointed
        if budget is not None and torch.is_grad_enabled():
            recomputed = passes_to_recompute(
                [activation_bytes([(len(p), max(len(ids[i]) for i in p))], s.shape) for p in passes], budget * MIB
            )
        if recomputed and not s.recomputed_batches and s.is_main:
            logger.info("a batch's activations exceed activation_budget_mb (%d MiB): its longest passes are "
                        "recomputed in backward (same gradients, one more forward each)", budget)  # fmt: skip
        s.recomputed_batches += recomputed > 0
        s.passes += len(passes) if torch.is_grad_enabled() else 0
        outs = []
        pad_id = int(s.tokenizer.pad_token_id)
        with self._autocast(s):
            for k, idx in enumerate(passes):
                inputs = batch_tensors([ids[i] for i in idx], [types[i] for i in idx] if types is not None else None,
                                       pad_id=pad_id, device=s.device, drop_full_mask=True)  # fmt: skip
                if k < recomputed:
                    s.recomputed_passes += 1
                    out = checkpoint(run, inputs, use_reentrant=False)
                    outs.append(release_on_backward(out))
                    release_free_memory()
                else:
                    outs.append(run(inputs))
        flat = torch.cat(outs).float()
        inverse = torch.from_numpy(np.argsort(order, kind="stable")).to(flat.device)
        return flat[inverse]

    def _forward_groups(self, s: _Session, batch: list[SampledGroup]) -> Any:
        """Logits ``[len(batch), G]`` of a batch of groups (query and passage read together)."""
        queries = [g.query for g in batch for _ in g.passages]
        texts = [p for g in batch for p in g.passages]
        enc = s.tokenizer(queries, texts, truncation="longest_first", max_length=self.config.max_length, padding=False)
        logits = self._in_length_order(s, enc["input_ids"], enc.get("token_type_ids"),
                                       lambda inputs: s.model(**inputs).logits[:, 0])  # fmt: skip
        return logits.view(len(batch), -1)

    def _embed(self, s: _Session, texts: list[str]) -> Any:
        """Normalised pooled embeddings ``[len(texts), H]``."""

        def pooled(inputs: dict[str, Any]) -> Any:
            hidden = s.model(**inputs).last_hidden_state
            return pool_embeddings(hidden.float(), inputs.get("attention_mask"), self._pooling, True)

        ids = s.tokenizer(texts, truncation=True, max_length=self.config.max_length, padding=False)["input_ids"]
        return self._in_length_order(s, ids, None, pooled)

    def _forward_bi(self, s: _Session, batch: list[SampledGroup]) -> Any:
        """Cosine / T ``[len(batch), G]``: each distinct query embedded once, passages in length-sorted passes."""
        import torch

        distinct = list(dict.fromkeys(g.query for g in batch))
        position = {q: i for i, q in enumerate(distinct)}
        # queries and passages in one call: one forward per backward, as DDP (bucket 0) wants
        both = self._embed(s, distinct + [p for g in batch for p in g.passages])
        q_emb = both[: len(distinct)][torch.tensor([position[g.query] for g in batch], device=s.device)]
        p_emb = both[len(distinct) :].view(len(batch), -1, both.shape[-1])
        return torch.einsum("bh,bgh->bg", q_emb, p_emb) / self.config.similarity_temperature

    def _batch_loss(self, s: _Session, batch: list[SampledGroup]) -> Any:
        """The configured loss of one micro-batch of groups."""
        import torch

        from synthrank.train.losses import bce_loss, lce_loss, listwise_loss, margin_mse_loss, teacher_logits

        cfg = self.config
        logits = self._forward_bi(s, batch) if cfg.architecture == "bi-encoder" else self._forward_groups(s, batch)
        if cfg.loss == "lce":
            return lce_loss(logits)
        if cfg.loss in ("bce", "margin_mse"):
            labels = torch.tensor([g.labels for g in batch], dtype=torch.float32, device=logits.device)
            if cfg.loss == "margin_mse":
                return margin_mse_loss(logits, teacher_logits(labels))
            return bce_loss(logits, labels)
        grades = torch.tensor([g.grades for g in batch], dtype=torch.float32, device=logits.device)
        return listwise_loss(logits, grades, cfg.listwise_temperature)

    def _evaluate(self, s: _Session) -> dict[str, float]:
        """Dev metrics of the live weights, scored by the same scorer a saved model would get."""
        from synthrank.rerank.bi_encoder import BiEncoderScorer
        from synthrank.rerank.cross_encoder import CrossEncoderReranker

        cfg = self.config
        assert s.dev is not None
        s.raw_model.eval()
        scorer: Any
        if cfg.architecture == "bi-encoder":
            scorer = BiEncoderScorer.from_model(s.raw_model, s.tokenizer, batch_size=cfg.dev_batch_size,
                                                max_length=cfg.max_length, pooling=self._pooling)  # fmt: skip
        else:
            scorer = CrossEncoderReranker.from_model(
                s.raw_model, s.tokenizer, batch_size=cfg.dev_batch_size, max_length=cfg.max_length
            )
        with self._autocast(s):
            found = s.dev.evaluate(scorer)
        s.raw_model.train()
        return found

    # ------------------------------------------------------------------ outputs

    def _setup_accelerate(self) -> tuple[str, Precision]:
        try:
            from accelerate import Accelerator
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise SynthrankError("multi-process training needs accelerate: pip install 'synthrank[train]'") from exc
        import torch

        cuda = torch.cuda.is_available() and self.config.device != "cpu"
        precision = resolve_precision(self.config.precision, "cuda" if cuda else "cpu", TRAINING)
        mixed = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[precision]
        self._accelerator = Accelerator(mixed_precision=mixed, cpu=not cuda)
        return str(self._accelerator.device), precision

    def _save_model(self, model: Any, tokenizer: Any, target: Path) -> None:
        def fill(tmp: Path) -> None:
            # scorers (ours, sentence-transformers' CrossEncoder) default to the tokenizer's limit:
            # make that the length the model was trained at, not the backbone's 512
            trained_limit, tokenizer.model_max_length = tokenizer.model_max_length, self.config.max_length
            try:
                with quiet_transformers():
                    model.save_pretrained(str(tmp))  # safetensors (the default)
                    tokenizer.save_pretrained(str(tmp))
            finally:
                tokenizer.model_max_length = trained_limit
            if self.config.architecture == "bi-encoder":
                write_sentence_transformers_files(tmp, max_length=self.config.max_length, pooling=self._pooling,
                                                  hidden_size=int(model.config.hidden_size))

        atomic_dir(target, fill)

    def _merge_with_base(
        self, model: Any, tokenizer: Any, base_path: str, from_best: bool,
        evaluate: Callable[[], dict[str, float]] | None,
    ) -> dict[str, float] | None:
        """``(1 - m) * tuned + m * base`` of the best (else last) weights into ``merged/``; its dev metrics.

        Always recomputed from ``best/`` (or the final checkpoint), so a resumed run merges exactly once.
        """
        import torch
        from safetensors.torch import load_model

        m = self.config.merge_with_base
        if from_best and self.best_dir.exists():
            load_model(model, str(self.best_dir / WEIGHTS_FILE), device=str(next(model.parameters()).device))
        base = load_encoder_weights(base_path, dtype=torch.float32,
                                    trust_remote_code=self.config.trust_remote_code).state_dict()  # fmt: skip
        with torch.no_grad():
            for name, tensor in model.state_dict().items():
                if name not in base or base[name].shape != tensor.shape:
                    raise ModelError(f"cannot merge with {base_path}: its weights have no {name!r} of this shape")
                if tensor.is_floating_point():
                    tensor.copy_((1.0 - m) * tensor + m * base[name].to(tensor.device))
        self._save_model(model, tokenizer, self.merged_dir)
        logger.info("merged the tuned weights with %.2f of the base model's", m)
        return evaluate() if evaluate is not None else None

    def _export(self, model: Any, tokenizer: Any, metrics: dict[str, Any]) -> None:
        import yaml

        if self.merged_dir.exists() or (self.best_dir.exists() and metrics.get("best_step") is not None):
            best = self.merged_dir if self.merged_dir.exists() else self.best_dir

            def copy_best(tmp: Path) -> None:
                shutil.copytree(best, tmp, dirs_exist_ok=True)

            atomic_dir(self.model_dir, copy_best)
        else:
            self._save_model(model, tokenizer, self.model_dir)
        with atomic_write(self.output_dir / "run_config.yaml") as fh:
            yaml.safe_dump(self.config.to_dict(), fh, sort_keys=False)
        try:
            write_plots(metrics, self.output_dir)
        except Exception as exc:  # a plot must never lose a trained model
            logger.warning("could not draw the training plots: %s", exc)
        write_model_card(metrics, self.output_dir, self.model_dir)
        write_json(self.output_dir / "metrics.json", metrics)
        # the run is complete and recorded: the resumable state is no longer needed
        shutil.rmtree(self.checkpoint_root, ignore_errors=True)
        shutil.rmtree(self.best_dir, ignore_errors=True)
        shutil.rmtree(self.merged_dir, ignore_errors=True)

    def _metrics(self, s: _Session, source: str | None, started: float) -> dict[str, Any]:
        """metrics.json: settings, data, dev history, loss curve, throughput and where it ran."""
        import torch

        st = s.state
        tail = [h["loss"] for h in st.history[-10:]]
        best_dev = next((d for d in st.dev_history if d["step"] == st.best_step), None)
        train_seconds = float(st.train_seconds)
        metrics: dict[str, Any] = {
            "completed": True,
            "fingerprint": s.fingerprint,
            "config": self.config.to_dict(),
            "base_model_path": s.base_path,
            "model_dir": str(self.model_dir),
            "data": {**s.sampler.stats, "source": source or "in-memory groups"},
            "dev": s.dev.describe() if s.dev is not None else None,
            "dev_metric": DEV_METRIC,
            "global_step": int(st.global_step),
            "total_steps": s.total_steps,
            "steps_per_epoch": s.steps_per_epoch,
            "stopped_early": bool(st.stopped_early),
            "best_step": st.best_step,
            "best_dev": best_dev,
            "dev_history": st.dev_history,
            "final_loss": float(sum(tail) / len(tail)) if tail else float("nan"),
            "train_seconds": round(train_seconds, 3),
            "groups_trained": int(st.groups_trained),
            "groups_per_second": st.groups_trained / train_seconds if train_seconds > 0 else 0.0,
            "pairs_per_second": st.groups_trained * self.config.group_size / train_seconds if train_seconds > 0 else 0.0,
            "wall_seconds_this_session": round(time.perf_counter() - started, 3),
            "device": s.device,
            "processes": s.world,
            "precision": s.precision,
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "history": st.history,
        }
        if torch.cuda.is_available() and s.device.startswith("cuda"):
            metrics["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        return metrics


def train_reranker(
    groups: str | Path | Sequence[TrainingGroup],
    output_dir: str | Path,
    config: TrainConfig | None = None,
    dev: DevSet | None = None,
    *,
    show_progress: bool = True,
    restart: bool = False,
    stop_after_steps: int | None = None,
) -> TrainResult:
    """Train a cross-encoder reranker on training groups; see :class:`RerankerTrainer`.

    Resumes automatically from ``output_dir``'s checkpoint when the settings and data match
    (a :class:`~synthrank.errors.SynthrankError` mentioning "other settings" otherwise);
    ``restart=True`` starts over.

    Example:
        >>> result = train_reranker("out/groups.jsonl", "runs/lce", TrainConfig(loss="lce", group_size=8))
        >>> load_scorer(result.model_dir).score_pairs(["what causes glaucoma"], [passage])
    """
    trainer = RerankerTrainer(config or TrainConfig(), output_dir)
    return trainer.train(groups, dev, restart=restart, stop_after_steps=stop_after_steps, show_progress=show_progress)
