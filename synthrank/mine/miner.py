"""BM25 hard-negative mining: retrieve candidates for each query, keep the hard but safe ones, build groups.

The options follow sentence-transformers' ``mine_hard_negatives`` so they read the same to
anyone who has used it; the exact semantics here (all documented on :class:`MiningConfig`):

1. Retrieve the top ``top_k`` BM25 hits of each query (any :class:`~synthrank.retrieve.Retriever`).
2. Walk the hits best first and drop, as never-negatives: the query's positives (its
   ``source_doc_id`` and any known positive from qrels/labels), near-duplicates of a positive
   (equal normalised text, see :mod:`synthrank.mine.dedup`), candidates over ``max_score`` or
   under ``min_score``, candidates within the margin of the positive's BM25 score, and
   near-duplicates of a negative already kept.
3. Of the remaining *valid* candidates, skip the first ``range_min`` (the top ranks hold most
   unlabelled false negatives) and stop at ``range_max``; from that window take the first
   ``num_negatives`` (``sampling="top"``) or a seeded random ``num_negatives`` (``"random"``).

Each hit keeps its BM25 rank and score, and the result is written as the candidates and
training-group artifacts (one group per (query, positive)).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from synthrank.data.groups import Passage, TrainingGroup
from synthrank.data.jsonl import ResumableJsonlWriter, atomic_write
from synthrank.data.records import Document
from synthrank.errors import SynthrankError
from synthrank.mine.dedup import TextHashes
from synthrank.mine.inputs import MiningQuery
from synthrank.rerank.base import PairScorer
from synthrank.retrieve.base import Hit, Retriever

logger = logging.getLogger(__name__)

SamplingStrategy = Literal["top", "random"]


@dataclass(frozen=True)
class MiningConfig:
    """How hard negatives are chosen from the BM25 candidates of a query.

    Args:
        top_k: BM25 depth retrieved per query; the candidates artifact keeps all of them.
        num_negatives: size of the negative pool per group (the trainer samples G-1 of them per epoch).
        range_min: number of *valid* candidates (after the exclusions below) to skip at the top:
            the best-ranked non-positives are the likeliest unlabelled positives.
        range_max: consider valid candidates only up to this position (``None``: all ``top_k``).
        margin: relative margin: a candidate scoring more than ``s_pos - |s_pos| * margin`` is
            dropped, where ``s_pos`` is the lowest BM25 score among the query's positives
            (sentence-transformers' ``relative_margin``). ``0.1`` keeps negatives that score at
            most 90% of the positive. ``None`` disables it.
        absolute_margin: a candidate scoring more than ``s_pos - absolute_margin`` is dropped.
        max_score: drop candidates scoring above this BM25 score.
        min_score: drop candidates scoring below this BM25 score.
        sampling: ``"top"`` takes the best-ranked negatives of the window; ``"random"`` samples
            uniformly within it (seeded per query, so a resumed run picks the same), then sorts by rank.
        exclude_near_duplicates: drop candidates whose normalised text equals a positive's, and
            keep only the best-ranked copy of duplicated negatives.
        min_negatives: groups with fewer negatives than this are not written (counted in the summary).
        seed: seed of the random sampling.
        batch_size: queries retrieved per call to the backend (and written per step).
        denoise_margin: with a ``denoiser`` model given to the miner: a candidate the denoiser scores
            above ``d_pos - denoise_margin`` is dropped, where ``d_pos`` is its lowest score among the
            query's positives. A cheap second opinion (e.g. the zero-shot bi-encoder) against the
            unlabelled positives BM25 ranks high (sentence-transformers' margin on embedding scores).

    Example:
        >>> config = MiningConfig(num_negatives=8, range_min=3, margin=0.1, sampling="random")
    """

    top_k: int = 100
    num_negatives: int = 16
    range_min: int = 0
    range_max: int | None = None
    margin: float | None = None
    absolute_margin: float | None = None
    max_score: float | None = None
    min_score: float | None = None
    sampling: SamplingStrategy = "top"
    exclude_near_duplicates: bool = True
    min_negatives: int = 1
    seed: int = 42
    batch_size: int = 1000
    denoise_margin: float = 0.0

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if self.num_negatives < 1:
            raise ValueError(f"num_negatives must be at least 1, got {self.num_negatives}")
        if self.range_min < 0:
            raise ValueError(f"range_min must be non-negative, got {self.range_min}")
        if self.range_max is not None and self.range_max <= self.range_min:
            raise ValueError(f"range_max ({self.range_max}) must be larger than range_min ({self.range_min})")
        if self.window_end - self.range_min < self.num_negatives:
            raise ValueError(
                f"cannot mine {self.num_negatives} negatives: only {self.window_end - self.range_min} candidates "
                f"remain between range_min={self.range_min} and range_max/top_k={self.window_end}"
            )
        if self.margin is not None and not 0.0 <= self.margin <= 1.0:
            raise ValueError(f"margin is relative to the positive's score and must be in [0, 1], got {self.margin}")
        if self.absolute_margin is not None and self.absolute_margin < 0:
            raise ValueError(f"absolute_margin must be non-negative, got {self.absolute_margin}")
        if self.sampling not in ("top", "random"):
            raise ValueError(f"sampling must be 'top' or 'random', got {self.sampling!r}")
        if self.min_negatives < 0:
            raise ValueError(f"min_negatives must be non-negative, got {self.min_negatives}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")

    @property
    def window_end(self) -> int:
        """Where the candidate window ends: ``range_max`` capped by ``top_k``."""
        return self.top_k if self.range_max is None else min(self.range_max, self.top_k)

    @property
    def uses_margin(self) -> bool:
        return self.margin is not None or self.absolute_margin is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MiningConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown mining options: {', '.join(sorted(unknown))}")
        return cls(**dict(data))


@dataclass(slots=True)
class MinedQuery:
    """The outcome for one query: its BM25 hits, its positives and the negatives kept."""

    query: MiningQuery
    hits: list[Hit]
    positive_ids: list[str]
    positive_hits: dict[str, Hit]
    positive_scores: dict[str, float]
    negatives: list[Hit]
    skipped: Counter[str] = field(default_factory=Counter)

    def candidates_record(self) -> dict[str, Any]:
        """The candidates artifact line: every hit with its rank and score."""
        return {
            "query_id": self.query.query_id,
            "query": self.query.query,
            "source_doc_id": self.query.source_doc_id,
            "candidates": [{"doc_id": h.doc_id, "rank": h.rank, "score": round(h.score, 6)} for h in self.hits],
        }

    def groups(self, corpus: Mapping[str, Document]) -> list[TrainingGroup]:
        """One training group per positive, all sharing the query's negatives."""
        negatives = [
            Passage(h.doc_id, corpus[h.doc_id].full_text(), rank=h.rank, score=round(h.score, 6))
            for h in self.negatives
        ]
        meta: dict[str, Any] = {"source_doc_id": self.query.source_doc_id, **self.query.meta}
        out = []
        for pid in self.positive_ids:
            hit = self.positive_hits.get(pid)
            score = self.positive_scores.get(pid)
            positive = Passage(
                pid,
                corpus[pid].full_text(),
                rank=hit.rank if hit else None,
                score=round(score, 6) if score is not None else None,
            )
            out.append(TrainingGroup(self.query.query_id, self.query.query, positive, list(negatives), dict(meta)))
        return out


class HardNegativeMiner:
    """Mines BM25 hard negatives over any :class:`~synthrank.retrieve.Retriever` backend.

    Args:
        retriever: an indexed backend (:class:`~synthrank.retrieve.InMemoryBM25`,
            :class:`~synthrank.retrieve.ElasticsearchBM25`); it must also offer
            ``score(query, doc_ids)`` when a margin is used and a positive falls outside ``top_k``.
        corpus: the documents the retriever indexed (texts for the groups, near-duplicate hashes).
        config: the mining options.
        positives: extra known positives per query id (qrels or judge labels), never mined as negatives.
        denoiser: a :class:`~synthrank.rerank.PairScorer` (e.g. ``load_scorer("minilm")``) that scores
            each query's positives and candidates; candidates it prefers to a positive (by
            ``config.denoise_margin``) are dropped as likely false negatives. ``None``: no denoising.

    Example:
        >>> bm25 = InMemoryBM25()
        >>> bm25.index(corpus.values())
        >>> miner = HardNegativeMiner(bm25, corpus, MiningConfig(num_negatives=8, range_min=2))
        >>> summary = miner.mine_to_files(queries, out / "candidates.jsonl", out / "groups.jsonl")
    """

    def __init__(
        self,
        retriever: Retriever,
        corpus: Mapping[str, Document],
        config: MiningConfig | None = None,
        *,
        positives: Mapping[str, Collection[str]] | None = None,
        denoiser: PairScorer | None = None,
    ) -> None:
        self.retriever = retriever
        self.denoiser = denoiser
        self.corpus = corpus
        self.config = config if config is not None else MiningConfig()
        self.positives = {qid: set(ids) for qid, ids in (positives or {}).items()}
        self.stats: Counter[str] = Counter()
        self._hashes = TextHashes(corpus)
        self._warned_missing: set[str] = set()

    def __repr__(self) -> str:
        return f"HardNegativeMiner(retriever={self.retriever!r}, config={self.config!r})"

    def positives_of(self, query: MiningQuery) -> list[str]:
        """The query's positives: its source passage first, then known positives (sorted), all in the corpus."""
        ids: list[str] = []
        if query.source_doc_id is not None:
            ids.append(query.source_doc_id)
        ids.extend(sorted(self.positives.get(query.query_id, set()) - set(ids)))
        present = [d for d in ids if d in self.corpus]
        for missing in set(ids) - set(present):
            if missing not in self._warned_missing:
                self._warned_missing.add(missing)
                logger.warning("positive %r of query %r is not in the corpus; ignored", missing, query.query_id)
        return present

    def mine(self, queries: Sequence[MiningQuery], *, show_progress: bool = False) -> Iterator[MinedQuery]:
        """Mine every query, retrieving ``batch_size`` queries per backend call; yields in input order."""
        from tqdm.auto import tqdm

        cfg = self.config
        with tqdm(total=len(queries), desc="Mining", unit="query", disable=not show_progress) as bar:
            for start in range(0, len(queries), cfg.batch_size):
                batch = queries[start : start + cfg.batch_size]
                hit_lists = self.retriever.retrieve([q.query for q in batch], k=cfg.top_k)
                if len(hit_lists) != len(batch):
                    raise SynthrankError(
                        f"the retriever returned {len(hit_lists)} result lists for {len(batch)} queries"
                    )
                denoised = self._denoise_scores(batch, hit_lists)
                for query, hits, scores in zip(batch, hit_lists, denoised, strict=True):
                    yield self.select(query, hits, scores)
                bar.update(len(batch))

    def select(
        self, query: MiningQuery, hits: Sequence[Hit], denoise_scores: Mapping[str, float] | None = None
    ) -> MinedQuery:
        """Apply the exclusions, the range window and the sampling to one query's hits (best first).

        ``denoise_scores``: the denoiser's score of each positive and candidate (doc id -> score).
        """
        cfg = self.config
        positives = self.positives_of(query)
        positive_set = set(positives)
        positive_hits = {h.doc_id: h for h in hits if h.doc_id in positive_set}
        positive_scores = {pid: h.score for pid, h in positive_hits.items()}
        threshold = math.inf
        if cfg.uses_margin and positives:
            missing = [p for p in positives if p not in positive_scores]
            if missing:
                positive_scores.update(self._score(query.query, missing))
            reference = min(positive_scores[p] for p in positives)
            if cfg.absolute_margin is not None:
                threshold = min(threshold, reference - cfg.absolute_margin)
            if cfg.margin is not None:
                threshold = min(threshold, reference - abs(reference) * cfg.margin)
        denoise_threshold = math.inf
        if denoise_scores and positives and all(p in denoise_scores for p in positives):
            denoise_threshold = min(denoise_scores[p] for p in positives) - cfg.denoise_margin
        dedup = cfg.exclude_near_duplicates
        positive_hashes = {self._hash(p) for p in positives} if dedup else set()
        kept_hashes: set[str] = set()
        skipped: Counter[str] = Counter()
        valid: list[Hit] = []
        # "top" needs only the first range_min + num_negatives valid hits; "random" the whole window.
        limit = cfg.range_min + cfg.num_negatives if cfg.sampling == "top" else cfg.window_end
        for hit in hits:
            if len(valid) >= limit:
                break
            if hit.doc_id in positive_set:
                skipped["positive"] += 1
                continue
            digest = self._hash(hit.doc_id) if dedup else ""
            if dedup and digest in positive_hashes:
                skipped["near_duplicate"] += 1
                continue
            if cfg.max_score is not None and hit.score > cfg.max_score:
                skipped["max_score"] += 1
                continue
            if cfg.min_score is not None and hit.score < cfg.min_score:
                skipped["min_score"] += 1
                continue
            if hit.score > threshold:
                skipped["margin"] += 1
                continue
            if denoise_scores and denoise_scores.get(hit.doc_id, -math.inf) > denoise_threshold:
                skipped["denoised"] += 1
                continue
            if dedup:
                if digest in kept_hashes:
                    skipped["duplicate"] += 1
                    continue
                kept_hashes.add(digest)
            valid.append(hit)
        skipped["range_min"] += min(cfg.range_min, len(valid))
        window = valid[cfg.range_min : cfg.window_end]
        if cfg.sampling == "top" or len(window) <= cfg.num_negatives:
            negatives = window[: cfg.num_negatives]
        else:
            negatives = sorted(self._rng(query.query_id).sample(window, cfg.num_negatives), key=lambda h: h.rank)
        self.stats.update(skipped)
        return MinedQuery(query, list(hits), positives, positive_hits, positive_scores, negatives, skipped)

    def mine_groups(self, queries: Sequence[MiningQuery], *, show_progress: bool = False) -> list[TrainingGroup]:
        """All training groups in memory (for small runs and tests; use :meth:`mine_to_files` at scale)."""
        groups: list[TrainingGroup] = []
        for mined in self.mine(queries, show_progress=show_progress):
            if len(mined.negatives) >= self.config.min_negatives:
                groups.extend(mined.groups(self.corpus))
        return groups

    def mine_to_files(
        self,
        queries: Sequence[MiningQuery],
        candidates_path: str | Path,
        groups_path: str | Path,
        *,
        show_progress: bool = False,
    ) -> dict[str, Any]:
        """Write the candidates and groups artifacts incrementally; resume a run that was stopped.

        A query counts as done once its candidates line is written (its group lines are written
        just before it), so on restart the groups of a half-written query are dropped and the
        query is mined again. Returns a summary (counts, skip reasons, queries per second).
        """
        candidates_path, groups_path = Path(candidates_path), Path(groups_path)
        started = time.perf_counter()
        self.stats = Counter()
        counts: Counter[str] = Counter()
        with ResumableJsonlWriter(candidates_path, key=lambda r: r["query_id"]) as cand_writer:
            done = set(cand_writer.done)
            kept_groups = _drop_groups_of_unfinished_queries(groups_path, done)
            todo = [q for q in queries if q.query_id not in done]
            if done:
                logger.info("resuming: %d of %d queries already mined", len(queries) - len(todo), len(queries))
            with ResumableJsonlWriter(groups_path) as group_writer:
                for mined in self.mine(todo, show_progress=show_progress):
                    counts["queries_mined"] += 1
                    counts["negatives"] += len(mined.negatives)
                    if not mined.positive_ids:
                        counts["queries_without_positive"] += 1
                    elif len(mined.negatives) < self.config.min_negatives:
                        counts["queries_with_too_few_negatives"] += 1
                    else:
                        for group in mined.groups(self.corpus):
                            group_writer.append(group.to_json())
                            counts["groups_written"] += 1
                    cand_writer.append(mined.candidates_record())
        seconds = time.perf_counter() - started
        mined_now = counts["queries_mined"]
        return {
            "queries": len(queries),
            "queries_resumed": len(queries) - len(todo),
            "queries_mined": mined_now,
            "groups_written": counts["groups_written"],
            "groups_total": kept_groups + counts["groups_written"],
            "queries_without_positive": counts["queries_without_positive"],
            "queries_with_too_few_negatives": counts["queries_with_too_few_negatives"],
            "mean_negatives": counts["negatives"] / mined_now if mined_now else 0.0,
            "skipped": dict(sorted(self.stats.items())),
            "seconds": round(seconds, 3),
            "queries_per_second": round(mined_now / seconds, 2) if seconds > 0 and mined_now else None,
            "config": self.config.to_dict(),
        }

    def _denoise_scores(
        self, batch: Sequence[MiningQuery], hit_lists: Sequence[Sequence[Hit]]
    ) -> list[dict[str, float] | None]:
        """The denoiser's scores of each query's positives and candidates, in one scoring call per batch."""
        if self.denoiser is None:
            return [None] * len(batch)
        owners: list[tuple[int, str]] = []
        for i, (query, hits) in enumerate(zip(batch, hit_lists, strict=True)):
            doc_ids = dict.fromkeys([*self.positives_of(query), *(h.doc_id for h in hits)])
            owners.extend((i, d) for d in doc_ids if d in self.corpus)
        if not owners:
            return [None] * len(batch)
        scores = self.denoiser.score_pairs(
            [batch[i].query for i, _ in owners], [self.corpus[d].full_text() for _, d in owners]
        )
        out: list[dict[str, float] | None] = [{} for _ in batch]
        for (i, doc_id), score in zip(owners, scores, strict=True):
            out[i][doc_id] = float(score)  # type: ignore[index]
        return out

    def _hash(self, doc_id: str) -> str:
        try:
            return self._hashes[doc_id]
        except KeyError:
            raise SynthrankError(
                f"the retriever returned document {doc_id!r}, which is not in the corpus: the index and the "
                "corpus differ (rebuild the index, or mine with the corpus it was built from)"
            ) from None

    def _score(self, query: str, doc_ids: list[str]) -> dict[str, float]:
        scorer = getattr(self.retriever, "score", None)
        if scorer is None:
            raise SynthrankError(
                f"{type(self.retriever).__name__} cannot score a given document, which a margin needs when a "
                "positive is outside the top_k hits; raise top_k or drop the margin"
            )
        scores = scorer(query, doc_ids)
        return {d: float(s) for d, s in zip(doc_ids, scores, strict=True)}

    def _rng(self, query_id: str) -> random.Random:
        digest = hashlib.blake2b(f"{self.config.seed}:{query_id}".encode(), digest_size=8).digest()
        return random.Random(int.from_bytes(digest, "big"))


def mine_hard_negatives(
    queries: Iterable[MiningQuery],
    corpus: Mapping[str, Document],
    *,
    retriever: Retriever | None = None,
    config: MiningConfig | None = None,
    positives: Mapping[str, Collection[str]] | None = None,
    show_progress: bool = False,
    **options: Any,
) -> list[TrainingGroup]:
    """Mine training groups in one call (builds an in-memory BM25 over ``corpus`` when no retriever is given).

    ``options`` override fields of ``config`` (e.g. ``range_min=3, num_negatives=8``), in the
    manner of sentence-transformers' ``mine_hard_negatives``.

    Example:
        >>> groups = mine_hard_negatives(queries, corpus, range_min=2, num_negatives=8, margin=0.05)
        >>> groups[0].negatives[0].rank
        4
    """
    config = replace(config or MiningConfig(), **options) if options else (config or MiningConfig())
    if retriever is None:
        from synthrank.retrieve.bm25s_backend import InMemoryBM25

        retriever = InMemoryBM25()
        retriever.index(corpus.values())
    return HardNegativeMiner(retriever, corpus, config, positives=positives).mine_groups(
        list(queries), show_progress=show_progress
    )


def _drop_groups_of_unfinished_queries(path: Path, done: set[str]) -> int:
    """Keep only group lines of finished queries (and no partial last line); returns how many are kept."""
    if not path.exists():
        return 0
    kept: list[bytes] = []
    dropped = 0
    with open(path, "rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                dropped += 1
                continue
            if not raw.strip():
                continue
            try:
                query_id = json.loads(raw)["query_id"]
            except (ValueError, KeyError, TypeError):
                raise SynthrankError(
                    f"{path}: a line of the groups file is not a group; remove the file or pass --overwrite"
                ) from None
            if query_id in done:
                kept.append(raw)
            else:
                dropped += 1
    if dropped:
        logger.info("dropping %d group lines of queries that were not finished", dropped)
        with atomic_write(path, "wb") as out:
            out.writelines(kept)
    return len(kept)
