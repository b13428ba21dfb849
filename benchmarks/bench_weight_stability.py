"""How stable is the BM25 fusion weight a run picks on its own synthetic queries?

The served model is fused with BM25 at a weight picked on the run's ~45 synthetic queries (three per source
passage at the default budget) by the one-standard-error rule (:mod:`synthrank.rerank.first_stage`). On the
scorecard two data levers whose models were the same to within 0.003 nDCG@10 were served at different weights
(SciFact 0.1 and 0.4) and their served scores differed by 0.04: the pick, not the model, moved the number. This
benchmark measures that noise without touching an evaluation query: it resamples a run's source passages with
replacement (each passage with all its queries: the queries of one passage are not independent), re-applies the
rule to each resample, and reports how often each weight is chosen, beside the same for the best-weight rule (the
peer it replaced).

    .venv/bin/python benchmarks/bench_weight_stability.py --runs vaswani-default@quick,beir-scifact-default@quick

Results: ``benchmarks/results/weight_stability.json`` (and a line per run on stdout).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
logger = logging.getLogger("weight_stability")


def resampled_choices(per_query: dict[float, dict[str, float]], passage_of: dict[str, str], resamples: int,
                      seed: int) -> dict[str, Counter[float]]:  # fmt: skip
    """The 1-SE rule's and the best-weight rule's choice on each passage-level bootstrap resample."""
    from synthrank.rerank.first_stage import one_standard_error_weight, resampled_by_unit

    chosen: dict[str, Counter[float]] = {"one_se": Counter(), "best": Counter()}
    for sample in resampled_by_unit(per_query, passage_of, resamples=resamples, seed=seed):
        picked = one_standard_error_weight(sample)
        chosen["one_se"][picked["weight"]] += 1
        chosen["best"][picked["best_weight"]] += 1
    return chosen


def spread(counts: Counter[float]) -> dict[str, Any]:
    values = sorted(counts.elements())
    n = len(values)
    return {"counts": {f"{w:.1f}": counts[w] for w in sorted(counts)}, "median": statistics.median(values),
            "p05": values[int(0.05 * (n - 1))], "p95": values[int(0.95 * (n - 1))],
            "std": statistics.pstdev(values)}  # fmt: skip


def measure(folder: Path, resamples: int, seed: int, dtype: str) -> dict[str, Any]:
    from synthrank.data import load_dataset
    from synthrank.rerank import BiEncoderScorer
    from synthrank.rerank.first_stage import (
        one_standard_error_weight,
        per_query_by_weight,
        source_passages_of_run,
        synthetic_queries_of_run,
    )

    corpus = json.loads((folder / "run_config.json").read_text(encoding="utf-8"))["corpus"]
    dataset = load_dataset(corpus)
    candidates, relevant, texts = synthetic_queries_of_run(folder, dataset.corpus)
    scorer = BiEncoderScorer("minilm", batch_size=64, dtype=dtype)  # the untuned encoder the run picks with
    per_query = per_query_by_weight(candidates, relevant, scorer, texts)
    passage_of = source_passages_of_run(folder)
    full = one_standard_error_weight(per_query)
    chosen = resampled_choices(per_query, passage_of, resamples, seed)
    return {"run": folder.name, "queries": len(next(iter(per_query.values()))),
            "passages": len(set(passage_of.values())), "picked": full["weight"], "best": full["best_weight"],
            "one_se_rule": spread(chosen["one_se"]), "best_weight_rule": spread(chosen["best"])}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, default=REPO / "runs" / "scorecard", help="the scorecard's run folders")
    parser.add_argument("--runs", required=True, help="comma-separated run folder names under --work-dir")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default="auto", help="the encoder's dtype (auto: bf16 where the CPU has it)")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "weight_stability.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from synthrank.data import write_json
    from synthrank.pipeline.stages import evaluation_dtype

    dtype = evaluation_dtype(args.dtype)
    done: dict[str, Any] = json.loads(args.output.read_text()) if args.output.exists() else {"runs": {}}
    for name in (r for r in args.runs.split(",") if r):
        folder = args.work_dir / name
        if not (folder / "groups.jsonl").exists():
            parser.error(f"{folder}: no groups.jsonl (not a run folder with training data)")
        result = measure(folder, args.resamples, args.seed, dtype)
        done["runs"][name] = result
        done["command"] = "benchmarks/bench_weight_stability.py " + " ".join(argv if argv is not None else sys.argv[1:])
        write_json(args.output, done)  # after every run: a stopped benchmark keeps what it measured
        one, best = result["one_se_rule"], result["best_weight_rule"]
        print(f"{name}: picked {result['picked']} (best {result['best']}) on {result['queries']} queries of "
              f"{result['passages']} passages; resampled by passage, 1-SE rule chose {one['median']} "
              f"[{one['p05']}, {one['p95']}] (std {one['std']:.2f}), best-weight rule {best['median']} "
              f"[{best['p05']}, {best['p95']}] (std {best['std']:.2f}; ratio of stds 1-SE/best "
              f"{one['std'] / best['std'] if best['std'] else float('nan'):.2f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
