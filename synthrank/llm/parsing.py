"""Getting JSON out of LLM text: extract, repair, validate; classify what cannot be saved.

Small local models wrap JSON in prose or code fences, leave trailing commas, use Python
literals, or stop mid-list when they hit ``max_tokens``. :func:`extract_json` repairs those;
what is left (a refusal, garbage, output cut too early to hold anything) raises
:class:`ParseError` with a ``kind`` the caller counts and skips instead of crashing.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from synthrank.errors import SynthrankError

ParseKind = Literal["refusal", "truncated", "garbage", "invalid", "empty"]
T = TypeVar("T")

_REFUSAL_RE = re.compile(
    r"^\W*(i'?m sorry|i am sorry|sorry,|i apologi[sz]e|i can(?:no|')t|i cannot|i am unable|i'm unable|"
    r"i won'?t|as an ai\b|i'm not able|i am not able|unfortunately,? i)",
    re.IGNORECASE,
)
_FENCE_RE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)(?:```|$)", re.DOTALL)
_TRAILING_COMMA_RE = re.compile(r",\s*([}\]])")
_SMART_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})


class ParseError(SynthrankError):
    """An LLM answer that holds no usable value; ``kind`` says why (refusal, truncated, garbage, invalid, empty)."""

    def __init__(self, kind: ParseKind, message: str, text: str = "") -> None:
        super().__init__(f"{kind}: {message}")
        self.kind: ParseKind = kind
        self.text = text[:500]


def is_refusal(text: str) -> bool:
    """True for answers that open by declining ("I'm sorry, but I can't ...")."""
    return bool(_REFUSAL_RE.match(text.strip()))


def _close_truncated(text: str) -> str | None:
    """Close a JSON value cut off mid-way: drop the dangling partial element, close the brackets."""
    stack: list[str] = []
    in_string = False
    escape = False
    cut, cut_stack = -1, []  # where to cut, and the brackets still open there
    for i, ch in enumerate(text):
        if in_string:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "{[":
            cut, cut_stack = i, list(stack)  # drop the container that opens here if it never completes
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]":
            if not stack:
                return None
            stack.pop()
            cut, cut_stack = i + 1, list(stack)
        elif ch == ",":
            cut, cut_stack = i, list(stack)
    if (not stack and not in_string) or cut <= 0:
        return None  # nothing to close, or nothing complete before the cut
    head = text[:cut].rstrip().rstrip(",").rstrip()
    if head.endswith(":") or not head:
        return None
    return head + "".join(reversed(cut_stack))


def _candidates(text: str) -> list[str]:
    text = text.translate(_SMART_QUOTES).strip()
    out: list[str] = []
    for match in _FENCE_RE.finditer(text):
        body = match.group(1).strip()
        if body:
            out.append(body)
    out.append(text)
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if starts:
        out.append(text[min(starts) :])
    return out


def _try_load(candidate: str) -> tuple[bool, Any, bool]:
    """(parsed?, value, repaired?): strict JSON first, then without trailing commas, then as a Python literal."""
    decoder = json.JSONDecoder()
    for n, attempt in enumerate((candidate, _TRAILING_COMMA_RE.sub(r"\1", candidate))):
        try:
            value, end = decoder.raw_decode(attempt)
            return True, value, n > 0 or bool(attempt[end:].strip())
        except json.JSONDecodeError:
            pass
    try:
        value = ast.literal_eval(_TRAILING_COMMA_RE.sub(r"\1", candidate))
        if isinstance(value, (dict, list)):
            return True, value, True
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        pass
    return False, None, False


def extract_json(text: str, *, truncated: bool = False) -> tuple[Any, bool]:
    """The JSON object or list in ``text`` and whether it had to be repaired.

    Tries, in order: the text as is, fenced code blocks, from the first bracket on (ignoring
    prose around it), without trailing commas, as a Python literal, and, for text that was
    cut off, with the dangling element dropped and the brackets closed.

    Raises:
        ParseError: ``empty``, ``refusal``, ``truncated`` or ``garbage``.
    """
    if text is None or not text.strip():
        raise ParseError("empty", "the model returned no text", text or "")
    stripped = text.strip()
    candidates = _candidates(stripped)
    for candidate in candidates:
        ok, value, repaired = _try_load(candidate)
        if ok and isinstance(value, (dict, list)):
            return value, repaired or candidate != stripped
    tail = candidates[-1]
    start = min((i for i in (tail.find("{"), tail.find("[")) if i >= 0), default=-1)
    if start >= 0:
        closed = _close_truncated(tail[start:])
        if closed is not None:
            ok, value, _ = _try_load(closed)
            if ok and isinstance(value, (dict, list)) and value:
                return value, True
    if is_refusal(stripped):
        raise ParseError("refusal", "the model declined to answer", text)
    if truncated:
        raise ParseError("truncated", "output was cut off (max_tokens) before any usable value", text)
    raise ParseError("garbage", "no JSON object or list found in the answer", text)


def parse_json(text: str, validate: Callable[[Any], T], *, truncated: bool = False) -> tuple[T, bool]:
    """:func:`extract_json` then ``validate`` (which raises ``ValueError``/``KeyError``/``TypeError`` on bad shape)."""
    value, repaired = extract_json(text, truncated=truncated)
    try:
        return validate(value), repaired
    except (ValueError, KeyError, TypeError) as exc:
        raise ParseError("invalid", f"JSON of the wrong shape: {exc}", text) from None
