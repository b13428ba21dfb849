"""Benchmark the local llama.cpp server: prompt logits only where read vs llama-cpp-python's every position.

The peer is the same server, same GGUF and same requests with ``SYNTHRANK_LLAMA_PROMPT_LOGITS=all``
(llama-cpp-python's own ``logits_all`` behaviour, what synthrank ran before). Both servers are up
at once and the calls alternate between them in blocks, so drift on a shared machine hits both.
The requests are the pipeline's own: binary judge prompts (one answer token, top-20 logprobs) on
MedQuAD questions and BM25 hits, and query-generation prompts on MedQuAD passages.

    python benchmarks/bench_llm_server.py --output benchmarks/results/llm_server.json   # ~6 min on 2 cores
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import openai  # noqa: E402

from synthrank.data import load_dataset, write_json  # noqa: E402
from synthrank.label.judge import yes_probability  # noqa: E402
from synthrank.label.prompts import binary_messages  # noqa: E402
from synthrank.llm.client import compact_logprobs  # noqa: E402
from synthrank.llm.local import LocalLlamaServer  # noqa: E402
from synthrank.models.cpu import cpu_name  # noqa: E402
from synthrank.models.gguf import resolve_gguf  # noqa: E402
from synthrank.retrieve import InMemoryBM25  # noqa: E402
from synthrank.synthesize.prompts import QUERY_TYPES, generation_messages  # noqa: E402

DATA = Path(os.environ.get("SYNTHRANK_SHARED_DATA", ROOT.parent / "shared" / "data")) / "medquad"
MODES = ("last", "all")  # ours first, then the peer


def start(model: str, mode: str, threads: int) -> LocalLlamaServer:
    os.environ["SYNTHRANK_LLAMA_PROMPT_LOGITS"] = mode
    try:
        server = LocalLlamaServer(resolve_gguf(model), alias=f"{model}-{mode}", n_ctx=4096, n_threads=threads)
        server.start()
    finally:
        os.environ.pop("SYNTHRANK_LLAMA_PROMPT_LOGITS", None)
    return server


def requests(n_judge: int, n_gen: int, seed: int) -> tuple[list[list[dict[str, str]]], list[list[dict[str, str]]]]:
    """The judge's and the query writer's prompts, as the pipeline sends them (1,000-character passages)."""
    dataset = load_dataset(DATA, split="test_sample1000")
    rng = random.Random(seed)
    qids = sorted(dataset.judged_queries())
    rng.shuffle(qids)
    bm25 = InMemoryBM25()
    bm25.index(list(dataset.corpus.values()))
    judge: list[list[dict[str, str]]] = []
    for qid in qids:
        for hit in bm25.retrieve([dataset.queries[qid].text], k=2)[0]:
            text = dataset.corpus[hit.doc_id].text
            judge.append(binary_messages(dataset.queries[qid].text, text, max_chars=1000))
        if len(judge) >= n_judge:
            break
    docs = rng.sample(sorted(dataset.corpus), n_gen)
    types = [t for t in QUERY_TYPES if t != "persona"]  # the four types that need no persona, in turn
    gen = [
        generation_messages(
            types[i % len(types)], dataset.corpus[d].title, dataset.corpus[d].text, max_passage_chars=1000
        )
        for i, d in zip(itertools.count(), docs)
    ]
    return judge[:n_judge], gen


def call(client: openai.OpenAI, model: str, messages: list[dict[str, str]], *, judge: bool) -> dict[str, Any]:
    kw: dict[str, Any] = (
        {"max_tokens": 1, "temperature": 0.0, "logprobs": True, "top_logprobs": 20}
        if judge
        else {"max_tokens": 160, "temperature": 0.0}
    )
    t0 = time.perf_counter()
    resp = client.chat.completions.create(model=model, messages=messages, **kw)  # type: ignore[arg-type]
    seconds = time.perf_counter() - t0
    choice = resp.choices[0]
    out = {"seconds": seconds, "prompt_tokens": resp.usage.prompt_tokens, "completion_tokens": resp.usage.completion_tokens,
           "text": choice.message.content}  # fmt: skip
    if judge:
        out["p_yes"] = yes_probability(compact_logprobs(choice))
    return out


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = sum(r["seconds"] for r in rows)
    return {"calls": len(rows), "seconds": round(seconds, 2), "seconds_per_call": round(seconds / len(rows), 3),
            "prompt_tokens": sum(r["prompt_tokens"] for r in rows),
            "completion_tokens": sum(r["completion_tokens"] for r in rows)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--judgements", type=int, default=40)
    ap.add_argument("--generations", type=int, default=12)
    ap.add_argument("--blocks", type=int, default=4, help="alternating blocks per server")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "llm_server.json")
    args = ap.parse_args()

    judge_prompts, gen_prompts = requests(args.judgements, args.generations, args.seed)
    servers = {mode: start(args.model, mode, args.threads) for mode in MODES}
    rows: dict[str, dict[str, list[dict[str, Any]]]] = {m: {"judge": [], "generate": []} for m in MODES}
    try:
        clients = {
            m: openai.OpenAI(base_url=s.base_url, api_key="unused", max_retries=0, timeout=600)
            for m, s in servers.items()
        }
        for m in MODES:  # warm-up: the first call pays for loading pages of the weights
            call(clients[m], servers[m].alias, judge_prompts[0], judge=True)
        for kind, prompts in (("judge", judge_prompts), ("generate", gen_prompts)):
            size = -(-len(prompts) // args.blocks)
            for b in range(args.blocks):
                block = prompts[b * size : (b + 1) * size]
                order = MODES if b % 2 == 0 else MODES[::-1]
                for m in order:
                    rows[m][kind] += [call(clients[m], servers[m].alias, p, judge=kind == "judge") for p in block]
                    print(f"{kind} block {b + 1}/{args.blocks} {m}: {summarise(rows[m][kind])['seconds_per_call']} s/call",
                          flush=True)  # fmt: skip
    finally:
        for s in servers.values():
            s.close()

    result: dict[str, Any] = {"benchmark": "llm_server", "model": args.model, "cpu": cpu_name(), "threads": args.threads,
                              "python": platform.python_version(), "peer": "SYNTHRANK_LLAMA_PROMPT_LOGITS=all (llama-cpp-python logits_all)",
                              "command": " ".join(["python", *sys.argv])}  # fmt: skip
    for kind in ("judge", "generate"):
        ours, peer = summarise(rows["last"][kind]), summarise(rows["all"][kind])
        result[kind] = {"ours": ours, "peer": peer, "speedup": round(peer["seconds"] / ours["seconds"], 3)}
        print(f"{kind}: ours {ours['seconds_per_call']} s/call, peer {peer['seconds_per_call']} s/call, "
              f"speed-up x{result[kind]['speedup']}")  # fmt: skip
    same_text = [a["text"] == b["text"] for a, b in zip(rows["last"]["generate"], rows["all"]["generate"], strict=True)]
    same_answer = [a["text"] == b["text"] for a, b in zip(rows["last"]["judge"], rows["all"]["judge"], strict=True)]
    p_diff = [abs(a["p_yes"] - b["p_yes"]) for a, b in zip(rows["last"]["judge"], rows["all"]["judge"], strict=True)
              if a["p_yes"] is not None and b["p_yes"] is not None]  # fmt: skip
    result["agreement"] = {"judge_same_answer": sum(same_answer) / len(same_answer),
                           "judge_max_abs_p_yes_diff": max(p_diff) if p_diff else None,
                           "generate_same_text": sum(same_text) / len(same_text)}  # fmt: skip
    print(json.dumps(result["agreement"]))
    write_json(args.output, result)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
