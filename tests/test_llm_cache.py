"""Response cache and usage accounting."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from synthrank.errors import DataError
from synthrank.llm import PriceTable, ResponseCache, Usage, cache_key
from synthrank.llm.client import Completion, LLMRequest

MSG = [{"role": "user", "content": "hi"}]


def test_key_covers_model_messages_and_params_only() -> None:
    base = cache_key("m", MSG, {"temperature": 0.0, "max_tokens": 5})
    assert base == cache_key("m", MSG, {"max_tokens": 5, "temperature": 0.0, "top_p": None})  # order, None-agnostic
    assert base != cache_key("m2", MSG, {"temperature": 0.0, "max_tokens": 5})
    assert base != cache_key("m", [{"role": "user", "content": "hi!"}], {"temperature": 0.0, "max_tokens": 5})
    assert base != cache_key("m", MSG, {"temperature": 0.7, "max_tokens": 5})


def test_request_params_include_the_sample_index() -> None:
    a = LLMRequest.chat(MSG, temperature=0.8)
    b = LLMRequest.chat(MSG, temperature=0.8, sample=1)
    assert a.params()["sample"] == 0 and b.params()["sample"] == 1
    assert cache_key("m", a.message_dicts(), a.params()) != cache_key("m", b.message_dicts(), b.params())


def test_put_get_persist(tmp_path: Path) -> None:
    path = tmp_path / "c" / "cache.sqlite"
    cache = ResponseCache(path)
    comp = Completion(text="hello", finish_reason="stop", model="m", prompt_tokens=3, completion_tokens=1,
                      logprobs=[{"token": "hello", "logprob": -0.1, "top": [["hello", -0.1]]}])
    cache.put("k", "m", {"messages": MSG}, comp.to_json())
    cache.close()
    again = ResponseCache(path)
    got = again.get("k")
    assert got is not None and Completion.from_json(got, cached=True) == Completion(**{**comp.__dict__, "cached": True})
    assert "k" in again and "nope" not in again and len(again) == 1
    assert again.get("nope") is None
    again.clear()
    assert len(again) == 0
    again.close()


def _writer(path: str, start: int, barrier: Any) -> None:
    barrier.wait()  # every process opens the new file at the same moment: the race CI once lost
    cache = ResponseCache(path)
    for i in range(start, start + 100):
        cache.put(f"k{i}", "m", {"i": i}, {"text": str(i)})
    cache.close()


def test_safe_across_processes(tmp_path: Path) -> None:
    """Several processes creating one cache file at once all succeed (WAL switch retried while locked)."""
    ctx = multiprocessing.get_context("spawn")
    for trial in range(3):
        path = str(tmp_path / f"shared{trial}.sqlite")
        barrier = ctx.Barrier(4)
        procs = [ctx.Process(target=_writer, args=(path, s, barrier)) for s in (0, 100, 200, 300)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        cache = ResponseCache(path)
        assert len(cache) == 400
        assert cache.get("k399") == {"text": "399"}
        cache.close()


def test_usage_counts_and_costs() -> None:
    usage = Usage(PriceTable({"m": {"prompt": 2.0, "completion": 8.0}}))
    usage.record_call("m", 1000, 100, 0.5)
    usage.record_call("other", 1000, 100, 0.5)  # no price: free
    usage.record_cache_hit(1000, 100)
    usage.record_retry()
    usage.record_failure("timeout")
    usage.record_parse_failure("refusal")
    d = usage.to_dict()
    assert d["calls"] == 2 and d["cache_hits"] == 1
    assert d["cache_hit_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert d["cost_usd"] == pytest.approx((1000 * 2 + 100 * 8) / 1e6)
    assert d["failures"] == {"timeout": 1} and d["parse_failures"] == {"refusal": 1}
    assert usage.total_tokens == 3300
    assert usage.postfix()["cache"] == "33%"


def test_price_table_files(tmp_path: Path) -> None:
    j = tmp_path / "p.json"
    j.write_text(json.dumps({"gpt-x": {"prompt": 0.15, "completion": 0.6}}))
    assert PriceTable.from_file(j).cost("gpt-x", 1_000_000, 0) == pytest.approx(0.15)
    y = tmp_path / "p.yaml"
    y.write_text("gpt-x:\n  prompt: 1\n  completion: -2\n")
    with pytest.raises(DataError, match=r"p.yaml.*non-negative"):
        PriceTable.from_file(y)
    with pytest.raises(DataError, match="does not exist"):
        PriceTable.from_file(tmp_path / "none.json")


# ---------------------------------------------------------------------------- a damaged cache file (#21 item 5)
# Mutations seen to fail these tests: ResponseCache.__init__ / _sql without their `except sqlite3.Error` (a raw
# sqlite3.DatabaseError "file is not a database" / "database disk image is malformed" that names no file); `get`
# turning the error into a miss (`return None`: the damaged file is silently used, then written to).


def _filled_cache(path: Path, n: int = 300) -> bytes:
    cache = ResponseCache(path)
    for i in range(n):
        cache.put(f"k{i}", "m", {"i": i}, {"text": f"answer {i} " * 20})
    cache.close()
    for side in path.parent.glob(path.name + "-*"):  # WAL checkpointed into the file on close
        side.unlink()
    return path.read_bytes()


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: b"this is not a database\n" * 40, id="overwritten-with-text"),
        pytest.param(lambda data: bytes(range(256)) * (len(data) // 256), id="overwritten-with-garbage"),
        pytest.param(lambda data: data[: len(data) // 2], id="truncated-to-half"),
        pytest.param(lambda data: data[:100], id="truncated-in-the-header"),
    ],
)
def test_a_damaged_cache_file_is_refused_at_open_naming_it(tmp_path: Path, damage: Any) -> None:
    from synthrank.llm import CacheError

    path = tmp_path / "llm-cache.sqlite"
    path.write_bytes(damage(_filled_cache(path)))
    with pytest.raises(CacheError) as caught:
        ResponseCache(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    assert "delete it" in message
    assert isinstance(caught.value, DataError)  # the CLI's clean one-line "Error: ..." for synthrank errors
    # no handle was left open on the damaged file: a new cache at the same path (the user deleted it) just works
    path.unlink()
    fresh = ResponseCache(path)
    fresh.put("k", "m", {}, {"text": "x"})
    assert fresh.get("k") == {"text": "x"}
    fresh.close()


def test_a_page_damaged_inside_the_file_fails_the_read_naming_the_file_never_a_wrong_answer(tmp_path: Path) -> None:
    """The header and schema are intact, so the file opens; reading an entry on a damaged page raises, every
    entry that is read back is the one stored, and nothing is written to the damaged file."""
    from synthrank.llm import CacheError

    path = tmp_path / "llm-cache.sqlite"
    data = _filled_cache(path)
    page = 4096
    path.write_bytes(data[: 2 * page] + bytes(2 * page) + data[4 * page :])  # pages 3 and 4 zeroed
    cache = ResponseCache(path)
    errors = 0
    for i in range(300):
        try:
            got = cache.get(f"k{i}")
        except CacheError as exc:
            assert str(path) in str(exc) and "malformed" in str(exc)
            errors += 1
            continue
        assert got is None or got == {"text": f"answer {i} " * 20}  # a miss or the right answer
    assert errors > 0, "zeroed pages went unnoticed"
    with pytest.raises(CacheError, match=r"llm-cache\.sqlite"):
        len(cache)
    cache.close()


def test_a_database_that_is_not_a_cache_is_refused(tmp_path: Path) -> None:
    import sqlite3

    from synthrank.llm import CacheError

    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE responses (id INTEGER, body TEXT)")
    with pytest.raises(CacheError, match="not a synthrank response cache"):
        ResponseCache(path)


def test_a_full_disk_while_writing_the_cache_is_a_cache_error_naming_it(tmp_path: Path) -> None:
    """SQLite's own "database or disk is full" (SQLITE_FULL), made real by a page budget on the connection."""
    from synthrank.llm import CacheError

    path = tmp_path / "llm-cache.sqlite"
    cache = ResponseCache(path)
    pages = cache._conn.execute("PRAGMA page_count").fetchone()[0]
    cache._conn.execute(f"PRAGMA max_page_count={pages + 2}")
    with pytest.raises(CacheError) as caught:
        for i in range(200):
            cache.put(f"k{i}", "m", {"i": i}, {"text": "x" * 2000})
    assert str(path) in str(caught.value) and "no space left" in str(caught.value)
    cache.close()
