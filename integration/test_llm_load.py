"""The LLM client under load (#21 item 6): hundreds of requests in flight through the fault server in front of the
real llama.cpp server (SmolLM2-135M, 8 answer tokens), a fixed share of them answered 429 or 500 first.

Checked: every request answered exactly once, by the answer the real server gave to that very prompt (the proxy
records each forwarded request with the server's answer; duplicates in the batch share one call); the most requests
held at once by the proxy; resident memory of this process (client, event loop, proxy threads) while the batch runs;
usage totals exact against the proxy's own counts (calls, retries, tokens, cache hits), and a second pass served
wholly from the cache.

Measured (SmolLM2-135M Q4_1, llama.cpp, 2 threads on a busy 2-core machine): 336 requests (320 prompts + 16
duplicates), 190 faults (107 x 429 with Retry-After 0.2 s, 83 x 500), answered in 85 s with 320 held by the proxy at
once, peak RSS +29 MB; 127 of 320 answers echo their number (SmolLM2 is no copier: the answers are matched to their
requests through the proxy's record, not by content). Whole test ~100 s.

Mutations seen to fail it: ``acomplete``'s in-flight sharing removed (``pending = None``: each duplicate was asked
again, 336 calls for 320 prompts, cache hits 336 instead of 352); ``Usage.record_retry`` skipped for 429s (retries
83 of 190); ``Retry-After`` ignored (``retry_after = None``: none of the 107 429s waited the 0.2 s it asked).
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from integration import llm_fixtures
from synthrank.llm import Completion, LLMCallError, LLMClient, LLMConfig, LLMRequest, ResponseCache
from synthrank.llm.local import LocalLlamaServer
from tests.fake_openai_server import FakeOpenAIServer, Fault

pytestmark = [pytest.mark.llm_server, pytest.mark.slow]

llama_server = llm_fixtures.llama_server

UNIQUE = 320  # prompts; with the duplicates below, 336 requests in one batch
DUPLICATES = 16  # the first 16 prompts asked a second time in the same batch
MIN_IN_FLIGHT = 200  # requests the proxy must hold at once
RETRY_AFTER = "0.2"
MAX_RSS_GROWTH_MB = 200  # generous: measured +29 MB at peak


def _code(i: int) -> int:
    return 100_000 + (i * 7919) % 900_000  # unique six-digit numbers


def _prompt(i: int) -> str:
    return f"Repeat this number exactly, digits only: {_code(i)}"


def _planned_faults(i: int) -> list[Fault]:
    """The faults prompt ``i`` meets before it is forwarded: a fixed share, some twice or three times."""
    plan: list[Fault] = []
    if i % 3 == 0:
        plan.append(Fault.status_code(429, retry_after=RETRY_AFTER))
    if i % 5 == 0:
        plan.append(Fault.status_code(500))
    if i % 17 == 0:
        plan.append(Fault.status_code(500))
    return plan


class RssSampler:
    """Peak resident memory of this process while it runs (every 50 ms)."""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self.start = self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_hundreds_of_requests_through_429s_and_500s_each_answered_once_by_its_own_answer(
    llama_server: LocalLlamaServer, tmp_path: Path
) -> None:
    pytest.importorskip("psutil")
    attempts: Counter[int] = Counter()
    lock = threading.Lock()

    def responder(body: dict[str, Any]) -> Fault:
        match = re.search(r"(\d{6})$", body["messages"][-1]["content"])
        if match is None:  # the warm-up call
            return Fault.forward()
        i = index_of[int(match.group(1))]
        with lock:
            attempts[i] += 1
            attempt = attempts[i]
        plan = _planned_faults(i)
        return plan[attempt - 1] if attempt <= len(plan) else Fault.forward()

    index_of = {_code(i): i for i in range(UNIQUE)}
    assert len(index_of) == UNIQUE
    requests = [LLMRequest.chat([{"role": "user", "content": _prompt(i)}], max_tokens=8, temperature=0.0)
                for i in [*range(UNIQUE), *range(DUPLICATES)]]  # fmt: skip
    planned = sum(len(_planned_faults(i)) for i in range(UNIQUE))
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        await asyncio.sleep(seconds)

    done: Counter[int] = Counter()
    with FakeOpenAIServer(model=llama_server.alias, responder=responder, upstream=llama_server.base_url) as proxy:
        config = LLMConfig(model=llama_server.alias, base_url=proxy.base_url, max_concurrency=len(requests),
                           timeout=900, max_retries=3, backoff_base=0.1, backoff_max=1.0)  # fmt: skip
        with LLMClient(config, cache=ResponseCache(tmp_path / "cache.sqlite"), sleep=sleep) as client:
            client.complete(LLMRequest.chat([{"role": "user", "content": "Say hi."}], max_tokens=2))  # warm
            warm = (client.usage.calls, client.usage.prompt_tokens, client.usage.completion_tokens)
            forwarded_before = len(proxy.forwarded)
            began = time.perf_counter()
            with RssSampler() as rss:
                results = client.complete_many(requests, on_done=lambda i, r: done.update([i]))
            seconds = time.perf_counter() - began
            usage = client.usage
            # a second pass: every answer from the cache, nothing reaches the proxy
            requests_seen = len(proxy.requests)
            again = client.complete_many(requests)
            assert len(proxy.requests) == requests_seen
            assert usage.cache_hits == DUPLICATES + len(requests)
            assert [a.text for a in again] == [r.text for r in results]  # type: ignore[union-attr]
        forwarded = proxy.forwarded[forwarded_before:]
        max_in_flight = proxy.max_in_flight

    # every request answered, once, in request order, by the real server's answer to that very prompt
    assert not [r for r in results if isinstance(r, LLMCallError)], [r for r in results if isinstance(r, LLMCallError)][:3]
    assert done == Counter(range(len(requests))), "on_done must be called exactly once per request"
    answer_to: dict[str, dict[str, Any]] = {}
    for body, status, answer in forwarded:
        assert status == 200, answer
        prompt = body["messages"][-1]["content"]
        assert prompt not in answer_to, f"asked twice: {prompt}"
        answer_to[prompt] = answer
    assert len(answer_to) == UNIQUE
    for request, result in zip(requests, results, strict=True):
        assert isinstance(result, Completion)
        answer = answer_to[request.messages[-1][1]]
        assert result.text == (answer["choices"][0]["message"]["content"] or "")
        assert (result.prompt_tokens, result.completion_tokens) == (
            answer["usage"]["prompt_tokens"], answer["usage"]["completion_tokens"]
        )  # fmt: skip
    echoed = sum(str(_code(i)) in (results[i].text or "") for i in range(UNIQUE))  # type: ignore[union-attr]

    # every planned fault met once, each one retry; the 429s waited what Retry-After said
    assert attempts == Counter({i: len(_planned_faults(i)) + 1 for i in range(UNIQUE)})
    assert usage.retries == planned and usage.failures == {}
    assert delays.count(float(RETRY_AFTER)) == sum(1 for i in range(UNIQUE) if i % 3 == 0)
    # usage exact: one call per unique prompt (the duplicates shared it), tokens as the server counted them
    assert usage.calls - warm[0] == UNIQUE
    assert usage.prompt_tokens - warm[1] == sum(a["usage"]["prompt_tokens"] for a in answer_to.values())
    assert usage.completion_tokens - warm[2] == sum(a["usage"]["completion_tokens"] for a in answer_to.values())

    # load and memory
    assert max_in_flight >= MIN_IN_FLIGHT, f"only {max_in_flight} requests were in flight at once"
    growth_mb = (rss.peak - rss.start) / 2**20
    print(
        f"{len(requests)} requests ({UNIQUE} unique, {planned} faults) in {seconds:.1f}s; {max_in_flight} in flight "
        f"at most; RSS +{growth_mb:.1f} MB at peak; {echoed}/{UNIQUE} answers echo their number"
    )
    assert growth_mb < MAX_RSS_GROWTH_MB, f"resident memory grew {growth_mb:.0f} MB under load"
