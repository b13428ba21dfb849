"""Fusing a reranker with the first stage's own scores (BM25), and picking that weight without test queries.

A reranker and BM25 fail on different queries, so ``weight x z(BM25) + (1 - weight) x z(model)`` per query
often beats both (SciFact on the scorecard: +0.045 nDCG@10 over the zero-shot encoder). The weight must come
from the run's own synthetic queries, which were written from their source passages and share their words,
so BM25 looks better on them than on real queries: picking the best weight there chose pure BM25 on two of
four corpora and lost up to 0.12. :func:`pick_first_stage_weight` therefore applies the one-standard-error rule
(Breiman et al., 1984): the least BM25 weight whose synthetic-query score lies within one standard error of the
best weight's. Scores are standardised per query (:func:`~synthrank.rerank.fusion.standardise_per_query`).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthrank.evaluate.metrics import evaluate_run
from synthrank.rerank.base import PairScorer
from synthrank.rerank.fusion import standardise_per_query

WEIGHT_GRID: tuple[float, ...] = tuple(i / 10 for i in range(11))

Run = Mapping[str, Mapping[str, float]]  # query id -> doc id -> score


def fuse_with_first_stage(first_stage: Run, model: Run, weight: float) -> dict[str, dict[str, float]]:
    """Per query: ``weight x z(first-stage score) + (1 - weight) x z(model score)`` over the documents the model
    scored (a document the first stage did not score gets its lowest score)."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the first-stage weight lies in [0, 1], got {weight}")
    out: dict[str, dict[str, float]] = {}
    for qid, docs in model.items():
        ids = list(docs)
        first = first_stage.get(qid, {})
        floor = min(first.values()) if first else 0.0
        keys = [qid] * len(ids)
        a = standardise_per_query(keys, np.array([float(first.get(d, floor)) for d in ids]))
        b = standardise_per_query(keys, np.array([float(docs[d]) for d in ids]))
        out[qid] = {d: float(weight * x + (1.0 - weight) * y) for d, x, y in zip(ids, a, b, strict=True)}
    return out


def one_standard_error_weight(per_query: Mapping[float, Mapping[str, float]]) -> dict[str, Any]:
    """From each weight's per-query metric: the best weight (ties: the least first stage), and the least weight
    within one standard error of the best's mean (the rule's choice)."""
    if not per_query:
        raise ValueError("no weights to choose from")
    means = {w: statistics.fmean(v.values()) if v else 0.0 for w, v in per_query.items()}
    top = max(means.values())
    best = min(w for w, m in means.items() if m >= top - 1e-12)
    values = list(per_query[best].values())
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    chosen = min(w for w, m in means.items() if m >= top - se - 1e-12)
    return {"weight": chosen, "best_weight": best, "se": se, "table": {f"{w:.1f}": means[w] for w in sorted(means)}}


def queries_by_unit(
    per_query: Mapping[float, Mapping[str, float]], unit_of: Mapping[str, str] | None
) -> dict[str, list[str]]:
    """The table's queries grouped by the unit a resample draws (a query without one is its own unit)."""
    by_unit: dict[str, list[str]] = {}
    for q in sorted(next(iter(per_query.values()))):
        by_unit.setdefault((unit_of or {}).get(q, q), []).append(q)
    return by_unit


def resampled_by_unit(
    per_query: Mapping[float, Mapping[str, float]], unit_of: Mapping[str, str] | None, *, resamples: int, seed: int
) -> Iterator[dict[float, dict[str, float]]]:
    """Bootstrap resamples of each weight's per-query values, drawing whole units (a query's source passage, with
    all its queries; a query without one is its own unit), seeded."""
    by_unit = queries_by_unit(per_query, unit_of)
    units = sorted(by_unit)
    rng = random.Random(seed)
    for _ in range(resamples):
        keys = [(f"{q}#{i}", q) for i in range(len(units)) for q in by_unit[units[rng.randrange(len(units))]]]
        yield {w: {k: values[q] for k, q in keys} for w, values in per_query.items()}


