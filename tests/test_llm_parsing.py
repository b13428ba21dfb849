"""JSON extraction and repair from LLM text; what cannot be repaired is classified, never crashes."""

from __future__ import annotations

import pytest

from synthrank.llm.parsing import ParseError, extract_json, is_refusal, parse_json


@pytest.mark.parametrize(
    ("text", "expected", "repaired"),
    [
        ('{"queries": ["a", "b"]}', {"queries": ["a", "b"]}, False),
        ('```json\n{"queries": ["a"]}\n```', {"queries": ["a"]}, True),
        ('Sure! Here you go:\n{"grade": 2, "reason": "ok"} Hope it helps.', {"grade": 2, "reason": "ok"}, True),
        ('{"queries": ["a", "b",],}', {"queries": ["a", "b"]}, True),
        ("{'grade': 3, 'ok': True}", {"grade": 3, "ok": True}, True),
        ("\u201cx\u201d", None, None),
        ('["one", "two"]', ["one", "two"], False),
    ],
)
def test_extract_and_repair(text: str, expected: object, repaired: bool | None) -> None:
    if expected is None:
        with pytest.raises(ParseError):
            extract_json(text)
        return
    value, was_repaired = extract_json(text)
    assert value == expected
    assert was_repaired is repaired


def test_truncated_list_keeps_complete_items() -> None:
    value, repaired = extract_json('{"queries": ["first query", "second query", "third qu', truncated=True)
    assert value == {"queries": ["first query", "second query"]}
    assert repaired


def test_truncated_inside_fence() -> None:
    value, _ = extract_json('```json\n{"queries": [{"query": "a", "instruction": "b"}, {"query": "c', truncated=True)
    assert value == {"queries": [{"query": "a", "instruction": "b"}]}


def test_truncated_before_any_value() -> None:
    with pytest.raises(ParseError) as info:
        extract_json('{"queries": ["unfinish', truncated=True)
    assert info.value.kind == "truncated"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("I'm sorry, but I can't help with that.", "refusal"),
        ("As an AI language model, I cannot do that.", "refusal"),
        ("the passage talks about eyes", "garbage"),
        ("{{{{", "garbage"),
    ],
)
def test_unrepairable_is_classified(text: str, kind: str) -> None:
    with pytest.raises(ParseError) as info:
        extract_json(text)
    assert info.value.kind == kind


def test_validation_failure_is_invalid() -> None:
    def needs_queries(obj: object) -> list[str]:
        assert isinstance(obj, dict)
        return list(obj["queries"])

    assert parse_json('{"queries": ["x"]}', needs_queries)[0] == ["x"]
    with pytest.raises(ParseError) as info:
        parse_json('{"other": 1}', needs_queries)
    assert info.value.kind == "invalid"


def test_is_refusal() -> None:
    assert is_refusal("Sorry, I cannot comply.")
    assert not is_refusal("Sorry symptoms in children")
    assert not is_refusal('{"grade": 0}')
