"""One LLM client for every stage: any OpenAI-compatible endpoint, or a local llama.cpp model.

:class:`LLMClient` wraps ``openai.AsyncOpenAI`` with what a long labelling run needs:
a concurrency limit, retries with exponential backoff and jitter on 429/5xx/timeouts
(honouring ``Retry-After``), a per-call timeout, a persistent response cache and usage
accounting. With no ``base_url`` it starts the packaged local model behind llama.cpp's
OpenAI-compatible server and talks to it through the very same code path, so what the tests
exercise locally is what runs against a remote endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import logging
import random
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from synthrank.errors import ModelError, SynthrankError
from synthrank.llm.cache import ResponseCache, cache_key
from synthrank.llm.config import LLMConfig
from synthrank.llm.usage import PriceTable, Usage

logger = logging.getLogger(__name__)

T = TypeVar("T")
ApiKey = str | Callable[[], str | None] | Any  # a string, a callable, or an object with resolve_value() (Haystack Secret)


@dataclass(frozen=True)
class LLMRequest:
    """One chat completion request; everything that determines the answer is part of the cache key.

    ``sample`` tells apart repeated samples of the same prompt (self-consistency): it is sent
    as nothing but keeps their cache entries distinct.
    """

    messages: tuple[tuple[str, str], ...]
    temperature: float = 0.0
    max_tokens: int = 256
    top_p: float | None = None
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    stop: tuple[str, ...] | None = None
    json_mode: bool = False
    sample: int = 0

    @classmethod
    def chat(cls, messages: Sequence[dict[str, str]] | Sequence[tuple[str, str]], **params: Any) -> LLMRequest:
        pairs = tuple((m["role"], m["content"]) if isinstance(m, dict) else (m[0], m[1]) for m in messages)
        if "stop" in params and params["stop"] is not None:
            params["stop"] = tuple(params["stop"])
        return cls(messages=pairs, **params)

    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]

    def openai_kwargs(self) -> dict[str, Any]:
        """The sampling parameters as OpenAI's chat-completions API names them (unset ones left out)."""
        kwargs: dict[str, Any] = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.top_p is not None:
            kwargs["top_p"] = self.top_p
        if self.seed is not None:
            kwargs["seed"] = self.seed
        if self.stop:
            kwargs["stop"] = list(self.stop)
        if self.logprobs:
            kwargs["logprobs"] = True
            if self.top_logprobs:
                kwargs["top_logprobs"] = self.top_logprobs
        if self.json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        return kwargs

    def params(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("messages")
        if out["stop"] is not None:
            out["stop"] = list(out["stop"])
        return out


@dataclass
class Completion:
    """What came back: text, why it stopped, token counts, and per-token log-probabilities if asked."""

    text: str
    finish_reason: str | None
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprobs: list[dict[str, Any]] | None = None  # [{"token", "logprob", "top": [[token, logprob], ...]}]
    refusal: str | None = None
    cached: bool = False
    seconds: float = 0.0

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("cached")
        out.pop("seconds")
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any], *, cached: bool = False) -> Completion:
        return cls(
            text=data.get("text") or "",
            finish_reason=data.get("finish_reason"),
            model=data.get("model") or "",
            prompt_tokens=int(data.get("prompt_tokens") or 0),
            completion_tokens=int(data.get("completion_tokens") or 0),
            logprobs=data.get("logprobs"),
            refusal=data.get("refusal"),
            cached=cached,
        )


