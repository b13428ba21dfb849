"""LoRA-tuned pointwise LLM reranker vs the same LLM untuned, on MedQuAD (BM25 top-k reranked).

Peer: the UNTUNED base LLM with the same prompt, scored the same way (P(true) of the next
token), measured in the same run on the same BM25 candidates. Printed: nDCG@10 / MRR@10 of
BM25, untuned and tuned, the tuned/untuned ratio, seconds per query and training time, and a
paired t-test tuned vs untuned. Written to benchmarks/results/llmrank.json.

Evaluation: a seeded sample of ``--queries`` questions of MedQuAD's ``qrels/test_sample1000.tsv``
(a subsample: the 0.5B model costs ~2 s per question at top-10 on two AMX cores in bf16, ~20 s on two older cores in fp32), BM25 (bm25s, k1=0.9,
b=0.4, title + text) top ``--top-k`` reranked. The questions and qrels are never trained on.

Training data: a STAND-IN for the pipeline's synthetic data (LLM query generation and
judging are other stages), built from the MedQuAD CORPUS only: for a seeded sample of
answers, the pseudo-query is the answer's title (its focus, e.g. "Glaucoma") plus a window
of ``--window-words`` words taken from inside the answer; the positive is that answer; the
hard negatives are BM25 candidates mined with ``synthrank.mine`` (source and duplicate texts
excluded), one per positive (balanced). Answers relevant to any question of the evaluation
qrels file are left out of the training passages so no evaluated answer is trained on.

With ``--groups RUN/groups.jsonl`` (or ``mined_groups.jsonl``) the examples come from a ``synthrank run``
instead: its LLM-written queries, their source passages as positives and BM25-mined hard negatives, the
same groups the LCE cross-encoder row trains on. Groups whose positive is relevant to an evaluated
question are dropped, so nothing evaluated is trained on.

``--train-sizes 64,192`` sweeps the number of examples (nested: the smaller set is a prefix of
the larger). Each run resumes: trained models and finished systems are kept in ``--work-dir``.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/bench_llmrank.py --queries 20 --top-k 10 --train-sizes 128
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("SYNTHRANK_SHARED_DATA", REPO.parent / "shared" / "data")) / "medquad"


def _cpu_name() -> str:
    from synthrank.models.cpu import cpu_name

    return cpu_name()


def _has_amx() -> bool:
    from synthrank.models.cpu import cpu_has_amx

    return cpu_has_amx()


def stand_in_groups(corpus: dict[str, Any], exclude: set[str], n_groups: int, window: int, bm25: Any, seed: int) -> list[Any]:
    """Pseudo-queries (title + a window of the answer) with BM25-mined hard negatives; no LLM, no questions."""
    from synthrank.mine import MiningConfig, MiningQuery, mine_hard_negatives

    rng = random.Random(seed)
    pool = sorted(d for d, doc in corpus.items() if d not in exclude and doc.title and len(doc.text.split()) >= window + 5)
    chosen = rng.sample(pool, min(len(pool), int(n_groups * 1.3) + 10))  # some queries find no valid negative
    queries = []
    for i, did in enumerate(chosen):
        words = corpus[did].text.split()
        start = rng.randrange(0, max(1, min(len(words) - window, 60)))
        text = f"{corpus[did].title} {' '.join(words[start : start + window])}"
        queries.append(MiningQuery(f"sq-{i:05d}", text, did))
    config = MiningConfig(top_k=30, num_negatives=4, range_min=1, sampling="random", seed=seed)
    groups = mine_hard_negatives(queries, corpus, retriever=bm25, config=config)
    return [g for g in groups if g.negatives][:n_groups]


class _Timed:
    """Loads the model before the clock starts and frees it after scoring (one 2.5 GB model in memory at a time)."""

    def __init__(self, reranker: Any) -> None:
        self.reranker = reranker

    def score_pairs(self, queries: Any, documents: Any, *, show_progress: bool = False) -> Any:
        return self.reranker.score_pairs(queries, documents, show_progress=show_progress)


def evaluate_one(name: str, reranker: Any, dataset: Any, bm25: Any, top_k: int, cache: Path) -> dict[str, Any]:
    """nDCG@10 etc. of one reranker over BM25's top-k; cached in the work dir so a rerun skips it."""
    from synthrank.data import write_json
    from synthrank.evaluate import evaluate_systems

    if cache.exists():
        cached = json.loads(cache.read_text(encoding="utf-8"))
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(cache.stat().st_mtime))
        cached["system"]["measured"] = f"in an earlier invocation with the same settings ({cache.name}, {when})"
        return cached
    t0 = time.perf_counter()
    reranker.warm_up()
    load_s = time.perf_counter() - t0
    report = evaluate_systems(dataset, bm25, {name: _Timed(reranker)}, top_k=top_k, metrics=("nDCG@10", "MRR@10"), show_progress=True)
    reranker.close()
    base, system = report.systems
    out = {
        "bm25": {"metrics": base.evaluation.aggregate, "per_query": base.evaluation.per_query},
        "system": {**system.summary(), "load_seconds": round(load_s, 1), "per_query": system.evaluation.per_query},
    }
    write_json(cache, out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split", default="test_sample1000")
    parser.add_argument("--queries", type=int, default=20, help="evaluated questions (seeded sample)")
    parser.add_argument("--top-k", type=int, default=10, help="BM25 candidates reranked per question")
    parser.add_argument("--train-sizes", default="128", help="comma-separated numbers of training examples")
    parser.add_argument("--window-words", type=int, default=10)
    parser.add_argument("--groups", type=Path, default=None,
                        help="training groups of a synthrank run (groups.jsonl / mined_groups.jsonl) instead of the stand-in")
    parser.add_argument("--base-model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--max-length", type=int, default=160)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--grad-accum", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--lora-layers", type=int, default=12, help="adapt the last N layers only (0: all)")
    parser.add_argument("--score-batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--device", default=None)
    parser.add_argument("--cross-encoder", default="minilm",
                        help="encoder for the LCE cross-encoder trained on the same groups ('' to skip)")
    parser.add_argument("--ce-epochs", type=int, default=4, help="LCE epochs (the groups are few; MiniLM is cheap)")
    parser.add_argument("--ce-group-size", type=int, default=5, help="LCE group size: 1 positive + G-1 mined negatives")
    parser.add_argument("--work-dir", type=Path, default=REPO / "runs" / "bench_llmrank")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "llmrank.json")
    args = parser.parse_args()

    import torch

    from synthrank.data import load_dataset, write_json
    from synthrank.evaluate import paired_t_test
    from synthrank.evaluate.metrics import Evaluation
    from synthrank.llmrank import (
        CausalLMReranker,
        LoRATrainer,
        LoRATrainingConfig,
        class_counts,
        examples_from_groups,
        resolve_causal_lm,
        write_examples,
    )
    from synthrank.retrieve import InMemoryBM25

    if not (args.data / "corpus.jsonl.gz").exists() and not (args.data / "corpus.jsonl").exists():
        sys.exit(f"MedQuAD not found at {args.data} (set SYNTHRANK_SHARED_DATA or --data)")
    sizes = sorted({int(s) for s in args.train_sizes.split(",") if s.strip()})
    args.work_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    dataset = load_dataset(args.data, split=args.split)
    judged = sorted(dataset.judged_queries())
    eval_qids = sorted(random.Random(args.seed).sample(judged, min(args.queries, len(judged))))
    all_relevant = {d for rels in dataset.qrels.values() for d, g in rels.items() if g > 0}
    dataset.qrels = {q: dataset.qrels[q] for q in eval_qids}
    bm25 = InMemoryBM25()
    bm25.index(dataset.corpus.values())

    if args.groups is not None:
        from synthrank.data import read_groups

        pool = [g for g in read_groups(args.groups) if g.positive.doc_id not in all_relevant and g.negatives]
        random.Random(args.seed).shuffle(pool)  # nested sizes: each is a prefix of the next
        groups = pool[: max(sizes) // 2]
        print(f"{len(groups)} synthetic groups from {args.groups}; e.g. {groups[0].query!r}")
    else:
        groups = stand_in_groups(dataset.corpus, all_relevant, max(sizes) // 2, args.window_words, bm25, args.seed)
        print(f"stand-in: {len(groups)} pseudo-queries with mined negatives; e.g. {groups[0].query!r}")

    base_path = resolve_causal_lm(args.base_model)
    results: dict[str, Any] = {}
    untuned = CausalLMReranker(base_path, batch_size=args.score_batch_size, max_length=args.max_length, device=args.device)
    results["untuned"] = evaluate_one("untuned", untuned, dataset, bm25, args.top_k, args.work_dir / "eval-untuned.json")
    print(f"untuned: nDCG@10 {results['untuned']['system']['metrics']['nDCG@10']:.4f}")

    trained: dict[int, dict[str, Any]] = {}
    trained_ce: dict[int, dict[str, Any]] = {}
    for size in sizes:
        examples = examples_from_groups(groups[: size // 2], negatives_per_positive=1, seed=args.seed)
        run_dir = args.work_dir / f"lora-{size}"
        write_examples(args.work_dir / f"examples-{size}.jsonl", examples)
        config = LoRATrainingConfig(
            base_model=str(base_path),
            max_length=args.max_length,
            epochs=args.epochs,
            batch_size=args.batch_size,
            gradient_accumulation_steps=args.grad_accum,
            learning_rate=args.learning_rate,
            lora_r=args.lora_r,
            lora_alpha=2 * args.lora_r,
            lora_layers=args.lora_layers or None,
            warmup_ratio=0.1,
            checkpoint_every=5,
            seed=args.seed,
            device=args.device,
            merge=True,
        )
        result = LoRATrainer(config, run_dir).train(examples)
        name = f"lora-{size}"
        tuned = CausalLMReranker(result.model_dir, batch_size=args.score_batch_size, max_length=args.max_length, device=args.device)
        results[name] = evaluate_one(name, tuned, dataset, bm25, args.top_k, args.work_dir / f"eval-{name}.json")
        m = result.metrics
        trained[size] = {
            "examples": class_counts(examples),
            "train_seconds": m["train_seconds"],
            "seconds_per_example": m["train_seconds"] / max(1, len(examples) * args.epochs),
            "steps": m["global_step"],
            "final_loss": m["final_loss"],
            "final_answer_accuracy": m["final_answer_accuracy"],
            "first_loss": m["history"][0]["loss"],
        }
        print(f"{name}: nDCG@10 {results[name]['system']['metrics']['nDCG@10']:.4f} (trained in {m['train_seconds']:.0f} s)")

        if args.cross_encoder:
            from synthrank.rerank import CrossEncoderReranker
            from synthrank.train import TrainConfig, train_reranker

            ce_name = f"lce-{size}"
            ce_groups = groups[: size // 2]
            ce_config = TrainConfig(
                model=args.cross_encoder, loss="lce", group_size=args.ce_group_size, epochs=args.ce_epochs,
                batch_size=8, learning_rate=7e-5, max_length=args.max_length, seed=args.seed, device=args.device,
                save_every=50,
            )  # fmt: skip
            ce = train_reranker(ce_groups, args.work_dir / ce_name, ce_config, show_progress=True)
            ce_scorer = CrossEncoderReranker(ce.model_dir, max_length=args.max_length, device=args.device)
            results[ce_name] = evaluate_one(ce_name, ce_scorer, dataset, bm25, args.top_k, args.work_dir / f"eval-{ce_name}.json")
            trained_ce[size] = {
                "groups": len(ce_groups),
                "pairs_per_group": args.ce_group_size,
                "epochs": args.ce_epochs,
                "train_seconds": ce.metrics["train_seconds"],
                "steps": ce.global_step,
            }
            print(f"{ce_name}: nDCG@10 {results[ce_name]['system']['metrics']['nDCG@10']:.4f} "
                  f"(trained in {ce.metrics['train_seconds']:.0f} s)")

    bm25_metrics = results["untuned"]["bm25"]["metrics"]
    peer = results["untuned"]["system"]
    systems = [{"name": "bm25", "metrics": bm25_metrics, "seconds_per_query": None}]
    comparisons = []
    for name, res in results.items():
        s = res["system"]
        is_ce = name.startswith("lce-")
        label = f"{args.cross_encoder} cross-encoder {name}" if is_ce else f"{args.base_model} {name}"
        entry = {"name": label, "metrics": s["metrics"], "seconds_per_query": s["seconds_per_query"],
                 "measured": s.get("measured", "in this invocation")}
        if name != "untuned":
            size = int(name.split("-")[1])
            entry["training"] = trained_ce[size] if is_ce else trained[size]
            tuned_eval = Evaluation(s["metrics"], s["per_query"], len(eval_qids))
            peer_eval = Evaluation(peer["metrics"], peer["per_query"], len(eval_qids))
            test = paired_t_test(tuned_eval, peer_eval, "nDCG@10")
            comparisons.append(
                {
                    "system": name,
                    "peer": "untuned",
                    "ndcg10_ratio": s["metrics"]["nDCG@10"] / peer["metrics"]["nDCG@10"] if peer["metrics"]["nDCG@10"] else None,
                    "ndcg10_delta": s["metrics"]["nDCG@10"] - peer["metrics"]["nDCG@10"],
                    "seconds_per_query_ratio": s["seconds_per_query"] / peer["seconds_per_query"],
                    "paired_t_test": test.__dict__,
                }
            )
        systems.append(entry)

    out = {
        "benchmark": "llmrank",
        "command": " ".join(["python", *sys.argv]),
        "dataset": f"medquad {args.split}",
        "queries_evaluated": len(eval_qids),
        "query_sample": f"seeded random sample (seed {args.seed}) of the {len(judged)} judged questions",
        "top_k_reranked": args.top_k,
        "first_stage": "bm25s k1=0.9 b=0.4, title + text",
        "base_model": args.base_model,
        "base_model_note": "GGUF dequantized by transformers into a float32 HF folder; scored and trained in bf16 on CPUs with AMX",
        "training_data": {"kind": "synthetic groups of a synthrank run", "groups_file": str(args.groups),
                          "groups": len(groups), "example_query": groups[0].query,
                          "excluded": "groups whose positive is relevant to any question of the evaluation qrels file"}
        if args.groups is not None else {
            "kind": "STAND-IN (LLM-free), not the pipeline's synthetic data",
            "built_from": "MedQuAD corpus only: pseudo-query = answer title + a window of answer words; "
            "positive = that answer; hard negatives = BM25 candidates mined by synthrank.mine (1 per positive)",
            "window_words": args.window_words,
            "excluded": "answers relevant to any question of the evaluation qrels file",
            "example_query": groups[0].query,
        },
        "training": {
            "max_length": args.max_length,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "gradient_accumulation_steps": args.grad_accum,
            "learning_rate": args.learning_rate,
            "lora_r": args.lora_r,
            "lora_layers": args.lora_layers or "all",
        },
        "systems": systems,
        "comparisons": comparisons,
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "device": args.device or ("cuda" if torch.cuda.is_available() else "cpu"),
            "load_average_at_end": os.getloadavg(),
            "cpu": _cpu_name(),
            "bf16_on_cpu": _has_amx(),
        },
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    write_json(args.output, out)

    print(f"\nMedQuAD {args.split}: {len(eval_qids)} questions, BM25 top-{args.top_k} reranked")
    print(f"{'system':38s} {'nDCG@10':>8s} {'MRR@10':>8s} {'s/query':>8s}")
    for s in systems:
        spq = f"{s['seconds_per_query']:.2f}" if s["seconds_per_query"] is not None else "-"
        print(f"{s['name']:38s} {s['metrics']['nDCG@10']:8.4f} {s['metrics']['MRR@10']:8.4f} {spq:>8s}")
    for c in comparisons:
        print(
            f"{c['system']} / untuned: nDCG@10 x{c['ndcg10_ratio']:.3f} (delta {c['ndcg10_delta']:+.4f}, "
            f"p={c['paired_t_test']['p_value']:.3g}), time x{c['seconds_per_query_ratio']:.2f}"
        )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
