"""LLMRelevanceLabeler: the core judge's labels on Haystack documents, serialisation, bad input."""

from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("haystack")

from haystack import Document, Pipeline
from haystack.components.generators.chat import MockChatGenerator
from haystack.dataclasses import ChatMessage

from haystack_synthrank import LLMRelevanceLabeler
from synthrank.errors import DataError
from synthrank.label import JUDGE_PROMPT_VERSION

TYPE = "haystack_synthrank.llm_relevance_labeler.LLMRelevanceLabeler"

DOCS = [
    Document(id="a", content="Glaucoma damages the optic nerve.", meta={"title": "Glaucoma"}),
    Document(id="b", content="Insulin lowers blood sugar.", meta={"title": "Insulin"}),
    Document(id="c", content="Asthma narrows the airways.", meta={"title": "Asthma"}),
]


class Judge:
    """Grades like a careful judge would on these documents: 3 when the passage mentions 'optic'."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def __call__(self, messages: list[ChatMessage]) -> str:
        user = messages[-1].text or ""
        self.prompts.append(user)
        passage = user.split("<passage>")[1].split("</passage>")[0]
        return json.dumps({"grade": 3 if "optic" in passage else 0, "reason": "checked the passage"})


def test_labels_in_meta_and_inputs_untouched() -> None:
    judge = Judge()
    labeler = LLMRelevanceLabeler(chat_generator=MockChatGenerator(response_fn=judge), meta_fields_to_embed=["title"])
    out = labeler.run(query="what damages the optic nerve", documents=DOCS)
    assert [d.id for d in out["documents"]] == ["a", "b", "c"]
    grades = {d.id: d.meta["relevance_grade"] for d in out["documents"]}
    assert grades == {"a": 3, "b": 0, "c": 0}
    assert [d.id for d in out["relevant_documents"]] == ["a"]
    first = out["documents"][0].meta
    assert first["title"] == "Glaucoma" and first["relevance_reason"] == "checked the passage"
    assert first["relevance_judge"] == {"model": "mock-model", "prompt_version": f"{JUDGE_PROMPT_VERSION}-graded"}
    assert first["relevance_probability"] is None  # the mock gives no log-probabilities
    assert all("relevance_grade" not in d.meta for d in DOCS)
    assert "Glaucoma\nGlaucoma damages the optic nerve." in judge.prompts[0]  # title + content, delimited
    assert "Query: what damages the optic nerve" in judge.prompts[0]


def test_unusable_answers_are_marked_not_raised() -> None:
    labeler = LLMRelevanceLabeler(chat_generator=MockChatGenerator(responses="I refuse to answer that."))
    out = labeler.run(query="optic nerve", documents=DOCS[:2])
    assert [d.meta["relevance_grade"] for d in out["documents"]] == [None, None]
    assert all(d.meta["relevance_error"] for d in out["documents"]) and out["relevant_documents"] == []


def test_empty_and_bad_input() -> None:
    labeler = LLMRelevanceLabeler(chat_generator=MockChatGenerator(response_fn=Judge()))
    assert labeler.run(query="q", documents=[]) == {"documents": [], "relevant_documents": []}
    with pytest.raises(ValueError, match="empty query"):
        labeler.run(query=" ", documents=DOCS)
    with pytest.raises(DataError, match=r"without text.*'x'"):
        labeler.run(query="q", documents=[Document(id="x", content="")])
    with pytest.raises(DataError, match="judge mode"):
        LLMRelevanceLabeler(chat_generator=MockChatGenerator(), mode="pairwise")
    with pytest.raises(DataError, match="1, 2 or 3"):
        LLMRelevanceLabeler(chat_generator=MockChatGenerator(), relevant_grade=5)


def test_run_async_and_instruction() -> None:
    judge = Judge()
    labeler = LLMRelevanceLabeler(chat_generator=MockChatGenerator(response_fn=judge))
    out = asyncio.run(labeler.run_async(query="optic", documents=DOCS[:1], instruction="Only anatomy counts."))
    assert out["documents"][0].meta["relevance_grade"] == 3
    assert "Only anatomy counts." in judge.prompts[0]


def test_to_dict_from_dict_and_yaml() -> None:
    labeler = LLMRelevanceLabeler(
        chat_generator=MockChatGenerator(responses='{"grade": 1}'), mode="binary", meta_fields_to_embed=["title"]
    )
    data = labeler.to_dict()
    assert data == {
        "type": TYPE,
        "init_parameters": {
            "chat_generator": MockChatGenerator(responses='{"grade": 1}').to_dict(),
            "mode": "binary",
            "relevant_grade": 2,
            "self_consistency": 1,
            "sc_temperature": 0.8,
            "logprobs": True,
            "top_logprobs": 20,
            "max_passage_chars": 2000,
            "max_tokens": 96,
            "meta_fields_to_embed": ["title"],
            "embedding_separator": "\n",
            "cache_path": None,
            "max_concurrency": 4,
        },
    }
    assert LLMRelevanceLabeler.from_dict(data).to_dict() == data
    pipe = Pipeline()
    pipe.add_component("labeler", labeler)
    assert Pipeline.loads(pipe.dumps()).get_component("labeler").to_dict() == data  # type: ignore[attr-defined]


def test_default_chat_generator_keeps_its_key_out_of_a_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.utils import Secret

    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-in-a-dump")
    labeler = LLMRelevanceLabeler(mode="binary")
    expected = OpenAIChatGenerator(api_key=Secret.from_env_var(["OPENAI_API_KEY"], strict=False), model="gpt-4o-mini")
    assert labeler.to_dict()["init_parameters"]["chat_generator"] == expected.to_dict()
    pipe = Pipeline()
    pipe.add_component("labeler", labeler)
    yaml_text = pipe.dumps()
    assert "sk-never-in-a-dump" not in yaml_text and "OPENAI_API_KEY" in yaml_text
    loaded = Pipeline.loads(yaml_text).get_component("labeler")
    assert loaded.to_dict() == labeler.to_dict()  # type: ignore[attr-defined]
