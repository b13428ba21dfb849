"""Gather what one `synthrank run` folder measured into a results JSON (and its report.md beside it).

A run folder holds everything under git-ignored runs/; this keeps the numbers the README and docs/ cite in
benchmarks/results/, each traceable to the folder and the command that produced it:

    .venv/bin/python benchmarks/collect_run.py runs/medquad-cpu --config benchmarks/configs/medquad-cpu.yaml \\
        --output benchmarks/results/run_medquad_cpu.json

``--note`` records what the folder cannot say, e.g. that its LLM answers were re-read from the
response cache of an earlier, stopped run (the calls were paid there), so no cost is hidden.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
from pathlib import Path
from typing import Any


def read(path: Path) -> Any:
    if not path.exists():
        raise SystemExit(f"{path} is missing: is {path.parent} a finished `synthrank run` folder?")
    return json.loads(path.read_text(encoding="utf-8"))


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except ImportError:
        gpu = "torch not installed"
    return f"{platform.machine()}, {os.cpu_count()} CPU cores ({cpu or 'unknown CPU'}), {gpu}"


def collect(run_dir: Path, config: str | None, notes: list[str]) -> dict[str, Any]:
    run_config = read(run_dir / "run_config.json")
    evaluation = read(run_dir / "evaluation.json")
    generate = read(run_dir / "generate_stats.json")
    mine = read(run_dir / "mine_stats.json")
    train = read(run_dir / "train_summary.json")
    command = f".venv/bin/synthrank run {'--config ' + config + ' ' if config else ''}--output-dir {run_dir}"
    main = evaluation["main"]
    systems = {s["name"]: s for s in main["systems"]}
    return {
        "benchmark": run_dir.name,
        "command": command,
        "machine": machine(),
        "llm": run_config["llm"]["model"] if not run_config["llm"].get("base_url") else run_config["llm"]["base_url"],
        "steps": read(run_dir / "usage.json")["steps"],
        "notes": notes,
        "generate": {
            k: generate[k] for k in ("passages", "generated", "kept", "rejected", "parse_failures") if k in generate
        },
        "mine": {k: mine[k] for k in ("groups_total", "mean_negatives", "skipped", "seconds") if k in mine},
        "train": train,
        "fusion": evaluation.get("fusion"),
        "evaluation": main,
        "summary": {
            "queries": next(iter(systems.values()))["num_queries"] if systems else 0,
            "nDCG@10": {name: s["metrics"].get("nDCG@10") for name, s in systems.items()},
            "seconds_per_query": {name: s["seconds_per_query"] for name, s in systems.items()},
            "significance_nDCG@10": [
                {k: s[k] for k in ("system", "baseline", "delta", "p_value")}
                for s in main.get("significance", [])
                if s.get("metric") == "nDCG@10"
            ],
        },
        **({"llm_judge_subset": judge_subset(evaluation["llm_judge_subset"])} if "llm_judge_subset" in evaluation else {}),
        "run_config": run_config,
    }


def judge_subset(sub: dict[str, Any]) -> dict[str, Any]:
    """The LLM judge as a reranker beside the other systems on its query subset, with its uncached cost."""
    per_query = {n: v.get("nDCG@10") for n, v in sub.get("per_query", {}).items()}
    return {
        "top_k": sub["top_k"],
        "queries": sub["systems"][0]["num_queries"] if sub["systems"] else 0,
        "nDCG@10": {s["name"]: s["metrics"].get("nDCG@10") for s in sub["systems"]},
        "MRR@10": {s["name"]: s["metrics"].get("MRR@10") for s in sub["systems"]},
        "judge_seconds_per_query_measured": next(
            (s["seconds_per_query"] for s in sub["systems"] if s["name"] == "llm judge"), None
        ),
        "judge_cost": sub.get("judge_cost"),
        "usage": sub.get("usage"),
        "note": "the other systems re-read the scores they computed for the main table; their cost is the main "
        "table's s/query (at its depth)",
        "vs llm judge (paired t-test, nDCG@10)": {
            name: paired(per_query[name], per_query["llm judge"]) for name in per_query if name != "llm judge"
        }
        if "llm judge" in per_query
        else {},
        "per_query_nDCG@10": per_query,
    }


def paired(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    from synthrank.evaluate import paired_t_test_per_query

    test = paired_t_test_per_query(a, b, "nDCG@10")
    return {"delta": test.delta, "t": test.t_statistic, "p_value": test.p_value, "queries": test.num_queries}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--config", default=None, help="the --config the run was started with (for the command line)")
    parser.add_argument("--note", action="append", default=[], help="see above (repeatable)")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    result = collect(args.run_dir, args.config, args.note)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    report = args.run_dir / "report.md"
    if report.exists():
        shutil.copyfile(report, args.output.with_name(args.output.stem + "_report.md"))
    print(f"wrote {args.output}")
    for name, value in result["summary"]["nDCG@10"].items():
        print(f"  {name}: nDCG@10 {value:.4f}, {result['summary']['seconds_per_query'][name]:.3f} s/query")


if __name__ == "__main__":
    main()
