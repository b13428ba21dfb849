"""The embedded default's server wrapper, without starting a model (the real start is in integration/)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from synthrank.errors import ModelError
from synthrank.llm import LLMClient, LLMConfig, local
from synthrank.llm.local import LocalLlamaServer, free_port


def test_command_has_the_flags_llama_cpp_server_needs(tmp_path: Path) -> None:
    server = LocalLlamaServer(tmp_path / "m.gguf", alias="qwen2.5-coder-1.5b", port=1234, n_ctx=2048, n_threads=2)
    cmd = server.command()
    assert cmd[1:3] == ["-m", "llama_cpp.server"]
    flags = dict(zip(cmd[3::2], cmd[4::2], strict=True))
    assert flags["--host"] == "127.0.0.1" and flags["--port"] == "1234"
    assert flags["--model_alias"] == "qwen2.5-coder-1.5b"
    assert flags["--logits_all"] == "true"  # needed for logprobs
    assert flags["--n_ctx"] == "2048" and flags["--n_threads"] == "2"
    assert server.base_url is None and not server.running


def test_missing_model_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "check_server_dependencies", lambda: None)
    with pytest.raises(ModelError, match="does not exist"):
        LocalLlamaServer(tmp_path / "none.gguf").start()


def test_missing_server_extra_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sse_starlette" else real(name, *a))
    with pytest.raises(ModelError, match=r"pip install 'synthrank\[llama\]'"):
        local.check_server_dependencies()


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_local_client_reports_its_model_name_without_starting() -> None:
    client = LLMClient(LLMConfig(model="Qwen-1.5B"))
    assert client.model == "qwen2.5-coder-1.5b"
    assert client.base_url is None and "local llama.cpp" in repr(client)
    client.close()
