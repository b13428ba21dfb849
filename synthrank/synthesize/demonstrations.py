"""The user's own example queries, shown to the LLM as earlier turns of the conversation (Promptagator's few-shot).

A small instruction model writes its own register whatever the prompt asks: told to write claims, or shown eight
real claims in the prompt, Qwen2.5-Coder-1.5B still wrote "What is the role of X in Y?" for 6 of 6 SciFact
passages. Shown the same kind of example as its *own earlier answers* (a passage, then the queries a searcher wrote
for it), it wrote claims for 5 of 6. So the ``demonstrated`` query type replays a few of the user's (query,
passage) pairs as user/assistant turns before each passage.

The file is JSON lines, one query per line: ``{"query": ..., "doc_id": ...}`` for a passage of the corpus, or
``{"query": ..., "text": ..., "title": ...}`` for a passage given inline (``title`` optional). Lines of one
passage are one demonstration; the first ``max_passages`` passages in file order are used. Demonstrated passages
are never generated for (their queries would be copied back), and an evaluation must leave the demonstrated
queries out, as it leaves out any query a setting was made from.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthrank.errors import DataError

logger = logging.getLogger(__name__)

FIELD = "generate.demonstrations"
DEMONSTRATION_PASSAGE_CHARS = 600
"""A demonstrated passage is cut to this many characters: the turns repeat in every call, so they cost prompt time
(llama.cpp reuses the shared prefix of consecutive calls, which these turns are)."""


@dataclass(frozen=True)
class Demonstration:
    """One demonstrated passage and the queries a searcher wrote for it."""

    title: str
    text: str
    queries: tuple[str, ...]
    doc_id: str | None = None


def read_demonstrations(
    path: str | Path, corpus: Mapping[str, Any] | None = None, *, max_passages: int = 3
) -> list[Demonstration]:
    """The first ``max_passages`` demonstrated passages of a JSON-lines file (see the module's docstring).

    Raises:
        DataError: a missing file, a line that is not a JSON object, a missing or empty ``query``, a line with
            neither ``doc_id`` nor ``text``, a ``doc_id`` the corpus does not hold, or a file with no line; each
            names the file, the line and the field.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("demonstrations file does not exist", path=path, field=FIELD)
    passages: dict[str, tuple[str, str, str | None]] = {}  # in file order
    passage: tuple[str, str, str | None]
    queries: dict[str, list[str]] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"not JSON: {exc.msg}", path=path, line=lineno, field=FIELD) from None
        if not isinstance(rec, dict):
            raise DataError("expected a JSON object", path=path, line=lineno, field=FIELD)
        query = rec.get("query")
        if not isinstance(query, str) or not query.strip():
            raise DataError("needs a non-empty string", path=path, line=lineno, field="query")
        doc_id, text = rec.get("doc_id"), rec.get("text")
        if doc_id is not None:
            doc_id = str(doc_id)
            if corpus is None or doc_id not in corpus:
                raise DataError(f"names unknown document {doc_id!r}", path=path, line=lineno, field="doc_id")
            doc = corpus[doc_id]
            key, passage = f"id:{doc_id}", (str(doc.title or ""), str(doc.text or ""), doc_id)
        elif isinstance(text, str) and text.strip():
            title = rec.get("title") or ""
            if not isinstance(title, str):
                raise DataError("must be a string", path=path, line=lineno, field="title")
            key, passage = f"text:{title}\n{text}", (title, text, None)
        else:
            raise DataError("needs a doc_id of the corpus or the passage's text", path=path, line=lineno,
                            field="doc_id")  # fmt: skip
        passages.setdefault(key, passage)
        queries.setdefault(key, []).append(" ".join(query.split()))
    if not passages:
        raise DataError("holds no demonstration", path=path, field=FIELD)
    picked = list(passages)[: max(1, max_passages)]
    out = [Demonstration(passages[k][0], passages[k][1], tuple(queries[k]), passages[k][2]) for k in picked]
    logger.info("%d demonstrated passages (%d queries) from %s", len(out), sum(len(d.queries) for d in out), path)
    return out
