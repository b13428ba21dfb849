"""LCETrainer: serialisation, bad input, and a real (tiny) training run from a document store to a ranker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("haystack")

from haystack import Document, Pipeline
from haystack.components.generators.chat import MockChatGenerator
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.dataclasses import ChatMessage
from haystack.document_stores.in_memory import InMemoryDocumentStore

from haystack_synthrank import HardNegativeMiner, LCETrainer, SyntheticQueryGenerator, SynthRankRanker
from haystack_synthrank.lce_trainer import groups_from_records
from synthrank.errors import DataError
from tests.adapter_helpers import build_tiny_encoder

TYPE = "haystack_synthrank.lce_trainer.LCETrainer"

TOPICS = {
    "d0": ("Glaucoma", "glaucoma damages the optic nerve of the eye and can cause blindness"),
    "d1": ("Cataract", "a cataract clouds the lens of the eye and blurs vision"),
    "d2": ("Retina", "the retina of the eye senses light and sends signals to the brain"),
    "d3": ("Diabetes", "diabetes means high blood sugar because insulin is missing"),
    "d4": ("Insulin", "insulin is a hormone that lowers blood sugar"),
    "d5": ("Asthma", "asthma narrows the airways of the lungs"),
    "d6": ("Migraine", "a migraine is a throbbing headache with nausea"),
    "d7": ("Anemia", "anemia means too few red blood cells carry oxygen"),
}


def _docs() -> list[Document]:
    return [Document(id=i, content=text, meta={"title": t}) for i, (t, text) in TOPICS.items()]


def _group(i: int) -> dict[str, Any]:
    return {
        "query_id": f"q{i}",
        "query": f"question {i} about the eye",
        "positive": {"doc_id": f"p{i}", "text": "glaucoma damages the optic nerve of the eye"},
        "negatives": [{"doc_id": f"n{i}-{j}", "text": f"unrelated passage {j} about blood", "rank": j} for j in (1, 2)],
        "meta": {},
    }


def first_words_as_query(messages: list[ChatMessage]) -> str:
    """An LLM stand-in that writes the passage's first words as its query."""
    passage = (messages[-1].text or "").split("<passage>")[1].strip().splitlines()
    return json.dumps({"queries": [" ".join(passage[1].split()[:4])]})


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny") / "bert")  # type: ignore[no-any-return]


def test_to_dict_from_dict_and_yaml() -> None:
    trainer = LCETrainer(output_dir="runs/x", group_size=4, max_steps=10, training_options={"warmup_ratio": 0.0})
    data = trainer.to_dict()
    assert data == {
        "type": TYPE,
        "init_parameters": {
            "output_dir": "runs/x",
            "model": "minilm",
            "loss": "lce",
            "group_size": 4,
            "epochs": 1,
            "batch_size": 8,
            "learning_rate": 7e-5,
            "max_length": 256,
            "seed": 42,
            "max_steps": 10,
            "training_options": {"warmup_ratio": 0.0},
            "restart": False,
            "show_progress": True,
        },
    }
    assert LCETrainer.from_dict(data).to_dict() == data
    pipe = Pipeline()
    pipe.add_component("trainer", trainer)
    assert Pipeline.loads(pipe.dumps()).get_component("trainer").to_dict() == data  # type: ignore[attr-defined]
    assert trainer.config().to_dict()["group_size"] == 4  # the core's own config, validated by the core


def test_bad_options_and_input_are_named() -> None:
    with pytest.raises(ValueError, match=r"training_options repeats \['epochs'\]"):
        LCETrainer(output_dir="x", training_options={"epochs": 2})
    with pytest.raises(DataError, match="warmup_steps"):
        LCETrainer(output_dir="x", training_options={"warmup_steps": 3}).warm_up()
    with pytest.raises(DataError, match="group_size"):
        LCETrainer(output_dir="x", group_size=1).warm_up()
    trainer = LCETrainer(output_dir="x")
    with pytest.raises(ValueError, match="exactly one of groups"):
        trainer.run()
    with pytest.raises(ValueError, match="exactly one of groups"):
        trainer.run(groups=[_group(0)], groups_path="g.jsonl")
    with pytest.raises(DataError, match="no training groups"):
        trainer.run(groups=[])
    bad = _group(1)
    bad["negatives"][1]["text"] = " "
    with pytest.raises(DataError, match=r"groups\[1\].*empty passage text") as info:
        trainer.run(groups=[_group(0), bad])
    assert info.value.field == "negatives[1].text"
    with pytest.raises(DataError, match=r"groups\[0\]: expected a training-group dict"):
        groups_from_records(["not a group"])  # type: ignore[list-item]


def test_trains_from_records_and_the_ranker_loads_the_result(tiny_encoder: Path, tmp_path: Path) -> None:
    trainer = LCETrainer(
        output_dir=str(tmp_path / "run"),
        model=str(tiny_encoder),
        group_size=3,
        batch_size=2,
        max_length=64,
        max_steps=2,
        show_progress=False,
    )
    groups = [_group(i) for i in range(4)]
    out = trainer.run(groups=groups, dev_groups=[_group(9)])
    model_dir = Path(out["model_dir"])
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(model_dir).num_labels == 1  # a one-logit cross-encoder
    assert out["metrics"]["global_step"] == 2
    assert groups == [_group(i) for i in range(4)]  # input records untouched
    # the same run again: the core trainer finds it finished and trains nothing
    again = trainer.run(groups=groups, dev_groups=[_group(9)])
    assert again["model_dir"] == out["model_dir"] and again["metrics"] == out["metrics"]

    ranker = SynthRankRanker(model=out["model_dir"], device=None, top_k=2, batch_size=4)
    ranked = ranker.run(query="optic nerve", documents=_docs()[:3])["documents"]
    assert len(ranked) == 2 and all(0.0 <= (d.score or -1) <= 1.0 for d in ranked)


def test_from_a_document_store_to_a_trained_model_in_one_pipeline(tiny_encoder: Path, tmp_path: Path) -> None:
    """The documented training pipeline: store -> SyntheticQueryGenerator -> HardNegativeMiner -> LCETrainer."""
    store = InMemoryDocumentStore()
    store.write_documents(_docs())

    pipe = Pipeline()
    pipe.add_component(
        "generator",
        SyntheticQueryGenerator(
            chat_generator=MockChatGenerator(response_fn=first_words_as_query), query_types=["keyword"]
        ),
    )
    pipe.add_component(
        "miner", HardNegativeMiner(retriever=InMemoryBM25Retriever(document_store=store), top_k=8, num_negatives=3)
    )
    pipe.add_component(
        "trainer",
        LCETrainer(
            output_dir=str(tmp_path / "model"),
            model=str(tiny_encoder),
            group_size=3,
            batch_size=4,
            max_length=64,
            max_steps=2,
            show_progress=False,
        ),
    )
    pipe.connect("generator.queries", "miner.queries")
    pipe.connect("miner.groups", "trainer.groups")
    pipe = Pipeline.loads(pipe.dumps(), allowed_modules=["tests.test_haystack_trainer"])  # the YAML a user keeps
    out = pipe.run({"generator": {"documents": store.filter_documents()}}, include_outputs_from={"miner"})
    assert len(out["miner"]["groups"]) >= 4
    model_dir = Path(out["trainer"]["model_dir"])
    assert (model_dir / "model.safetensors").exists()
    assert out["trainer"]["metrics"]["global_step"] == 2
