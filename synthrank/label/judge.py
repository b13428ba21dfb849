"""A pointwise LLM relevance judge: (query, passage) -> grade 0-3, a short reason, and P(relevant).

Two modes share one interface:

* ``graded`` (default for labelling): the judge answers ``{"grade": g, "reason": "..."}``; where
  the endpoint returns log-probabilities, P(relevant) is the probability mass on grades
  >= ``relevant_grade`` at the grade token, normalised over the four grade tokens.
* ``binary`` (default for reranking): one answer token, Yes or No; P(relevant) is
  P(yes) / (P(yes) + P(no)) summed over case/spacing variants. Grade is 3 or 0.

Both normalise the model's own token probabilities over the valid answers; that is the
"calibrated" probability here (no extra fitting), and it is what the benchmark reports.
Optional self-consistency re-asks borderline pairs ``k-1`` more times at a higher
temperature and takes the majority grade. :class:`LLMJudge` is also a
:class:`~synthrank.rerank.base.PairScorer`, so it can be evaluated as the teacher reranker.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from synthrank.errors import DataError
from synthrank.label.prompts import JUDGE_PROMPT_VERSION, binary_messages, graded_messages
from synthrank.llm.client import Completion, LLMCallError, LLMClient, LLMRequest
from synthrank.llm.parsing import ParseError, is_refusal, parse_json

logger = logging.getLogger(__name__)

JudgeMode = Literal["graded", "binary"]
_GRADE_RE = re.compile(r"grade\W{0,4}([0-3])\b", re.IGNORECASE)
_REASON_RE = re.compile(r'"reason"\s*:\s*"([^"]*)', re.IGNORECASE)
_YES = {"yes", "y"}
_NO = {"no", "n"}


@dataclass
class Judgement:
    """One verdict. ``grade`` is ``None`` when the judge's answer could not be used (``error`` says why)."""

    grade: int | None
    probability: float | None = None
    reason: str = ""
    votes: list[int] = field(default_factory=list)
    error: str | None = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.grade is not None

    @property
    def failed_call(self) -> bool:
        """The call itself failed (retries spent): nothing was learnt, retry on the next run."""
        return self.error is not None and self.error.startswith("call:")


@dataclass(frozen=True)
class JudgeItem:
    query: str
    passage: str
    instruction: str | None = None


def _validate_graded(obj: Any) -> tuple[int, str]:
    if isinstance(obj, list) and obj:
        obj = obj[0]
    if not isinstance(obj, dict):
        raise ValueError("expected an object with 'grade'")
    raw = obj.get("grade", obj.get("score", obj.get("relevance")))
    if isinstance(raw, bool) or raw is None:
        raise ValueError("missing 'grade'")
    grade = int(float(raw))
    if not 0 <= grade <= 3:
        raise ValueError(f"grade {grade} outside 0-3")
    reason = obj.get("reason") or obj.get("explanation") or ""
    return grade, str(reason).strip()[:300]


