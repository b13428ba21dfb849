"""Prompt injection, measured: how often planted text flips the default judge, with and without the sanitiser.

Plants each attack of ``synthrank/label/injection_attacks.json`` (40 attacks written without looking at
the sanitiser's patterns) in a passage that does not answer its query and judges it with the run's
default judge (binary Yes/No on logprobs, threshold 0.5), once with the sanitiser
(:func:`synthrank.label.prompts.neutralise_instructions`) and once without it (the named peer: the same
judge, undefended). Flip kinds are defined in :mod:`synthrank.label.injection`.

The committed ``benchmarks/results/injection.json`` holds the table and the bound that
``integration/test_judge_injection.py`` enforces on the defended judge.

    python benchmarks/bench_injection.py              # ~8 min on 2 idle cores (about 90 judgements)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synthrank.data import write_json  # noqa: E402
from synthrank.label import LLMJudge  # noqa: E402
from synthrank.label.injection import load_attack_set, measure_injection  # noqa: E402
from synthrank.llm import LLMClient, LLMConfig, ResponseCache  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-1.5b", help="the local default model, or a GGUF path")
    ap.add_argument("--mode", default="binary", choices=["binary", "graded"], help="judge mode (the run's default: binary)")
    ap.add_argument("--yes-threshold", type=float, default=0.5)
    ap.add_argument("--max-passage-chars", type=int, default=1000, help="the run's default label.max_passage_chars")
    ap.add_argument("--attacks", default=None, help="an attack set JSON (default: the packaged one)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "injection.json"))
    ap.add_argument("--keep-earlier", default="", metavar="LABEL",
                    help="keep the summaries of the result already in --out under earlier.LABEL (a before/after pair)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    attack_set = load_attack_set(args.attacks)
    earlier: dict[str, Any] = {}
    if Path(args.out).exists():
        previous = json.loads(Path(args.out).read_text(encoding="utf-8"))
        earlier = dict(previous.get("earlier") or {})
        if args.keep_earlier and not previous.get("partial"):
            earlier[args.keep_earlier] = {
                "command": previous.get("command"),
                **{name: previous[name]["summary"] for name in ("defended", "undefended") if name in previous},
                "flipped": sorted({r["attack"] for name in ("defended", "undefended") if name in previous
                                   for r in previous[name]["attacks"] if r.get("verdict_flip") or r.get("rank_flip")}),
            }  # fmt: skip
    results: dict[str, Any] = {
        "benchmark": "injection",
        "command": " ".join(["python", "benchmarks/bench_injection.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "loadavg_before": [round(x, 2) for x in os.getloadavg()]},
        "attack_set": attack_set.version,
        "attacks": len(attack_set.attacks),
        "carriers": len(attack_set.carriers),
        **({"earlier": earlier} if earlier else {}),
    }
    with tempfile.TemporaryDirectory(prefix="bench-injection-") as tmp:
        cfg = LLMConfig(model=args.model, max_concurrency=1)
        with LLMClient(cfg, cache=ResponseCache(Path(tmp) / "cache.sqlite")) as client:
            client.warm_up()
            for name, sanitise in (("defended", True), ("undefended", False)):
                judge = LLMJudge(client, mode=args.mode, yes_threshold=args.yes_threshold,
                                 max_passage_chars=args.max_passage_chars, sanitise=sanitise)  # fmt: skip
                started = time.perf_counter()
                results[name] = measure_injection(judge, attack_set)
                results[name]["seconds"] = round(time.perf_counter() - started, 1)
                write_json(args.out, {**results, "partial": True})  # a stopped run keeps the first condition
            results["usage"] = client.usage.to_dict()
    d, u = results["defended"]["summary"], results["undefended"]["summary"]
    results["bound"] = {k: d[k] for k in ("verdict_flip_rate", "rank_flip_rate")}
    results["ratios_defended_over_undefended"] = {
        k: (round(d[k] / u[k], 3) if u[k] else None) for k in ("verdict_flip_rate", "rank_flip_rate", "pushed_rate")
    }
    results["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    write_json(args.out, results)
    for name in ("defended", "undefended"):
        s = results[name]["summary"]
        sys.stdout.write(
            f"{name:>10}: verdict flips {s['verdict_flips']}/{s['answered']} ({s['verdict_flip_rate']}), "
            f"rank flips {s['rank_flips']}/{s['answered']} ({s['rank_flip_rate']}), pushed {s['pushed']}\n"
        )
        for kind, k in s["by_kind"].items():
            sys.stdout.write(f"{'':>12}{kind:<16} verdict {k['verdict_flips']}/{k['answered']}  rank {k['rank_flips']}\n")
    sys.stdout.write(f"defended / undefended: {results['ratios_defended_over_undefended']}\nwrote {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