def bagged_one_standard_error_weight(
    per_query: Mapping[float, Mapping[str, float]],
    unit_of: Mapping[str, str] | None = None,
    *,
    resamples: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """The one-standard-error rule's choice averaged over bootstrap resamples of the synthetic queries (bagging).

    At the default budget the rule picks from ~45 queries of ~20 passages, and its choice jumps between grid
    weights as a few passages come and go (benchmarks/bench_weight_stability.py: a 90% interval of [0.0, 0.5] on
    SciFact). Averaging the choice over resamples (Breiman, 1996) gives a weight between those jumps; where the
    real-query curve is concave in the weight, the averaged weight scores at least the average of the jumpy
    picks (Jensen's inequality). ``unit_of`` maps each query to the unit resampled, its source passage: queries
    written from one passage are not independent. A query without one is its own unit.

    Returns ``{"weight", "spread", "resamples", "units"}``: ``weight`` the mean choice (two decimals), ``spread``
    its standard deviation over resamples.
    """
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not per_query:
        raise ValueError("no weights to choose from")
    choices = [float(one_standard_error_weight(sample)["weight"])
               for sample in resampled_by_unit(per_query, unit_of, resamples=resamples, seed=seed)]  # fmt: skip
    return {"weight": round(statistics.fmean(choices), 2), "spread": statistics.pstdev(choices),
            "resamples": resamples, "units": len(queries_by_unit(per_query, unit_of))}  # fmt: skip


FIRST_STAGE_RULES: tuple[str, ...] = ("one_se", "bagged")
"""How :func:`pick_first_stage_weight` turns the synthetic queries' table into a weight: the one-standard-error
rule, or that rule averaged over resamples of the source passages (:func:`bagged_one_standard_error_weight`)."""
RULE_NAMES: dict[str, str] = {"one_se": "one-standard-error", "bagged": "bagged one-standard-error"}


def pick_first_stage_weight(
    candidates: Mapping[str, tuple[str, Mapping[str, float]]],
    relevant: Mapping[str, Mapping[str, int]],
    scorer: PairScorer,
    passage_text: Mapping[str, str],
    *,
    metric: str = "nDCG@10",
    grid: Sequence[float] = WEIGHT_GRID,
    rule: str = "one_se",
    units: Mapping[str, str] | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """The first-stage fusion weight, picked on synthetic queries by the one-standard-error rule (``rule="one_se"``)
    or by that rule bagged over resamples of the source passages (``rule="bagged"``).

    Args:
        candidates: query id -> (query text, the first stage's candidates: doc id -> score), e.g. the run's
            ``candidates.jsonl``.
        relevant: query id -> relevant doc ids -> grade (the source passage and the judge's positives);
            queries without one are skipped.
        scorer: the model the weight is for. Use one that did not train on these queries (the zero-shot
            encoder), or the weight leans towards a model that has seen their positives.
        passage_text: doc id -> the text the scorer reads.
        units: query id -> its source passage, the unit the bagged rule resamples (:func:`source_passages_of_run`);
            ``None``: each query is its own.

    Returns ``{"weight", "best_weight", "one_se_weight", "se", "table", "queries", "metric", "rule"}`` (``bagged``
    adds ``"spread"``, the choice's standard deviation over resamples, and ``"units"``, the passages resampled).
    """
    if rule not in FIRST_STAGE_RULES:
        raise ValueError(f"unknown first-stage weight rule {rule!r}; known: {', '.join(FIRST_STAGE_RULES)}")
    per_query = per_query_by_weight(candidates, relevant, scorer, passage_text, metric=metric, grid=grid,
                                    show_progress=show_progress)  # fmt: skip
    picked = one_standard_error_weight(per_query)
    out = {**picked, "one_se_weight": picked["weight"], "queries": len(next(iter(per_query.values()))),
           "metric": metric, "rule": rule}  # fmt: skip
    if rule == "bagged":
        bagged = bagged_one_standard_error_weight(per_query, units)
        out.update(weight=bagged["weight"], spread=bagged["spread"], units=bagged["units"])
    return out


def per_query_by_weight(
    candidates: Mapping[str, tuple[str, Mapping[str, float]]],
    relevant: Mapping[str, Mapping[str, int]],
    scorer: PairScorer,
    passage_text: Mapping[str, str],
    *,
    metric: str = "nDCG@10",
    grid: Sequence[float] = WEIGHT_GRID,
    show_progress: bool = False,
) -> dict[float, dict[str, float]]:
    """Each grid weight's per-query ``metric`` on the synthetic queries (what the weight rules choose from; the
    model scores each pair once)."""
    qids = [q for q in candidates if relevant.get(q) and candidates[q][1]]
    if not qids:
        raise ValueError("no query with both candidates and a relevant passage to pick a weight on")
    pairs = [(q, d) for q in qids for d in candidates[q][1]]
    scores = scorer.score_pairs(
        [candidates[q][0] for q, _ in pairs], [passage_text[d] for _, d in pairs], show_progress=show_progress
    )
    model: dict[str, dict[str, float]] = {}
    for (q, d), s in zip(pairs, scores, strict=True):
        model.setdefault(q, {})[d] = float(s)
    first = {q: dict(candidates[q][1]) for q in qids}
    qrels = {q: dict(relevant[q]) for q in qids}
    return {
        float(w): evaluate_run(fuse_with_first_stage(first, model, float(w)), qrels, (metric,)).per_query[metric]
        for w in grid
    }


def synthetic_queries_of_run(
    run_dir: str | Path, corpus: Mapping[str, Any]
) -> tuple[dict[str, tuple[str, dict[str, float]]], dict[str, dict[str, int]], dict[str, str]]:
    """What :func:`pick_first_stage_weight` reads from a run folder: the kept queries (``groups.jsonl``, their
    positives relevant) with their mined candidates and BM25 scores (``candidates.jsonl``), and the candidates'
    texts; empty where the run has none."""
    from synthrank.data.groups import read_groups
    from synthrank.data.jsonl import iter_jsonl
    from synthrank.evaluate.pipeline import default_document_text

    folder = Path(run_dir)
    relevant: dict[str, dict[str, int]] = {}
    for g in read_groups(folder / "groups.jsonl") if (folder / "groups.jsonl").exists() else []:
        relevant.setdefault(g.query_id, {})[g.positive.doc_id] = 1
    candidates: dict[str, tuple[str, dict[str, float]]] = {}
    path = folder / "candidates.jsonl"
    for _, rec in iter_jsonl(path) if path.exists() else iter(()):
        docs = {str(c["doc_id"]): float(c["score"]) for c in rec.get("candidates") or []
                if c.get("score") is not None and str(c["doc_id"]) in corpus}  # fmt: skip
        if str(rec.get("query_id")) in relevant and docs:
            candidates[str(rec["query_id"])] = (str(rec["query"]), docs)
    texts = {d: default_document_text(corpus[d]) for _, docs in candidates.values() for d in docs}
    return candidates, relevant, texts


def source_passages_of_run(run_dir: str | Path) -> dict[str, str]:
    """query id -> the passage its query was written from (``candidates.jsonl``'s ``source_doc_id``): the unit
    :func:`bagged_one_standard_error_weight` resamples."""
    from synthrank.data.jsonl import iter_jsonl

    path = Path(run_dir) / "candidates.jsonl"
    return {str(rec["query_id"]): str(rec["source_doc_id"]) for _, rec in (iter_jsonl(path) if path.exists() else ())
            if rec.get("query_id") is not None and rec.get("source_doc_id") is not None}  # fmt: skip
