"""``OUT/report.md``: what each step did and cost, and how the trained model compares with its baselines."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from synthrank.data import atomic_write
from synthrank.rerank.serving import weight_text
from synthrank.runner.steps import StepResult

_USAGE_COLUMNS = ("calls", "cache_hits", "prompt_tokens", "completion_tokens", "cost_usd", "wall_seconds")
# the process's peak resident memory so far, and what it kept once the step's memory was released
_MEMORY_COLUMNS = ("peak_rss_mb", "rss_after_mb")
_NOT_COUNTS = ("usage", "systems", "significance", "metrics", "survival", *_MEMORY_COLUMNS)


def usage_rows(results: Sequence[StepResult]) -> list[dict[str, Any]]:
    """One row per step: status, seconds, and the LLM usage of the steps that call one."""
    rows = []
    for r in results:
        usage = r.summary.get("usage") or {}
        rows.append({"step": r.name, "status": r.status, "seconds": round(r.seconds, 1),
                     **{k: usage.get(k, "") for k in _USAGE_COLUMNS},
                     **{k: r.summary.get(k, "") for k in _MEMORY_COLUMNS}})  # fmt: skip
    return rows


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _evaluation_section(output_dir: Path) -> list[str]:
    path = output_dir / "evaluation.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    lines = ["## Evaluation", ""]
    if "held_out_synthetic" in data:
        systems = data["held_out_synthetic"]
        metrics = sorted({m for v in systems.values() for m in v})
        lines.append(
            "The corpus has no judged queries: held-out synthetic queries, positive ranked among its negatives."
        )
        lines.append("")
        lines += _table(["system", *metrics], [[n, *(_fmt(v.get(m)) for m in metrics)] for n, v in systems.items()])
        return [*lines, ""]
    for key, title in (("main", None), ("llm_judge_subset", "With the LLM judge as a reranker (query subset)")):
        if key not in data:
            continue
        part = data[key]
        if title:
            lines += ["", f"### {title}", ""]
        else:
            lines.append(f"`{part['dataset']}` split `{part['split']}`, BM25 top-{part['top_k']} reranked; "
                         "its questions were never used for training.")  # fmt: skip
            lines.append("")
        systems = part["systems"]
        metrics = list(systems[0]["metrics"]) if systems else []
        rows = [
            [s["name"], *(_fmt(s["metrics"][m]) for m in metrics), f"{s['seconds_per_query']:.4f}"] for s in systems
        ]
        lines += _table(["system", *metrics, "s/query"], rows)
        sig = [s for s in part.get("significance", []) if s.get("metric") == "nDCG@10"]
        if sig:
            lines += ["", "Paired t-tests on nDCG@10 (per query):", ""]
            lines += _table(["system", "against", "mean diff", "p-value"],
                            [[s["system"], s.get("baseline", "bm25"), _fmt(s.get("delta")), _fmt(s.get("p_value"))]
                             for s in sig])  # fmt: skip
        fusion = data.get("fusion") if not title else None
        if fusion:
            lines += ["", f"The fused row weighs the zero-shot model {fusion['weight']:.1f} and the trained model "
                      f"{1 - fusion['weight']:.1f} (per-query z-scores), the weight that ranked the "
                      f"{fusion.get('dev_groups', '?')} held-out synthetic groups best by {fusion['metric']}."]  # fmt: skip
        first_stage = data.get("first_stage_fusion") if not title else None
        if first_stage:
            w = first_stage["weight"]
            if first_stage.get("rule") == "bagged":
                how = (f"the one-standard-error rule's choice averaged over resamples of the source passages (on all "
                       f"of them it chose {first_stage['one_se_weight']:.1f}; the best was "
                       f"{first_stage['best_weight']:.1f})")  # fmt: skip
            else:
                how = f"the least BM25 weight within one standard error of the best ({first_stage['best_weight']:.1f})"
            lines += ["", f"The BM25-fused row weighs BM25's z-scores {weight_text(w)} and the trained model's "
                      f"{weight_text(1 - w)}: {how} on {first_stage['queries']} kept synthetic queries. "
                      "The trained model's folder carries the weight (synthrank_serving.json): SynthReranker and "
                      "SynthRankRanker serve it by default (`first_stage_weight=\"auto\"`, here "
                      f"`first_stage_weight={weight_text(w)}`; `0` serves the model alone)."]  # fmt: skip
        if "usage" in part:
            lines += [
                "",
                f"LLM judge usage: {part['usage'].get('calls')} calls, {part['usage'].get('cache_hits')} cache hits.",
            ]
            cost = part.get("judge_cost")
            if cost:
                lines[-1] += (
                    f" Without the cache the judge costs {cost['seconds_per_judgment']:.2f} s per judgment, "
                    f"{cost['seconds_per_query_uncached']:.1f} s per query at top-{cost['candidates_per_query']} "
                    "(its s/query above is lowered by cache hits). The other rows re-read the scores they "
                    "computed for the main table: their cost is the main table's s/query."
                )
    return [*lines, ""]


def write_report(output_dir: str | Path, config: Mapping[str, Any], results: Sequence[StepResult]) -> Path:
    """Write ``report.md`` (and ``usage.json``) from the step markers and artifacts; returns its path."""
    out = Path(output_dir)
    rows = usage_rows(results)
    lines = ["# synthrank run", "", f"Corpus: `{config.get('corpus')}`; LLM: `{config['llm']['model']}`"
             f"{' at ' + str(config['llm']['base_url']) if config['llm'].get('base_url') else ' (local llama.cpp)'}; "
             f"BM25: {config['mine']['backend']}; reranker backbone: `{config['train']['model']}`, "
             f"loss {config['train']['loss']}.", "", "## Steps and cost", ""]  # fmt: skip
    lines += _table(["step", "status", "seconds", *_USAGE_COLUMNS, *_MEMORY_COLUMNS], [[r[k] for k in r] for r in rows])
    lines += ["", "`skipped` steps were complete from an earlier invocation (same settings); their LLM calls "
              "were not repeated.", ""]  # fmt: skip
    for r in results:
        counts = {k: v for k, v in r.summary.items() if k not in _NOT_COUNTS}
        if counts:
            lines.append(f"- **{r.name}**: " + ", ".join(f"{k} {_fmt(v)}" for k, v in counts.items()))
    lines.append("")
    lines += _evaluation_section(out)
    artifacts = [p.name for p in sorted(out.iterdir()) if not p.name.startswith(".")]
    lines += ["## Artifacts", "", ", ".join(f"`{a}`" for a in artifacts), ""]
    with atomic_write(out / "report.md") as fh:
        fh.write("\n".join(lines))
    totals: dict[str, float] = {}
    for row in rows:
        for k in _USAGE_COLUMNS:
            if isinstance(row[k], (int, float)):
                totals[k] = totals.get(k, 0) + row[k]
    with atomic_write(out / "usage.json") as fh:
        fh.write(json.dumps({"steps": rows, "total": totals}, indent=2) + "\n")
    return out / "report.md"
