"""EndpointLLMReranker: reading P(true) from an endpoint's top logprobs (the real server is in integration/)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from synthrank.errors import SynthrankError
from synthrank.llm import Completion, LLMCallError
from synthrank.llmrank import EndpointLLMReranker, PointwisePrompt, answer_probability
from synthrank.rerank.base import PairScorer


def _lp(token: str, top: list[tuple[str, float]]) -> dict[str, Any]:
    return {"token": token, "logprob": dict(top).get(token, top[0][1]), "top": [[t, lp] for t, lp in top]}


def test_probability_sums_spellings_of_each_word() -> None:
    top = [("true", math.log(0.5)), ("True", math.log(0.1)), ("false", math.log(0.2)), (" False", math.log(0.1)), ("maybe", math.log(0.1))]
    p = answer_probability([_lp("true", top)], PointwisePrompt())
    assert p == pytest.approx(0.6 / 0.9)


def test_missing_word_is_bounded_by_the_listed_tokens() -> None:
    top = [("true", math.log(0.9)), ("yes", math.log(0.05)), ("ok", math.log(0.01))]
    p = answer_probability([_lp("true", top)], PointwisePrompt())
    # P(false) <= min(smallest listed (0.01), mass left (0.04))
    assert p == pytest.approx(0.9 / (0.9 + 0.01))
    only_false = [("false", math.log(0.97)), ("no", math.log(0.02))]
    q = answer_probability([_lp("false", only_false)], PointwisePrompt())
    assert q == pytest.approx(0.01 / (0.01 + 0.97))
    assert answer_probability([_lp("maybe", [("maybe", -0.1), ("perhaps", -2.0)])], PointwisePrompt()) is None
    assert answer_probability(None, PointwisePrompt()) is None


def test_reasoning_reads_the_answer_line() -> None:
    prompt = PointwisePrompt(reasoning=True)
    tokens = [
        _lp("It", [("It", -0.1)]),
        _lp(" is", [(" is", -0.1)]),
        _lp(" true", [(" true", -0.1), (" false", -2.3)]),  # a "true" inside the reason: not the answer
        _lp(".\n", [(".\n", -0.1)]),
        _lp("false", [("false", math.log(0.8)), ("true", math.log(0.2))]),
    ]
    assert answer_probability(tokens, prompt) == pytest.approx(0.2)
    no_line = tokens[:3]
    assert answer_probability(no_line, prompt) == pytest.approx(1 / (1 + math.exp(-2.2)))  # falls back to the last one


class _FakeClient:
    """Stands in for synthrank.llm.LLMClient: records requests, answers from a table."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.requests: list[Any] = []
        self.closed = False

    def warm_up(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def complete_many(self, requests: list[Any], *, on_done: Any = None) -> list[Any]:
        self.requests.extend(requests)
        out = self.answers[: len(requests)]
        for i, r in enumerate(out):
            if on_done:
                on_done(i, r)
        return out


def _completion(p_true: float) -> Completion:
    top = [["true", math.log(p_true)], ["false", math.log(1 - p_true)]]
    return Completion(text="true", finish_reason="length", model="m", logprobs=[{"token": "true", "logprob": top[0][1], "top": top}])


def test_scores_requests_and_errors() -> None:
    client = _FakeClient([_completion(0.8), _completion(0.3), Completion("hmm", "stop", "m", logprobs=None)])
    reranker = EndpointLLMReranker("big-model", base_url="http://127.0.0.1:1/v1", client=client, max_passage_chars=10)
    assert isinstance(reranker, PairScorer)
    scores = reranker.score_pairs(["q1", "q1", "q2"], ["passage one is long", "p2", "p3"])
    np.testing.assert_allclose(scores, [0.8, 0.3, 0.5], atol=1e-6)
    assert scores.dtype == np.float32 and reranker.unparsed == 1
    req = client.requests[0]
    assert req.max_tokens == 1 and req.logprobs and req.top_logprobs == 20 and req.temperature == 0.0
    user = req.message_dicts()[-1]["content"]
    assert "q1" in user and "passage on" in user and "passage one is long" not in user  # cut to 10 characters
    assert req.message_dicts()[0]["role"] == "system"
    reranker.close()
    assert not client.closed  # a client passed in belongs to the caller

    failing = EndpointLLMReranker("m", base_url="http://x/v1", client=_FakeClient([LLMCallError("timeout", "no answer")]))
    with pytest.raises(SynthrankError, match="1 of 1 endpoint calls failed"):
        failing.score_pairs(["q"], ["p"])
    assert EndpointLLMReranker("m", client=_FakeClient([])).score_pairs([], []).shape == (0,)
