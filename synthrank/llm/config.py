"""Where the LLM lives and how hard to push it: endpoint, model, limits, and where the key comes from.

The key itself is never a field: the config holds only the *name* of the environment
variable, so a config can be logged, cached, written beside results and shared without
leaking a secret.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from synthrank.errors import DataError
from synthrank.models.gguf import DEFAULT_LLM

NO_KEY = "sk-no-key-required"
"""What is sent to endpoints that need no key (llama.cpp, vLLM, Ollama); never a real secret."""


@dataclass
class LocalServerSettings:
    """How the embedded llama.cpp server is started when no ``base_url`` is given."""

    n_ctx: int = 4096
    n_threads: int | None = None  # None: all cores
    startup_timeout: float = 300.0
    extra_args: list[str] = field(default_factory=list)
    # a server that dies mid-run (killed, out of memory, a crash) is started again this many times per client;
    # one more death stops the run with one line naming it
    max_restarts: int = 2


@dataclass
class LLMConfig:
    """Endpoint, model and limits of the one LLM client.

    Args:
        model: the model name the endpoint serves; with no ``base_url``, a GGUF for the local
            llama.cpp server: a packaged short name (``qwen2.5-coder-1.5b``), a path, or ``org/repo:file``.
        base_url: an OpenAI-compatible endpoint (``https://api.openai.com/v1``, a vLLM or llama.cpp
            server...). ``None`` starts the packaged model locally: no key, no server to run by hand.
        api_key_env: name of the environment variable holding the key (read at call time, never stored).
        max_concurrency: requests in flight at once.
        timeout: seconds per call (queueing at a single-slot local server counts, so keep it generous).
        max_retries: retries after the first try on 429 / 5xx / timeouts / connection errors.
        backoff_base, backoff_max: exponential backoff with jitter: ``base * 2**attempt``, capped.
        max_retry_after: longest ``Retry-After`` honoured as given (longer ones are capped).
        cache_path: SQLite response cache; ``None`` for no persistent cache.
        prices: model -> ``{"prompt": USD per 1M tokens, "completion": USD per 1M tokens}``.
        extra_body: extra fields sent with every request (endpoint-specific options).

    Example:
        >>> cfg = LLMConfig(model="gpt-4o-mini", base_url="https://api.openai.com/v1", api_key_env="OPENAI_API_KEY")
        >>> cfg.to_dict()["api_key_env"]
        'OPENAI_API_KEY'
    """

    model: str = DEFAULT_LLM
    base_url: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    max_concurrency: int = 2
    timeout: float = 600.0
    max_retries: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_retry_after: float = 300.0
    cache_path: str | None = None
    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)
    local: LocalServerSettings = field(default_factory=LocalServerSettings)

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise DataError(f"must be at least 1, got {self.max_concurrency}", field="max_concurrency")
        if self.max_retries < 0:
            raise DataError(f"must be 0 or more, got {self.max_retries}", field="max_retries")
        if self.timeout <= 0:
            raise DataError(f"must be positive, got {self.timeout}", field="timeout")
        if self.api_key_env is not None and not self.api_key_env.replace("_", "").isalnum():
            # a guard against a key pasted where its variable's name belongs
            raise DataError("expected the NAME of an environment variable (e.g. OPENAI_API_KEY), not a key", field="api_key_env")
        if isinstance(self.local, dict):
            self.local = LocalServerSettings(**self.local)

    @property
    def is_local(self) -> bool:
        return self.base_url is None

    def api_key(self) -> str:
        """The key from the environment (or a placeholder for keyless endpoints). Never store the result."""
        if self.is_local:
            return NO_KEY
        if self.api_key_env:
            value = os.environ.get(self.api_key_env)
            if value:
                return value
        return NO_KEY

    def to_dict(self) -> dict[str, Any]:
        """Every setting, safe to write beside results: it holds no secret."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LLMConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise DataError(f"unknown LLM settings: {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        values = dict(data)
        if isinstance(values.get("local"), dict):
            values["local"] = LocalServerSettings(**values["local"])
        return cls(**values)


def default_cache_path() -> Path:
    """Where the response cache lives unless told otherwise: ``$SYNTHRANK_CACHE`` or ``~/.cache/synthrank``."""
    root = os.environ.get("SYNTHRANK_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "synthrank"
    return base / "llm-cache.sqlite"


def llm_option_defaults() -> dict[str, Any]:
    """The defaults of the flat LLM options (CLI flags, the run config's ``llm`` section), from the dataclasses.

    ``concurrency`` None: 2 locally, 8 for an endpoint; ``cache`` None: the default cache file.
    """
    from synthrank.config_fields import field_defaults

    llm, local = field_defaults(LLMConfig), field_defaults(LocalServerSettings)
    return {
        "model": llm["model"],
        "base_url": llm["base_url"],
        "api_key_env": llm["api_key_env"],
        "concurrency": None,
        "timeout": llm["timeout"],
        "max_retries": llm["max_retries"],
        "cache": None,
        "no_cache": False,
        "price_table": None,
        "n_ctx": local["n_ctx"],
        "n_threads": local["n_threads"],
    }


def llm_config_from_options(values: Mapping[str, Any]) -> LLMConfig:
    """An :class:`LLMConfig` from flat option values, as the CLI flags and the run config's ``llm`` section hold them.

    Keys: ``model``, ``base_url``, ``api_key_env``, ``concurrency`` (default 2 locally, 8 for an
    endpoint), ``timeout``, ``max_retries``, ``cache``/``no_cache``, ``price_table`` (a file),
    ``n_ctx``, ``n_threads``.
    """
    from synthrank.llm.usage import PriceTable

    prices = PriceTable.from_file(values["price_table"]).prices if values.get("price_table") else {}
    concurrency = values.get("concurrency") or (2 if values.get("base_url") is None else 8)
    cache = None if values.get("no_cache") else str(values.get("cache") or default_cache_path())
    return LLMConfig(
        model=values["model"],
        base_url=values.get("base_url"),
        api_key_env=values.get("api_key_env"),
        max_concurrency=int(concurrency),
        timeout=float(values["timeout"]),
        max_retries=int(values["max_retries"]),
        cache_path=cache,
        prices=prices,
        local=LocalServerSettings(n_ctx=int(values["n_ctx"]), n_threads=values.get("n_threads")),
    )
