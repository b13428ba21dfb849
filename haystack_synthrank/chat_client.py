"""A Haystack chat generator behind the core's LLM client interface, so the core stages can run on it.

The core query generator and judge talk to an :class:`~synthrank.llm.client.LLMClient`
(``complete_many``, ``usage``, ``model``); :class:`ChatGeneratorClient` offers the same over
any Haystack ``ChatGenerator`` (OpenAI, Azure, Ollama, Hugging Face…): it converts core
requests to ``ChatMessage`` lists and ``generation_kwargs``, and replies back to core
completions. It keeps the core's persistent response cache and usage accounting; retries are
the chat generator's own. No prompt, parsing or filtering happens here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from haystack.dataclasses import ChatMessage

from synthrank.llm.cache import ResponseCache, cache_key
from synthrank.llm.client import Completion, LLMCallError, LLMRequest
from synthrank.llm.usage import Usage

logger = logging.getLogger(__name__)


def model_name(chat_generator: Any) -> str:
    """The model a chat generator serves (recorded in provenance and in cache keys)."""
    for attr in ("model", "model_name", "_model"):
        value = getattr(chat_generator, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(chat_generator).__name__


def to_chat_messages(request: LLMRequest) -> list[ChatMessage]:
    makers: dict[str, Callable[[str], ChatMessage]] = {
        "system": ChatMessage.from_system,
        "user": ChatMessage.from_user,
        "assistant": ChatMessage.from_assistant,
    }
    out = []
    for role, content in request.messages:
        if role not in makers:
            raise ValueError(f"unsupported chat role {role!r}")
        out.append(makers[role](content))
    return out


def generation_kwargs(request: LLMRequest) -> dict[str, Any]:
    """OpenAI-style sampling parameters of a core request (what OpenAI-compatible generators forward)."""
    return request.openai_kwargs()


def _logprobs(meta: dict[str, Any]) -> list[dict[str, Any]] | None:
    content = (meta.get("logprobs") or {}).get("content") if isinstance(meta.get("logprobs"), dict) else None
    if not content:
        return None
    return [
        {
            "token": item["token"],
            "logprob": float(item["logprob"]),
            "top": [[t["token"], float(t["logprob"])] for t in item.get("top_logprobs") or []],
        }
        for item in content
    ]


def to_completion(reply: ChatMessage, fallback_model: str, seconds: float) -> Completion:
    meta = dict(reply.meta or {})
    usage = meta.get("usage") or {}
    return Completion(
        text=reply.text or "",
        finish_reason=meta.get("finish_reason"),
        model=str(meta.get("model") or fallback_model),
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        logprobs=_logprobs(meta),
        seconds=seconds,
    )


def completion_from_length_error(exc: BaseException, fallback_model: str, seconds: float) -> Completion | None:
    """The reply inside openai's ``LengthFinishReasonError``, which structured-output calls raise.

    Haystack's OpenAI generators call ``chat.completions.parse`` when a ``response_format`` is
    set, and that raises when the answer hits ``max_tokens``, although the server answered (and
    billed). The core client returns such an answer with ``finish_reason="length"``; so does this.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        raw = getattr(current, "completion", None)
        choices = getattr(raw, "choices", None)
        if choices:
            message = getattr(choices[0], "message", None)
            usage = getattr(raw, "usage", None)
            return Completion(
                text=str(getattr(message, "content", None) or ""),
                finish_reason=str(getattr(choices[0], "finish_reason", None) or "length"),
                model=str(getattr(raw, "model", None) or fallback_model),
                prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                logprobs=None,
                seconds=seconds,
            )
        current = current.__cause__ or current.__context__
    return None


