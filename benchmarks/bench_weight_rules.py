"""Which rule picks the BM25 fusion weight best at the default budget? Simulated on many default-sized runs.

The served model is fused with BM25 at a weight picked on the run's own synthetic queries (~45 queries of 20
passages at the default budget). A scorecard cell compares rules on one draw of 20 passages per corpus: four data
points, since every seed trains on the same queries and the weight is picked with the untuned encoder. This
benchmark draws many default-sized runs instead: from one large-budget run's queries (80 source passages) it takes
``--draws`` random sets of ``--passages`` source passages (each with all its queries), lets each rule pick a weight
on that draw's synthetic queries alone, and scores the served model fused at that weight on the corpus's real
judged queries (the row's saved ranking, and the zero-shot encoder's as a second served model). No rule reads an evaluation query; the evaluation queries only score what the rules chose, which is
the scorecard's own job (one rule for every corpus, not a per-corpus choice).

Rules: ``best`` (the best weight on the synthetic queries), ``one_se`` (the least BM25 weight within one standard
error of the best: the product's rule until this benchmark), ``bagged`` (``one_se`` averaged over bootstrap
resamples of the draw's passages: :func:`synthrank.rerank.first_stage.bagged_one_standard_error_weight`), and
``model`` (no fusion) as the floor. The named peer is ``one_se``: each rule's mean over draws is printed against it
with the paired difference's spread over draws.

    .venv/bin/python benchmarks/bench_weight_rules.py --runs beir-scifact-large@quick-2ep,vaswani-large@quick-2ep

Reads the scorecard's run folders (``--work-dir``) and, for the model, the ranking the scorecard saved for a row
and seed (``<run>/scorecard/rankings/<row>-seed<seed>.json``); writes ``benchmarks/results/weight_rules.json``
after every corpus.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
logger = logging.getLogger("weight_rules")

RULES = ("model", "best", "one_se", "bagged")
PEER = "one_se"


def draw_passages(passages: Sequence[str], size: int, draws: int, seed: int) -> list[list[str]]:
    """``draws`` seeded sets of ``size`` distinct source passages (all of them when there are fewer)."""
    rng = random.Random(seed)
    ordered = sorted(passages)
    return [sorted(rng.sample(ordered, min(size, len(ordered)))) for _ in range(draws)]


def rule_weights(per_query: Mapping[float, Mapping[str, float]], passage_of: Mapping[str, str],
                 resamples: int, seed: int) -> dict[str, float]:  # fmt: skip
    """Each rule's weight on one draw's synthetic queries (``per_query``: weight -> query -> nDCG@10)."""
    from synthrank.rerank.first_stage import bagged_one_standard_error_weight, one_standard_error_weight

    picked = one_standard_error_weight(per_query)
    bagged = bagged_one_standard_error_weight(per_query, passage_of, resamples=resamples, seed=seed)
    return {"model": 0.0, "best": float(picked["best_weight"]), "one_se": float(picked["weight"]),
            "bagged": float(bagged["weight"])}  # fmt: skip


def simulate(per_query: Mapping[float, Mapping[str, float]], passage_of: Mapping[str, str],
             served_score: Any, *, passages: int, draws: int, resamples: int, seed: int) -> dict[str, Any]:  # fmt: skip
    """Each rule's weight and served score on ``draws`` default-sized draws; ``served_score(weight)`` is the real
    queries' mean nDCG@10 of the model fused with BM25 at that weight."""
    queries = sorted(next(iter(per_query.values())))
    of = {q: passage_of.get(q, q) for q in queries}
    by_draw = draw_passages(sorted(set(of.values())), passages, draws, seed)
    weights: dict[str, list[float]] = {r: [] for r in RULES}
    scores: dict[str, list[float]] = {r: [] for r in RULES}
    for i, chosen in enumerate(by_draw):
        keep = set(chosen)
        sample = {w: {q: v for q, v in values.items() if of[q] in keep} for w, values in per_query.items()}
        for rule, weight in rule_weights(sample, of, resamples, seed + i).items():
            weights[rule].append(weight)
            scores[rule].append(served_score(weight))
    out: dict[str, Any] = {"draws": len(by_draw), "passages_per_draw": min(passages, len(set(of.values()))),
                           "pool_passages": len(set(of.values())), "pool_queries": len(queries), "rules": {}}  # fmt: skip
    for rule in RULES:
        diffs = [a - b for a, b in zip(scores[rule], scores[PEER], strict=True)]
        out["rules"][rule] = {
            "served_ndcg10": statistics.fmean(scores[rule]), "served_std": statistics.pstdev(scores[rule]),
            "weight_mean": statistics.fmean(weights[rule]), "weight_std": statistics.pstdev(weights[rule]),
            f"vs_{PEER}": statistics.fmean(diffs), f"vs_{PEER}_draws_better": sum(d > 1e-12 for d in diffs),
            f"vs_{PEER}_draws_worse": sum(d < -1e-12 for d in diffs),
        }  # fmt: skip
    return out


