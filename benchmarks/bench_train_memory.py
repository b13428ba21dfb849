"""Peak resident memory of `synthrank run`'s train step, per phase, before and after recomputed passes.

Each variant trains in a child process exactly as the run's train step does (the run config's train
defaults: a MiniLM bi-encoder, LCE, 3 epochs, 8 groups of 8, 256 tokens, held-out groups as dev set,
merged with its base), while this process samples the child's whole process tree (psutil, children
included) every few milliseconds. The child marks its phases (model load, forward, backward, optimizer,
dev evaluation, checkpoint, merge, export) and reports the tree's peak within each and the most it rose
within one stretch of it (RSS rarely falls: glibc keeps freed memory, so a peak is a high-water mark).

Variants:
    before: every pass's activations kept until backward and glibc's freed heap left in place (the trainer
            before ``activation_budget_mb``: budget None, heap trims switched off).
    after:  the defaults: a batch whose estimated activations exceed ``activation_budget_mb`` recomputes its
            passes in backward; the heap is trimmed after each optimizer step and around recomputed passes.

Run (one thread: memory barely depends on it; long passages are the case that needed 9 GB):
    .venv/bin/python benchmarks/bench_train_memory.py \\
        --groups runs/scorecard/agentset-msmarco-subset-default/groups.jsonl \\
        --groups runs/scorecard/beir-scifact-default/groups.jsonl --num-threads 1
Writes benchmarks/results/train_memory.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
MIB = 2**20


def tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of ``proc`` and all its descendants (those that vanish mid-count count 0)."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


class PhaseSampler:
    """Samples a process tree's RSS in a thread; keeps the peak overall and within each named phase."""

    def __init__(self, proc: psutil.Process, interval: float = 0.005) -> None:
        self.proc, self.interval = proc, interval
        self.phase = "start"
        self.peaks: dict[str, int] = {}
        self.rises: dict[str, int] = {}  # the most RSS grew within one stretch of the phase
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        current, start = None, 0
        while not self._stop.is_set():
            try:
                rss = tree_rss(self.proc)
            except psutil.Error:
                break
            phase = self.phase
            if phase != current:
                current, start = phase, rss
            self.peak = max(self.peak, rss)
            self.peaks[phase] = max(self.peaks.get(phase, 0), rss)
            self.rises[phase] = max(self.rises.get(phase, 0), rss - start)
            time.sleep(self.interval)

    def __enter__(self) -> PhaseSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _mark(sampler: PhaseSampler, owner: Any, name: str, phase: str, after: str | None = None) -> None:
    """Wrap ``owner.name`` so the sampler's phase is ``phase`` while it runs (then ``after``, else the previous)."""
    original = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        before, sampler.phase = sampler.phase, phase
        try:
            return original(*args, **kwargs)
        finally:
            sampler.phase = after or before

    setattr(owner, name, wrapped)


def child(args: argparse.Namespace) -> None:
    """One variant's train step, in this process; writes its phase peaks and metrics as JSON to ``args.report``."""
    sampler = PhaseSampler(psutil.Process())
    with sampler:
        sampler.phase = "import"
        import torch

        import synthrank.train.memory as memory
        import synthrank.train.trainer as trainer
        from synthrank.data.groups import read_groups
        from synthrank.pipeline.config import DEFAULTS
        from synthrank.pipeline.stages import split_dev, train_config_from_section
        from synthrank.train import DevSet, train_reranker
        from synthrank.train.data import GroupSampler

        options: dict[str, Any] = {"num_threads": args.num_threads}
        if args.variant == "before":
            options["activation_budget_mb"] = None
            trainer.release_free_memory = memory.release_free_memory = lambda: False  # type: ignore[assignment]
        if args.max_steps:
            options["max_steps"] = args.max_steps
        section = {**DEFAULTS["train"], "options": options}
        config = train_config_from_section(section)
        groups = read_groups(args.groups)
        train, held = split_dev(groups, float(section["dev_fraction"]), int(section["seed"]))
        dev = DevSet.from_groups(held) if held else None

        _mark(sampler, trainer.RerankerTrainer, "_load_model", "model load", "setup")
        _mark(sampler, GroupSampler, "sample", "forward", "forward")
        _mark(sampler, torch.Tensor, "backward", "backward", "optimizer step")
        _mark(sampler, DevSet, "evaluate", "dev evaluation")
        _mark(sampler, trainer.RerankerTrainer, "_save_checkpoint", "checkpoint")
        _mark(sampler, trainer.RerankerTrainer, "_merge_with_base", "merge with base")
        _mark(sampler, trainer.RerankerTrainer, "_export", "export")
        sampler.phase = "setup"
        started = time.perf_counter()
        result = train_reranker(train, args.output_dir, config, dev=dev, show_progress=False, restart=True)
        seconds = time.perf_counter() - started
        sampler.phase = "done"
        time.sleep(0.05)
    m = result.metrics
    report = {
        "variant": args.variant,
        "train_groups": len(train),
        "dev_groups": len(held),
        "steps": m["global_step"],
        "recomputed_batches": m.get("recomputed_batches", 0),
        "peak_rss_mb": round(sampler.peak / MIB, 1),
        "phase_peak_rss_mb": {k: round(v / MIB, 1) for k, v in sampler.peaks.items()},
        "phase_rise_mb": {k: round(v / MIB, 1) for k, v in sampler.rises.items()},
        "train_seconds": m["train_seconds"],
        "step_seconds_total": round(seconds, 1),
        "final_loss": m["final_loss"],
        "history_loss": [h["loss"] for h in m["history"]],
        "best_dev": m["best_dev"],
        "precision": m["precision"],
    }
    Path(args.report).write_text(json.dumps(report, indent=1), encoding="utf-8")


