"""LLMClient against the fault-injection server: every fault path, retries, Retry-After, cache, keys."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from synthrank.llm import LLMAuthError, LLMCallError, LLMClient, LLMConfig, LLMRequest, ResponseCache
from synthrank.llm.client import _retry_after_seconds
from tests.fake_openai_server import FakeOpenAIServer, Fault

SECRET = "sk-test-SECRET-do-not-leak-123"


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


class Sleeps:
    """Records the delays the client asks for, and waits only a token amount."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


def make_client(server: FakeOpenAIServer, tmp_path: Path | None = None, **overrides: object) -> tuple[LLMClient, Sleeps]:
    values: dict[str, object] = {"model": "fake-model", "base_url": server.base_url, "max_retries": 3, "timeout": 5.0}
    values.update(overrides)
    cfg = LLMConfig(**values)  # type: ignore[arg-type]
    cache = ResponseCache(tmp_path / "cache.sqlite") if tmp_path is not None else None
    sleeps = Sleeps()
    return LLMClient(cfg, cache=cache, sleep=sleeps), sleeps


def ask(text: str = "hello", **params: object) -> LLMRequest:
    return LLMRequest.chat([{"role": "user", "content": text}], **params)  # type: ignore[arg-type]


def test_ok_call_counts_usage(server: FakeOpenAIServer) -> None:
    server.script([Fault.ok("hi there")])
    client, _ = make_client(server)
    with client:
        out = client.complete(ask())
    assert out.text == "hi there"
    assert out.finish_reason == "stop"
    assert not out.cached
    assert client.usage.calls == 1
    assert client.usage.prompt_tokens == 10
    assert server.requests[0]["max_tokens"] == 256
    assert server.requests[0]["messages"] == [{"role": "user", "content": "hello"}]


def test_429_honours_retry_after_then_succeeds(server: FakeOpenAIServer) -> None:
    server.script([Fault.status_code(429, retry_after="7"), Fault.status_code(429, retry_after_ms="250"), Fault.ok("done")])
    client, sleeps = make_client(server)
    with client:
        out = client.complete(ask())
    assert out.text == "done"
    assert sleeps.delays == [7.0, 0.25]
    assert client.usage.retries == 2
    assert server.calls == 3


def test_retry_after_is_capped(server: FakeOpenAIServer) -> None:
    server.script([Fault.status_code(429, retry_after="100000"), Fault.ok("done")])
    client, sleeps = make_client(server, max_retry_after=30.0)
    with client:
        client.complete(ask())
    assert sleeps.delays == [30.0]


def test_500_backs_off_exponentially_with_jitter(server: FakeOpenAIServer) -> None:
    server.script([Fault.status_code(500), Fault.status_code(502), Fault.status_code(503), Fault.ok("up again")])
    client, sleeps = make_client(server, backoff_base=1.0, backoff_max=60.0)
    with client:
        assert client.complete(ask()).text == "up again"
    assert len(sleeps.delays) == 3
    for attempt, delay in enumerate(sleeps.delays):
        cap = 2**attempt
        assert cap / 2 <= delay <= cap


def test_retries_exhausted_raises_and_counts(server: FakeOpenAIServer) -> None:
    server.script([Fault.status_code(500)] * 4)
    client, _ = make_client(server, max_retries=3)
    with client, pytest.raises(LLMCallError) as info:
        client.complete(ask())
    assert info.value.kind == "server"
    assert server.calls == 4
    assert client.usage.failures["server"] == 1


def test_timeout_is_retried(server: FakeOpenAIServer) -> None:
    server.script([Fault.sleep(2.0), Fault.ok("fast")])
    client, sleeps = make_client(server, timeout=0.5)
    with client:
        assert client.complete(ask()).text == "fast"
    assert len(sleeps.delays) == 1


def test_timeout_exhausted_is_a_timeout_failure(server: FakeOpenAIServer) -> None:
    server.script([Fault.sleep(1.0), Fault.sleep(1.0)])
    client, _ = make_client(server, timeout=0.3, max_retries=1)
    with client, pytest.raises(LLMCallError) as info:
        client.complete(ask())
    assert info.value.kind == "timeout"


def test_malformed_body_and_dropped_connection_are_retried(server: FakeOpenAIServer) -> None:
    server.script([Fault.malformed(), Fault.drop(), Fault.ok("fine")])
    client, sleeps = make_client(server)
    with client:
        assert client.complete(ask()).text == "fine"
    assert len(sleeps.delays) == 2


