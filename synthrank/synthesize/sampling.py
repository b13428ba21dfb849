"""Which passages get synthetic queries: random, balanced over a metadata field, or over length.

A corpus is rarely uniform: a few sources or document types dominate, and short passages
give thin queries. Stratified and length-balanced sampling spread a fixed LLM budget over
the whole corpus; every strategy is seeded, so a rerun picks the same passages (and then hits
the response cache).
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from synthrank.data.jsonl import open_text
from synthrank.data.records import Document
from synthrank.errors import DataError

logger = logging.getLogger(__name__)

Strategy = Literal["random", "stratified", "length"]
STRATEGIES: tuple[str, ...] = ("random", "stratified", "length")


def read_doc_meta(path: str | Path) -> dict[str, dict[str, str]]:
    """Read a side table of document metadata: TSV with a header, the first column the document id."""
    path = Path(path)
    if not path.exists():
        raise DataError("document metadata file does not exist", path=path)
    out: dict[str, dict[str, str]] = {}
    with open_text(path) as fh:
        header = fh.readline().rstrip("\n\r").split("\t")
        if len(header) < 2:
            raise DataError("expected a tab-separated header: doc-id<TAB>field...", path=path, line=1)
        for lineno, line in enumerate(fh, start=2):
            if not line.strip():
                continue
            cols = line.rstrip("\n\r").split("\t")
            if len(cols) != len(header):
                raise DataError(f"expected {len(header)} columns, got {len(cols)}", path=path, line=lineno)
            out[cols[0]] = dict(zip(header[1:], cols[1:], strict=True))
    return out


def _round_robin(strata: Mapping[Any, list[Document]], n: int, rng: random.Random) -> list[Document]:
    pools = {key: list(docs) for key, docs in strata.items()}
    for docs in pools.values():
        rng.shuffle(docs)
    keys = sorted(pools, key=str)
    out: list[Document] = []
    index = 0
    while len(out) < n and any(pools.values()):
        for key in keys:
            if index < len(pools[key]):
                out.append(pools[key][index])
                if len(out) == n:
                    break
        index += 1
        if all(index >= len(pools[k]) for k in keys):
            break
    return out


def sample_passages(
    corpus: Mapping[str, Document] | Sequence[Document],
    n: int | None = None,
    *,
    strategy: str = "random",
    seed: int = 0,
    field: str | None = None,
    doc_meta: Mapping[str, Mapping[str, Any]] | None = None,
    length_bins: int = 4,
    min_chars: int = 0,
    max_chars: int | None = None,
) -> list[Document]:
    """Pick up to ``n`` passages (all when ``None``) in a seeded order.

    Args:
        strategy: ``random``; ``stratified``: balanced round-robin over the values of ``field``
            (read from ``Document.meta`` or ``doc_meta``), so small strata are not drowned out;
            ``length``: balanced over ``length_bins`` length quantiles.
        min_chars, max_chars: passages outside these bounds (title + text) are never picked.

    Example:
        >>> picked = sample_passages(corpus, 200, strategy="stratified", field="source", seed=13)
    """
    docs = list(corpus.values()) if isinstance(corpus, Mapping) else list(corpus)
    if strategy not in STRATEGIES:
        raise DataError(f"unknown sampling strategy {strategy!r}; use one of {', '.join(STRATEGIES)}", field="sample")
    eligible = [d for d in docs if len(d.full_text()) >= min_chars and (max_chars is None or len(d.full_text()) <= max_chars)]
    if not eligible:
        raise DataError(f"no passage of the {len(docs)} is between {min_chars} and {max_chars} characters")
    eligible.sort(key=lambda d: d.id)  # a seeded pick must not depend on the corpus file's order
    rng = random.Random(seed)
    want = len(eligible) if n is None else min(n, len(eligible))
    if strategy == "random":
        rng.shuffle(eligible)
        return eligible[:want]
    if strategy == "stratified":
        if not field:
            raise DataError("stratified sampling needs a metadata field", field="stratify_field")
        strata: dict[Any, list[Document]] = defaultdict(list)
        missing = 0
        for d in eligible:
            value = (doc_meta or {}).get(d.id, {}).get(field, d.meta.get(field))
            if value is None:
                missing += 1
            strata[value if value is not None else "<none>"].append(d)
        if missing == len(eligible):
            raise DataError(f"no document has the metadata field {field!r}", field="stratify_field")
        return _round_robin(strata, want, rng)
    lengths = sorted(len(d.full_text()) for d in eligible)
    bins = max(1, length_bins)
    cuts = [lengths[min(len(lengths) - 1, (len(lengths) * i) // bins)] for i in range(1, bins)]
    by_bin: dict[int, list[Document]] = defaultdict(list)
    for d in eligible:
        size = len(d.full_text())
        by_bin[sum(size >= c for c in cuts)].append(d)
    return _round_robin(by_bin, want, rng)


def read_excluded_ids(source: str | Path | Sequence[str] | None, corpus: Mapping[str, Any]) -> set[str]:
    """The ids of ``generate.exclude_ids``: a file (one id per line, ``#`` comments) or a list.

    An id the corpus does not hold is an error naming the file and line: a typo would otherwise leave a
    passage in generation that the user believes is excluded.
    """
    if source is None:
        return set()
    entries: list[tuple[str, int | None]] = []
    where: str | None = None
    if isinstance(source, (str, Path)):
        path = Path(source)
        where = str(path)
        if not path.is_file():
            raise DataError("exclude_ids file does not exist", path=path, field="generate.exclude_ids")
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            doc_id = line.split("#", 1)[0].strip()
            if doc_id:
                entries.append((doc_id, lineno))
    elif isinstance(source, Sequence):
        entries = [(str(doc_id), None) for doc_id in source]
    else:
        raise DataError(f"must be a file path or a list of ids, got {type(source).__name__}", field="generate.exclude_ids")
    for doc_id, at in entries:
        if doc_id not in corpus:
            raise DataError(f"names unknown document {doc_id!r}", path=where, line=at, field="generate.exclude_ids")
    excluded = {doc_id for doc_id, _ in entries}
    logger.info("%d passages excluded from generation (generate.exclude_ids)", len(excluded))
    return excluded
