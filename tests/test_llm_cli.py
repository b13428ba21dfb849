"""`synthrank generate`, `synthrank label` and `synthrank models` (against the fault-injection server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from synthrank.data import read_groups, read_jsonl
from tests.fake_openai_server import FakeOpenAIServer, Fault, title_query_responder

KEY = "sk-cli-SECRET-456"
_responder = title_query_responder(lambda title: f"{title} symptoms and causes")


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(responder=_responder) as srv:
        yield srv


def _main():  # type: ignore[no-untyped-def]
    from synthrank_cli.main import main

    return main


def test_generate_then_label(server: FakeOpenAIServer, tiny_beir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_LLM_KEY", KEY)
    runner = CliRunner()
    llm = ["--base-url", server.base_url, "--model", "fake-model", "--api-key-env", "MY_LLM_KEY",
           "--cache", str(tmp_path / "cache.sqlite")]  # fmt: skip
    result = runner.invoke(_main(), ["generate", "--corpus", str(tiny_beir), "--output-dir", str(tmp_path / "gen"),
                                     "--query-types", "keyword,natural", "--max-passages", "0", "--min-chars", "0",
                                     "--roundtrip-k", "3", *llm])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "queries kept" in result.output
    queries = read_jsonl(tmp_path / "gen" / "queries.jsonl")
    assert queries and all(q["model"] == "fake-model" for q in queries)
    stats = json.loads((tmp_path / "gen" / "generate_stats.json").read_text())
    assert stats["passages"] == 6 and stats["slots"] == 12
    assert set(stats["survival"]) == {"length", "dedup", "copy", "roundtrip"}
    assert stats["rejected"].get("dedup") == 6  # keyword and natural answers are identical here

    result = runner.invoke(_main(), ["label", "--corpus", str(tiny_beir), "--queries", str(tmp_path / "gen" / "queries.jsonl"),
                                     "--output-dir", str(tmp_path / "lab"), "--judge-mode", "binary",
                                     "--judge-top-k", "3", *llm])  # fmt: skip
    assert result.exit_code == 0, result.output
    groups = read_groups(tmp_path / "lab" / "groups.jsonl")
    assert groups and all(g.positive.probability is not None for g in groups)
    label_stats = json.loads((tmp_path / "lab" / "label_stats.json").read_text())
    assert label_stats["groups"] == len(groups)

    assert all(h["authorization"] == f"Bearer {KEY}" for h in server.headers_seen)
    for path in (tmp_path / "gen").iterdir():
        assert KEY not in path.read_text(encoding="utf-8")
    for path in (tmp_path / "lab").iterdir():
        assert KEY not in path.read_text(encoding="utf-8")
    assert KEY not in result.output

    calls = server.calls  # a rerun into a fresh folder: all from the cache
    again = runner.invoke(_main(), ["label", "--corpus", str(tiny_beir), "--queries", str(tmp_path / "gen" / "queries.jsonl"),
                                    "--output-dir", str(tmp_path / "lab2"), "--judge-mode", "binary",
                                    "--judge-top-k", "3", *llm])  # fmt: skip
    assert again.exit_code == 0, again.output
    assert server.calls == calls
    assert json.loads((tmp_path / "lab2" / "label_stats.json").read_text())["usage"]["cache_hit_rate"] == 1.0


def test_config_file_and_flags(server: FakeOpenAIServer, tiny_beir: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "gen.yaml"
    cfg.write_text(f"base-url: {server.base_url}\nmodel: fake-model\nquery-types: natural\nmax-passages: 2\nno-cache: true\n")
    runner = CliRunner()
    result = runner.invoke(_main(), ["generate", "--corpus", str(tiny_beir), "--output-dir", str(tmp_path / "o"),
                                     "--config", str(cfg), "--roundtrip-k", "0", "--min-chars", "0"])  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "o" / "generate_config.json").read_text())
    assert saved["generation"]["query_types"] == ["natural"] and saved["passages"] == 2
    assert saved["llm"]["cache_path"] is None
    bad = tmp_path / "bad.yaml"
    bad.write_text("bogus-option: 1\n")
    result = runner.invoke(_main(), ["generate", "--corpus", str(tiny_beir), "--output-dir", str(tmp_path / "o2"), "--config", str(bad)])
    assert result.exit_code != 0 and "unknown config keys: bogus-option" in result.output


def test_label_needs_an_input(tiny_beir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(_main(), ["label", "--corpus", str(tiny_beir), "--output-dir", str(tmp_path / "o")])
    assert result.exit_code != 0 and "--candidates" in result.output


def test_failed_endpoint_reports_and_keeps_going(tiny_beir: Path, tmp_path: Path) -> None:
    with FakeOpenAIServer(responder=lambda body: Fault.status_code(503)) as srv:
        result = CliRunner().invoke(_main(), ["generate", "--corpus", str(tiny_beir), "--output-dir", str(tmp_path / "o"),
                                              "--base-url", srv.base_url, "--model", "m", "--max-retries", "0",
                                              "--query-types", "natural", "--no-cache", "--min-chars", "0"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "6 failed calls (rerun to retry)" in result.output


def test_models_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    listing = runner.invoke(_main(), ["models", "list"])
    assert listing.exit_code == 0, listing.output
    assert "qwen2.5-coder-1.5b  (default)" in listing.output and "smollm2-135m" in listing.output
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + b"\x00" * 16)
    assert runner.invoke(_main(), ["models", "path", str(gguf)]).output.strip() == str(gguf)
    missing = runner.invoke(_main(), ["models", "fetch", "no-such-model"])
    assert missing.exit_code != 0 and "unknown packaged model" in missing.output


def test_generate_keeps_excluded_passages_from_the_llm(server: FakeOpenAIServer, tiny_beir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    llm = ["--base-url", server.base_url, "--model", "fake-model", "--cache", str(tmp_path / "cache.sqlite")]
    excluded = tmp_path / "exclude.txt"
    excluded.write_text("# relevant to evaluation questions\nd1\nd4\n", encoding="utf-8")
    args = ["generate", "--corpus", str(tiny_beir), "--query-types", "keyword", "--max-passages", "0",
            "--min-chars", "0", "--roundtrip-k", "0", *llm]  # fmt: skip
    result = runner.invoke(_main(), [*args, "--output-dir", str(tmp_path / "gen"), "--exclude-ids", str(excluded)])
    assert result.exit_code == 0, result.output
    stats = json.loads((tmp_path / "gen" / "generate_stats.json").read_text())
    assert stats["passages"] == 4
    asked = {json.loads(line)["source_doc_id"] for name in ("queries.jsonl", "rejected.jsonl")
             for line in (tmp_path / "gen" / name).read_text().splitlines() if line.strip()}  # fmt: skip
    assert asked == {"d2", "d3", "d5", "d6"}
    excluded.write_text("d1\nnope\n", encoding="utf-8")
    bad = runner.invoke(_main(), [*args, "--output-dir", str(tmp_path / "bad"), "--exclude-ids", str(excluded)])
    assert bad.exit_code != 0 and "exclude.txt:2" in bad.output and "unknown document 'nope'" in bad.output
    assert not (tmp_path / "bad").exists()  # nothing made before the input was checked
