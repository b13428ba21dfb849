"""Mining throughput and memory: our in-memory miner against Haystack's InMemoryBM25Retriever, same corpus and queries.

Corpus: ~100k passages synthesised from the four shared sets (MedQuAD 16.4k + SciFact 5.2k +
Vaswani 11.4k + MS MARCO subset 5k documents): every document's text is cut into windows of
60 words (its title kept on each window), which gives ~104k passages; a seeded sample of
100,000 is kept. Queries: STAND-INS for synthetic queries (the LLM generator's output plugs in
later): for a seeded sample of passages, the title plus 8 words from inside the passage, with
that passage as ``source_doc_id``.

Measured in one run:
  * ours: index time; full mining (retrieve top-100 + exclusions + groups JSONL written) of all
    queries, in queries/s; retrieval alone; and both on the peer's query subset;
  * peer: Haystack ``InMemoryDocumentStore`` (BM25Okapi, k1=0.9, b=0.4) + ``InMemoryBM25Retriever``
    (top_k=100), which scores every document in Python per query, so it is timed on a subset
    (``--peer-queries``) of the same queries; the retrieval is the part of mining it would do;
  * memory: RSS added by indexing the passages, each backend in a fresh subprocess;
  * Elasticsearch, when ``--es-url`` (or ``$ELASTICSEARCH_URL``) names a server: indexing and
    mining a subset. (The noida-db imitation scans every document per query: far too slow at
    100k passages to say anything; use a real cluster.)

Prints the ratios and writes benchmarks/results/mining.json.

    .venv/bin/python benchmarks/bench_mining.py [--data ../shared/data] [--queries 10000] [--peer-queries 20]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SETS = ("medquad", "beir-scifact", "vaswani", "agentset-msmarco-subset")


def build_passages(data: Path, n_passages: int, chunk_words: int, seed: int) -> list[Any]:
    from synthrank.data import Document, read_corpus

    passages: list[Document] = []
    for name in SETS:
        for doc in read_corpus(data / name).values():
            words = doc.text.split()
            for i in range(max(1, math.ceil(len(words) / chunk_words))):
                text = " ".join(words[i * chunk_words : (i + 1) * chunk_words])
                passages.append(Document(f"{name}:{doc.id}#{i}", text, doc.title))
    if len(passages) > n_passages:
        passages = random.Random(seed).sample(passages, n_passages)
    return passages


def stand_in_queries(passages: list[Any], n: int, seed: int) -> list[Any]:
    from synthrank.mine import MiningQuery

    rng = random.Random(seed + 1)
    out = []
    for i, doc in enumerate(rng.sample(passages, n)):
        words = doc.text.split()
        start = rng.randrange(max(1, len(words) - 8))
        text = f"{doc.title} {' '.join(words[start : start + 8])}".strip()
        out.append(MiningQuery(f"sq-{i:05d}", text, doc.id))
    return out


def rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(kind: str, corpus_file: str) -> None:
    """Index the passages in this fresh process and print the memory it took (JSON on stdout)."""
    from synthrank.data import read_corpus

    docs = list(read_corpus(corpus_file).values())
    # Libraries are imported before the baseline so that only the index is counted.
    if kind == "ours":
        import bm25s  # noqa: F401

        from synthrank.retrieve import InMemoryBM25
    else:
        from haystack import Document as HaystackDocument
        from haystack.document_stores.in_memory import InMemoryDocumentStore
    before, started = rss_mb(), time.perf_counter()
    if kind == "ours":
        index: Any = InMemoryBM25()
        index.index(docs)
    else:
        index = InMemoryDocumentStore(bm25_algorithm="BM25Okapi", bm25_parameters={"k1": 0.9, "b": 0.4})
        index.write_documents([HaystackDocument(id=d.id, content=d.full_text(" ")) for d in docs])
    seconds = time.perf_counter() - started
    after = rss_mb()
    print(json.dumps({"index_s": seconds, "rss_before_mb": before, "rss_after_mb": after,
                      "rss_added_mb": after - before, "peak_rss_mb": peak_mb(),
                      "peak_added_mb": peak_mb() - before}))


def measure_memory(kind: str, corpus_file: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--corpus-file", str(corpus_file)],
                         check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def source_recall(hits: list[list[Any]], queries: list[Any]) -> float:
    found = sum(any(h.doc_id == q.source_doc_id for h in hs) for hs, q in zip(hits, queries, strict=True))
    return found / len(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "mining.json"))
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--chunk-words", type=int, default=60)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--peer-queries", type=int, default=20, help="Queries timed on Haystack (it scans every doc).")
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument("--es-url", default=os.environ.get("ELASTICSEARCH_URL"))
    parser.add_argument("--es-queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--child", choices=["ours", "haystack"], help=argparse.SUPPRESS)
    parser.add_argument("--corpus-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.corpus_file)
        return

    from synthrank.data import write_jsonl
    from synthrank.mine import HardNegativeMiner, MiningConfig
    from synthrank.retrieve import InMemoryBM25

    passages = build_passages(Path(args.data), args.passages, args.chunk_words, args.seed)
    corpus = {d.id: d for d in passages}
    queries = stand_in_queries(passages, args.queries, args.seed)
    peer_queries = queries[: args.peer_queries]
    config = MiningConfig(top_k=args.top_k, num_negatives=16, range_min=2)
    print(f"{len(passages)} passages, {len(queries)} stand-in queries, top-{args.top_k}, {os.cpu_count()} CPUs")
    result: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_at_start": os.getloadavg()},
        "corpus": {"passages": len(passages), "chunk_words": args.chunk_words, "sets": list(SETS),
                   "how": "documents of the four shared sets cut into 60-word windows (title kept), seeded sample"},
        "queries": {"n": len(queries), "peer_n": len(peer_queries),
                    "how": "STAND-INS: title + 8 words from inside a sampled passage (its source_doc_id)"},
        "mining_config": config.to_dict(),
    }

    with tempfile.TemporaryDirectory() as tmp:
        corpus_file = Path(tmp) / "corpus.jsonl"
        write_jsonl(corpus_file, (d.to_json() for d in passages))
        print("memory: indexing in fresh subprocesses ...")
        memory = {"ours": measure_memory("ours", corpus_file), "haystack": measure_memory("haystack", corpus_file)}
        result["memory"] = memory
        for kind, m in memory.items():
            print(f"  {kind:9s} index {m['index_s']:6.1f} s, RSS +{m['rss_added_mb']:5.0f} MB "
                  f"(peak +{m['peak_added_mb']:.0f} MB)")

        # --- ours
        t0 = time.perf_counter()
        bm25 = InMemoryBM25()
        bm25.index(passages)
        ours_index_s = time.perf_counter() - t0
        miner = HardNegativeMiner(bm25, corpus, config)
        t0 = time.perf_counter()
        summary = miner.mine_to_files(queries, Path(tmp) / "candidates.jsonl", Path(tmp) / "groups.jsonl")
        mine_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        hits = bm25.retrieve([q.query for q in queries], k=args.top_k)
        retrieve_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ours_peer_hits = bm25.retrieve([q.query for q in peer_queries], k=args.top_k)
        ours_peer_s = time.perf_counter() - t0
        ours = {
            "index_s": ours_index_s,
            "mine_s": mine_s,
            "mine_queries_per_s": len(queries) / mine_s,
            "retrieve_queries_per_s": len(queries) / retrieve_s,
            "peer_subset_retrieve_queries_per_s": len(peer_queries) / ours_peer_s,
            "groups": summary["groups_total"],
            "mean_negatives": summary["mean_negatives"],
            "skipped": summary["skipped"],
            "source_in_top_k": source_recall(hits, queries),
        }
        print(f"ours      index {ours_index_s:6.1f} s; mining {len(queries)} queries {mine_s:6.1f} s = "
              f"{ours['mine_queries_per_s']:7.1f} q/s (retrieval alone {ours['retrieve_queries_per_s']:.1f} q/s)")
        del hits

    # --- Haystack
    from haystack import Document as HaystackDocument
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    t0 = time.perf_counter()
    store = InMemoryDocumentStore(bm25_algorithm="BM25Okapi", bm25_parameters={"k1": 0.9, "b": 0.4})
    store.write_documents([HaystackDocument(id=d.id, content=d.full_text(" ")) for d in passages])
    hs_index_s = time.perf_counter() - t0
    retriever = InMemoryBM25Retriever(document_store=store, top_k=args.top_k)
    t0 = time.perf_counter()
    hs_hits = [retriever.run(query=q.query)["documents"] for q in peer_queries]
    hs_s = time.perf_counter() - t0
    haystack = {
        "index_s": hs_index_s,
        "retrieve_queries_per_s": len(peer_queries) / hs_s,
        "source_in_top_k_subset": sum(any(d.id == q.source_doc_id for d in ds) for ds, q in
                                      zip(hs_hits, peer_queries, strict=True)) / len(peer_queries),
        "bm25": "BM25Okapi k1=0.9 b=0.4, Haystack's regex tokenizer (no stemming, no stopwords)",
    }
    ours["source_in_top_k_subset"] = source_recall(ours_peer_hits, peer_queries)
    print(f"haystack  index {hs_index_s:6.1f} s; retrieval {len(peer_queries)} queries {hs_s:6.1f} s = "
          f"{haystack['retrieve_queries_per_s']:7.2f} q/s")
    result["ours"] = ours
    result["haystack"] = haystack
    result["ratios"] = {
        "mining_qps_ours_over_haystack_retrieval_qps": ours["mine_queries_per_s"] / haystack["retrieve_queries_per_s"],
        "retrieval_qps_ours_over_haystack_same_subset": ours["peer_subset_retrieve_queries_per_s"]
        / haystack["retrieve_queries_per_s"],
        "index_time_haystack_over_ours": hs_index_s / ours_index_s,
        "index_rss_haystack_over_ours": memory["haystack"]["rss_added_mb"] / max(memory["ours"]["rss_added_mb"], 1e-9),
    }
    del store, retriever

    if args.es_url:
        result["elasticsearch"] = bench_elasticsearch(args, passages, corpus, queries[: args.es_queries], config)

    for name, value in result["ratios"].items():
        print(f"{name:52s} {value:8.1f}x")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


def bench_elasticsearch(args: argparse.Namespace, passages: list[Any], corpus: dict[str, Any], queries: list[Any],
                        config: Any) -> dict[str, Any]:
    from synthrank.mine import HardNegativeMiner
    from synthrank.retrieve.elasticsearch_backend import ElasticsearchBM25

    with ElasticsearchBM25(hosts=args.es_url, index_name="synthrank-bench-mining", request_timeout=600) as es:
        t0 = time.perf_counter()
        es.index(passages, show_progress=True)
        index_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            HardNegativeMiner(es, corpus, config).mine_to_files(queries, Path(tmp) / "c.jsonl", Path(tmp) / "g.jsonl")
            mine_s = time.perf_counter() - t0
        es.delete_index()
    print(f"elasticsearch index {index_s:6.1f} s; mining {len(queries)} queries = {len(queries) / mine_s:.1f} q/s")
    return {"url_kind": "given by --es-url/ELASTICSEARCH_URL", "index_s": index_s, "queries": len(queries),
            "mine_queries_per_s": len(queries) / mine_s}


if __name__ == "__main__":
    main()
