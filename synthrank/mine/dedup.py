"""Normalised-text hashing: find near-duplicates of a positive so they are never mined as negatives.

Corpora built from web pages or Q&A sites (MedQuAD among them) hold the same passage several
times under different ids, differing only in case, punctuation or spacing. Mining such a copy as a
"hard negative" teaches the reranker to push down a correct answer. Two passages are treated as
near-duplicates when their normalised texts are equal; comparing 8-byte hashes instead of texts
keeps the lookup cheap for every candidate of every query.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping

from synthrank.data.records import Document

_NON_ALNUM = re.compile(r"[\W_]+", re.UNICODE)


def normalize_text(text: str) -> str:
    """Unicode NFKC, case-folded, every run of non-alphanumerics replaced by one space, stripped.

    Example:
        >>> normalize_text("  Glaucoma:  the  *optic* nerve!")
        'glaucoma the optic nerve'
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    return _NON_ALNUM.sub(" ", text).strip()


def text_hash(text: str) -> str:
    """A 16-hex-digit hash of :func:`normalize_text` (blake2b): equal for near-duplicate texts."""
    return hashlib.blake2b(normalize_text(text).encode("utf-8"), digest_size=8).hexdigest()


class TextHashes:
    """Lazily computed, cached normalised-text hashes of a corpus's documents (title + text).

    Only the documents a miner actually looks at get hashed, so a 100k-passage corpus costs
    nothing up front.

    Example:
        >>> hashes = TextHashes(corpus)
        >>> hashes["d1"] == hashes["d1-copy"]
        True
    """

    def __init__(self, corpus: Mapping[str, Document]) -> None:
        self._corpus = corpus
        self._cache: dict[str, str] = {}

    def __getitem__(self, doc_id: str) -> str:
        value = self._cache.get(doc_id)
        if value is None:
            value = text_hash(self._corpus[doc_id].full_text(" "))
            self._cache[doc_id] = value
        return value

    def __len__(self) -> int:
        return len(self._cache)


def duplicate_groups(corpus: Mapping[str, Document]) -> list[list[str]]:
    """Ids of documents sharing a normalised text, one list per group of two or more (for reports)."""
    by_hash: dict[str, list[str]] = {}
    for doc_id, doc in corpus.items():
        by_hash.setdefault(text_hash(doc.full_text(" ")), []).append(doc_id)
    return [ids for ids in by_hash.values() if len(ids) > 1]
