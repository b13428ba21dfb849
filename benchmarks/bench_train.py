"""Training throughput (groups/s) and peak memory: synthrank's trainer vs sentence-transformers' CrossEncoderTrainer.

Equal work on both sides: the same all-MiniLM-L6-v2 backbone with a fresh one-logit head, the
same training groups (MedQuAD pseudo-query groups, BM25 negatives: the pilot's LLM-free
stand-in), the same group size G (1 positive + the G-1 best-ranked negatives, fixed), the same
max_length, batch (groups per step), AdamW + linear warm-up/decay, clipping, one epoch, the same precision:
fp32, or with ``--precision bf16`` bf16 autocast on both sides (ours: ``TrainConfig(precision="bf16")``;
the peer: ``CrossEncoderTrainingArguments(bf16=True)``), the fast path of CPUs with AMX.

The peer's loss is its ``MultipleNegativesRankingLoss`` with ``scale=1``, no activation and no
in-batch negatives (a subclass turns those off): softmax cross-entropy of the positive over the
query's own G candidates, i.e. exactly LCE. Each side runs in its own subprocess (so peak RSS is
its own), alternating, ``--reps`` times; the best time of each counts. Throughput is measured
over the training loop only (model loading and saving excluded on both sides).

Run (writes benchmarks/results/train.json)::

    .venv/bin/python benchmarks/bench_train.py --groups 24 --group-size 8 --batch-size 8 --max-length 256 --reps 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "medquad"
RESULTS = REPO / "benchmarks" / "results" / "train.json"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _cpu_name() -> str:
    from synthrank.models.cpu import cpu_name

    return cpu_name()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_groups(path: Path, n: int, num_negatives: int, seed: int) -> None:
    """Pilot groups: pseudo-queries (title + first words) of n seeded MedQuAD passages, BM25 negatives."""
    import numpy as np
    from pilot_train_medquad import pseudo_query

    from synthrank.data import read_corpus, write_groups
    from synthrank.mine import MiningConfig, MiningQuery, mine_hard_negatives

    corpus = read_corpus(next(DATA.glob("corpus.jsonl*")))
    ids = sorted(corpus)
    picked = [ids[i] for i in np.random.default_rng(seed).choice(len(ids), size=n, replace=False)]
    queries = [MiningQuery(f"pq-{i:05d}", pseudo_query(corpus[d].title, corpus[d].text, 12), d) for i, d in enumerate(picked)]
    groups = mine_hard_negatives(queries, corpus, config=MiningConfig(top_k=50, num_negatives=num_negatives))
    write_groups(path, groups[:n])


def worker_ours(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from synthrank.train import TrainConfig, train_reranker

    torch.set_num_threads(args.threads)
    cfg = TrainConfig(
        model="minilm", loss="lce", group_size=args.group_size, negative_sampling="top", batch_size=args.batch_size,
        epochs=1, learning_rate=7e-5, warmup_ratio=0.1, weight_decay=0.01, max_grad_norm=1.0,
        max_length=args.max_length, seed=42, save_every=0, num_threads=args.threads,
        length_bucket_rows=args.bucket_rows, precision=args.precision,
    )
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = train_reranker(args.groups_file, Path(tmp) / "run", cfg, show_progress=False)
        wall = time.perf_counter() - t0
    m = result.metrics
    return {
        "seconds": m["train_seconds"],
        "groups": m["groups_trained"],
        "groups_per_second": m["groups_per_second"],
        "wall_seconds_incl_load_and_save": round(wall, 2),
        "final_loss": m["final_loss"],
        "steps": m["global_step"],
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def worker_st(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import MultipleNegativesRankingLoss
    from transformers import TrainerCallback

    from synthrank.data import read_groups
    from synthrank.models import resolve_encoder

    torch.set_num_threads(args.threads)

    class HardNegativesOnlyLoss(MultipleNegativesRankingLoss):  # type: ignore[misc]
        """MNRL without in-batch negatives, scale 1, no activation: the positive's softmax CE over its group (LCE)."""

        def get_in_batch_negatives(self, anchors: Any, candidates: Any) -> Any:
            return iter(())

    groups = read_groups(args.groups_file)
    need = args.group_size - 1
    columns: dict[str, list[str]] = {"query": [g.query for g in groups], "positive": [g.positive.text for g in groups]}
    for j in range(need):
        columns[f"negative_{j + 1}"] = [
            sorted(g.negatives, key=lambda n: n.rank if n.rank is not None else 1 << 30)[j % len(g.negatives)].text
            for g in groups
        ]
    dataset = Dataset.from_dict(columns)
    model = CrossEncoder(resolve_encoder("minilm"), num_labels=1, max_length=args.max_length, device="cpu")
    loss = HardNegativesOnlyLoss(model, num_negatives=None, scale=1, activation_fn=None)
    timing: dict[str, float] = {}
    losses: list[float] = []

    class Timer(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, *a: Any, **k: Any) -> None:
            timing["start"] = time.perf_counter()

        def on_train_end(self, *a: Any, **k: Any) -> None:
            timing["end"] = time.perf_counter()

        def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            logs = kwargs.get("logs") or {}
            if "loss" in logs:
                losses.append(float(logs["loss"]))

    with tempfile.TemporaryDirectory() as tmp:
        targs = CrossEncoderTrainingArguments(
            output_dir=tmp, per_device_train_batch_size=args.batch_size, num_train_epochs=1, learning_rate=7e-5,
            warmup_steps=0.1, weight_decay=0.01, max_grad_norm=1.0, lr_scheduler_type="linear", use_cpu=True,
            report_to="none", save_strategy="no", logging_steps=1, seed=42, disable_tqdm=True,
            dataloader_num_workers=0, bf16=args.precision == "bf16",
        )
        trainer = CrossEncoderTrainer(model=model, args=targs, train_dataset=dataset, loss=loss, callbacks=[Timer()])
        t0 = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - t0
    seconds = timing["end"] - timing["start"]
    tail = losses[-10:]
    return {
        "seconds": round(seconds, 3),
        "groups": len(groups),
        "groups_per_second": len(groups) / seconds,
        "wall_seconds_incl_setup": round(wall, 2),
        "final_loss": sum(tail) / len(tail) if tail else None,
        "steps": int(trainer.state.global_step),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def run_worker(name: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", name, "--groups-file", str(args.groups_file),
           "--group-size", str(args.group_size), "--batch-size", str(args.batch_size),
           "--max-length", str(args.max_length), "--threads", str(args.threads), "--bucket-rows", str(args.bucket_rows),
           "--precision", args.precision]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        why = " (killed: out of memory?)" if proc.returncode == -9 else ""
        raise RuntimeError(f"{name} worker failed with exit code {proc.returncode}{why}:\n{proc.stderr[-4000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=48)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bucket-rows", type=int, default=8)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="the same on both sides")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--worker", choices=["ours", "st"], default=None)
    parser.add_argument("--groups-file", type=Path, default=None)
    args = parser.parse_args()
    if args.worker:
        out = worker_ours(args) if args.worker == "ours" else worker_st(args)
        print("RESULT " + json.dumps(out), flush=True)
        return

    with tempfile.TemporaryDirectory() as tmp:
        args.groups_file = Path(tmp) / "groups.jsonl"
        build_groups(args.groups_file, args.groups, max(15, args.group_size - 1), seed=7)
        runs: dict[str, list[dict[str, Any]]] = {"ours": [], "st": []}
        for rep in range(args.reps):
            for name in (("ours", "st") if rep % 2 == 0 else ("st", "ours")):
                runs[name].append(run_worker(name, args))
                print(rep, name, runs[name][-1], flush=True)
    best = {k: max(v, key=lambda r: r["groups_per_second"]) for k, v in runs.items()}
    ratio = best["ours"]["groups_per_second"] / best["st"]["groups_per_second"]
    payload = {
        "benchmark": "train",
        "peer": "sentence-transformers CrossEncoderTrainer + MultipleNegativesRankingLoss (hard negatives only, "
                "scale 1, no activation = LCE)",
        "command": "benchmarks/bench_train.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("worker", "groups_file", "output")),
        "machine": {"platform": platform.platform(), "cpu": _cpu_name(), "cpu_count": os.cpu_count(),
                    "load_average_at_end": os.getloadavg()},
        "setup": {"model": "all-MiniLM-L6-v2 + fresh 1-logit head", "groups": args.groups,
                  "group_size": args.group_size, "batch_groups": args.batch_size, "max_length": args.max_length,
                  "precision": args.precision, "device": "cpu", "threads": args.threads,
                  "ours_length_bucket_rows": args.bucket_rows},
        "runs": runs,
        "best": best,
        "groups_per_second_ratio_ours_over_st": ratio,
        "peak_rss_mb": {k: v["peak_rss_mb"] for k, v in best.items()},
        "target_ratio": 1.2,
        "meets_target": ratio >= 1.2,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"groups/s ours {best['ours']['groups_per_second']:.3f} vs sentence-transformers "
          f"{best['st']['groups_per_second']:.3f}: ratio {ratio:.2f}x")


if __name__ == "__main__":
    main()
