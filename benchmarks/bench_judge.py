"""Benchmark the LLM layer on MedQuAD with the local default: judge agreement, throughput, filter survival.

What it measures (all in one run, on this machine):

1. Judge agreement with the MedQuAD qrels on a labelled sample: for each sampled judged
   question, one relevant answer (from the qrels) and one hard non-relevant passage (the
   best BM25 hit not in its qrels): precision / recall / F1 of "relevant", accuracy, and the
   ROC AUC of P(relevant). Binary (Yes/No, 1 token) on all pairs; graded (0-3 + reason) on
   a balanced subset.
2. labels/s of each judge mode and queries/s of generation, with a fresh response cache
   (every answer is a real call), plus the share of generated queries surviving each filter.
3. The named peer, measured on the same pairs in the same run: SmolLM2-135M (the fast
   plumbing model) as a binary judge. Ratios are printed as default / peer.

Caveat printed with the results: MedQuAD holds many answers that share boilerplate text, so
a BM25 "non-relevant" hit can in fact answer the question; precision is a lower bound.

    python benchmarks/bench_judge.py                       # ~20-40 min on 2 busy cores
    python benchmarks/bench_judge.py --pairs 8 --graded-pairs 4 --passages 2   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synthrank.data import Document, load_dataset, write_json  # noqa: E402
from synthrank.label import JudgeItem, Judgement, LLMJudge  # noqa: E402
from synthrank.llm import LLMClient, LLMConfig, ResponseCache  # noqa: E402
from synthrank.retrieve import InMemoryBM25  # noqa: E402
from synthrank.synthesize import GenerationConfig, QueryGenerator, build_filters, sample_passages  # noqa: E402

DATA = Path(os.environ.get("SYNTHRANK_SHARED_DATA", ROOT.parent / "shared" / "data")) / "medquad"


def sample_pairs(dataset: Any, bm25: InMemoryBM25, n_queries: int, seed: int) -> list[dict[str, Any]]:
    """One (question, relevant answer) and one (question, best BM25 non-relevant hit) per sampled question."""
    rng = random.Random(seed)
    qids = sorted(dataset.judged_queries())
    rng.shuffle(qids)
    pairs: list[dict[str, Any]] = []
    for qid in qids:
        if len(pairs) >= 2 * n_queries:
            break
        query = dataset.queries[qid].text
        relevant = sorted(d for d, rel in dataset.qrels[qid].items() if rel > 0)
        hits = bm25.retrieve([query], k=10)[0]
        negative = next((h for h in hits if h.doc_id not in dataset.qrels[qid]), None)
        if not relevant or negative is None:
            continue
        pos = rng.choice(relevant)
        pairs.append({"query_id": qid, "query": query, "doc_id": pos, "label": 1})
        pairs.append({"query_id": qid, "query": query, "doc_id": negative.doc_id, "label": 0, "bm25_rank": negative.rank})
    return pairs


def auc(scores: list[float], labels: list[int]) -> float | None:
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return None
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def agreement(judgements: list[Judgement], labels: list[int], relevant_grade: int) -> dict[str, Any]:
    tp = fp = fn = tn = unusable = 0
    for j, y in zip(judgements, labels, strict=True):
        if j.grade is None:
            unusable += 1
            continue
        pred = j.grade >= relevant_grade
        tp += pred and y == 1
        fp += pred and y == 0
        fn += (not pred) and y == 1
        tn += (not pred) and y == 0
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    probs = [(j.probability, y) for j, y in zip(judgements, labels, strict=True) if j.probability is not None]
    return {
        "pairs": len(labels),
        "unusable": unusable,
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "accuracy": round((tp + tn) / max(1, tp + fp + fn + tn), 4),
        "auc_probability": None if not probs else _round(auc([p for p, _ in probs], [y for _, y in probs])),
        "mean_p_relevant": _round(_mean([p for p, y in probs if y == 1])),
        "mean_p_nonrelevant": _round(_mean([p for p, y in probs if y == 0])),
    }  # fmt: skip


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def run_judge(client: LLMClient, mode: str, pairs: list[dict[str, Any]], corpus: dict[str, Document]) -> dict[str, Any]:
    judge = LLMJudge(client, mode=mode)  # type: ignore[arg-type]
    items = [JudgeItem(p["query"], corpus[p["doc_id"]].full_text()) for p in pairs]
    calls_before = client.usage.calls
    started = time.perf_counter()
    judgements = judge.judge_many(items, show_progress=True, desc=f"judge {mode} ({client.model})")
    seconds = time.perf_counter() - started
    out = agreement(judgements, [p["label"] for p in pairs], judge.relevant_grade)
    out.update(
        mode=mode,
        model=client.model,
        seconds=round(seconds, 2),
        calls=client.usage.calls - calls_before,
        labels_per_second=round(len(pairs) / seconds, 4) if seconds else None,
        seconds_per_label=round(seconds / len(pairs), 2) if pairs else None,
        examples=[
            {"query": p["query"], "doc_id": p["doc_id"], "qrel": p["label"], "grade": j.grade,
             "p_relevant": _round(j.probability), "reason": j.reason}
            for p, j in list(zip(pairs, judgements, strict=True))[:6]
        ],
    )  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-1.5b", help="the local default model")
    ap.add_argument("--peer", default="smollm2-135m", help="named peer judge ('' to skip)")
    ap.add_argument("--pairs", type=int, default=48, help="judged pairs for the binary judge (half relevant)")
    ap.add_argument("--graded-pairs", type=int, default=16, help="pairs for the slower graded judge")
    ap.add_argument("--passages", type=int, default=20, help="passages for query generation")
    ap.add_argument("--query-types", default="keyword,natural")
    ap.add_argument("--types-per-passage", type=int, default=1, help="types asked per passage (rotated, seeded); 0: all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=None, help="response cache (default: a fresh temporary one, so every call is real)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "judge.json"))
    ap.add_argument("--phases", default="binary,graded,generation,peer",
                    help="what to measure (comma-separated subset of binary,graded,generation,peer)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the phases an earlier run left in --out and add these (for a run split in parts)")
    args = ap.parse_args()
    phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    if not phases <= {"binary", "graded", "generation", "peer"}:
        sys.exit(f"unknown phases in --phases {args.phases!r}")

    if not (DATA / "corpus.jsonl.gz").exists() and not (DATA / "corpus.jsonl").exists():
        sys.exit(f"MedQuAD not found at {DATA} (set SYNTHRANK_SHARED_DATA)")
    load_before = os.getloadavg()
    dataset = load_dataset(DATA, split="test_sample1000")
    bm25 = InMemoryBM25()
    bm25.index(dataset.corpus.values())
    pairs = sample_pairs(dataset, bm25, args.pairs // 2, args.seed)
    graded_pairs = pairs[: args.graded_pairs]
    tmp = tempfile.TemporaryDirectory(prefix="bench-judge-")
    cache_path = Path(args.cache) if args.cache else Path(tmp.name) / "cache.sqlite"

    earlier: dict[str, Any] = {}
    if args.merge and Path(args.out).exists():
        earlier = json.loads(Path(args.out).read_text(encoding="utf-8"))
        earlier.pop("partial", None)
    results: dict[str, Any] = {
        **earlier,
        "benchmark": "judge",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg_before": [round(x, 2) for x in load_before]},
        "earlier_parts": [*earlier.get("earlier_parts", []),
                          {"command": earlier["command"], "machine": earlier.get("machine")}] if earlier else [],
        "data": {"dataset": "medquad", "qrels": "test_sample1000", "pairs": len(pairs),
                 "graded_pairs": len(graded_pairs) if "graded" in phases else earlier.get("data", {}).get("graded_pairs"),
                 "negatives": "best BM25 hit (top 10) not in the question's qrels"},
        "caveat": "MedQuAD answers share boilerplate; a BM25 'non-relevant' hit may answer the question, so precision is a lower bound.",
    }  # fmt: skip

    cfg = LLMConfig(model=args.model, max_concurrency=2)
    with LLMClient(cfg, cache=ResponseCache(cache_path)) as client:
        started = time.perf_counter()
        client.warm_up()
        results["server_start_seconds"] = round(time.perf_counter() - started, 2)
        if "binary" in phases:
            results["binary"] = run_judge(client, "binary", pairs, dataset.corpus)
            write_json(args.out, {**results, "partial": True})  # a stopped run still leaves what it measured
        if "graded" in phases:
            results["graded"] = run_judge(client, "graded", graded_pairs, dataset.corpus)
            write_json(args.out, {**results, "partial": True})
        if "generation" in phases:
            measure_generation(client, args, dataset, bm25, results)
        results["usage_default" if not earlier else "usage_default_last_part"] = client.usage.to_dict()
        write_json(args.out, {**results, "partial": True})

    if args.peer and "peer" in phases:
        with LLMClient(LLMConfig(model=args.peer, max_concurrency=2), cache=ResponseCache(cache_path)) as peer:
            results["peer_binary"] = run_judge(peer, "binary", pairs, dataset.corpus)
    if "binary" in results and "peer_binary" in results:
        d, p = results["binary"], results["peer_binary"]
        results["ratios_default_over_peer"] = {
            "f1": round(d["f1"] / p["f1"], 3) if p["f1"] else None,
            "auc": round(d["auc_probability"] / p["auc_probability"], 3) if d["auc_probability"] and p["auc_probability"] else None,
            "labels_per_second": round(d["labels_per_second"] / p["labels_per_second"], 3) if p["labels_per_second"] else None,
        }
    results["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    write_json(args.out, results)
    tmp.cleanup()
    print_summary(results, args.out)


def measure_generation(client: LLMClient, args: argparse.Namespace, dataset: Any, bm25: InMemoryBM25, results: dict[str, Any]) -> None:
    """Generate queries for sampled passages through every filter: queries/s and the share surviving each filter."""
    passages = sample_passages(dataset.corpus, args.passages, seed=args.seed, min_chars=100, max_chars=2000)
    gen_cfg = GenerationConfig(
        query_types=[t.strip() for t in args.query_types.split(",") if t.strip()],
        seed=args.seed,
        types_per_passage=args.types_per_passage or None,
    )
    filters = build_filters(roundtrip_retriever=bm25, roundtrip_k=20)
    with tempfile.TemporaryDirectory(prefix="bench-gen-") as gen_dir:
        report = QueryGenerator(client, gen_cfg, filters=filters).generate(
            passages, Path(gen_dir) / "queries.jsonl", show_progress=True
        )
        with open(Path(gen_dir) / "queries.jsonl", encoding="utf-8") as fh:
            kept = [json.loads(line) for line in fh]
    g = report.to_dict()
    results["generation"] = {
        "passages": len(passages),
        "query_types": gen_cfg.query_types,
        "calls": report.slots,
        "generated": report.generated,
        "kept": report.kept,
        "survival": g["survival"],
        "rejected": report.rejected,
        "parse_failures": report.parse_failures,
        "repaired_answers": report.repaired,
        "seconds": report.seconds,
        "generated_queries_per_second": round(report.generated / report.seconds, 4) if report.seconds else None,
        "kept_queries_per_second": g["queries_per_second"],
        "seconds_per_call": round(report.seconds / max(1, report.slots), 2),
        "examples": [{k: q.get(k) for k in ("query", "query_type", "source_doc_id", "roundtrip_rank")} for q in kept[:8]],
    }


def print_summary(results: dict[str, Any], out: str) -> None:
    b, gr, gen = results.get("binary"), results.get("graded"), results.get("generation")
    if b:
        print(f"\njudge agreement with MedQuAD qrels ({b['pairs']} pairs, half relevant), model {b['model']}:")
        print(f"  binary: P={b['precision']:.2f} R={b['recall']:.2f} F1={b['f1']:.2f} AUC={b['auc_probability']} "
              f"{b['labels_per_second']:.3f} labels/s ({b['seconds_per_label']} s/label)")
    if gr:
        print(f"  graded ({gr['pairs']} pairs): P={gr['precision']:.2f} R={gr['recall']:.2f} F1={gr['f1']:.2f} "
              f"AUC={gr['auc_probability']} {gr['labels_per_second']:.3f} labels/s ({gr['seconds_per_label']} s/label)")
    if gen:
        print(f"generation: {gen['generated']} generated, {gen['kept']} kept from {gen['passages']} passages; "
              f"{gen['generated_queries_per_second']:.3f} queries/s; survival {gen['survival']}")
    if b and "peer_binary" in results:
        p = results["peer_binary"]
        r = results["ratios_default_over_peer"]
        print(f"peer {p['model']} binary: F1={p['f1']:.2f} AUC={p['auc_probability']} {p['labels_per_second']:.3f} labels/s")
        print(f"ratio {b['model']} / {p['model']}: F1 x{r['f1']}, AUC x{r['auc']}, labels/s x{r['labels_per_second']}")
    print(f"load average before/after: {results['machine']['loadavg_before']} / {results['machine']['loadavg_after']}")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
