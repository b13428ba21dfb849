"""First-stage check: our in-memory BM25 (bm25s) against PISA's BM25 (pyterrier-pisa) on the shared sets.

Both use k1=0.9, b=0.4 and Porter2 stemming; PISA uses its own tokenizer and stop list, so small
quality differences are expected. Prints nDCG@10 of both and the query-throughput ratio
(ours / PISA), measured in the same run, and writes benchmarks/results/bm25.json.

    .venv/bin/python benchmarks/bench_bm25.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

SETS = [("medquad", "test_sample1000"), ("beir-scifact", "test"), ("agentset-msmarco-subset", "test"), ("vaswani", "test")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "bm25.json"))
    args = parser.parse_args()

    import pandas as pd
    import pyterrier as pt
    from pyterrier_pisa import PisaIndex

    from synthrank.data import load_dataset
    from synthrank.evaluate import evaluate_run
    from synthrank.retrieve import InMemoryBM25

    rows = []
    for name, split in SETS:
        ds = load_dataset(Path(args.data) / name, split=split)
        queries = ds.judged_queries()
        qids = list(queries)
        texts = [queries[q].text for q in qids]

        t0 = time.perf_counter()
        ours = InMemoryBM25()
        ours.index(ds.corpus.values())
        ours_index_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        hits = ours.retrieve(texts, k=100)
        ours_query_s = time.perf_counter() - t0
        ours_run = {q: {h.doc_id: h.score for h in hs} for q, hs in zip(qids, hits, strict=True)}

        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            index = PisaIndex(str(Path(tmp) / "pisa"), text_field="text", stemmer="porter2", threads=1)
            index.index({"docno": d.id, "text": d.full_text(" ")} for d in ds.corpus.values())
            pisa_index_s = time.perf_counter() - t0
            retriever = index.bm25(k1=0.9, b=0.4, num_results=100, threads=1)
            topics = pd.DataFrame({"qid": qids, "query": [pt.utils.strip_markup(t) if hasattr(pt.utils, "strip_markup") else t for t in texts]})
            t0 = time.perf_counter()
            res = retriever(topics)
            pisa_query_s = time.perf_counter() - t0
        pisa_run: dict[str, dict[str, float]] = {}
        for row in res.itertuples():
            pisa_run.setdefault(str(row.qid), {})[str(row.docno)] = float(row.score)

        ev_ours = evaluate_run(ours_run, ds.qrels)
        ev_pisa = evaluate_run(pisa_run, ds.qrels)
        row = {
            "dataset": name,
            "split": split,
            "docs": len(ds.corpus),
            "queries": len(qids),
            "ours": {"metrics": ev_ours.aggregate, "index_s": ours_index_s, "query_s": ours_query_s},
            "pisa": {"metrics": ev_pisa.aggregate, "index_s": pisa_index_s, "query_s": pisa_query_s},
            "query_throughput_ratio_ours_over_pisa": pisa_query_s / ours_query_s if ours_query_s else None,
        }
        rows.append(row)
        print(
            f"{name:26s} nDCG@10 ours {ev_ours.aggregate['nDCG@10']:.4f}  pisa {ev_pisa.aggregate['nDCG@10']:.4f}  "
            f"queries/s ours {len(qids) / ours_query_s:8.0f}  pisa {len(qids) / pisa_query_s:8.0f}  "
            f"ratio {row['query_throughput_ratio_ours_over_pisa']:.2f}x"
        )
    out = {"benchmark": "bm25", "peer": "pyterrier-pisa BM25 (k1=0.9, b=0.4, porter2)", "machine": platform.processor() or platform.machine(), "rows": rows}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