class ChatGeneratorClient:
    """The core LLM client interface over a Haystack chat generator.

    Args:
        chat_generator: any Haystack chat generator (``run(messages, generation_kwargs=...)``).
        max_concurrency: calls in flight at once (threads; the generator's ``run`` does blocking I/O).
        cache_path: the core's SQLite response cache, so a rerun makes zero calls; ``None`` for none.
        forward_generation_kwargs: send the core's sampling parameters; turn off for generators
            that reject OpenAI-style ``generation_kwargs`` (they then use their own settings).

    Example:
        >>> client = ChatGeneratorClient(OpenAIChatGenerator(model="gpt-4o-mini"), cache_path="llm.sqlite")
        >>> QueryGenerator(client, GenerationConfig(query_types=["natural"])).generate(passages, "queries.jsonl")
    """

    def __init__(
        self,
        chat_generator: Any,
        *,
        max_concurrency: int = 4,
        cache_path: str | Path | None = None,
        forward_generation_kwargs: bool = True,
        usage: Usage | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.chat_generator = chat_generator
        self.max_concurrency = max_concurrency
        self.cache = ResponseCache(cache_path) if cache_path is not None else None
        self.forward_generation_kwargs = forward_generation_kwargs
        self.usage = usage or Usage()

    def __repr__(self) -> str:
        return f"ChatGeneratorClient({type(self.chat_generator).__name__}, model={self.model!r})"

    @property
    def model(self) -> str:
        return model_name(self.chat_generator)

    def warm_up(self) -> None:
        if hasattr(self.chat_generator, "warm_up"):
            self.chat_generator.warm_up()

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
            self.cache = None

    def key_for(self, request: LLMRequest) -> str:
        return cache_key(self.model, request.message_dicts(), request.params())

    def complete(self, request: LLMRequest) -> Completion:
        """One completion, from the cache when it has it; a failed call raises :class:`LLMCallError`."""
        key = self.key_for(request)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                completion = Completion.from_json(hit, cached=True)
                self.usage.record_cache_hit(completion.prompt_tokens, completion.completion_tokens)
                return completion
        kwargs: dict[str, Any] = {"messages": to_chat_messages(request)}
        if self.forward_generation_kwargs:
            kwargs["generation_kwargs"] = generation_kwargs(request)
        started = time.perf_counter()
        try:
            result = self.chat_generator.run(**kwargs)
        except Exception as exc:  # the generator's own retries are spent: record and report, never crash the run
            truncated = completion_from_length_error(exc, self.model, time.perf_counter() - started)
            if truncated is None:
                self.usage.record_failure("generator")
                raise LLMCallError("generator", f"{type(exc).__name__}: {exc}") from None
            # the endpoint answered and billed the tokens; the parser downstream judges the cut-off text
            completion = truncated
        else:
            seconds = time.perf_counter() - started
            replies = result.get("replies") or []
            if not replies:
                self.usage.record_failure("no_reply")
                raise LLMCallError("no_reply", f"{type(self.chat_generator).__name__} returned no reply")
            completion = to_completion(replies[0], self.model, seconds)
        self.usage.record_call(
            completion.model, completion.prompt_tokens, completion.completion_tokens, completion.seconds
        )
        if self.cache is not None:
            self.cache.put(
                key, self.model, {"messages": request.message_dicts(), **request.params()}, completion.to_json()
            )
        return completion

    def complete_many(
        self,
        requests: Sequence[LLMRequest],
        *,
        on_done: Callable[[int, Completion | LLMCallError], None] | None = None,
    ) -> list[Completion | LLMCallError]:
        """All requests, ``max_concurrency`` at a time, in request order; failures come back as errors."""

        def one(i: int) -> Completion | LLMCallError:
            try:
                result: Completion | LLMCallError = self.complete(requests[i])
            except LLMCallError as exc:
                result = exc
            if on_done is not None:
                on_done(i, result)
            return result

        if self.max_concurrency == 1 or len(requests) <= 1:
            return [one(i) for i in range(len(requests))]
        with ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="synthrank-chat") as pool:
            return list(pool.map(one, range(len(requests))))
