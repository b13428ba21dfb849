"""A torn last line in queries.jsonl or labels.jsonl (a run killed with -9 mid-write): resume repairs it, says so,
and redoes the torn record from the response cache, asking the LLM nothing again."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from synthrank.data import read_corpus, read_jsonl
from synthrank.label import LabelConfig, Labeler, LLMJudge
from synthrank.synthesize import GenerationConfig, QueryGenerator, build_filters, sample_passages
from tests.fake_openai_server import FakeOpenAIServer, Fault
from tests.test_label import TABLE, _judge_by_table, _queries
from tests.test_label import _client as judge_client
from tests.test_synthesize import _answer_for
from tests.test_synthesize import _client as generator_client


def tear_last_line(path: Path) -> str:
    """Cut the file's last record in the middle, as a kill during its write leaves it; returns the torn text."""
    data = path.read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1
    torn = data[: start + (len(data) - start) // 2]
    path.write_bytes(torn)
    return torn[start:].decode("utf-8", errors="replace")


def assert_repair_logged(caplog: pytest.LogCaptureFixture, path: Path, line: int) -> None:
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    expected = rf"{re.escape(str(path))}: removed a torn last line \(line {line}, \d+ bytes with no newline\) left by an interrupted run"
    assert [w for w in warnings if re.match(expected, w)], f"the repair was not logged: {warnings}"


def test_generation_repairs_a_torn_queries_line_and_redoes_it_from_the_cache(
    tiny_beir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Caught: ``_truncate_partial_tail`` not called (the torn line failed the rerun: DataError, malformed JSON at
    the last line) and the repair not logged."""
    passages = sample_passages(read_corpus(tiny_beir), 3, seed=0)
    out = tmp_path / "out" / "queries.jsonl"
    config = GenerationConfig(query_types=["keyword", "natural"])
    with FakeOpenAIServer(responder=lambda body: Fault.ok(_answer_for(body))) as server:
        with generator_client(server, tmp_path) as client:
            QueryGenerator(client, config, filters=build_filters(max_copy_ratio=None)).generate(passages, out)
        whole = read_jsonl(out)
        assert len(whole) == 6
        tear_last_line(out)
        calls = server.calls
        with caplog.at_level(logging.WARNING, logger="synthrank.data.jsonl"), generator_client(server, tmp_path) as client:
            report = QueryGenerator(client, config, filters=build_filters(max_copy_ratio=None)).generate(passages, out)
            assert client.usage.calls == 0 and client.usage.cache_hits == 1  # only the torn slot, from the cache
        assert server.calls == calls
    assert report.slots_done_before == 5 and report.kept == 6
    assert read_jsonl(out) == whole
    assert_repair_logged(caplog, out, 6)


def test_labelling_repairs_a_torn_labels_line_and_redoes_it_from_the_cache(
    tiny_beir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Caught: the same two mutations, on labels.jsonl."""
    corpus = read_corpus(tiny_beir)
    out = tmp_path / "out"
    with FakeOpenAIServer(model="fake-judge", responder=_judge_by_table(TABLE)) as server:  # type: ignore[arg-type]
        with judge_client(server, tmp_path) as client:
            Labeler(LLMJudge(client), corpus, LabelConfig(judge_top_k=5)).label(_queries(), out)
        whole = read_jsonl(out / "labels.jsonl")
        tear_last_line(out / "labels.jsonl")
        calls = server.calls
        with caplog.at_level(logging.WARNING, logger="synthrank.data.jsonl"), judge_client(server, tmp_path) as client:
            report = Labeler(LLMJudge(client), corpus, LabelConfig(judge_top_k=5)).label(_queries(), out)
            assert client.usage.calls == 0 and client.usage.cache_hits == 1
        assert server.calls == calls
    assert report.pairs_done_before == len(whole) - 1
    assert read_jsonl(out / "labels.jsonl") == whole
    assert_repair_logged(caplog, out / "labels.jsonl", len(whole))
