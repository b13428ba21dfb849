"""Text analysis for BM25: one analyser definition shared by every backend.

Both the in-memory backend and the Elasticsearch index settings are built from the same
:class:`Analyzer`, so the two backends see the same terms and can return the same ranking.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

# Lucene's English stop set (what Elasticsearch's `_english_` stop filter uses), so the two
# backends drop exactly the same words.
LUCENE_ENGLISH_STOPWORDS: tuple[str, ...] = (
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
)  # fmt: skip

_TOKEN_RE = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass(frozen=True)
class Analyzer:
    """Lowercase, split on non-alphanumerics, drop stopwords, stem (Snowball).

    Args:
        stemmer: a Snowball language name (``"english"`` is Porter2), or ``None`` for no stemming.
        stopwords: ``"en"`` for Lucene's English list, a custom list, or ``None``.
        lowercase: lowercase before everything else.
    """

    stemmer: str | None = "english"
    stopwords: str | tuple[str, ...] | None = "en"
    lowercase: bool = True
    _cache: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def stopword_set(self) -> frozenset[str]:
        if self.stopwords is None:
            return frozenset()
        if self.stopwords == "en":
            return frozenset(LUCENE_ENGLISH_STOPWORDS)
        if isinstance(self.stopwords, str):
            raise ValueError(f"unknown stopword list {self.stopwords!r}; use 'en', a list of words, or None")
        return frozenset(w.lower() if self.lowercase else w for w in self.stopwords)

    @cached_property
    def _stem_word(self) -> Any:
        if self.stemmer is None:
            return None
        import Stemmer  # PyStemmer

        return Stemmer.Stemmer(self.stemmer).stemWord

    def __call__(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        stop = self.stopword_set
        tokens = [t for t in _TOKEN_RE.findall(text) if t not in stop]
        stem = self._stem_word
        if stem is None:
            return tokens
        cache = self._cache
        out = []
        for token in tokens:
            stemmed = cache.get(token)
            if stemmed is None:
                stemmed = stem(token)
                if len(cache) < 1_000_000:
                    cache[token] = stemmed
            out.append(stemmed)
        return out

    def analyze_many(self, texts: Iterable[str]) -> list[list[str]]:
        return [self(t) for t in texts]

    def to_dict(self) -> dict[str, Any]:
        stop: Any = list(self.stopwords) if isinstance(self.stopwords, tuple) else self.stopwords
        return {"stemmer": self.stemmer, "stopwords": stop, "lowercase": self.lowercase}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Analyzer:
        stop = data.get("stopwords", "en")
        if isinstance(stop, Sequence) and not isinstance(stop, str):
            stop = tuple(stop)
        return cls(stemmer=data.get("stemmer", "english"), stopwords=stop, lowercase=data.get("lowercase", True))
