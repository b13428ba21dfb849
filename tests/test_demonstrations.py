"""The user's own example queries, replayed to the LLM as its earlier answers (the ``demonstrated`` query type)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from synthrank.data import Document, read_corpus, read_jsonl
from synthrank.errors import DataError
from synthrank.llm import LLMClient, LLMConfig, ResponseCache
from synthrank.pipeline import RunContext, build_steps, load_run_config
from synthrank.pipeline.stages import generation_passages
from synthrank.synthesize import (
    Demonstration,
    GenerationConfig,
    QueryGenerator,
    generation_messages,
    read_demonstrations,
)
from synthrank.synthesize.demonstrations import DEMONSTRATION_PASSAGE_CHARS
from synthrank_cli.main import main
from tests.fake_openai_server import FakeOpenAIServer, Fault

CORPUS = {f"d{i}": Document(f"d{i}", f"passage {i} " * 200, title=f"Title {i}") for i in range(5)}


def _write(path: Path, *lines: object) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


def test_demonstrations_group_queries_by_passage_in_file_order(tmp_path: Path) -> None:
    path = _write(tmp_path / "demos.jsonl",
                  {"query": "Statins lower LDL.", "doc_id": "d3"}, "",
                  {"query": "Aspirin   thins blood.", "text": "Aspirin inhibits platelets.", "title": "Aspirin"},
                  {"query": "Statins do not raise LDL.", "doc_id": "d3"},
                  {"query": "unused", "doc_id": "d1"})  # fmt: skip
    demos = read_demonstrations(path, CORPUS, max_passages=2)
    assert demos == [
        Demonstration("Title 3", CORPUS["d3"].text, ("Statins lower LDL.", "Statins do not raise LDL."), "d3"),
        Demonstration("Aspirin", "Aspirin inhibits platelets.", ("Aspirin thins blood.",), None),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"demos.jsonl:2, field 'generate.demonstrations': not JSON"),
        ('["a list"]', r"demos.jsonl:2, field 'generate.demonstrations': expected a JSON object"),
        ('{"doc_id": "d1"}', r"demos.jsonl:2, field 'query': needs a non-empty string"),
        ('{"query": "  ", "doc_id": "d1"}', r"demos.jsonl:2, field 'query': needs a non-empty string"),
        ('{"query": "q", "doc_id": "nope"}', r"demos.jsonl:2, field 'doc_id': names unknown document 'nope'"),
        ('{"query": "q"}', r"demos.jsonl:2, field 'doc_id': needs a doc_id of the corpus or the passage's text"),
        ('{"query": "q", "text": "t", "title": 3}', r"demos.jsonl:2, field 'title': must be a string"),
    ],
)
def test_a_bad_demonstration_names_its_file_line_and_field(tmp_path: Path, line: str, message: str) -> None:
    path = _write(tmp_path / "demos.jsonl", {"query": "fine", "doc_id": "d0"}, line)
    with pytest.raises(DataError, match=message):
        read_demonstrations(path, CORPUS)


def test_an_empty_or_missing_demonstrations_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="holds no demonstration"):
        read_demonstrations(_write(tmp_path / "empty.jsonl", ""), CORPUS)
    with pytest.raises(DataError, match="demonstrations file does not exist"):
        read_demonstrations(tmp_path / "missing.jsonl", CORPUS)


def test_demonstrations_are_earlier_turns_of_the_demonstrated_type_only() -> None:
    demos = [Demonstration("Title 3", CORPUS["d3"].text, ("Statins lower LDL.", "Statins do not raise LDL.")),
             Demonstration("Aspirin", "Aspirin inhibits platelets.", ("Aspirin thins blood.",))]  # fmt: skip
    messages = generation_messages("demonstrated", "Glaucoma", "Glaucoma damages the optic nerve.", n=3,
                                   demonstrations=demos)  # fmt: skip
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert json.loads(messages[2]["content"]) == {"queries": ["Statins lower LDL.", "Statins do not raise LDL."]}
    assert json.loads(messages[4]["content"]) == {"queries": ["Aspirin thins blood."]}
    assert "Write 2 search queries" in messages[1]["content"] and "Write one search query" in messages[3]["content"]
    assert len(messages[1]["content"]) < DEMONSTRATION_PASSAGE_CHARS + 300, "a demonstrated passage is cut"
    assert (
        "Glaucoma damages the optic nerve." in messages[-1]["content"]
        and "Write 3 search queries" in messages[-1]["content"]
    )
    # the system turn and the demonstrations are the same for every passage: a prefix the server can reuse
    other = generation_messages("demonstrated", "Asthma", "Asthma narrows airways.", n=3, demonstrations=demos)
    assert other[:-1] == messages[:-1]
    assert generation_messages("natural", "G", "text", n=3, demonstrations=demos) == generation_messages(
        "natural", "G", "text", n=3
    )
    with pytest.raises(DataError, match="need the user's example queries"):
        generation_messages("demonstrated", "G", "text", n=3)


def test_the_generator_sends_the_demonstrations_and_needs_them(tiny_beir: Path, tmp_path: Path) -> None:
    corpus = read_corpus(tiny_beir)
    seen: list[list[dict]] = []

    def answer(body: dict) -> Fault:
        seen.append(body["messages"])
        return Fault.ok(json.dumps({"queries": ["Glaucoma is caused by pressure in the eye."]}))

    demos = [Demonstration("Aspirin", "Aspirin inhibits platelets.", ("Aspirin thins blood.",))]
    cfg = LLMConfig(model="fake-model", max_retries=1, timeout=5.0)
    with FakeOpenAIServer(responder=answer) as srv:
        cfg.base_url = srv.base_url
        with LLMClient(cfg, cache=ResponseCache(tmp_path / "c.sqlite")) as client:
            gen = QueryGenerator(client, GenerationConfig(query_types=["demonstrated"]), demonstrations=demos)
            report = gen.generate([corpus["d1"], corpus["d3"]], tmp_path / "q.jsonl")
            with pytest.raises(DataError, match="needs the user's example queries"):
                QueryGenerator(client, GenerationConfig(query_types=["demonstrated"]))
    assert report.kept == 2 and len(seen) == 2
    assert all(m[2] == {"role": "assistant", "content": '{"queries": ["Aspirin thins blood."]}'} for m in seen)
    assert {r["query_type"] for r in read_jsonl(tmp_path / "q.jsonl")} == {"demonstrated"}


def _corpus_file(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"_id": f"d{i}", "title": f"t{i}", "text": f"passage number {i} " * 8}) + "\n"
                            for i in range(12)), encoding="utf-8")  # fmt: skip
    return path


def test_a_run_never_writes_for_a_demonstrated_passage_and_restarts_when_the_file_changes(tmp_path: Path) -> None:
    corpus = _corpus_file(tmp_path)
    demos = _write(tmp_path / "demos.jsonl", {"query": "passage seven", "doc_id": "d7"})
    plain = load_run_config(None, {"corpus": str(corpus), "generate": {"max_passages": 6}})
    config = load_run_config(None, {"corpus": str(corpus), "generate": {
        "max_passages": 6, "demonstrations": str(demos), "query_types": ["demonstrated"]}})  # fmt: skip
    without = [d.id for d in generation_passages(RunContext(plain, tmp_path / "a"))]
    with_demos = [d.id for d in generation_passages(RunContext(config, tmp_path / "b"))]
    assert "d7" in without, "the seeded draw must hold d7 for this test to say anything"
    assert with_demos == [d for d in without if d != "d7"], "the same draw, less the demonstrated passage"

    def fingerprint(cfg: dict) -> dict:
        return next(s for s in build_steps(RunContext(cfg, tmp_path)) if s.name == "generate").config["generate"]

    assert "demonstrations" not in fingerprint(plain), "folders from before the setting keep their marker"
    before = fingerprint(config)
    _write(demos, {"query": "passage seven, asked otherwise", "doc_id": "d7"})
    assert fingerprint(config)["demonstrations_sha256"] != before["demonstrations_sha256"]

    config["generate"]["query_types"] = ["natural"]
    with pytest.raises(DataError, match=r"add it to generate\.query_types"):
        generation_passages(RunContext(config, tmp_path / "c"))


def test_the_cli_flag_sets_the_file_and_the_type(tmp_path: Path) -> None:
    demos = _write(tmp_path / "demos.jsonl", {"query": "q", "doc_id": "d1"})
    result = CliRunner().invoke(main, ["run", "--corpus", str(_corpus_file(tmp_path)), "--demonstrations", str(demos),
                                       "--print-config"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"demonstrations: {demos}" in result.output and "query_types:\n  - demonstrated" in result.output