def _token_probs(top: list[list[Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for token, logprob in top:
        key = str(token).strip().lower()
        out[key] = out.get(key, 0.0) + math.exp(float(logprob))
    return out


def grade_probability(logprobs: list[dict[str, Any]] | None, relevant_grade: int) -> float | None:
    """P(grade >= relevant_grade) at the first grade-digit token, normalised over 0-3."""
    if not logprobs:
        return None
    for position in logprobs:
        if str(position.get("token", "")).strip() in {"0", "1", "2", "3"}:
            probs = _token_probs(position.get("top") or [])
            mass = {g: probs.get(str(g), 0.0) for g in range(4)}
            total = sum(mass.values())
            if total <= 0:
                return None
            return sum(v for g, v in mass.items() if g >= relevant_grade) / total
    return None


def yes_probability(logprobs: list[dict[str, Any]] | None) -> float | None:
    """P(yes) / (P(yes) + P(no)) at the first answer token (case and leading space ignored)."""
    if not logprobs:
        return None
    probs = _token_probs(logprobs[0].get("top") or [])
    yes = sum(v for k, v in probs.items() if k in _YES)
    no = sum(v for k, v in probs.items() if k in _NO)
    if yes + no <= 0:
        return None
    return yes / (yes + no)


class LLMJudge:
    """Judges (query, passage) pairs through an :class:`LLMClient`; batched, cached, fault-tolerant.

    Args:
        client: the LLM client (local default or any OpenAI-compatible endpoint).
        mode: ``graded`` (grade + reason + P(relevant)) or ``binary`` (one Yes/No token + P(yes)).
        relevant_grade: grades at or above this count as relevant.
        self_consistency: total samples for borderline pairs (1 = off); borderline means a grade of
            ``relevant_grade - 1`` or ``relevant_grade``, or a probability within 0.25-0.75.
        sc_temperature: temperature of the extra samples.
        top_logprobs: alternatives per position requested from the endpoint.
        max_passage_chars: passages are cut to this length in prompts.
        yes_threshold: binary mode: P(yes) at or above this is a yes. 0.5 suits instruction models
            that answer confidently; weaker ones (small or untuned) need a lower, tuned threshold.
        sanitise: replace sentences of a passage that address the assessor before the judge reads it
            (:func:`~synthrank.label.prompts.neutralise_instructions`); off only to measure that defence
            (:mod:`synthrank.label.injection`).

    Example:
        >>> judge = LLMJudge(llm)
        >>> j = judge.judge("what damages the optic nerve", "Glaucoma damages the optic nerve ...")
        >>> j.grade, round(j.probability, 2), j.reason
        (3, 0.97, 'The passage says glaucoma damages the optic nerve.')
    """

    def __init__(
        self,
        client: LLMClient,
        *,
        mode: JudgeMode = "graded",
        relevant_grade: int = 2,
        self_consistency: int = 1,
        sc_temperature: float = 0.8,
        top_logprobs: int = 20,
        logprobs: bool = True,
        max_passage_chars: int = 2000,
        max_tokens: int = 48,
        yes_threshold: float = 0.5,
        sanitise: bool = True,
    ) -> None:
        if mode not in ("graded", "binary"):
            raise DataError(f"unknown judge mode {mode!r}; use 'graded' or 'binary'", field="judge_mode")
        if not 1 <= relevant_grade <= 3:
            raise DataError("must be 1, 2 or 3", field="relevant_grade")
        if self_consistency < 1:
            raise DataError("must be at least 1", field="self_consistency")
        if not 0.0 < yes_threshold < 1.0:
            raise DataError("must be between 0 and 1", field="yes_threshold")
        self.yes_threshold = yes_threshold
        self.sanitise = sanitise
        self.client = client
        self.mode: JudgeMode = mode
        self.relevant_grade = relevant_grade
        self.self_consistency = self_consistency
        self.sc_temperature = sc_temperature
        self.top_logprobs = top_logprobs
        self.logprobs = logprobs
        self.max_passage_chars = max_passage_chars
        self.max_tokens = max_tokens

    def __repr__(self) -> str:
        return (
            f"LLMJudge(model={self.client.model!r}, mode={self.mode!r}, relevant_grade={self.relevant_grade}, "
            f"self_consistency={self.self_consistency})"
        )

    @property
    def prompt_version(self) -> str:
        return f"{JUDGE_PROMPT_VERSION}-{self.mode}"

    # ------------------------------------------------------------------ requests and answers

    def request(self, item: JudgeItem, *, sample: int = 0) -> LLMRequest:
        build = graded_messages if self.mode == "graded" else binary_messages
        messages = build(
            item.query, item.passage, instruction=item.instruction, max_chars=self.max_passage_chars, sanitise=self.sanitise
        )
        return LLMRequest.chat(
            messages,
            temperature=0.0 if sample == 0 else self.sc_temperature,
            max_tokens=self.max_tokens if self.mode == "graded" else 1,
            logprobs=self.logprobs,
            top_logprobs=self.top_logprobs if self.logprobs else None,
            seed=sample if sample else None,
            sample=sample,
        )

    def interpret(self, result: Completion | LLMCallError) -> Judgement:
        """Turn one answer into a :class:`Judgement`; unusable answers are counted, never raised."""
        if isinstance(result, LLMCallError):
            return Judgement(grade=None, error=f"call:{result.kind}")
        text = result.text.strip()
        if result.refusal or (text and is_refusal(text)):
            self.client.usage.record_parse_failure("refusal")
            return Judgement(grade=None, error="refusal", cached=result.cached)
        if self.mode == "binary":
            p = yes_probability(result.logprobs)
            word = re.sub(r"[^a-z]", "", text.lower())
            if p is None:
                if word in _YES or word.startswith("yes"):
                    p = 1.0
                elif word in _NO or word.startswith("no"):
                    p = 0.0
                else:
                    self.client.usage.record_parse_failure("garbage")
                    return Judgement(grade=None, error="garbage", cached=result.cached)
            return Judgement(grade=3 if p >= self.yes_threshold else 0, probability=p, cached=result.cached)
        try:
            (grade, reason), _ = parse_json(text, _validate_graded, truncated=result.truncated)
        except ParseError as exc:
            match = _GRADE_RE.search(text) or (re.fullmatch(r"\s*([0-3])\s*", text) if text else None)
            if match is None:
                self.client.usage.record_parse_failure(exc.kind)
                return Judgement(grade=None, error=exc.kind, cached=result.cached)
            grade, reason = int(match.group(1)), ""
        if not reason:  # a reason cut off by max_tokens is still worth keeping
            partial = _REASON_RE.search(text)
            reason = partial.group(1).strip() + " ..." if partial and partial.group(1).strip() else ""
        return Judgement(
            grade=grade,
            probability=grade_probability(result.logprobs, self.relevant_grade),
            reason=reason,
            cached=result.cached,
        )

    def _borderline(self, j: Judgement) -> bool:
        if j.grade is None:
            return False
        if self.mode == "graded" and j.grade in (self.relevant_grade - 1, self.relevant_grade):
            return True
        return j.probability is not None and 0.25 <= j.probability <= 0.75

    # ------------------------------------------------------------------ batch API

    def judge_many(self, items: Sequence[JudgeItem], *, show_progress: bool = False, desc: str = "judge") -> list[Judgement]:
        """Judge every item (concurrently, through the cache); failures come back as judgements with ``error``."""
        from tqdm.auto import tqdm

        if not items:
            return []
        bar = tqdm(total=len(items), desc=desc, unit="pair", disable=not show_progress)
        try:

            def tick(i: int, r: object) -> None:
                bar.update(1)
                if bar.n % 8 == 0:
                    bar.set_postfix(self.client.usage.postfix(), refresh=False)

            results = self.client.complete_many([self.request(it) for it in items], on_done=tick)
            judgements = [self.interpret(r) for r in results]
            for j in judgements:
                if j.grade is not None:
                    j.votes = [j.grade]
            if self.self_consistency > 1:
                self._resample([i for i, j in enumerate(judgements) if self._borderline(j)], items, judgements, bar)
            bar.set_postfix(self.client.usage.postfix(), refresh=True)
        finally:
            bar.close()
        return judgements

    def _resample(self, idx: list[int], items: Sequence[JudgeItem], judgements: list[Judgement], bar: Any) -> None:
        if not idx:
            return
        extra = [(i, s) for i in idx for s in range(1, self.self_consistency)]
        bar.total += len(extra)
        results = self.client.complete_many(
            [self.request(items[i], sample=s) for i, s in extra], on_done=lambda *_: bar.update(1)
        )
        probs: dict[int, list[float]] = {}
        for (i, _), result in zip(extra, results, strict=True):
            j = self.interpret(result)
            if j.grade is not None:
                judgements[i].votes.append(j.grade)
                if j.probability is not None:
                    probs.setdefault(i, []).append(j.probability)
        for i in idx:
            j = judgements[i]
            counts = Counter(j.votes).most_common()
            best = counts[0][1]
            tied = sorted(g for g, c in counts if c == best)
            j.grade = tied[0] if len(tied) == 1 else int(np.median(j.votes))
            if self.mode == "binary":
                j.grade = 3 if j.grade >= self.relevant_grade else 0
            if j.probability is not None and i in probs:
                j.probability = float(np.mean([j.probability, *probs[i]]))

    def judge(self, query: str, passage: str, instruction: str | None = None) -> Judgement:
        return self.judge_many([JudgeItem(query, passage, instruction)])[0]

    def is_relevant(self, query: str, passage: str, instruction: str | None = None) -> bool | None:
        """For the round-trip filter: True/False, or None when the judge could not answer."""
        j = self.judge(query, passage, instruction)
        return None if j.grade is None else j.grade >= self.relevant_grade

    def relevant(self, j: Judgement) -> bool:
        return j.grade is not None and j.grade >= self.relevant_grade

    # ------------------------------------------------------------------ PairScorer

    def score_pairs(self, queries: Sequence[str], documents: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """P(relevant) per pair (grade / 3 where the endpoint gives no log-probabilities; 0 for failed calls)."""
        if len(queries) != len(documents):
            raise ValueError(f"{len(queries)} queries but {len(documents)} documents")
        judgements = self.judge_many([JudgeItem(q, d) for q, d in zip(queries, documents, strict=True)],
                                     show_progress=show_progress, desc="LLM judge")
        scores = np.zeros(len(judgements), dtype=np.float32)
        failed = 0
        for i, j in enumerate(judgements):
            if j.probability is not None:
                scores[i] = j.probability
            elif j.grade is not None:
                scores[i] = j.grade / 3.0
            else:
                failed += 1
        if failed:
            logger.warning("%d of %d pairs got no judgement (scored 0)", failed, len(judgements))
        return scores
