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
import statistics
from collections.abc import Mapping, Sequence
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


def pick_first_stage_weight(
    candidates: Mapping[str, tuple[str, Mapping[str, float]]],
    relevant: Mapping[str, Mapping[str, int]],
    scorer: PairScorer,
    passage_text: Mapping[str, str],
    *,
    metric: str = "nDCG@10",
    grid: Sequence[float] = WEIGHT_GRID,
    show_progress: bool = False,
) -> dict[str, Any]:
    """The first-stage fusion weight, picked on synthetic queries by the one-standard-error rule.

    Args:
        candidates: query id -> (query text, the first stage's candidates: doc id -> score), e.g. the run's
            ``candidates.jsonl``.
        relevant: query id -> relevant doc ids -> grade (the source passage and the judge's positives);
            queries without one are skipped.
        scorer: the model the weight is for. Use one that did not train on these queries (the zero-shot
            encoder), or the weight leans towards a model that has seen their positives.
        passage_text: doc id -> the text the scorer reads.

    Returns ``{"weight", "best_weight", "se", "table", "queries"}``.
    """
    per_query = per_query_by_weight(candidates, relevant, scorer, passage_text, metric=metric, grid=grid,
                                    show_progress=show_progress)  # fmt: skip
    return {**one_standard_error_weight(per_query), "queries": len(next(iter(per_query.values()))), "metric": metric}


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
