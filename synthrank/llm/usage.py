"""Usage accounting: what a run cost in calls, tokens, time and money, and what the cache saved.

A :class:`Usage` is shared by every call of one client (thread-safe), shown live in the
progress bars, and written beside the step's results.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthrank.errors import DataError


@dataclass
class PriceTable:
    """USD per million tokens, per model: ``{"gpt-4o-mini": {"prompt": 0.15, "completion": 0.6}}``.

    Models missing from the table cost 0 (a local model), so a run never fails for lack of a price.
    """

    prices: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for model, entry in self.prices.items():
            if not isinstance(entry, dict) or not set(entry) <= {"prompt", "completion"}:
                raise DataError(f"price of {model!r} must be {{'prompt': x, 'completion': y}} (USD per 1M tokens)", field=model)
            for kind, value in entry.items():
                if not isinstance(value, (int, float)) or value < 0:
                    raise DataError(f"price must be a non-negative number, got {value!r}", field=f"{model}.{kind}")

    @classmethod
    def from_file(cls, path: str | Path) -> PriceTable:
        """Read a JSON or YAML mapping ``model -> {prompt, completion}``."""
        path = Path(path)
        if not path.exists():
            raise DataError("price table does not exist", path=path)
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                data = json.loads(text)
        except Exception as exc:
            raise DataError(f"unreadable price table: {exc}", path=path) from None
        if not isinstance(data, dict):
            raise DataError("a price table maps model names to {prompt, completion}", path=path)
        try:
            return cls(prices=data)
        except DataError as exc:
            raise DataError(str(exc), path=path) from None

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        entry = self.prices.get(model)
        if entry is None:
            return 0.0
        return (prompt_tokens * entry.get("prompt", 0.0) + completion_tokens * entry.get("completion", 0.0)) / 1e6


class Usage:
    """Counters of one client: calls, tokens, cache hits, retries, failures, wall time and cost.

    ``calls``/``prompt_tokens``/``completion_tokens``/``cost`` count what the endpoint really did;
    tokens served from the cache are counted apart (``cached_*``) and cost nothing.
    """

    def __init__(self, prices: PriceTable | None = None) -> None:
        self.prices = prices or PriceTable()
        self._lock = threading.Lock()
        self.calls = 0
        self.cache_hits = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cached_prompt_tokens = 0
        self.cached_completion_tokens = 0
        self.retries = 0
        self.failures: Counter[str] = Counter()
        self.parse_failures: Counter[str] = Counter()
        self.cost = 0.0
        self.call_seconds = 0.0
        self._started = time.perf_counter()

    def record_call(self, model: str, prompt_tokens: int, completion_tokens: int, seconds: float) -> None:
        with self._lock:
            self.calls += 1
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            self.call_seconds += seconds
            self.cost += self.prices.cost(model, prompt_tokens, completion_tokens)

    def record_cache_hit(self, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            self.cache_hits += 1
            self.cached_prompt_tokens += prompt_tokens
            self.cached_completion_tokens += completion_tokens

    def record_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def record_failure(self, kind: str) -> None:
        with self._lock:
            self.failures[kind] += 1

    def record_parse_failure(self, kind: str) -> None:
        with self._lock:
            self.parse_failures[kind] += 1

    @property
    def requests(self) -> int:
        """Requests answered, from the endpoint or the cache."""
        return self.calls + self.cache_hits

    @property
    def cache_hit_rate(self) -> float:
        return self.cache_hits / self.requests if self.requests else 0.0

    @property
    def wall_time(self) -> float:
        return time.perf_counter() - self._started

    @property
    def total_tokens(self) -> int:
        """Tokens of every answered request, fresh or cached (what a token budget counts)."""
        return self.prompt_tokens + self.completion_tokens + self.cached_prompt_tokens + self.cached_completion_tokens

    def postfix(self) -> dict[str, Any]:
        """Short live numbers for a progress bar."""
        out: dict[str, Any] = {"calls": self.calls, "cache": f"{self.cache_hit_rate:.0%}"}
        if self.cost:
            out["cost"] = f"${self.cost:.4f}"
        failed = sum(self.failures.values()) + sum(self.parse_failures.values())
        if failed:
            out["failed"] = failed
        return out

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": self.calls,
                "cache_hits": self.cache_hits,
                "cache_hit_rate": round(self.cache_hit_rate, 4),
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "cached_prompt_tokens": self.cached_prompt_tokens,
                "cached_completion_tokens": self.cached_completion_tokens,
                "retries": self.retries,
                "failures": dict(self.failures),
                "parse_failures": dict(self.parse_failures),
                "cost_usd": round(self.cost, 6),
                "call_seconds": round(self.call_seconds, 3),
                "wall_seconds": round(self.wall_time, 3),
            }

    def __repr__(self) -> str:
        return f"Usage({self.to_dict()})"