def test_bad_request_is_not_retried(server: FakeOpenAIServer) -> None:
    server.script([Fault.status_code(400)])
    client, sleeps = make_client(server)
    with client, pytest.raises(LLMCallError) as info:
        client.complete(ask())
    assert info.value.kind == "bad_request"
    assert server.calls == 1 and sleeps.delays == []


def test_auth_error_stops_the_batch(server: FakeOpenAIServer) -> None:
    server.script([Fault.status_code(401)])
    client, _ = make_client(server)
    with client, pytest.raises(LLMAuthError):
        client.complete_many([ask("a")])


def test_complete_many_keeps_order_and_survives_failures(server: FakeOpenAIServer) -> None:
    def responder(body: dict) -> Fault:
        text = body["messages"][0]["content"]
        return Fault.status_code(500) if text == "bad" else Fault.ok(f"answer to {text}")

    server.responder = responder
    client, _ = make_client(server, max_retries=1, max_concurrency=3)
    done: list[int] = []
    with client:
        results = client.complete_many([ask("a"), ask("bad"), ask("c")], on_done=lambda i, r: done.append(i))
    assert [getattr(r, "text", None) for r in results] == ["answer to a", None, "answer to c"]
    assert isinstance(results[1], LLMCallError)
    assert sorted(done) == [0, 1, 2]


def test_concurrency_limit_is_respected(server: FakeOpenAIServer) -> None:
    import threading

    active = 0
    peak = 0
    lock = threading.Lock()

    def responder(body: dict) -> Fault:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        import time

        time.sleep(0.1)
        with lock:
            active -= 1
        return Fault.ok("x")

    server.responder = responder
    client, _ = make_client(server, max_concurrency=2)
    with client:
        client.complete_many([ask(str(i)) for i in range(6)])
    assert peak == 2


def test_cache_makes_rerun_free(server: FakeOpenAIServer, tmp_path: Path) -> None:
    server.responder = lambda body: Fault.ok("cached answer")
    client, _ = make_client(server, tmp_path)
    with client:
        first = client.complete_many([ask("a"), ask("b")])
    assert server.calls == 2
    client2, _ = make_client(server, tmp_path)
    with client2:
        second = client2.complete_many([ask("a"), ask("b")])
    assert server.calls == 2, "a rerun must make zero calls"
    assert client2.usage.cache_hits == 2 and client2.usage.calls == 0
    assert [c.text for c in second] == [c.text for c in first]  # type: ignore[union-attr]
    assert all(c.cached for c in second)  # type: ignore[union-attr]


def test_cache_key_depends_on_sampling_params_and_sample_index(server: FakeOpenAIServer, tmp_path: Path) -> None:
    server.responder = lambda body: Fault.ok("x")
    client, _ = make_client(server, tmp_path)
    with client:
        client.complete_many([ask("a"), ask("a", temperature=0.7), ask("a", temperature=0.7, sample=1), ask("a")])
    assert server.calls == 3


def test_failures_are_not_cached(server: FakeOpenAIServer, tmp_path: Path) -> None:
    server.script([Fault.status_code(500), Fault.ok("later")])
    client, _ = make_client(server, tmp_path, max_retries=0)
    with client, pytest.raises(LLMCallError):
        client.complete(ask())
    client2, _ = make_client(server, tmp_path, max_retries=0)
    with client2:
        assert client2.complete(ask()).text == "later"


