"""Dev sets scored during training: pick the best checkpoint and stop early on a ranking metric.

Two kinds, both reduced to "rerank a fixed candidate list per query, then nDCG@10":

- :meth:`DevSet.from_dataset`: real queries with qrels (e.g. a dev split) and the first stage's
  top-k for each, retrieved once up front: the metric the method is judged by.
- :meth:`DevSet.from_groups`: held-out training groups: rank the positive among its negatives
  (no qrels needed; what a fully synthetic pipeline has).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthrank.data.groups import TrainingGroup
from synthrank.data.records import Dataset, Qrels
from synthrank.errors import DataError
from synthrank.evaluate.metrics import evaluate_run
from synthrank.rerank.base import PairScorer
from synthrank.retrieve.base import Retriever

logger = logging.getLogger(__name__)

DEV_METRICS: tuple[str, ...] = ("nDCG@10", "MRR@10")
FUSION_GRID: tuple[float, ...] = tuple(i / 10 for i in range(11))


@dataclass
class DevSet:
    """Fixed (query, candidates) lists with relevance judgements.

    Args:
        name: shown in logs and the model card.
        queries: query id -> text.
        candidates: query id -> [(doc id, text)] to rerank (the first stage's order).
        qrels: query id -> doc id -> grade.
        baseline: the metrics of the candidates' own order (e.g. BM25), for comparison.

    Example:
        >>> # real judged queries of a split you do not report on (BEIR SciFact: train; test is for the report)
        >>> dev = DevSet.from_dataset(load_dataset("../shared/data/beir-scifact", split="train"), top_k=30, max_queries=200)
        >>> dev.evaluate(scorer)["nDCG@10"]
        >>> # MedQuAD has no dev split (only test and test_sample1000): hold out synthetic queries instead
        >>> dev = DevSet.from_groups("runs/medquad/dev_groups.jsonl")
    """

    name: str
    queries: dict[str, str]
    candidates: dict[str, list[tuple[str, str]]]
    qrels: Qrels
    baseline: dict[str, float] = field(default_factory=dict)
    metrics: tuple[str, ...] = DEV_METRICS

    def __len__(self) -> int:
        return len(self.queries)

    @property
    def num_pairs(self) -> int:
        return sum(len(c) for c in self.candidates.values())

    @classmethod
    def from_dataset(
        cls,
        dataset: Dataset,
        top_k: int = 30,
        max_queries: int | None = 200,
        retriever: Retriever | None = None,
        *,
        seed: int = 0,
        show_progress: bool = False,
    ) -> DevSet:
        """The first stage's top-k of (a seeded sample of) the dataset's judged queries.

        ``retriever`` must already index ``dataset.corpus``; ``None`` builds an in-memory BM25 over it.
        """
        queries = dataset.judged_queries()
        if not queries:
            raise DataError(f"dataset {dataset.name!r} has no judged queries to build a dev set from")
        qids = sorted(queries)
        if max_queries is not None and len(qids) > max_queries:
            pick = np.random.default_rng(seed).choice(len(qids), size=max_queries, replace=False)
            qids = [qids[i] for i in sorted(pick)]
        if retriever is None:
            from synthrank.retrieve.bm25s_backend import InMemoryBM25

            retriever = InMemoryBM25()
            retriever.index(dataset.corpus.values())
        hits = retriever.retrieve([queries[q].text for q in qids], k=top_k, show_progress=show_progress)
        candidates = {
            qid: [(h.doc_id, dataset.corpus[h.doc_id].full_text("\n")) for h in qh]
            for qid, qh in zip(qids, hits, strict=True)
        }
        qrels = {qid: dict(dataset.qrels[qid]) for qid in qids}
        run = {qid: {h.doc_id: float(h.score) for h in qh} for qid, qh in zip(qids, hits, strict=True)}
        baseline = evaluate_run(run, qrels, DEV_METRICS).aggregate
        return cls(dataset.name, {q: queries[q].text for q in qids}, candidates, qrels, baseline)

    @classmethod
    def from_groups(cls, groups: Sequence[TrainingGroup] | str | Path, name: str = "held-out groups") -> DevSet:
        """Rank each group's positive among its negatives (graded by the judge's grades when present)."""
        if isinstance(groups, str | Path):
            from synthrank.data.groups import read_groups

            name = str(groups)
            groups = read_groups(groups)
        if not groups:
            raise DataError("no dev groups")
        queries: dict[str, str] = {}
        candidates: dict[str, list[tuple[str, str]]] = {}
        qrels: Qrels = {}
        run: dict[str, dict[str, float]] = {}
        for i, g in enumerate(groups):
            key = f"{i}:{g.query_id}"
            passages = [g.positive, *g.negatives]
            queries[key] = g.query
            candidates[key] = [(f"{j}:{p.doc_id}", p.text) for j, p in enumerate(passages)]
            grades = [1 if g.positive.grade is None else max(1, g.positive.grade)]
            grades += [0 if n.grade is None else n.grade for n in g.negatives]
            qrels[key] = {doc_id: grade for (doc_id, _), grade in zip(candidates[key], grades, strict=True)}
            ranks = [p.rank if p.rank is not None else j for j, p in enumerate(passages)]
            run[key] = {doc_id: -float(r) for (doc_id, _), r in zip(candidates[key], ranks, strict=True)}
        return cls(name, queries, candidates, qrels, evaluate_run(run, qrels, DEV_METRICS).aggregate)

    def _flat_pairs(self) -> tuple[list[str], list[str]]:
        qids = list(self.candidates)
        queries = [self.queries[q] for q in qids for _ in self.candidates[q]]
        texts = [text for q in qids for _, text in self.candidates[q]]
        return queries, texts

    def score(self, scorer: PairScorer, *, show_progress: bool = False) -> np.ndarray:
        """Every candidate's score, flat, in ``candidates`` order (what :meth:`evaluate_scores` reads)."""
        queries, texts = self._flat_pairs()
        return np.asarray(scorer.score_pairs(queries, texts, show_progress=show_progress), dtype=np.float64)

    def evaluate_scores(self, scores: np.ndarray) -> dict[str, float]:
        """The averaged metrics of ranking each query's candidates by ``scores`` (from :meth:`score`)."""
        if len(scores) != self.num_pairs:
            raise ValueError(f"{len(scores)} scores for {self.num_pairs} candidates")
        run: dict[str, dict[str, float]] = {}
        pos = 0
        for q, cands in self.candidates.items():
            run[q] = {}
            for doc_id, _ in cands:
                run[q][doc_id] = float(scores[pos])
                pos += 1
        return evaluate_run(run, self.qrels, self.metrics).aggregate

    def evaluate(self, scorer: PairScorer, *, show_progress: bool = False) -> dict[str, float]:
        """Rerank every query's candidates with ``scorer``; the averaged metrics."""
        return self.evaluate_scores(self.score(scorer, show_progress=show_progress))

    def tune_fusion(
        self,
        scorers: Sequence[PairScorer],
        *,
        grid: Sequence[float] = FUSION_GRID,
        metric: str = "nDCG@10",
        show_progress: bool = False,
    ) -> dict[str, Any]:
        """The weight ``w`` of ``(1 - w) * first + w * second`` that ranks this dev set best.

        Each scorer scores the dev pairs once; every weight of ``grid`` is then a cheap re-sort.
        Ties go to the smaller weight (the first scorer, usually the trained model, alone at 0).
        Returns ``{"weights": [1 - w, w], "weight": w, "metric": ..., "table": {w: value}}``.
        """
        from synthrank.rerank.fusion import fuse_scores

        if len(scorers) != 2:
            raise ValueError(f"tune_fusion weighs two scorers, got {len(scorers)}")
        queries, _ = self._flat_pairs()
        first, second = (self.score(s, show_progress=show_progress) for s in scorers)
        table: dict[float, float] = {}
        for w in grid:
            if not 0.0 <= w <= 1.0:
                raise ValueError(f"fusion weights lie in [0, 1], got {w}")
            fused = fuse_scores(queries, [first, second], [1.0 - w, w])
            table[float(w)] = self.evaluate_scores(fused)[metric]
        best = max(table, key=lambda w: (table[w], -w))
        logger.info("fusion weight on %s: %.2f (%s %.4f; alone %.4f / %.4f)", self.name, best, metric,
                    table[best], table.get(0.0, float("nan")), table.get(1.0, float("nan")))  # fmt: skip
        return {"weights": [1.0 - best, best], "weight": best, "metric": metric, "table": table}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "queries": len(self), "pairs": self.num_pairs, "baseline": self.baseline}
