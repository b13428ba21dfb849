"""Make llama-cpp-python compute a prompt's logits and log-probabilities only where a response reads them.

Why: llama-cpp-python returns ``logprobs`` only from a model loaded with ``logits_all=True``,
and then (1) computes the vocabulary projection for *every* prompt token and copies each row
(151,936 floats for Qwen) into its score buffer, and (2) for a completion with logprobs, takes
the log-softmax of *every* row of that buffer, prompt included, to keep the rows of the answer.
The judge needs the log-probabilities of one answer token. On two CPU cores, profiled with
Qwen2.5-Coder-1.5B on a ~350-token judge prompt: 1.9 s of decoding, plus 0.9 s of log-softmax
over rows nobody reads and 0.2 s of sorting one row's probabilities as numpy scalars.

:func:`install` replaces ``Llama.eval`` with one that asks llama.cpp for the logits of a batch's
last position only, unless the current completion echoes its prompt with logprobs (the one case
that reads the other rows), and makes ``Llama.logits_to_logprobs`` of a matrix lazy: a row's
log-softmax is computed (as a list) when the response reads it. The answers and their logprobs
are unchanged (tested against the unpatched server on the real model in
``integration/test_llm_prompt_logits.py``; speed in ``benchmarks/bench_llm_server.py``).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any

logger = logging.getLogger(__name__)

ENV_VAR = "SYNTHRANK_LLAMA_PROMPT_LOGITS"
_FLAG = "_synthrank_prompt_logits"  # set per completion: whether this one reads every prompt row


def prompt_logits_setting(value: str | None) -> str:
    """``last`` (default: only where read) or ``all`` (llama-cpp-python's own behaviour)."""
    setting = (value or "last").strip().lower()
    if setting not in ("last", "all"):
        raise SystemExit(f"{ENV_VAR}={value!r}: use last or all")
    return setting


def needs_prompt_logits(echo: bool, logprobs: int | None) -> bool:
    """Only an echoed prompt with logprobs reports the log-probabilities of the prompt's own tokens."""
    return bool(echo) and logprobs is not None


class LazyLogprobRows:
    """The log-softmax of each row of a logits matrix, computed when read, from a start row on.

    llama-cpp-python slices it (``[token_offset:]``) and iterates it, reading each row by index,
    ``len`` and iteration: a list of floats serves all three, and sorts twice as fast as a numpy row.
    """

    def __init__(self, logits: Any, row_logprobs: Callable[[Any], Any], start: int = 0) -> None:
        self._logits = logits
        self._row_logprobs = row_logprobs
        self._start = start

    def __len__(self) -> int:
        return max(0, len(self._logits) - self._start)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice) and key.step in (None, 1) and key.stop is None and (key.start or 0) >= 0:
            return LazyLogprobRows(self._logits, self._row_logprobs, self._start + (key.start or 0))
        if isinstance(key, int) and key >= 0:
            return self._row_logprobs(self._logits[self._start + key]).tolist()
        return [self._row_logprobs(row).tolist() for row in self._logits[self._start :]][key]

    def __iter__(self) -> Iterator[list[float]]:
        for row in self._logits[self._start :]:
            yield self._row_logprobs(row).tolist()


def install() -> bool:
    """Patch ``llama_cpp.Llama`` in this process; returns False (and changes nothing) on an unknown version."""
    import numpy as np
    from llama_cpp import Llama

    if getattr(Llama, "_synthrank_patched", False):
        return True
    original_eval = Llama.eval
    original_create = Llama.create_completion
    original_logprobs = Llama.logits_to_logprobs
    try:
        create_signature = inspect.signature(original_create)
        has_params = {"echo", "logprobs"} <= set(create_signature.parameters)
    except (TypeError, ValueError):
        has_params = False
    if not has_params:
        logger.warning("llama-cpp-python's create_completion has no echo/logprobs parameters: prompt logits unchanged")
        return False

    def create_completion(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = create_signature.bind_partial(self, *args, **kwargs)
        echo = bound.arguments.get("echo", False)
        logprobs = bound.arguments.get("logprobs")
        # completions run one at a time under the server's lock, and a streamed one evaluates its
        # prompt before the next begins, so this per-model flag belongs to the completion running now
        setattr(self, _FLAG, needs_prompt_logits(echo, logprobs))
        return original_create(self, *args, **kwargs)

    def eval_last_logits(self: Any, tokens: Any) -> None:
        if not self._logits_all or getattr(self, _FLAG, True) or getattr(self, "draft_model", None) is not None:
            return original_eval(self, tokens)
        # llama-cpp-python's own eval as for a model without logits_all (llama.cpp computes each batch's
        # last position only), then keep the prompt's last row: the only one sampling and a non-echoed
        # completion's logprobs read (the other rows keep stale values)
        self._logits_all = False
        try:
            original_eval(self, tokens)
        finally:
            self._logits_all = True
        if len(tokens):
            self.scores[self.n_tokens - 1, :] = np.ctypeslib.as_array(self._ctx.get_logits(), shape=(self._n_vocab,))
        return None

    def logits_to_logprobs(logits: Any, axis: int = -1) -> Any:
        if isinstance(logits, np.ndarray) and logits.ndim == 2 and axis in (-1, 1):
            return LazyLogprobRows(logits, original_logprobs)
        return original_logprobs(logits, axis)

    Llama.eval = eval_last_logits  # type: ignore[method-assign]
    Llama.logits_to_logprobs = staticmethod(logits_to_logprobs)  # type: ignore[method-assign,assignment]
    Llama.create_completion = create_completion  # type: ignore[method-assign]
    Llama._synthrank_patched = True  # type: ignore[attr-defined]
    return True
