"""PyTerrier QueryGenerator and RelevanceLabeler: the core stages on frames, composing into the synthetic-data pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("pyterrier")

import pyterrier as pt

from pyterrier_synthrank import HardNegativeMiner, QueryGenerator, RelevanceLabeler, SynthBM25, SynthReranker
from synthrank.errors import DataError
from synthrank.label.judge import LLMJudge
from synthrank.synthesize import PROMPT_VERSION, GenerationConfig
from tests.adapter_helpers import ScriptedLLM

DOCS = pd.DataFrame(
    {
        "docno": ["d1", "d2", "d3"],
        "title": ["Glaucoma", "Insulin", "Asthma"],
        "text": [
            "Glaucoma damages the optic nerve; its symptoms can end in blindness.",
            "Insulin lowers blood sugar and eases the symptoms of diabetes.",
            "Asthma narrows the airways; symptoms include wheezing.",
        ],
    }
)


def _queries(messages: list[dict[str, str]]) -> str:
    user = messages[-1]["content"]
    title = user.split("<passage>")[1].strip().splitlines()[0].lower()
    kind = "keyword" if "keyword" in user else "question"
    return json.dumps({"queries": [f"{title} symptoms {kind}"]})


def _judge(messages: list[dict[str, str]]) -> str:
    user = messages[-1]["content"]
    query = user.split("Query: ")[1].splitlines()[0].split()[0]
    passage = user.split("<passage>")[1].lower()
    return json.dumps({"grade": 3 if query in passage else 0, "reason": "scripted"})


def test_querygen_column_like_doc2query() -> None:
    llm = ScriptedLLM(_queries)
    out = QueryGenerator(llm, query_types=["keyword", "natural"]).transform(DOCS)
    assert llm.calls == 6
    assert list(out.columns) == ["docno", "title", "text", "querygen"]
    assert out["querygen"].tolist()[0] == "glaucoma symptoms keyword\nglaucoma symptoms question"
    assert "querygen" not in DOCS.columns


def test_as_topics_feeds_bm25_and_the_miner() -> None:
    topics = QueryGenerator(ScriptedLLM(_queries), query_types=["natural"], as_topics=True).transform(DOCS)
    assert list(topics.columns) == [
        "qid", "query", "source_doc_id", "query_type", "persona", "instruction", "model", "prompt_version",
    ]  # fmt: skip
    assert topics["source_doc_id"].tolist() == ["d1", "d2", "d3"]
    assert set(topics["prompt_version"]) == {PROMPT_VERSION}
    pipeline = QueryGenerator(ScriptedLLM(_queries), query_types=["natural"], as_topics=True) >> (
        SynthBM25.from_documents(DOCS) >> HardNegativeMiner(DOCS, num_negatives=1)
    )
    groups = pipeline.transform(DOCS)
    assert groups["docno"].tolist() == ["d1", "d2", "d3"]
    assert all(len(n) == 1 for n in groups["negatives"])


def test_output_file_resumes_without_calls(tmp_path: Path) -> None:
    llm = ScriptedLLM(_queries)
    first = QueryGenerator(llm, query_types=["natural"], output=tmp_path / "queries.jsonl", as_topics=True).transform(
        DOCS
    )
    again = QueryGenerator(llm, query_types=["natural"], output=tmp_path / "queries.jsonl", as_topics=True).transform(
        DOCS
    )
    assert llm.calls == 3
    pd.testing.assert_frame_equal(first, again)


def test_querygen_empty_and_bad_input() -> None:
    gen = QueryGenerator(ScriptedLLM(_queries), query_types=["natural"])
    assert len(gen.transform(DOCS.iloc[:0])) == 0 and "querygen" in gen.transform(DOCS.iloc[:0]).columns
    topics = QueryGenerator(ScriptedLLM(_queries), as_topics=True).transform(DOCS.iloc[:0])
    assert len(topics) == 0 and "source_doc_id" in topics.columns
    with pytest.raises(pt.validate.InputValidationError, match="text"):
        gen.transform(DOCS.drop(columns=["text"]))
    with pytest.raises(DataError, match="document 'd2'"):
        gen.transform(DOCS.assign(text=["a", "", "c"], title=["", "", "c"]))
    with pytest.raises(ValueError, match="either config"):
        QueryGenerator(config=GenerationConfig(), n_per_type=2)


def test_labeler_adds_grades_and_keeps_rows() -> None:
    res = SynthBM25.from_documents(DOCS, num_results=3).transform(
        pd.DataFrame({"qid": ["1"], "query": ["glaucoma blindness"]})
    )
    before = res.copy()
    out = RelevanceLabeler(ScriptedLLM(_judge)).transform(res)
    pd.testing.assert_frame_equal(res, before)
    assert dict(zip(out["docno"], out["label"], strict=True)) == {"d1": 3}  # only d1 mentions glaucoma here
    assert out["label"].dtype == "Int64" and out["label_reason"].tolist() == ["scripted"]
    assert out["label_probability"].isna().all()  # the scripted client gives no log-probabilities


def test_labeler_empty_unusable_answers_and_bad_input() -> None:
    labeler = RelevanceLabeler(ScriptedLLM(_judge))
    empty = labeler.transform(pd.DataFrame(columns=["qid", "query", "docno", "text"]))
    assert len(empty) == 0 and str(empty["label"].dtype) == "Int64"
    rows = pd.DataFrame({"qid": ["1", "1"], "query": ["q", "q"], "docno": ["a", "b"], "text": ["x", "y"]})
    garbage = RelevanceLabeler(ScriptedLLM(lambda m: "no idea")).transform(rows)
    assert garbage["label"].isna().all()  # counted as unusable, never raised
    with pytest.raises(pt.validate.InputValidationError, match="text"):
        labeler.transform(rows.drop(columns=["text"]))
    with pytest.raises(DataError, match="empty 'text' for docno 'b'"):
        labeler.transform(rows.assign(text=["x", " "]))
    with pytest.raises(ValueError, match="either judge"):
        RelevanceLabeler(ScriptedLLM(_judge), judge=LLMJudge(ScriptedLLM(_judge)))  # type: ignore[arg-type]


def test_the_judge_reranks_through_synth_reranker() -> None:
    judge = LLMJudge(ScriptedLLM(_judge), logprobs=False)  # type: ignore[arg-type]
    res = SynthBM25.from_documents(DOCS, num_results=3).transform(pd.DataFrame({"qid": ["1"], "query": ["asthma"]}))
    out = SynthReranker(judge).transform(res)
    assert out.sort_values("rank")["docno"].iloc[0] == "d3"
