"""A persistent response cache, so rerunning a step makes zero calls for what it already has.

Keyed by model + messages + sampling parameters (never by endpoint or key), stored in
SQLite with WAL journaling and a busy timeout, so several processes (``generate`` and
``label`` in parallel, a rerun beside a running job) can share one file safely.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from synthrank.errors import DataError

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL
)
"""


_BUSY_TIMEOUT_S = 60.0


def _retry_while_locked(statement: Callable[[], object], timeout_s: float = _BUSY_TIMEOUT_S) -> None:
    """Run ``statement``, retrying with backoff while another connection holds the lock."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


class CacheError(DataError):
    """The response cache file cannot be used (corrupt, not a database, disk full, locked for good); names the file.

    Never turned into a cache miss or an empty cache: a run then stops with one line saying which file and what to
    do, rather than paying again for every answer or reading a damaged one.
    """


def _cache_error(path: Path, exc: sqlite3.Error, doing: str) -> CacheError:
    message = str(exc) or type(exc).__name__
    low = message.lower()
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        hint = (
            "the file is damaged or is not a synthrank response cache; move it aside or delete it to start a new "
            "one (its answers will be asked again), or point the run at another cache file"
        )
    elif "full" in low:
        hint = "no space left on its device; free some and rerun (answers already cached are kept)"
    else:
        hint = "check the file and its folder, or point the run at another cache file"
    return CacheError(f"LLM response cache unusable while {doing} ({message}): {hint}", path=path)


def cache_key(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of what determines a response (``None`` parameters dropped)."""
    clean = {k: v for k, v in sorted(params.items()) if v is not None}
    payload = json.dumps({"model": model, "messages": messages, "params": clean}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ResponseCache:
    """SQLite-backed ``key -> response`` store shared across runs and processes.

    Example:
        >>> cache = ResponseCache(tmp_path / "llm.sqlite")
        >>> key = cache_key("m", [{"role": "user", "content": "hi"}], {"temperature": 0})
        >>> cache.put(key, "m", {"messages": [...]}, {"text": "hello"})
        >>> cache.get(key)
        {'text': 'hello'}
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise _cache_error(self.path, exc, "opening it") from None
        try:
            self._conn.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_S * 1000)}")
            # Switching to WAL (and creating the table) takes an exclusive lock for which SQLite does not
            # always call the busy handler: two processes opening a new file at once get "database is locked"
            # at once. Retry those two statements until the other opener is done.
            _retry_while_locked(lambda: self._conn.execute("PRAGMA journal_mode=WAL"))
            self._conn.execute("PRAGMA synchronous=NORMAL")
            _retry_while_locked(lambda: self._conn.execute(_SCHEMA))
            # a file that holds some other table of this name is not a cache: refuse it, never misread it
            columns = {row[1] for row in self._conn.execute("PRAGMA table_info(responses)")}
        except sqlite3.Error as exc:
            self._conn.close()  # no handle left holding a lock on the damaged file
            raise _cache_error(self.path, exc, "opening it") from None
        if not {"key", "response"} <= columns:
            self._conn.close()
            raise CacheError(
                f"not a synthrank response cache (its 'responses' table has columns {sorted(columns)}); "
                "point the run at another cache file",
                path=self.path,
            )

    def _sql(self, doing: str, statement: Callable[[], T]) -> T:
        """Run ``statement`` under the lock; an SQLite error becomes a :class:`CacheError` naming the file."""
        with self._lock:
            try:
                return statement()
            except sqlite3.Error as exc:
                raise _cache_error(self.path, exc, doing) from None

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r})"

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored response, or ``None``; an unreadable entry (not a JSON object) is a miss, asked again.

        Raises:
            CacheError: the file is damaged (SQLite sees a malformed page), naming it.
        """
        row = self._sql(
            "reading it", lambda: self._conn.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        )
        if row is None:
            return None
        try:
            value = json.loads(row[0])
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None

    def put(self, key: str, model: str, request: dict[str, Any], response: dict[str, Any]) -> None:
        blob_req = json.dumps(request, ensure_ascii=False, sort_keys=True)
        blob_resp = json.dumps(response, ensure_ascii=False)
        self._sql(
            "writing to it",
            lambda: self._conn.execute(
                "INSERT OR REPLACE INTO responses (key, model, request, response, created) VALUES (?, ?, ?, ?, ?)",
                (key, model, blob_req, blob_resp, time.time()),
            ),
        )

    def __contains__(self, key: object) -> bool:
        return bool(
            self._sql(
                "reading it",
                lambda: self._conn.execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone() is not None,
            )
        )

    def __len__(self) -> int:
        return int(self._sql("reading it", lambda: self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]))

    def clear(self) -> None:
        self._sql("clearing it", lambda: self._conn.execute("DELETE FROM responses"))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
