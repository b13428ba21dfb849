"""The local server's last-position prompt logits give the answers and logprobs of llama-cpp-python's own.

Two real llama.cpp servers on the same GGUF: the default one (prompt logits only where read,
:mod:`synthrank.llm.prompt_logits`) and one started with ``SYNTHRANK_LLAMA_PROMPT_LOGITS=all``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import openai
import pytest

from integration import llm_fixtures
from integration.llm_fixtures import _start
from synthrank.label.prompts import binary_messages
from synthrank.llm.local import LocalLlamaServer

pytestmark = [pytest.mark.integration, pytest.mark.llm_server]

llama_server = llm_fixtures.llama_server

PASSAGES = [
    "High blood pressure is a common condition in which the long-term force of the blood against your "
    "artery walls is high enough that it may eventually cause health problems, such as heart disease.",
    "Glaucoma is a group of eye conditions that damage the optic nerve. The damage is often caused by an "
    "abnormally high pressure in your eye.",
    "Aspirin is used to reduce fever and relieve mild to moderate pain from conditions such as muscle aches, "
    "toothaches, common cold, and headaches.",
]


@pytest.fixture(scope="module")
def all_logits_server() -> Iterator[LocalLlamaServer]:
    """SmolLM2 with llama-cpp-python's own behaviour: logits for every prompt position."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SYNTHRANK_LLAMA_PROMPT_LOGITS", "all")
        server = _start("smollm2-135m", n_ctx=2048)
    try:
        yield server
    finally:
        server.close()


def _client(server: LocalLlamaServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


def _top(choice_logprobs: object) -> dict[str, float]:
    first = choice_logprobs.content[0]  # type: ignore[attr-defined]
    return {t.token: t.logprob for t in first.top_logprobs}


def test_judge_logprobs_match_the_all_positions_server(
    llama_server: LocalLlamaServer, all_logits_server: LocalLlamaServer
) -> None:
    """A one-token yes/no judgement with top-20 logprobs: the same token and the same log-probabilities."""
    marker = "SYNTHRANK_LLAMA_PROMPT_LOGITS: prompt logits only where a response reads them"
    assert marker in llama_server.log_tail(100_000)  # the default server runs patched...
    assert marker not in all_logits_server.log_tail(100_000)  # ...and the reference one does not
    fast, reference = _client(llama_server), _client(all_logits_server)
    for passage in PASSAGES:
        messages = binary_messages("what causes high blood pressure", passage)
        kw = {"messages": messages, "max_tokens": 1, "temperature": 0.0, "logprobs": True, "top_logprobs": 20}
        a = fast.chat.completions.create(model=llama_server.alias, **kw).choices[0]  # type: ignore[call-overload]
        b = reference.chat.completions.create(model=all_logits_server.alias, **kw).choices[0]  # type: ignore[call-overload]
        assert a.message.content == b.message.content
        top_a, top_b = _top(a.logprobs), _top(b.logprobs)
        shared = set(top_a) & set(top_b)
        assert len(shared) >= 15, (top_a, top_b)
        for token in shared:
            assert math.isclose(top_a[token], top_b[token], abs_tol=2e-3), (token, top_a[token], top_b[token])


def test_generated_text_matches_at_temperature_zero(
    llama_server: LocalLlamaServer, all_logits_server: LocalLlamaServer
) -> None:
    """Multi-token generation (the query writer's path), also streamed, gives the same greedy text."""
    messages = [{"role": "user", "content": f"Write a search query for this passage: {PASSAGES[0]}"}]
    kw = {"messages": messages, "max_tokens": 24, "temperature": 0.0}
    a = _client(llama_server).chat.completions.create(model=llama_server.alias, **kw)  # type: ignore[call-overload]
    b = _client(all_logits_server).chat.completions.create(model=all_logits_server.alias, **kw)  # type: ignore[call-overload]
    assert a.choices[0].message.content and a.choices[0].message.content == b.choices[0].message.content
    stream = _client(llama_server).chat.completions.create(model=llama_server.alias, stream=True, **kw)  # type: ignore[call-overload]
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert streamed == a.choices[0].message.content


def test_an_echoed_prompt_still_gets_every_prompt_logprob(
    llama_server: LocalLlamaServer, all_logits_server: LocalLlamaServer
) -> None:
    """echo + logprobs reads every prompt row: the fast server computes them all for such a request."""
    kw = {"prompt": PASSAGES[1], "max_tokens": 2, "temperature": 0.0, "logprobs": 3, "echo": True}
    a = _client(llama_server).completions.create(model=llama_server.alias, **kw)  # type: ignore[call-overload]
    b = _client(all_logits_server).completions.create(model=all_logits_server.alias, **kw)  # type: ignore[call-overload]
    la, lb = a.choices[0].logprobs, b.choices[0].logprobs
    assert la.tokens == lb.tokens and len(la.token_logprobs) > 20
    for x, y in zip(la.token_logprobs, lb.token_logprobs, strict=True):
        assert (x is None and y is None) or math.isclose(x, y, abs_tol=2e-3), (x, y)
    # and a plain completion right after it (same prompt, cached prefix) is computed the fast way again
    plain = {**kw, "echo": False}
    c = _client(llama_server).completions.create(model=llama_server.alias, **plain)  # type: ignore[call-overload]
    d = _client(all_logits_server).completions.create(model=all_logits_server.alias, **plain)  # type: ignore[call-overload]
    assert c.choices[0].text == d.choices[0].text
    for x, y in zip(c.choices[0].logprobs.token_logprobs, d.choices[0].logprobs.token_logprobs, strict=True):
        assert math.isclose(x, y, abs_tol=2e-3), (x, y)
