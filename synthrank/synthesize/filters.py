"""Filters for generated queries; each one optional, and each one counted.

Applied in this order, cheapest first: length bounds, dedup (normalised text), copy filter
(the query lifts a run of words verbatim from the passage), round-trip consistency (BM25
must find the source passage in its top-k, or the judge must call it relevant). The
generator records every rejection with the filter's name, so the share of queries surviving
each filter is measured exactly, across resumed runs too.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from synthrank.retrieve.base import Retriever

_WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)

FILTER_ORDER: tuple[str, ...] = ("length", "dedup", "copy", "roundtrip")


def normalize(text: str) -> str:
    """Lowercase, strip accents and punctuation, collapse spaces: what counts as 'the same query'."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(_WORD_RE.findall(text.lower()))


def words(text: str) -> list[str]:
    return normalize(text).split()


@dataclass
class Candidate:
    """A generated query on its way through the filters."""

    query: str
    source_doc_id: str
    query_type: str
    persona: str | None = None
    instruction: str | None = None
    info: dict[str, Any] = field(default_factory=dict)  # measurements filters leave behind


@dataclass
class Verdict:
    keep: bool
    filter: str
    detail: str = ""


class QueryFilter(Protocol):
    name: str

    def check(self, candidate: Candidate, passage_text: str) -> Verdict: ...


@dataclass
class LengthFilter:
    """Keep queries of ``min_words``..``max_words`` words (the instruction is not counted)."""

    min_words: int = 2
    max_words: int = 40
    name: str = "length"

    def check(self, candidate: Candidate, passage_text: str) -> Verdict:
        n = len(words(candidate.query))
        candidate.info["words"] = n
        if n < self.min_words:
            return Verdict(False, self.name, f"{n} words < {self.min_words}")
        if n > self.max_words:
            return Verdict(False, self.name, f"{n} words > {self.max_words}")
        return Verdict(True, self.name)


@dataclass
class DedupFilter:
    """Drop a query whose normalised text was already kept (anywhere in the run)."""

    seen: set[str] = field(default_factory=set)
    name: str = "dedup"

    def remember(self, queries: Iterable[str]) -> None:
        self.seen.update(normalize(q) for q in queries)

    def check(self, candidate: Candidate, passage_text: str) -> Verdict:
        key = normalize(candidate.query)
        if key in self.seen:
            return Verdict(False, self.name, "duplicate")
        self.seen.add(key)
        return Verdict(True, self.name)


def longest_common_run(query_words: list[str], passage_words: list[str]) -> int:
    """Length of the longest run of consecutive query words that appears verbatim in the passage."""
    if not query_words or not passage_words:
        return 0
    best = 0
    prev = [0] * (len(passage_words) + 1)
    for qw in query_words:
        cur = [0] * (len(passage_words) + 1)
        for j, pw in enumerate(passage_words, start=1):
            if qw == pw:
                cur[j] = prev[j - 1] + 1
                if cur[j] > best:
                    best = cur[j]
        prev = cur
    return best


@dataclass
class CopyFilter:
    """Drop queries that copy the passage: the longest verbatim word run covers ``max_copy_ratio`` of the query.

    Short queries (under ``min_words``) always pass: keyword queries rightly reuse the passage's terms.
    """

    max_copy_ratio: float = 0.75
    min_words: int = 5
    name: str = "copy"

    def check(self, candidate: Candidate, passage_text: str) -> Verdict:
        q = words(candidate.query)
        run = longest_common_run(q, words(passage_text))
        ratio = run / len(q) if q else 0.0
        candidate.info["copy_ratio"] = round(ratio, 3)
        if len(q) >= self.min_words and ratio >= self.max_copy_ratio:
            return Verdict(False, self.name, f"{run} of {len(q)} words copied verbatim")
        return Verdict(True, self.name)


class RelevanceCheck(Protocol):
    def is_relevant(self, query: str, passage: str, instruction: str | None = None) -> bool | None: ...


@dataclass
class RoundTripFilter:
    """Keep a query only if its source passage comes back in BM25's top ``k`` (or, failing that,
    the optional ``judge`` calls the pair relevant): a query that cannot find its own passage
    is usually vague or about something else.
    """

    retriever: Retriever
    k: int = 20
    judge: RelevanceCheck | None = None
    name: str = "roundtrip"

    def check(self, candidate: Candidate, passage_text: str) -> Verdict:
        hits = self.retriever.retrieve([candidate.query], k=self.k)[0]
        rank = next((h.rank for h in hits if h.doc_id == candidate.source_doc_id), None)
        candidate.info["roundtrip_rank"] = rank
        if rank is not None:
            return Verdict(True, self.name)
        if self.judge is not None:
            verdict = self.judge.is_relevant(candidate.query, passage_text, candidate.instruction)
            candidate.info["roundtrip_judged"] = verdict
            if verdict:
                return Verdict(True, self.name)
        return Verdict(False, self.name, f"source not in BM25 top {self.k}")


def build_filters(
    *,
    dedup: bool = True,
    min_words: int | None = 2,
    max_words: int | None = 40,
    max_copy_ratio: float | None = 0.75,
    roundtrip_retriever: Retriever | None = None,
    roundtrip_k: int = 20,
    roundtrip_judge: RelevanceCheck | None = None,
) -> list[QueryFilter]:
    """The standard chain, in :data:`FILTER_ORDER`; pass ``None``/``False`` to turn one off."""
    chain: list[QueryFilter] = []
    if min_words is not None or max_words is not None:
        chain.append(LengthFilter(min_words=min_words or 0, max_words=max_words or 10**9))
    if dedup:
        chain.append(DedupFilter())
    if max_copy_ratio is not None:
        chain.append(CopyFilter(max_copy_ratio=max_copy_ratio))
    if roundtrip_retriever is not None:
        chain.append(RoundTripFilter(roundtrip_retriever, k=roundtrip_k, judge=roundtrip_judge))
    return chain


def apply_filters(chain: Iterable[QueryFilter], candidate: Candidate, passage_text: str) -> Verdict:
    """Run the chain; the first rejection wins."""
    for flt in chain:
        verdict = flt.check(candidate, passage_text)
        if not verdict.keep:
            return verdict
    return Verdict(True, "")