def test_api_key_is_sent_but_never_logged_cached_or_serialised(
    server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SYNTHRANK_TEST_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    server.script([Fault.status_code(503), Fault.ok("ok")])
    client, _ = make_client(server, tmp_path, api_key_env="SYNTHRANK_TEST_KEY")
    with client:
        client.complete(ask())
        text_repr = repr(client) + repr(client.config) + str(client.config.to_dict()) + repr(client.usage)
    assert server.headers_seen[-1]["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in text_repr
    assert SECRET not in caplog.text
    raw = (tmp_path / "cache.sqlite").read_bytes()
    for extra in tmp_path.glob("cache.sqlite*"):
        raw += extra.read_bytes()
    assert SECRET.encode() not in raw


def test_api_key_from_callable_or_secret_object(server: FakeOpenAIServer) -> None:
    class FakeSecret:
        def resolve_value(self) -> str:
            return "secret-from-object"

    server.responder = lambda body: Fault.ok("x")
    cfg = LLMConfig(model="fake-model", base_url=server.base_url)
    with LLMClient(cfg, api_key=FakeSecret()) as client:
        client.complete(ask("1"))
    with LLMClient(cfg, api_key=lambda: "secret-from-callable") as client:
        client.complete(ask("2"))
    assert [h["authorization"] for h in server.headers_seen] == ["Bearer secret-from-object", "Bearer secret-from-callable"]


def test_config_rejects_a_key_in_place_of_a_variable_name() -> None:
    from synthrank.errors import DataError

    with pytest.raises(DataError, match="api_key_env"):
        LLMConfig(base_url="http://x", api_key_env="sk-abc-123")


def test_config_round_trip() -> None:
    cfg = LLMConfig(model="m", base_url="http://127.0.0.1:1/v1", prices={"m": {"prompt": 1.0, "completion": 2.0}})
    assert LLMConfig.from_dict(cfg.to_dict()) == cfg
    from synthrank.errors import DataError

    with pytest.raises(DataError, match="unknown LLM settings: bogus"):
        LLMConfig.from_dict({"bogus": 1})


def test_logprobs_are_kept(server: FakeOpenAIServer) -> None:
    from tests.fake_openai_server import yes_no_logprobs

    server.script([Fault.ok("Yes", logprobs=yes_no_logprobs(0.8))])
    client, _ = make_client(server)
    with client:
        out = client.complete(ask(logprobs=True, top_logprobs=5, max_tokens=1))
    assert server.requests[0]["logprobs"] is True and server.requests[0]["top_logprobs"] == 5
    assert out.logprobs is not None
    top = dict((t, lp) for t, lp in out.logprobs[0]["top"])
    assert top["Yes"] == pytest.approx(-0.2231, abs=1e-3)


def test_prices_give_cost(server: FakeOpenAIServer) -> None:
    server.responder = lambda body: Fault.ok("one two three")
    client, _ = make_client(server, prices={"fake-model": {"prompt": 1.0, "completion": 10.0}})
    with client:
        client.complete(ask())
    assert client.usage.cost == pytest.approx((10 * 1.0 + 3 * 10.0) / 1e6)


def test_retry_after_parsing() -> None:
    assert _retry_after_seconds({"retry-after": "3"}) == 3.0
    assert _retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    assert _retry_after_seconds({"retry-after": "garbage"}) is None
    assert _retry_after_seconds({}) is None
    import email.utils
    import time

    date = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 <= (_retry_after_seconds({"retry-after": date}) or 0) <= 61


def test_closed_client_refuses_calls(server: FakeOpenAIServer) -> None:
    client, _ = make_client(server)
    client.close()
    client.close()
    from synthrank.errors import SynthrankError

    with pytest.raises(SynthrankError, match="closed"):
        client.complete(ask())


def test_async_api_from_callers_loop(server: FakeOpenAIServer) -> None:
    server.responder = lambda body: Fault.ok("async ok")
    client, _ = make_client(server)

    async def main() -> list[str]:
        a = await client.acomplete(ask("x"))
        b = await client.acomplete_many([ask("y"), ask("z")])
        return [a.text, *[r.text for r in b]]  # type: ignore[union-attr]

    try:
        assert asyncio.run(main()) == ["async ok"] * 3
    finally:
        client.close()


def test_async_api_across_successive_event_loops(server: FakeOpenAIServer) -> None:
    server.responder = lambda body: Fault.ok("again")
    client, _ = make_client(server)
    try:
        for i in range(3):  # each asyncio.run makes a new loop; the client must not reuse a dead one
            assert asyncio.run(client.acomplete(ask(f"loop {i}"))).text == "again"
        assert client.complete(ask("sync")).text == "again"
    finally:
        client.close()


def test_ctrl_c_during_calls_cancels_them_and_closes_without_asyncio_noise(
    server: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Ctrl-C while ``complete_many`` waits: the calls in flight and queued are cancelled and awaited before the
    HTTP client closes. Caught (``close`` not cancelling the loop's tasks and ``_run`` not cancelling its future):
    "Task was destroyed but it is pending!" logged by asyncio (the integration test of `synthrank run` saw "Task
    exception was never retrieved" from the same fault)."""
    import gc
    import signal
    import threading
    import time

    server.script([Fault.sleep(2.0)] * 4)
    client, _ = make_client(server, max_concurrency=1, max_retries=0)
    main_thread = threading.main_thread().ident
    assert threading.get_ident() == main_thread, "a signal interrupts only the main thread's wait"
    timer = threading.Timer(0.5, signal.pthread_kill, (main_thread, signal.SIGINT))
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="asyncio"), pytest.raises(KeyboardInterrupt), client:
        timer.start()
        client.complete_many([ask(f"q{i}") for i in range(4)])
    gc.collect()
    time.sleep(0.2)
    gc.collect()
    assert time.monotonic() - started < 4.0  # the queued calls were not sent after the interrupt
    noise = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert noise == []
    assert server.calls <= 2
