"""PILOT (LLM-free stand-in): train the LCE cross-encoder on MedQuAD passages, compare with BM25 and the bi-encoder.

This proves the trainer end to end before the synthetic LLM queries exist. It is NOT the method:

- queries are pseudo-queries made from each sampled passage alone: its title plus the first
  ``--query-words`` words of its text (after "Key Points -" style boilerplate). MedQuAD's real
  questions (queries.jsonl) and qrels are never used for training or model selection;
- BM25 hard negatives come from ``synthrank.mine`` over the whole corpus (source passage and its
  near-duplicates excluded);
- checkpoint selection uses held-out *pseudo-query* groups, not MedQuAD questions.

Evaluation: MedQuAD ``test_sample1000`` qrels, a seeded subsample of ``--eval-queries`` questions,
BM25 top-``--eval-top-k`` reranked by (a) this model and (b) all-MiniLM-L6-v2 as a zero-shot
bi-encoder (cosine), through ``synthrank.evaluate.evaluate_systems`` (paired t-tests vs BM25).

Run (writes benchmarks/results/train_pilot.json)::

    .venv/bin/python benchmarks/pilot_train_medquad.py --train-passages 1200 --eval-queries 300 --eval-top-k 20
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import platform
import re
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "medquad"
RESULTS = REPO / "benchmarks" / "results" / "train_pilot.json"

_BOILERPLATE = re.compile(r"^(key points\s*-\s*|summary\s*:?\s*|-\s*)", re.IGNORECASE)


def pseudo_query(title: str, text: str, words: int) -> str:
    """Title + the first words of the passage: an LLM-free stand-in for a synthetic query."""
    body = _BOILERPLATE.sub("", text.strip())
    first = re.split(r"(?<=[.!?])\s", body, maxsplit=1)[0]
    return f"{title}: {' '.join(first.split()[:words])}".strip(": ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-passages", type=int, default=1200, help="passages turned into pseudo-queries")
    parser.add_argument("--dev-passages", type=int, default=80, help="held-out pseudo-query groups for model selection")
    parser.add_argument("--query-words", type=int, default=12)
    parser.add_argument("--num-negatives", type=int, default=15, help="mined pool per group")
    parser.add_argument("--range-min", type=int, default=0)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=7e-5)
    parser.add_argument("--max-length", type=int, default=192)
    parser.add_argument("--loss", default="lce", choices=["lce", "bce", "listwise"])
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--eval-queries", type=int, default=300)
    parser.add_argument("--eval-top-k", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--num-threads", type=int, default=None)
    parser.add_argument("--output-dir", default="/tmp/synthrank_pilot")
    parser.add_argument("--restart", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from synthrank.data import load_dataset, write_groups
    from synthrank.evaluate import evaluate_systems, format_table
    from synthrank.mine import MiningConfig, MiningQuery, mine_hard_negatives
    from synthrank.rerank import BiEncoderScorer, CrossEncoderReranker, PairScorer
    from synthrank.retrieve import InMemoryBM25
    from synthrank.train import DevSet, TrainConfig, train_reranker

    t0 = time.perf_counter()
    dataset = load_dataset(DATA, split="test_sample1000")
    bm25 = InMemoryBM25()
    bm25.index(list(dataset.corpus.values()))

    # ---- pilot groups from the corpus only (never the questions)
    rng = np.random.default_rng(args.seed)
    doc_ids = sorted(dataset.corpus)
    picked = [doc_ids[i] for i in rng.choice(len(doc_ids), size=args.train_passages + args.dev_passages, replace=False)]
    queries = []
    for n, did in enumerate(picked):
        doc = dataset.corpus[did]
        queries.append(MiningQuery(f"pq-{n:05d}", pseudo_query(doc.title, doc.text, args.query_words), did,
                                   {"pilot": "title+first-words pseudo-query"}))
    mining = MiningConfig(top_k=50, num_negatives=args.num_negatives, range_min=args.range_min)
    groups = mine_hard_negatives(queries, dataset.corpus, retriever=bm25, config=mining)
    train_groups = [g for g in groups if int(g.query_id[3:]) < args.train_passages]
    dev_groups = [g for g in groups if int(g.query_id[3:]) >= args.train_passages]
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_groups(out / "pilot_groups.jsonl", train_groups)
    mine_seconds = time.perf_counter() - t0

    cfg = TrainConfig(
        model="minilm", loss=args.loss, group_size=args.group_size, batch_size=args.batch_size, epochs=args.epochs,
        learning_rate=args.learning_rate, max_length=args.max_length, seed=args.seed, eval_every=args.eval_every,
        save_every=25, num_threads=args.num_threads,
    )
    result = train_reranker(out / "pilot_groups.jsonl", out / "run", cfg, dev=DevSet.from_groups(dev_groups),
                            restart=args.restart)

    # ---- evaluation on real questions (a seeded subsample), BM25 top-k reranked
    judged = sorted(dataset.judged_queries())
    keep = sorted(judged[i] for i in np.random.default_rng(0).choice(len(judged), size=args.eval_queries, replace=False))
    subset = dataclasses.replace(dataset, qrels={q: dataset.qrels[q] for q in keep})
    rerankers: dict[str, PairScorer] = {
        f"{args.loss}-minilm (ours, pilot)": CrossEncoderReranker(result.model_dir, max_length=args.max_length),
        "minilm bi-encoder (zero-shot)": BiEncoderScorer("minilm"),
    }
    report = evaluate_systems(subset, bm25, rerankers, split="test_sample1000", top_k=args.eval_top_k,
                              show_progress=True)
    print(format_table(report))
    summary = {s.name: s.evaluation.aggregate for s in report.systems}
    payload = {
        "benchmark": "train_pilot",
        "label": "PILOT: LLM-free pseudo-queries (title + first words of a passage), not synthetic LLM queries",
        "command": "benchmarks/pilot_train_medquad.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None and v is not False),
        "machine": {"platform": platform.platform(), "processor": platform.machine()},
        "data": {
            "corpus": str(DATA),
            "train_groups": len(train_groups),
            "dev_groups": len(dev_groups),
            "example_queries": [g.query for g in train_groups[:5]],
            "eval_split": "test_sample1000",
            "eval_queries": len(keep),
            "eval_top_k": args.eval_top_k,
            "note": "Recall@100 is that of the BM25 top-k list (reranking cannot change the set)",
        },
        "train": {k: result.metrics[k] for k in ("config", "global_step", "train_seconds", "groups_per_second",
                                                  "best_step", "best_dev", "dev_history", "final_loss", "device")},
        "systems": summary,
        "significance": report.significance,
        "beats_bm25": summary[next(iter(rerankers))]["nDCG@10"] > summary["bm25"]["nDCG@10"],
        "beats_bi_encoder": summary[next(iter(rerankers))]["nDCG@10"]
        > summary["minilm bi-encoder (zero-shot)"]["nDCG@10"],
        "mine_seconds": round(mine_seconds, 1),
        "total_seconds": round(time.perf_counter() - t0, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: payload[k] for k in ("systems", "beats_bm25", "beats_bi_encoder")}, indent=2))


if __name__ == "__main__":
    main()
