"""Benchmark bf16 autocast against fp32 on this CPU: one MiniLM training step and one scoring batch.

Why: ``precision: auto`` (training) and ``evaluate.dtype: auto`` pick bf16 autocast on CPUs where
:func:`synthrank.models.cpu.cpu_bf16_is_fast` says it pays (AMX, or AVX512-BF16). The peer is the
same model and the same batch in fp32, measured in the same run, alternating.

    python benchmarks/bench_bf16_cpu.py --output benchmarks/results/bf16_cpu.json   # ~2 min on 2 cores
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from transformers import AutoModel  # noqa: E402

from synthrank.data import write_json  # noqa: E402
from synthrank.models.cpu import cpu_bf16_is_fast, cpu_name  # noqa: E402
from synthrank.models.encoders import resolve_encoder  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--train-rows", type=int, default=72, help="texts per training step (8 groups of 8 + 8 queries)")
    ap.add_argument("--score-rows", type=int, default=64)
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "bf16_cpu.json")
    args = ap.parse_args()

    torch.manual_seed(0)
    model = AutoModel.from_pretrained(resolve_encoder(args.model))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(1000, 20000, (args.train_rows, args.length))
    mask = torch.ones_like(ids)

    def train_step(bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pooled = model(input_ids=ids, attention_mask=mask).last_hidden_state.mean(1)
        pooled.float().pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()

    def score_batch(bf16: bool) -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            model(input_ids=ids[: args.score_rows], attention_mask=mask[: args.score_rows])

    result: dict[str, Any] = {"benchmark": "bf16_cpu", "cpu": cpu_name(), "cpu_bf16_is_fast": cpu_bf16_is_fast(),
                              "threads": torch.get_num_threads(), "torch": torch.__version__,
                              "python": platform.python_version(), "peer": "the same batch in fp32",
                              "command": " ".join(["python", *sys.argv])}  # fmt: skip
    for name, fn in (("train_step", train_step), ("score_batch", score_batch)):
        seconds: dict[str, list[float]] = {"fp32": [], "bf16": []}
        for precision in ("fp32", "bf16"):
            fn(precision == "bf16")  # warm-up: oneDNN picks and caches its kernels
        for _ in range(args.reps):
            for precision in ("fp32", "bf16"):
                t0 = time.perf_counter()
                fn(precision == "bf16")
                seconds[precision].append(time.perf_counter() - t0)
        fp32, bf16 = min(seconds["fp32"]), min(seconds["bf16"])
        result[name] = {"fp32_seconds": round(fp32, 3), "bf16_seconds": round(bf16, 3), "speedup": round(fp32 / bf16, 2),
                        "all_seconds": {k: [round(x, 3) for x in v] for k, v in seconds.items()}}  # fmt: skip
        print(f"{name}: fp32 {fp32:.2f} s, bf16 {bf16:.2f} s, bf16 x{fp32 / bf16:.2f}", flush=True)
    write_json(args.output, result)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