def run_variant(groups: Path, variant: str, num_threads: int, max_steps: int | None) -> dict[str, Any]:
    """Train one variant in a child process; its own report plus the tree peak seen from outside."""
    with tempfile.TemporaryDirectory(prefix="bench-train-memory-") as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, __file__, "--child", "--variant", variant, "--groups", str(groups),
               "--num-threads", str(num_threads), "--output-dir", str(Path(tmp) / "train"), "--report", str(report)]
        if max_steps:
            cmd += ["--max-steps", str(max_steps)]
        env = {**os.environ, "OMP_NUM_THREADS": str(num_threads), "TOKENIZERS_PARALLELISM": "false"}
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
        with PhaseSampler(psutil.Process(proc.pid), interval=0.01) as outside:
            code = proc.wait()
        if code != 0:
            raise SystemExit(f"{variant} on {groups} failed with exit code {code}")
        found: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
    found["tree_peak_rss_mb_sampled_outside"] = round(outside.peak / MIB, 1)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", action="append", type=Path, default=None, help="Groups JSONL (repeatable).")
    parser.add_argument("--variant", action="append", choices=["before", "after"], default=None)
    parser.add_argument("--num-threads", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=None, help="Cap the optimizer steps (quick checks).")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "train_memory.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--output-dir", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.groups = args.groups[0]
        args.variant = args.variant[0]
        child(args)
        return
    groups = args.groups or [ROOT / "runs" / "scorecard" / "agentset-msmarco-subset-default" / "groups.jsonl"]
    variants = args.variant or ["before", "after"]
    results = []
    for path in groups:
        for variant in variants:
            found = run_variant(path, variant, args.num_threads, args.max_steps)
            found["groups_file"] = str(path.relative_to(ROOT) if path.is_absolute() and path.is_relative_to(ROOT) else path)
            results.append(found)
            print(f"{path.parent.name} {variant}: peak {found['peak_rss_mb']:.0f} MiB "
                  f"(outside {found['tree_peak_rss_mb_sampled_outside']:.0f}), {found['train_seconds']:.1f} s, "
                  f"final loss {found['final_loss']:.6f}, recomputed batches {found['recomputed_batches']}", flush=True)
    out = {
        "benchmark": "peak RSS of synthrank run's train step (whole process tree), per phase",
        "command": " ".join([Path(sys.executable).name, "benchmarks/bench_train_memory.py", *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {psutil.cpu_count()} CPU cores, {psutil.virtual_memory().total / 2**30:.0f} GiB",
        "num_threads": args.num_threads,
        "variants": {
            "before": "every pass's activations kept until backward, glibc's freed heap left in place "
                      "(activation_budget_mb None, heap trims off: the trainer before #19)",
            "after": "the defaults: a batch whose activations are estimated over activation_budget_mb (1536 MiB) "
                     "recomputes its passes in backward; heap trimmed after each step and around recomputed passes",
        },
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
