"""LLM relevance labelling of mined candidates: positives, hard negatives, false-negative rescue.

For each query (with its BM25 candidates):

1. The judge grades the *source* passage the query was written from. If it is not judged
   relevant the query is dropped: a query its own passage does not answer teaches nothing.
2. The judge grades the top ``judge_top_k`` other candidates. Those judged relevant are
   **false negatives** of BM25 mining: they become extra positives, never negatives. Those
   at or below ``negative_max_grade`` become hard negatives, best BM25 rank first.
3. One training group per (query, positive) is written to ``groups.jsonl`` (schema in
   :mod:`synthrank.data.groups`), each with all the query's hard negatives.

Every judgement is appended to ``labels.jsonl`` as it comes (resumable: a rerun judges only
missing pairs and the response cache makes the rest free); a pair whose call failed is not
written, so it is retried next time. Queries without a source (real questions) use step 2 only.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from synthrank.config_fields import strict_from_dict
from synthrank.data.groups import Passage, TrainingGroup, write_groups
from synthrank.data.jsonl import ResumableJsonlWriter, iter_jsonl
from synthrank.data.records import Document
from synthrank.errors import DataError
from synthrank.label.judge import JudgeItem, Judgement, JudgeMode, LLMJudge
from synthrank.retrieve.base import Retriever

logger = logging.getLogger(__name__)


@dataclass
class CandidateQuery:
    """A query with its first-stage candidates (the ``candidates.jsonl`` artifact of mining)."""

    query_id: str
    query: str
    candidates: list[dict[str, Any]]
    source_doc_id: str | None = None
    instruction: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def read_candidates(
    path: str | Path,
    *,
    corpus: Mapping[str, Document] | None = None,
    queries: str | Path | None = None,
) -> list[CandidateQuery]:
    """Read ``candidates.jsonl`` (``query_id``, ``query``, ``source_doc_id``, ``candidates: [{doc_id, rank, score}]``).

    ``queries`` (the synthetic-query JSONL) adds each query's instruction, type and persona by ``query_id``.
    With ``corpus``, unknown document ids are errors naming the line.
    """
    path = Path(path)
    if not path.exists():
        raise DataError("candidates file does not exist", path=path)
    extra: dict[str, dict[str, Any]] = {}
    if queries is not None:
        for _, rec in iter_jsonl(queries):
            if "query_id" in rec:
                extra[str(rec["query_id"])] = rec
    out: list[CandidateQuery] = []
    seen: set[str] = set()
    for lineno, rec in iter_jsonl(path):
        for name in ("query_id", "query", "candidates"):
            if name not in rec:
                raise DataError(f"missing '{name}'", path=path, line=lineno, field=name)
        qid = str(rec["query_id"])
        if qid in seen:
            raise DataError(f"duplicate query id {qid!r}", path=path, line=lineno, field="query_id")
        seen.add(qid)
        if not isinstance(rec["query"], str) or not rec["query"].strip():
            raise DataError("empty query", path=path, line=lineno, field="query")
        if not isinstance(rec["candidates"], list):
            raise DataError("expected a list", path=path, line=lineno, field="candidates")
        cands = []
        for i, cand in enumerate(rec["candidates"]):
            if not isinstance(cand, dict) or "doc_id" not in cand:
                raise DataError("expected {doc_id, rank, score}", path=path, line=lineno, field=f"candidates[{i}]")
            doc_id = str(cand["doc_id"])
            if corpus is not None and doc_id not in corpus:
                raise DataError(f"unknown document {doc_id!r}", path=path, line=lineno, field=f"candidates[{i}].doc_id")
            cands.append({"doc_id": doc_id, "rank": cand.get("rank", i + 1), "score": cand.get("score")})
        source = rec.get("source_doc_id")
        if source is not None and corpus is not None and str(source) not in corpus:
            raise DataError(f"unknown document {source!r}", path=path, line=lineno, field="source_doc_id")
        meta = {k: v for k, v in {**extra.get(qid, {}), **rec}.items() if k not in ("query_id", "query", "candidates")}
        instruction = meta.pop("instruction", None)
        meta.pop("source_doc_id", None)
        out.append(
            CandidateQuery(qid, rec["query"], cands, None if source is None else str(source), instruction or None, meta)
        )
    return out


def candidates_from_retriever(
    queries: Sequence[Mapping[str, Any]], retriever: Retriever, *, k: int = 20, show_progress: bool = False
) -> list[CandidateQuery]:
    """BM25 candidates for synthetic-query records, for labelling without a separate mining step."""
    texts = [str(q["query"]) for q in queries]
    hits = retriever.retrieve(texts, k=k, show_progress=show_progress)
    out = []
    for rec, row in zip(queries, hits, strict=True):
        meta = {key: v for key, v in rec.items() if key not in ("query_id", "query", "source_doc_id", "instruction")}
        out.append(
            CandidateQuery(
                query_id=str(rec["query_id"]),
                query=str(rec["query"]),
                candidates=[{"doc_id": h.doc_id, "rank": h.rank, "score": round(h.score, 6)} for h in row],
                source_doc_id=None if rec.get("source_doc_id") is None else str(rec["source_doc_id"]),
                instruction=rec.get("instruction") or None,
                meta=meta,
            )
        )
    return out


_Todo = tuple[CandidateQuery, dict[str, Any] | None, str, str]  # (query, candidate hit, doc id, role)


@dataclass
class LabelConfig:
    """How judgements become positives and negatives.

    Args:
        judge_top_k: candidates (besides the source) judged per query, best BM25 rank first.
        positive_min_grade: grades at or above this are positives (false negatives rescued).
        negative_max_grade: grades at or below this are hard negatives; grades in between are used for neither.
        min_negatives: groups with fewer hard negatives are not written (counted).
        append_instruction: the group's query text is ``query + " " + instruction`` for
            instruction-following queries (they were judged with the instruction).
        batch_size: queries judged per batch.
        judge_mode: ``"graded"`` (a 0-3 grade and a reason) or ``"binary"`` (one Yes/No token); see
            :class:`~synthrank.label.judge.LLMJudge`.
        yes_threshold: binary judge: the P(yes) that counts as relevant.
        self_consistency: samples for borderline pairs (majority grade); 1 disables.
        max_passage_chars: what the judge reads of each passage.
        fill_negatives: top up each group with the mined negatives below the judged top-k, up to the mined
            pool's size (:func:`~synthrank.label.label_to_groups`); ``min_negatives`` then applies to the
            filled group, not to the judged negatives alone.
    """

    judge_top_k: int = 10
    positive_min_grade: int = 2
    negative_max_grade: int = 1
    min_negatives: int = 1
    append_instruction: bool = True
    batch_size: int = 8
    judge_mode: JudgeMode = "graded"
    yes_threshold: float = 0.5
    self_consistency: int = 1
    max_passage_chars: int = 2000
    fill_negatives: bool = False

    def __post_init__(self) -> None:
        if self.negative_max_grade >= self.positive_min_grade:
            raise DataError("negative_max_grade must be below positive_min_grade", field="negative_max_grade")
        if self.judge_mode not in ("graded", "binary"):
            raise DataError(f"unknown judge mode {self.judge_mode!r}; use 'graded' or 'binary'", field="judge_mode")
        if not 0.0 < self.yes_threshold < 1.0:
            raise DataError(f"must be between 0 and 1, got {self.yes_threshold}", field="yes_threshold")
        if not isinstance(self.self_consistency, int) or self.self_consistency < 1:
            raise DataError(f"must be an integer of at least 1, got {self.self_consistency!r}", field="self_consistency")
        if not isinstance(self.judge_top_k, int) or self.judge_top_k < 0:
            raise DataError(f"must be an integer of 0 or more, got {self.judge_top_k!r}", field="judge_top_k")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelConfig:
        """Build from a mapping (dashes count as underscores); an unknown key is a :class:`DataError` naming it."""
        return strict_from_dict(cls, data, section="label")

    def make_judge(self, client: Any) -> LLMJudge:
        """The judge these settings describe, asking ``client``."""
        return LLMJudge(
            client,
            mode=self.judge_mode,
            relevant_grade=self.positive_min_grade,
            self_consistency=self.self_consistency,
            max_passage_chars=self.max_passage_chars,
            yes_threshold=self.yes_threshold,
        )


@dataclass
class LabelReport:
    queries: int = 0
    pairs_judged: int = 0
    pairs_done_before: int = 0
    pairs_failed: int = 0
    unusable_answers: dict[str, int] = field(default_factory=dict)
    grades: dict[str, int] = field(default_factory=dict)
    dropped_source_not_relevant: int = 0
    dropped_source_unjudged: int = 0
    dropped_no_positive: int = 0
    dropped_few_negatives: int = 0
    false_negatives_rescued: int = 0
    groups: int = 0
    negatives: int = 0
    seconds: float = 0.0
    usage: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["labels_per_second"] = round(self.pairs_judged / self.seconds, 4) if self.seconds else None
        return out


class Labeler:
    """Judges candidates and builds training groups (see the module docstring for the rules).

    Example:
        >>> labeler = Labeler(LLMJudge(llm), corpus, LabelConfig(judge_top_k=10))
        >>> report = labeler.label(read_candidates(out / "candidates.jsonl"), out)
        >>> report.groups, report.false_negatives_rescued
    """

    def __init__(self, judge: LLMJudge, corpus: Mapping[str, Document], config: LabelConfig | None = None) -> None:
        self.judge = judge
        self.corpus = corpus
        self.config = config or LabelConfig()

    def _text(self, doc_id: str) -> str:
        doc = self.corpus.get(doc_id)
        if doc is None:
            raise DataError(f"document {doc_id!r} is not in the corpus", field="doc_id")
        return doc.full_text()

    def _others(self, cq: CandidateQuery) -> list[dict[str, Any]]:
        return [c for c in cq.candidates if c["doc_id"] != cq.source_doc_id][: self.config.judge_top_k]

    def _record(self, cq: CandidateQuery, cand: dict[str, Any] | None, doc_id: str, role: str, j: Judgement) -> dict[str, Any]:
        return {
            "query_id": cq.query_id,
            "doc_id": doc_id,
            "grade": j.grade,
            "probability": None if j.probability is None else round(j.probability, 6),
            "reason": j.reason,
            "votes": j.votes,
            "error": j.error,
            "role": role,
            "rank": cand.get("rank") if cand else None,
            "score": cand.get("score") if cand else None,
            "model": self.judge.client.model,
            "prompt_version": self.judge.prompt_version,
        }

    def _judge_round(
        self,
        todo: list[_Todo],
        writer: ResumableJsonlWriter,
        labels: dict[tuple[str, str], dict[str, Any]],
        report: LabelReport,
        bar: Any,
    ) -> None:
        todo = [t for t in todo if (t[0].query_id, t[2]) not in labels]
        if not todo:
            return
        items = [JudgeItem(cq.query, self._text(doc_id), cq.instruction) for cq, _, doc_id, _ in todo]
        judgements = self.judge.judge_many(items)
        for (cq, cand, doc_id, role), j in zip(todo, judgements, strict=True):
            bar.update(1)
            if j.failed_call:
                report.pairs_failed += 1
                continue
            record = self._record(cq, cand, doc_id, role, j)
            writer.append(record)
            labels[(cq.query_id, doc_id)] = record
            report.pairs_judged += 1
        bar.set_postfix(self.judge.client.usage.postfix(), refresh=False)

    def label(self, queries: Sequence[CandidateQuery], output_dir: str | Path, *, show_progress: bool = False) -> LabelReport:
        """Judge, then write ``labels.jsonl`` (incrementally) and ``groups.jsonl`` (atomically) in ``output_dir``."""
        from tqdm.auto import tqdm

        started = time.perf_counter()
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        report = LabelReport(queries=len(queries))
        labels: dict[tuple[str, str], dict[str, Any]] = {}
        wanted = {cq.query_id for cq in queries}
        with ResumableJsonlWriter(out / "labels.jsonl", key=lambda r: (r["query_id"], r["doc_id"])) as writer:
            if (out / "labels.jsonl").exists():
                for _, rec in iter_jsonl(out / "labels.jsonl"):
                    if rec.get("query_id") in wanted:
                        labels[(rec["query_id"], rec["doc_id"])] = rec
            report.pairs_done_before = len(labels)
            upper = sum((1 if cq.source_doc_id else 0) + len(self._others(cq)) for cq in queries)
            bar = tqdm(total=max(0, upper - len(labels)), desc="label", unit="pair", disable=not show_progress)
            try:
                size = max(1, self.config.batch_size)
                for start in range(0, len(queries), size):
                    batch = queries[start : start + size]
                    # round 1: the source passages; round 2: the candidates of queries whose source held up
                    sources: list[_Todo] = [(cq, None, cq.source_doc_id, "source") for cq in batch if cq.source_doc_id]
                    self._judge_round(sources, writer, labels, report, bar)
                    round2: list[_Todo] = []
                    for cq in batch:
                        if cq.source_doc_id is not None:
                            src = labels.get((cq.query_id, cq.source_doc_id))
                            if src is None or src["grade"] is None or src["grade"] < self.config.positive_min_grade:
                                bar.total -= len(self._others(cq))
                                continue
                        round2.extend((cq, c, c["doc_id"], "candidate") for c in self._others(cq))
                    self._judge_round(round2, writer, labels, report, bar)
            finally:
                bar.close()
        groups = self._build_groups(queries, labels, report)
        write_groups(out / "groups.jsonl", groups)
        grades: Counter[str] = Counter()
        unusable: Counter[str] = Counter()
        for rec in labels.values():
            if rec["grade"] is None:
                unusable[str(rec.get("error"))] += 1
            else:
                grades[str(rec["grade"])] += 1
        report.grades = dict(sorted(grades.items()))
        report.unusable_answers = dict(unusable)
        report.seconds = round(time.perf_counter() - started, 3)
        report.usage = self.judge.client.usage.to_dict()
        return report

    def _build_groups(
        self, queries: Sequence[CandidateQuery], labels: Mapping[tuple[str, str], Mapping[str, Any]], report: LabelReport
    ) -> list[TrainingGroup]:
        cfg = self.config
        groups: list[TrainingGroup] = []
        for cq in queries:
            positives: list[tuple[str, Mapping[str, Any], dict[str, Any] | None]] = []
            if cq.source_doc_id is not None:
                src = labels.get((cq.query_id, cq.source_doc_id))
                if src is None or src["grade"] is None:
                    report.dropped_source_unjudged += 1
                    continue
                if src["grade"] < cfg.positive_min_grade:
                    report.dropped_source_not_relevant += 1
                    continue
                hit = next((c for c in cq.candidates if c["doc_id"] == cq.source_doc_id), None)
                positives.append((cq.source_doc_id, src, hit))
            negatives: list[Passage] = []
            rescued = 0
            for cand in self._others(cq):
                rec = labels.get((cq.query_id, cand["doc_id"]))
                if rec is None or rec["grade"] is None:
                    continue
                if rec["grade"] >= cfg.positive_min_grade:
                    positives.append((cand["doc_id"], rec, cand))
                    rescued += 1
                elif rec["grade"] <= cfg.negative_max_grade:
                    negatives.append(
                        Passage(
                            cand["doc_id"],
                            self._text(cand["doc_id"]),
                            rank=cand.get("rank"),
                            score=cand.get("score"),
                            grade=rec["grade"],
                            probability=rec.get("probability"),
                        )
                    )
            if not positives:
                report.dropped_no_positive += 1
                continue
            if len(negatives) < cfg.min_negatives:
                report.dropped_few_negatives += 1
                continue
            if cq.source_doc_id is not None:
                report.false_negatives_rescued += rescued
            text = cq.query
            if cfg.append_instruction and cq.instruction:
                text = f"{cq.query} {cq.instruction}"
            for doc_id, rec, hit in positives:
                positive = Passage(
                    doc_id,
                    self._text(doc_id),
                    rank=hit.get("rank") if hit else None,
                    score=hit.get("score") if hit else None,
                    grade=rec["grade"],
                    probability=rec.get("probability"),
                )
                meta = {
                    **cq.meta,
                    "source_doc_id": cq.source_doc_id,
                    "instruction": cq.instruction,
                    "positive_role": "source" if doc_id == cq.source_doc_id else "judged",
                    "judge_model": self.judge.client.model,
                    "judge_prompt": self.judge.prompt_version,
                }
                groups.append(TrainingGroup(cq.query_id, text, positive, list(negatives), meta))
                report.negatives += len(negatives)
            report.groups += len(positives)
        return groups
