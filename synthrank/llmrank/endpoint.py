"""`EndpointLLMReranker`: the pointwise prompt against any OpenAI-compatible server, scored from logprobs.

A large model can sit behind vLLM, llama.cpp's server or a hosted API: the same prompt as
:class:`~synthrank.llmrank.scorer.CausalLMReranker` is sent as chat messages, the server
returns the top log-probabilities of the answer token, and the score is
P(true) / (P(true) + P(false)) summed over the spellings of each word. When one word is not
among the top-k, its probability is bounded by the smallest one listed (and by the mass the
listed tokens leave), so the score stays ordered instead of saturating.

It talks through :class:`synthrank.llm.LLMClient` (concurrency, retries, timeouts, cache), so
with no ``base_url`` it starts a packaged GGUF model behind a local llama.cpp server.

Example:
    >>> reranker = EndpointLLMReranker("qwen2.5-7b-instruct", base_url="http://127.0.0.1:8000/v1")
    >>> reranker.score_pairs(["what damages the optic nerve"], ["Glaucoma damages the optic nerve."])
    array([0.97], dtype=float32)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from synthrank.errors import SynthrankError
from synthrank.llmrank.prompt import PointwisePrompt, check_pairs

logger = logging.getLogger(__name__)


def _norm(token: str) -> str:
    return token.strip().strip(".,!:;\"'`*").lower()


def answer_probability(logprobs: list[dict[str, Any]] | None, prompt: PointwisePrompt) -> float | None:
    """P(true)/(P(true)+P(false)) at the answer token of a completion's logprobs, or ``None`` if there is none.

    ``logprobs`` is :class:`synthrank.llm.Completion`'s list of ``{"token", "logprob", "top": [[token, logprob]...]}``.
    The answer token is the first one without reasoning; with reasoning, the first true/false token
    that opens a line (else the last true/false token).
    """
    if not logprobs:
        return None
    words = {_norm(prompt.true_word): True, _norm(prompt.false_word): False}
    position: int | None = None
    if not prompt.reasoning:
        position = 0
    else:
        after_newline = False
        last: int | None = None
        for i, item in enumerate(logprobs):
            token = str(item.get("token", ""))
            if _norm(token) in words:
                last = i
                if after_newline or token.lstrip(" ").startswith("\n"):
                    position = i
                    break
            after_newline = token.rstrip(" ").endswith("\n")
        position = position if position is not None else last
    if position is None:
        return None
    item = logprobs[position]
    top = [(str(t), float(lp)) for t, lp in (item.get("top") or [])]
    if not top:
        top = [(str(item.get("token", "")), float(item.get("logprob", 0.0)))]
    mass = {True: 0.0, False: 0.0}
    for token, lp in top:
        label = words.get(_norm(token))
        if label is not None:
            mass[label] += math.exp(lp)
    if mass[True] == 0.0 and mass[False] == 0.0:
        return None
    if mass[True] == 0.0 or mass[False] == 0.0:
        # the missing word is below every listed token: bound it by the smallest listed probability
        # and by what the listed tokens leave of the total
        smallest = math.exp(min(lp for _, lp in top))
        left = max(0.0, 1.0 - sum(math.exp(lp) for _, lp in top))
        estimate = min(smallest, left) if left > 0 else smallest * 1e-3
        missing = mass[True] == 0.0
        mass[missing] = max(estimate, 1e-12)
    return mass[True] / (mass[True] + mass[False])


class EndpointLLMReranker:
    """Pointwise LLM reranking through an OpenAI-compatible endpoint (vLLM, llama.cpp, hosted APIs).

    Args:
        model: the model name the endpoint serves; with no ``base_url``, a GGUF to serve locally
            (packaged short name such as ``smollm2-135m``, or a path).
        base_url: the endpoint (``http://127.0.0.1:8000/v1``); ``None`` starts a local llama.cpp server.
        api_key_env: name of the environment variable holding the key (never the key itself).
        api_key: a key, callable or Haystack ``Secret`` that overrides ``api_key_env``.
        prompt: prompt settings (the same as the local reranker's by default).
        top_logprobs: alternatives asked for at each token (servers cap it, often at 20).
        max_concurrency: requests in flight.
        timeout: seconds per request.
        max_passage_chars: passages are cut to this many characters (the server tokenizes).
        cache_path: SQLite response cache, so repeated evaluations cost nothing.
        client: an :class:`~synthrank.llm.LLMClient` to use instead of building one.
        unparsed_score: score given when a reply carries neither answer word (counted in :attr:`unparsed`).

    Example:
        >>> with EndpointLLMReranker("smollm2-135m") as reranker:   # packaged model, local server
        ...     reranker.score_pairs(["q"], ["passage"])
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        api_key: Any = None,
        prompt: PointwisePrompt | None = None,
        top_logprobs: int = 20,
        max_concurrency: int = 4,
        timeout: float = 120.0,
        max_retries: int = 3,
        max_passage_chars: int = 2000,
        cache_path: str | None = None,
        client: Any = None,
        unparsed_score: float = 0.5,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.prompt = prompt or PointwisePrompt()
        self.top_logprobs = top_logprobs
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_passage_chars = max_passage_chars
        self.cache_path = cache_path
        self.unparsed_score = unparsed_score
        self.unparsed = 0
        self._api_key = api_key
        self._client = client
        self._owns_client = client is None

    def __repr__(self) -> str:
        return f"EndpointLLMReranker(model={self.model!r}, base_url={self.base_url or 'local llama.cpp'!r})"

    def __enter__(self) -> EndpointLLMReranker:
        self.warm_up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def warm_up(self) -> None:
        """Create the client (and start the local server when there is no ``base_url``)."""
        if self._client is None:
            from synthrank.llm import LLMClient, LLMConfig

            config = LLMConfig(
                model=self.model,
                base_url=self.base_url,
                api_key_env=self.api_key_env,
                max_concurrency=self.max_concurrency,
                timeout=self.timeout,
                max_retries=self.max_retries,
                cache_path=self.cache_path,
            )
            self._client = LLMClient(config, api_key=self._api_key)
        self._client.warm_up()

    def close(self) -> None:
        """Close the client we created (stopping a local server); a client passed in is left open."""
        if self._client is not None and self._owns_client:
            self._client.close()
            self._client = None

    def requests(self, queries: Sequence[str], documents: Sequence[str]) -> list[Any]:
        from synthrank.llm import LLMRequest

        max_tokens = 1 if not self.prompt.reasoning else self.prompt.max_reasoning_tokens + 4
        return [
            LLMRequest.chat(
                self.prompt.messages(q.strip(), d.strip()[: self.max_passage_chars]),
                temperature=0.0,
                max_tokens=max_tokens,
                logprobs=True,
                top_logprobs=self.top_logprobs,
            )
            for q, d in zip(queries, documents, strict=True)
        ]

    def score_pairs(
        self, queries: Sequence[str], documents: Sequence[str], *, show_progress: bool = False
    ) -> np.ndarray:
        """One score per pair in 0..1 (float32); raises :class:`SynthrankError` if calls fail for good."""
        from tqdm.auto import tqdm

        check_pairs(queries, documents)
        if not queries:
            return np.zeros(0, dtype=np.float32)
        self.warm_up()
        bar = tqdm(total=len(queries), desc="LLM endpoint scoring", unit="pair", disable=not show_progress)
        try:
            results = self._client.complete_many(self.requests(queries, documents), on_done=lambda i, r: bar.update(1))
        finally:
            bar.close()
        scores = np.empty(len(results), dtype=np.float32)
        failures: list[str] = []
        for i, result in enumerate(results):
            if isinstance(result, Exception):
                failures.append(str(result))
                continue
            p = answer_probability(result.logprobs, self.prompt)
            if p is None:
                self.unparsed += 1
                logger.warning("pair %d: the reply %r carries no true/false logprobs", i, result.text[:40])
                p = self.unparsed_score
            scores[i] = p
        if failures:
            raise SynthrankError(f"{len(failures)} of {len(results)} endpoint calls failed, e.g. {failures[0]}")
        return scores
