"""SyntheticQueryGenerator and the chat-generator client: the core generator's records through a Haystack chat generator."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("haystack")

from haystack import Document, Pipeline
from haystack.components.generators.chat import MockChatGenerator, OpenAIChatGenerator
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.dataclasses import ChatMessage
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.utils import Secret

from haystack_synthrank import SyntheticQueryGenerator
from haystack_synthrank.chat_client import ChatGeneratorClient, generation_kwargs, to_completion
from synthrank.errors import DataError
from synthrank.llm.client import LLMCallError, LLMRequest
from synthrank.synthesize import PROMPT_VERSION

TYPE = "haystack_synthrank.synthetic_query_generator.SyntheticQueryGenerator"

DOCS = [
    Document(id="d1", content="Glaucoma damages the optic nerve and can cause blindness.", meta={"title": "Glaucoma"}),
    Document(id="d2", content="Insulin lowers blood sugar in people with diabetes.", meta={"title": "Insulin"}),
]


class Replies:
    """Answers like an LLM would, from the passage title in the prompt; counts the calls."""

    def __init__(self) -> None:
        self.calls: list[list[ChatMessage]] = []

    def __call__(self, messages: list[ChatMessage]) -> str:
        self.calls.append(messages)
        user = messages[-1].text or ""
        title = user.split("<passage>")[1].strip().splitlines()[0]
        qtype = "keyword" if "keyword" in user else "natural"
        return json.dumps({"queries": [f"{title.lower()} {qtype} question"]})


@pytest.fixture
def replies() -> Replies:
    return Replies()


def _generator(replies: Replies, **kwargs: Any) -> SyntheticQueryGenerator:
    return SyntheticQueryGenerator(
        chat_generator=MockChatGenerator(response_fn=replies), query_types=["keyword", "natural"], **kwargs
    )


def test_records_with_provenance_and_documents(replies: Replies) -> None:
    out = _generator(replies).run(documents=DOCS)
    assert len(replies.calls) == 4  # 2 documents x 2 types
    assert "<passage>\nGlaucoma\nGlaucoma damages" in (replies.calls[0][-1].text or "")  # title + text in the prompt
    queries = {(r["source_doc_id"], r["query_type"]): r for r in out["queries"]}
    assert set(queries) == {("d1", "keyword"), ("d1", "natural"), ("d2", "keyword"), ("d2", "natural")}
    record = queries[("d1", "natural")]
    assert record["query"] == "glaucoma natural question"
    assert record["model"] == "mock-model" and record["prompt_version"] == PROMPT_VERSION
    assert record["query_id"].startswith("sq-")
    docs = {d.content: d for d in out["documents"]}
    assert docs["glaucoma natural question"].meta["source_doc_id"] == "d1"
    assert out["report"]["kept"] == 4 and out["report"]["usage"]["calls"] == 4


def test_filters_reject_and_count(replies: Replies) -> None:
    out = SyntheticQueryGenerator(
        chat_generator=MockChatGenerator(responses=json.dumps({"queries": ["same query for all"]})),
        query_types=["keyword", "natural"],
    ).run(documents=DOCS)
    assert [r["query"] for r in out["queries"]] == ["same query for all"]
    assert out["report"]["rejected"] == {"dedup": 3}
    short = _generator(replies, min_words=5).run(documents=DOCS)
    assert short["queries"] == [] and short["report"]["rejected"] == {"length": 4}


def test_output_dir_resumes_and_cache_makes_zero_calls(replies: Replies, tmp_path: Path) -> None:
    first = _generator(replies, output_dir=str(tmp_path / "out"), cache_path=str(tmp_path / "llm.sqlite")).run(
        documents=DOCS
    )
    assert (tmp_path / "out" / "queries.jsonl").exists() and len(replies.calls) == 4
    again = _generator(replies, output_dir=str(tmp_path / "out")).run(documents=DOCS)
    assert len(replies.calls) == 4  # everything was already on disk
    assert again["queries"] == first["queries"]
    fresh_dir = _generator(replies, output_dir=str(tmp_path / "out2"), cache_path=str(tmp_path / "llm.sqlite")).run(
        documents=DOCS
    )
    assert len(replies.calls) == 4  # a new output, but every answer came from the response cache
    assert fresh_dir["report"]["usage"]["cache_hits"] == 4
    assert fresh_dir["queries"] == first["queries"]


def test_a_failing_generator_loses_nothing_and_does_not_crash() -> None:
    def broken(messages: list[ChatMessage]) -> str:
        raise ConnectionError("endpoint down")

    out = SyntheticQueryGenerator(chat_generator=MockChatGenerator(response_fn=broken), query_types=["natural"]).run(
        documents=DOCS
    )
    assert out["queries"] == [] and out["report"]["slots_failed"] == 2
    garbage = SyntheticQueryGenerator(
        chat_generator=MockChatGenerator(responses="I cannot help with that."), query_types=["natural"]
    ).run(documents=DOCS)
    assert garbage["queries"] == [] and sum(garbage["report"]["parse_failures"].values()) == 2


def test_empty_and_bad_input(replies: Replies) -> None:
    assert _generator(replies).run(documents=[]) == {"queries": [], "documents": [], "report": {}}
    with pytest.raises(DataError, match=r"without text.*'x'"):
        _generator(replies).run(documents=[*DOCS, Document(id="x", content="")])
    with pytest.raises(DataError, match="unknown query types"):
        SyntheticQueryGenerator(chat_generator=MockChatGenerator(), query_types=["limerick"])
    with pytest.raises(ValueError, match="daily_life"):
        SyntheticQueryGenerator(chat_generator=MockChatGenerator(), personas={"children": ["a child"]})


def test_run_async(replies: Replies) -> None:
    out = asyncio.run(_generator(replies).run_async(documents=DOCS[:1]))
    assert len(out["queries"]) == 2


def test_roundtrip_filter_through_a_haystack_retriever(replies: Replies) -> None:
    store = InMemoryDocumentStore()
    store.write_documents(DOCS)
    out = _generator(replies, roundtrip_retriever=InMemoryBM25Retriever(document_store=store), roundtrip_k=1).run(
        documents=DOCS
    )
    assert len(out["queries"]) == 4
    assert all(r["roundtrip_rank"] == 1 for r in out["queries"])


def test_to_dict_from_dict_yaml_and_no_secret_in_a_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-in-a-dump")
    generator = SyntheticQueryGenerator(query_types=["natural"], personas={"expert": ["a glaucoma surgeon"]})
    data = generator.to_dict()
    assert data["type"] == TYPE
    assert (
        data["init_parameters"]["chat_generator"]
        == OpenAIChatGenerator(
            api_key=Secret.from_env_var(["OPENAI_API_KEY"], strict=False), model="gpt-4o-mini"
        ).to_dict()
    )
    assert {k: v for k, v in data["init_parameters"].items() if k != "chat_generator"} == {
        "query_types": ["natural"],
        "n_per_type": 1,
        "personas_per_passage": 1,
        "personas": {"expert": ["a glaucoma surgeon"]},
        "temperature": 0.7,
        "max_tokens": 256,
        "max_passage_chars": 2000,
        "json_mode": False,
        "seed": 0,
        "max_queries": None,
        "batch_size": 4,
        "search_task": None,
        "dedup": True,
        "min_words": 2,
        "max_words": 40,
        "max_copy_ratio": 0.75,
        "roundtrip_retriever": None,
        "roundtrip_k": 20,
        "title_meta_field": "title",
        "output_dir": None,
        "cache_path": None,
        "max_concurrency": 4,
    }
    assert SyntheticQueryGenerator.from_dict(data).to_dict() == data
    pipe = Pipeline()
    pipe.add_component("generator", generator)
    yaml_text = pipe.dumps()
    assert "sk-never-in-a-dump" not in yaml_text and "OPENAI_API_KEY" in yaml_text
    assert Pipeline.loads(yaml_text).get_component("generator").to_dict() == data  # type: ignore[attr-defined]


def test_chat_client_conversions() -> None:
    request = LLMRequest.chat(
        [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
        temperature=0.0,
        max_tokens=3,
        seed=5,
        logprobs=True,
        top_logprobs=2,
        json_mode=True,
    )
    assert generation_kwargs(request) == {
        "temperature": 0.0,
        "max_tokens": 3,
        "seed": 5,
        "logprobs": True,
        "top_logprobs": 2,
        "response_format": {"type": "json_object"},
    }
    reply = ChatMessage.from_assistant(
        "yes",
        meta={
            "model": "m",
            "finish_reason": "stop",
            "usage": {"prompt_tokens": 7, "completion_tokens": 1},
            "logprobs": {
                "content": [
                    {
                        "token": "yes",
                        "logprob": -0.1,
                        "top_logprobs": [{"token": "yes", "logprob": -0.1}, {"token": "no", "logprob": -2.4}],
                    }
                ]
            },
        },
    )
    completion = to_completion(reply, "fallback", 0.5)
    assert (completion.text, completion.model, completion.prompt_tokens, completion.finish_reason) == (
        "yes",
        "m",
        7,
        "stop",
    )
    assert completion.logprobs == [{"token": "yes", "logprob": -0.1, "top": [["yes", -0.1], ["no", -2.4]]}]

    class NoReplies:
        model = "silent"

        def run(self, messages: list[ChatMessage], generation_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
            return {"replies": []}

    client = ChatGeneratorClient(NoReplies(), max_concurrency=2)
    results = client.complete_many([request, request])
    assert all(isinstance(r, LLMCallError) for r in results)  # an empty reply list is a counted failure
    assert client.usage.failures == {"no_reply": 2}


def test_a_structured_output_cut_off_at_max_tokens_counts_as_an_answered_call(tmp_path: Path) -> None:
    """OpenAIChatGenerator's parse endpoint raises LengthFinishReasonError; the tokens were still spent."""
    from openai import LengthFinishReasonError
    from openai.types.chat import ChatCompletion

    raw = ChatCompletion.model_validate(
        {
            "id": "c1",
            "object": "chat.completion",
            "created": 0,
            "model": "tiny",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "length",
                    "message": {"role": "assistant", "content": '{"queries": ["dia'},
                }
            ],
            "usage": {"prompt_tokens": 266, "completion_tokens": 64, "total_tokens": 330},
        }
    )

    class CutOff:
        model = "tiny"
        calls = 0

        def run(self, messages: list[ChatMessage], generation_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
            CutOff.calls += 1
            try:
                raise LengthFinishReasonError(completion=raw)
            except LengthFinishReasonError as exc:  # as Haystack surfaces it: wrapped, with the cause kept
                raise RuntimeError("generation failed") from exc

    client = ChatGeneratorClient(CutOff(), cache_path=tmp_path / "llm.sqlite")
    request = LLMRequest.chat([{"role": "user", "content": "u"}], max_tokens=64, json_mode=True)
    completion = client.complete(request)
    assert (completion.text, completion.finish_reason, completion.truncated) == ('{"queries": ["dia', "length", True)
    assert (client.usage.calls, client.usage.prompt_tokens, client.usage.completion_tokens) == (1, 266, 64)
    assert not client.usage.failures
    again = client.complete(request)  # cached like any answer: a rerun does not pay for it twice
    assert again.cached and CutOff.calls == 1
    with pytest.raises(LLMCallError):
        ChatGeneratorClient(MockChatGenerator(response_fn=lambda m: (_ for _ in ()).throw(ValueError("x")))).complete(
            request
        )


def test_a_search_task_reaches_every_call_and_survives_serialisation(replies: Replies, monkeypatch: pytest.MonkeyPatch) -> None:
    generator = _generator(replies, search_task="ophthalmologists checking a treatment detail")
    generator.run(documents=DOCS)
    assert len(replies.calls) == 4
    for messages in replies.calls:
        assert "ophthalmologists checking a treatment detail." in (messages[0].text or "")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    data = SyntheticQueryGenerator(search_task="ophthalmologists checking a treatment detail").to_dict()
    assert data["init_parameters"]["search_task"] == "ophthalmologists checking a treatment detail"
    assert SyntheticQueryGenerator.from_dict(data).to_dict() == data
    with pytest.raises(DataError) as err:
        _generator(replies, search_task="x" * 400)
    assert err.value.field == "search_task"