def measure(folder: Path, ranking_path: Path, args: argparse.Namespace) -> dict[str, Any]:
    from synthrank.evaluate import evaluate_run
    from synthrank.rerank import BiEncoderScorer
    from synthrank.rerank.first_stage import (
        WEIGHT_GRID,
        fuse_with_first_stage,
        per_query_by_weight,
        source_passages_of_run,
        synthetic_queries_of_run,
    )

    sys.path.insert(0, str(REPO / "benchmarks"))
    import scorecard

    corpus_name = scorecard.corpus_of_run(folder)
    evaluator = scorecard.Evaluator(scorecard.CORPORA[corpus_name], args.top_k, args.dtype)
    ranking = json.loads(ranking_path.read_text(encoding="utf-8"))
    evaluator.run("bm25", None)  # the evaluation's BM25 first stage (the run's own top-k)
    candidates, relevant, texts = synthetic_queries_of_run(folder, evaluator.dataset.corpus)
    per_query = per_query_by_weight(candidates, relevant, BiEncoderScorer("minilm", batch_size=64, dtype=args.dtype),
                                    texts)  # fmt: skip
    passage_of = source_passages_of_run(folder)
    rankings = {args.row: ranking}
    if args.zero_shot:
        rankings["zero-shot"] = evaluator.zero_shot()[1]  # the untuned encoder's own ranking of the same top-k
    result: dict[str, Any] = {"run": folder.name, "ranking": str(ranking_path.relative_to(args.work_dir)), "models": {}}
    for name, served in rankings.items():
        cache: dict[float, float] = {}

        def served_score(weight: float, served: dict[str, dict[str, float]] = served,
                         cache: dict[float, float] = cache) -> float:  # fmt: skip
            key = round(weight, 2)
            if key not in cache:
                fused = fuse_with_first_stage(evaluator.first_stage, served, key)
                cache[key] = evaluate_run(fused, evaluator.dataset.qrels, ("nDCG@10",)).aggregate["nDCG@10"]
            return cache[key]

        model = simulate(per_query, passage_of, served_score, passages=args.passages, draws=args.draws,
                         resamples=args.resamples, seed=args.seed)  # fmt: skip
        model["served_curve"] = {f"{w:.1f}": served_score(w) for w in WEIGHT_GRID}  # context only: no rule reads it
        result["models"][name] = model
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, default=REPO / "runs" / "scorecard", help="the scorecard's run folders")
    parser.add_argument("--runs", required=True, help="comma-separated large-budget run folders under --work-dir")
    parser.add_argument("--row", default="synthrank@quick-2ep", help="the scorecard row whose saved ranking is served")
    parser.add_argument("--ranking-seed", type=int, default=42)
    parser.add_argument("--no-zero-shot", dest="zero_shot", action="store_false",
                        help="skip the second served model, the zero-shot encoder (its own evaluation pass)")
    parser.add_argument("--passages", type=int, default=20, help="source passages per draw (the default budget's)")
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--resamples", type=int, default=100, help="bootstrap resamples of the bagged rule")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top-k", type=int, default=30)
    parser.add_argument("--dtype", default="auto", help="the encoder's dtype (auto: bf16 where the CPU has it)")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "weight_rules.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from synthrank.data import write_json
    from synthrank.pipeline.stages import evaluation_dtype

    args.dtype = evaluation_dtype(args.dtype)
    done: dict[str, Any] = json.loads(args.output.read_text()) if args.output.exists() else {"runs": {}}
    done["command"] = "benchmarks/bench_weight_rules.py " + " ".join(argv if argv is not None else sys.argv[1:])
    done["peer"] = PEER
    for name in (r for r in args.runs.split(",") if r):
        folder = args.work_dir / name
        ranking = folder / "scorecard" / "rankings" / f"{args.row}-seed{args.ranking_seed}.json"
        if not (folder / "groups.jsonl").exists() or not ranking.exists():
            parser.error(f"{folder}: needs groups.jsonl and {ranking.relative_to(folder)} (run the scorecard's rows)")
        result = measure(folder, ranking, args)
        done["runs"][name] = result
        write_json(args.output, done)  # after every corpus: a stopped benchmark keeps what it measured
        for model, sim in result["models"].items():
            peer = sim["rules"][PEER]["served_ndcg10"]
            for rule, r in sim["rules"].items():
                print(f"{name} [{model}]: {rule:>6} w {r['weight_mean']:.2f}±{r['weight_std']:.2f} served nDCG@10 "
                      f"{r['served_ndcg10']:.4f} ({r['served_ndcg10'] / peer:.3f}x {PEER}; {r[f'vs_{PEER}']:+.4f}, "
                      f"better on {r[f'vs_{PEER}_draws_better']} / worse on {r[f'vs_{PEER}_draws_worse']} of "
                      f"{sim['draws']} draws)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
