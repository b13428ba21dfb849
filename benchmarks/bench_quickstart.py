"""The quickstart as a user runs it, timed and weighed: wall time and whole-process-tree peak RSS per step.

Runs `synthrank run` with `make run`'s settings (MedQuAD, the embedded defaults, 150 evaluation questions) on a
fresh output folder with the LLM response cache off, so every LLM answer is a real call, and samples the resident
memory of the whole process tree (synthrank and its llama.cpp server child) every ``--interval`` seconds. The
step in progress is read from the run's own step markers (``OUT/.steps/<step>.started.json`` appears when a step
starts, ``<step>.json`` when it ends). Writes ``benchmarks/results/quickstart_<cpu>.json``:

    .venv/bin/python benchmarks/bench_quickstart.py            # ~10 minutes on 2 cores
    .venv/bin/python benchmarks/bench_quickstart.py --output-dir runs/quickstart-bench --keep

The peer it is measured against is the issue's budget: 5 minutes and 4 GB for the whole tree.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SYNTHRANK_SHARED_DATA") or REPO.parent / "shared" / "data")
RESULTS = REPO / "benchmarks" / "results"
STEPS = ("generate", "mine", "label", "train", "evaluate")
BUDGET = {"minutes": 5.0, "peak_rss_gb": 4.0}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def tree_rss_bytes(root: Any) -> int:
    """Resident memory of a process and all its descendants (a child that exits mid-sample counts 0)."""
    import psutil

    total = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def current_step(out: Path) -> str:
    """The step the run is in, from its markers: the last started step that has not finished."""
    markers = out / ".steps"
    step = "setup"
    for name in STEPS:
        if (markers / f"{name}.started.json").exists() and not (markers / f"{name}.json").exists():
            return name
        if (markers / f"{name}.json").exists():
            step = f"after {name}"
    return step


class Sampler(threading.Thread):
    """Samples the tree's RSS and the step in progress until stopped; keeps each step's peak and the overall one."""

    def __init__(self, pid: int, out: Path, interval: float) -> None:
        super().__init__(daemon=True)
        import psutil

        self.root = psutil.Process(pid)
        self.out = out
        self.interval = interval
        self.peaks: dict[str, int] = {}
        self.samples = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            rss = tree_rss_bytes(self.root)
            step = current_step(self.out)
            self.peaks[step] = max(self.peaks.get(step, 0), rss)
            self.samples += 1
            self.stop_event.wait(self.interval)


def step_times(out: Path) -> dict[str, Any]:
    """Each step's seconds and LLM usage as the run recorded them in its markers."""
    rows: dict[str, Any] = {}
    for name in STEPS:
        marker = out / ".steps" / f"{name}.json"
        if marker.exists():
            data = json.loads(marker.read_text())
            usage = (data.get("summary") or {}).get("usage") or {}
            rows[name] = {"seconds": round(float(data.get("seconds") or 0.0), 1),
                          **({"llm_calls": usage.get("calls"), "cache_hits": usage.get("cache_hits")} if usage else {})}  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=str(SHARED / "medquad"))
    parser.add_argument("--eval-split", default="test_sample1000")
    parser.add_argument("--eval-max-queries", type=int, default=150)
    parser.add_argument("--output-dir", type=Path, default=REPO / "runs" / "quickstart-bench")
    parser.add_argument("--config", type=Path, default=REPO / "benchmarks" / "configs" / "quickstart-uncached.yaml",
                        help="the run config (default: make run's settings with the response cache off)")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between memory samples")
    parser.add_argument("--output", type=Path, default=None, help="default: benchmarks/results/quickstart_<cpu>.json")
    parser.add_argument("--keep", action="store_true", help="keep the run folder (it is removed first either way)")
    args = parser.parse_args(argv)
    if args.output_dir.exists():
        shutil.rmtree(args.output_dir)  # a fresh folder: nothing resumed, nothing skipped
    cmd = [sys.executable, "-m", "synthrank_cli", "run", "--config", str(args.config), "--corpus", args.corpus,
           "--eval-split", args.eval_split, "--eval-max-queries", str(args.eval_max_queries),
           "--output-dir", str(args.output_dir), "--no-progress"]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    sampler = Sampler(proc.pid, args.output_dir, args.interval)
    sampler.start()
    code = proc.wait()
    wall = time.perf_counter() - t0
    sampler.stop_event.set()
    sampler.join()
    if code != 0:
        print(f"synthrank run failed (exit {code}); nothing written", file=sys.stderr)
        return code
    evaluation = json.loads((args.output_dir / "evaluation.json").read_text())["main"]
    systems = {s["name"]: s["metrics"]["nDCG@10"] for s in evaluation["systems"]}
    tests = [s for s in evaluation["significance"] if s.get("metric") == "nDCG@10"
             and s["system"] == "synthrank" and s["baseline"] == "zero-shot bi-encoder"]  # fmt: skip
    peak = max(sampler.peaks.values(), default=0)
    result = {
        "benchmark": "quickstart", "command": " ".join(cmd), "cpu": cpu_name(), "cores": os.cpu_count(),
        "wall_minutes": round(wall / 60, 2),
        "steps": {name: {**row, "peak_tree_rss_gb": round(sampler.peaks.get(name, 0) / 2**30, 2)}
                  for name, row in step_times(args.output_dir).items()},
        "peak_tree_rss_gb": round(peak / 2**30, 2), "memory_samples": sampler.samples,
        "ndcg@10": systems, "synthrank_vs_zero_shot": tests[0] if tests else None,
        "budget": BUDGET,
        "within_budget": {"minutes": wall / 60 <= BUDGET["minutes"], "memory": peak / 2**30 <= BUDGET["peak_rss_gb"]},
    }
    slug = re.sub(r"[^a-z0-9]+", "-", cpu_name().lower()).strip("-")
    output = args.output or RESULTS / f"quickstart_{slug}.json"
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("cpu", "wall_minutes", "peak_tree_rss_gb", "within_budget")}))
    if not args.keep:
        shutil.rmtree(args.output_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
