"""One LLM layer for query synthesis and relevance labelling.

Any OpenAI-compatible endpoint, or (the default, no key, no server to start by hand) a
packaged GGUF model behind a local llama.cpp server; with a response cache, retries,
usage accounting and JSON repair. See :class:`~synthrank.llm.client.LLMClient`.
"""

from __future__ import annotations

from synthrank.llm.cache import CacheError, ResponseCache, cache_key
from synthrank.llm.client import (
    Completion,
    LLMAuthError,
    LLMCallError,
    LLMClient,
    LLMFatalError,
    LLMRequest,
    LLMServerError,
)
from synthrank.llm.config import LLMConfig, LocalServerSettings
from synthrank.llm.parsing import ParseError, extract_json, is_refusal, parse_json
from synthrank.llm.usage import PriceTable, Usage

__all__ = [
    "CacheError",
    "Completion",
    "LLMAuthError",
    "LLMCallError",
    "LLMClient",
    "LLMConfig",
    "LLMFatalError",
    "LLMRequest",
    "LLMServerError",
    "LocalServerSettings",
    "ParseError",
    "PriceTable",
    "ResponseCache",
    "Usage",
    "cache_key",
    "extract_json",
    "is_refusal",
    "parse_json",
]