class LLMCallError(SynthrankError):
    """A call that failed for good (retries spent, or an error not worth retrying); ``kind`` says which."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"LLM call failed ({kind}): {message}")
        self.kind = kind


class LLMFatalError(LLMCallError):
    """No later call could succeed either: :meth:`LLMClient.complete_many` raises it instead of returning it."""


class LLMAuthError(LLMFatalError):
    """The endpoint refused the key: every further call would fail too, so the run stops."""


class LLMServerError(LLMFatalError):
    """The local llama.cpp server died mid-run and may not (or could not) be started again: the run stops."""


@dataclass
class _LoopState:
    client: Any
    semaphore: asyncio.Semaphore
    inflight: dict[str, asyncio.Future[Completion]] = dataclasses.field(default_factory=dict)


def _retry_after_seconds(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date), if present."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000.0)
        value = headers.get("retry-after")
    except Exception:
        return None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def compact_logprobs(choice: Any) -> list[dict[str, Any]] | None:
    """A choice's token log-probabilities as plain lists, the form the cache stores and the judge reads.

    ``[{"token": ..., "logprob": ..., "top": [[token, logprob], ...]}, ...]``, or ``None`` when the
    endpoint returned none (a judge then falls back to the answer's text).
    """
    lp = getattr(choice, "logprobs", None)
    content = getattr(lp, "content", None) if lp is not None else None
    if not content:
        return None
    out = []
    for item in content:
        top = [[t.token, float(t.logprob)] for t in (getattr(item, "top_logprobs", None) or [])]
        out.append({"token": item.token, "logprob": float(item.logprob), "top": top})
    return out


class LLMClient:
    """Chat completions with concurrency, retries, timeouts, a response cache and usage accounting.

    Args:
        config: endpoint, model and limits (:class:`~synthrank.llm.config.LLMConfig`); the default
            runs the packaged local model.
        api_key: overrides ``config.api_key_env``: a string, a callable, or a Haystack ``Secret``;
            resolved per call, never stored in the config, the cache, logs or reports.
        cache: a :class:`ResponseCache`; by default one at ``config.cache_path`` (none if that is ``None``).
        usage: counters to share with other clients (default: a new :class:`Usage`).
        sleep: the coroutine used to wait between retries (tests record the delays with it).

    Example:
        >>> with LLMClient(LLMConfig(model="smollm2-135m")) as llm:   # starts llama.cpp locally
        ...     out = llm.complete(LLMRequest.chat([{"role": "user", "content": "Say hi"}], max_tokens=5))
        >>> out.text
        'Hi!'
    """

    def __init__(
        self,
        config: LLMConfig | None = None,
        *,
        api_key: ApiKey | None = None,
        cache: ResponseCache | None = None,
        usage: Usage | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
    ) -> None:
        self.config = config or LLMConfig()
        self._api_key = api_key
        if cache is None and self.config.cache_path:
            cache = ResponseCache(self.config.cache_path)
        self.cache = cache
        self.usage = usage or Usage(PriceTable(self.config.prices))
        self._sleep = sleep or asyncio.sleep
        self._rng = random.Random()
        self._server: Any = None
        self._base_url: str | None = self.config.base_url
        # one AsyncOpenAI per event loop (its connection pool is bound to the loop); weak, so closed loops go
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._loop_lock = threading.Lock()
        self._closed = False
        self.server_restarts = 0
        """How many times the local server died mid-run and was started again (at most ``local.max_restarts``)."""

    def __repr__(self) -> str:  # no key, ever
        where = self._base_url or "local llama.cpp"
        return f"LLMClient(model={self.model!r}, endpoint={where!r}, cache={self.cache!r})"

    def __enter__(self) -> LLMClient:
        self.warm_up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ lifecycle

    @property
    def model(self) -> str:
        """The model name sent to the endpoint, recorded in provenance, and part of cache keys."""
        if self.config.is_local:
            from synthrank.models.gguf import model_alias

            return model_alias(self.config.model)
        return self.config.model

    @property
    def base_url(self) -> str | None:
        return self._base_url

    def warm_up(self) -> None:
        """Start the local llama.cpp server if this client runs the embedded default (idempotent).

        The server is always started from this client's own background thread, which lives until
        :meth:`close`: on Linux the server is tied to the thread that started it (it is told to exit
        when that thread's process dies), so it must not be a short-lived worker thread.
        """
        if self._base_url is not None:
            return
        loop = self._ensure_loop()
        if threading.current_thread() is self._thread:
            self._start_server()
        else:
            asyncio.run_coroutine_threadsafe(self._astart_server(), loop).result()

    async def _astart_server(self) -> None:
        self._start_server()

    async def _arevive_server(self) -> None:
        self._revive_server()

    def _revive_server(self) -> None:
        """After a connection error: if the local server died, start it again (on its port), at most
        ``config.local.max_restarts`` times; past that, or if it cannot start, raise :class:`LLMServerError`.

        Runs on this client's own thread, like the first start (the server is tied to that thread's life).
        """
        with self._lock:
            server = self._server
            if server is None or self._closed:
                return
            code = server.exit_code
            if code is None:  # still running (a glitch, or it is still dying: the next retry sees it), or closed
                return
            tail = server.log_tail()
            limit = self.config.local.max_restarts
            if self.server_restarts >= limit:
                logger.info("the local llama.cpp server exited with code %s; the end of its log:\n%s", code, tail)
                self.usage.record_failure("server_exited")
                raise LLMServerError(
                    "server_exited",
                    f"the local llama.cpp server for {self.model} exited with code {code} mid-run "
                    f"(restarted {self.server_restarts} of at most {limit} times); "
                    "rerun the same command to resume (answered calls are cached)",
                )
            self.server_restarts += 1
            logger.warning(
                "the local llama.cpp server for %s exited with code %s mid-run; starting it again (restart %d of %d)",
                self.model, code, self.server_restarts, limit,
            )  # fmt: skip
            logger.info("the end of the dead server's log:\n%s", tail)
            server.close()
            try:
                server.start()
            except ModelError as exc:
                self.usage.record_failure("server_exited")
                first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise LLMServerError(
                    "server_exited",
                    f"the local llama.cpp server for {self.model} exited with code {code} mid-run and could not be "
                    f"started again ({first_line})",
                ) from None
            if server.base_url != self._base_url:  # pragma: no cover - the port is kept
                raise LLMServerError("server_exited", f"the restarted local server moved to {server.base_url}")

    def _start_server(self) -> None:
        with self._lock:
            if self._base_url is not None:
                return
            from synthrank.llm.local import LocalLlamaServer
            from synthrank.models.gguf import resolve_gguf

            server = LocalLlamaServer(
                resolve_gguf(self.config.model),
                alias=self.model,
                n_ctx=self.config.local.n_ctx,
                n_threads=self.config.local.n_threads,
                startup_timeout=self.config.local.startup_timeout,
                extra_args=self.config.local.extra_args,
            )
            self._server = server  # known before it is up, so close() (Ctrl-C during start-up) can stop it
            try:
                server.start()
            except BaseException:
                server.close()
                self._server = None
                raise
            self._base_url = server.base_url

    def close(self) -> None:
        """Stop the local server and the background loop, close the cache. Safe to call twice.

        Also the way out of an interrupted run (Ctrl-C, SIGTERM): calls still in flight are
        cancelled and awaited before the HTTP clients close, so none ends in a "Task exception
        was never retrieved" or "Task was destroyed but it is pending" report, and a server
        still starting (which blocks the loop) is stopped first.
        """
        if self._closed:
            return
        self._closed = True
        if self._server is not None and self._base_url is None:  # interrupted during start-up
            self._server.close()
            self._server = None
        if self._loop is not None:
            loop = self._loop

            async def _aclose_all() -> None:
                current = asyncio.current_task()
                pending = [task for task in asyncio.all_tasks() if task is not current]
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.wait(pending, timeout=10)
                for state in list(self._states.values()):
                    with contextlib.suppress(Exception):  # best effort on shutdown
                        await state.client.close()

            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(_aclose_all(), loop).result(timeout=15)
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=10)
            if self._thread is None or not self._thread.is_alive():
                loop.close()
            self._loop = None
        self._states.clear()
        if self._server is not None:
            self._server.close()
            self._server = None
        if self.cache is not None:
            self.cache.close()

    # ------------------------------------------------------------------ plumbing

    def _resolve_key(self) -> str:
        key = self._api_key
        if key is None:
            return self.config.api_key()
        if isinstance(key, str):
            return key
        if hasattr(key, "resolve_value"):
            value = key.resolve_value()
        elif callable(key):
            value = key()
        else:
            raise ModelError("api_key must be a string, a callable or a Haystack Secret")
        return value or self.config.api_key()

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            import openai

            if self._base_url is None:
                raise RuntimeError("call warm_up() before using a local client")  # pragma: no cover
            client = openai.AsyncOpenAI(
                base_url=self._base_url,
                api_key=self._resolve_key(),
                timeout=self.config.timeout,
                max_retries=0,
            )
            state = _LoopState(client=client, semaphore=asyncio.Semaphore(self.config.max_concurrency))
            self._states[loop] = state
        return state

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        """This client's background event loop (started on first use, stopped by :meth:`close`)."""
        if self._closed:
            raise SynthrankError("this LLMClient is closed")
        with self._loop_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="synthrank-llm", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _run(self, coro: Awaitable[T]) -> T:
        """Run a coroutine on this client's background event loop (works inside Jupyter's loop too)."""
        try:
            loop = self._ensure_loop()
        except SynthrankError:
            if asyncio.iscoroutine(coro):
                coro.close()
            raise
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, loop)  # type: ignore[arg-type]
        try:
            return future.result()
        except BaseException:  # Ctrl-C, SIGTERM turned into an exception: the calls in flight are not awaited
            future.cancel()  # cancels the task on the loop, and with it every call it gathered
            raise

    def key_for(self, request: LLMRequest) -> str:
        return cache_key(self.model, request.message_dicts(), request.params())

    def _backoff(self, attempt: int) -> float:
        cap = min(self.config.backoff_max, self.config.backoff_base * (2**attempt))
        return cap / 2 + self._rng.uniform(0, cap / 2)

    # ------------------------------------------------------------------ calls

    async def acomplete(self, request: LLMRequest) -> Completion:
        """One completion: from the cache if it has it, else from the endpoint (with retries).

        Raises:
            LLMCallError: retries spent, or a request the endpoint rejects (kind ``bad_request``).
            LLMAuthError: the endpoint refused the key.
            LLMServerError: the local server died and may not be started again.
        """
        key = self.key_for(request)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                completion = Completion.from_json(hit, cached=True)
                self.usage.record_cache_hit(completion.prompt_tokens, completion.completion_tokens)
                return completion
        if self._base_url is None:
            if threading.current_thread() is self._thread:
                self._start_server()  # blocks this loop for the start-up; nothing can be answered before it
            else:
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._astart_server(), self._ensure_loop()))
        state = self._state()
        pending = state.inflight.get(key)
        if pending is not None:  # the same request is already on its way: share its answer
            completion = await asyncio.shield(pending)
            self.usage.record_cache_hit(completion.prompt_tokens, completion.completion_tokens)
            return dataclasses.replace(completion, cached=True)
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        state.inflight[key] = future
        try:
            completion = await self._call_with_retries(request)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: no "never retrieved" warning when nobody shared it
            raise
        finally:
            state.inflight.pop(key, None)
        future.set_result(completion)
        if self.cache is not None:
            self.cache.put(key, self.model, {"messages": request.message_dicts(), **request.params()}, completion.to_json())
        return completion

    async def _call_with_retries(self, request: LLMRequest) -> Completion:
        import openai

        state = self._state()
        kwargs: dict[str, Any] = {"model": self.model, "messages": request.message_dicts(), **request.openai_kwargs()}
        if self.config.extra_body:
            kwargs["extra_body"] = dict(self.config.extra_body)

        last = "unknown"
        for attempt in range(self.config.max_retries + 1):
            retry_after: float | None = None
            started = time.perf_counter()
            try:
                async with state.semaphore:
                    started = time.perf_counter()
                    response = await state.client.chat.completions.create(**kwargs, timeout=self.config.timeout)
                seconds = time.perf_counter() - started
                return self._to_completion(response, seconds)
            except openai.APITimeoutError:
                kind, last = "timeout", f"no answer within {self.config.timeout:g}s"
            except openai.APIConnectionError as exc:
                kind, last = "connection", str(exc) or type(exc).__name__
                if self._server is not None:  # the local server may have died (killed, out of memory): restart it
                    if threading.current_thread() is self._thread:
                        self._revive_server()
                    else:
                        await asyncio.wrap_future(
                            asyncio.run_coroutine_threadsafe(self._arevive_server(), self._ensure_loop())
                        )
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                self.usage.record_failure("auth")
                raise LLMAuthError("auth", f"the endpoint refused the API key (HTTP {exc.status_code})") from None
            except openai.NotFoundError:
                self.usage.record_failure("not_found")
                raise LLMAuthError("not_found", f"the endpoint does not serve model {self.model!r}") from None
            except openai.APIStatusError as exc:
                status = exc.status_code
                retry_after = _retry_after_seconds(exc.response.headers)
                if status == 429:
                    kind, last = "rate_limit", "HTTP 429"
                elif status >= 500 or status in (408, 409):
                    kind, last = "server", f"HTTP {status}"
                else:
                    self.usage.record_failure("bad_request")
                    raise LLMCallError("bad_request", f"HTTP {status}: {_short(exc.message)}") from None
            except (openai.APIResponseValidationError, ValueError) as exc:
                # a 200 whose body is not the JSON it should be: a server glitch worth retrying
                kind, last = "malformed", f"unreadable response ({type(exc).__name__})"
            if attempt >= self.config.max_retries:
                break
            delay = min(retry_after, self.config.max_retry_after) if retry_after is not None else self._backoff(attempt)
            logger.info("LLM call failed (%s: %s); retry %d/%d in %.2fs", kind, last, attempt + 1, self.config.max_retries, delay)
            self.usage.record_retry()
            await self._sleep(delay)
        self.usage.record_failure(kind)
        raise LLMCallError(kind, f"{last} (after {self.config.max_retries} retries)")

    def _to_completion(self, response: Any, seconds: float) -> Completion:
        if not getattr(response, "choices", None):
            raise ValueError("response without choices")
        choice = response.choices[0]
        message = choice.message
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        self.usage.record_call(self.model, prompt_tokens, completion_tokens, seconds)
        return Completion(
            text=(getattr(message, "content", None) or ""),
            finish_reason=getattr(choice, "finish_reason", None),
            model=str(getattr(response, "model", None) or self.model),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            logprobs=compact_logprobs(choice),
            refusal=getattr(message, "refusal", None),
            seconds=seconds,
        )

    def complete(self, request: LLMRequest) -> Completion:
        """Synchronous :meth:`acomplete`."""
        return self._run(self.acomplete(request))

    async def acomplete_many(
        self,
        requests: Sequence[LLMRequest],
        *,
        on_done: Callable[[int, Completion | LLMCallError], None] | None = None,
    ) -> list[Completion | LLMCallError]:
        """All requests concurrently (bounded by ``max_concurrency``); failures come back as :class:`LLMCallError`.

        An :class:`LLMFatalError` (a refused key, a dead local server past its restarts) is raised instead:
        no later call could succeed.
        """

        async def one(i: int, req: LLMRequest) -> Completion | LLMCallError:
            try:
                result: Completion | LLMCallError = await self.acomplete(req)
            except LLMFatalError:
                raise
            except LLMCallError as exc:
                result = exc
            if on_done is not None:
                on_done(i, result)
            return result

        return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(requests))))

    def complete_many(
        self,
        requests: Sequence[LLMRequest],
        *,
        on_done: Callable[[int, Completion | LLMCallError], None] | None = None,
    ) -> list[Completion | LLMCallError]:
        """Synchronous :meth:`acomplete_many`, in request order."""
        return self._run(self.acomplete_many(requests, on_done=on_done))


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."

