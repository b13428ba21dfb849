"""CausalLMReranker on a tiny random LM: the P(true) formula, batching, adapters, merged weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synthrank.errors import DataError, ModelError
from synthrank.llmrank import CausalLMReranker, PointwisePrompt, PromptEncoder, is_llmrank_model, load_llm_scorer
from synthrank.rerank.base import PairScorer
from tests.llmrank_tiny import TOPICS, build_model

QUERIES = ["what is glaucoma", "what is glaucoma", "how is asthma treated", "who gets anemia", "what is glaucoma"]
DOCS = [
    "glaucoma damages the optic nerve and can cause blindness",
    "asthma narrows the airways",
    "asthma narrows the airways of the lungs",
    "anemia",
    "insulin is a hormone that lowers blood sugar " * 3,
]


@pytest.fixture(autouse=True)
def _fp32_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests check the exact fp32 math; the bf16 default of AMX CPUs has tests of its own."""
    from synthrank.models import cpu

    monkeypatch.setattr(cpu, "cpu_has_amx", lambda: False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp("tiny") / "model")


def test_is_a_pair_scorer(tiny: Path) -> None:
    assert isinstance(CausalLMReranker(tiny), PairScorer)
    assert "tiny" in repr(CausalLMReranker(tiny)) or "model" in repr(CausalLMReranker(tiny))


def test_score_is_p_true_over_p_true_plus_p_false(tiny: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reranker = CausalLMReranker(tiny, batch_size=2, max_length=256)
    scores = reranker.score_pairs(QUERIES, DOCS)
    log_odds = CausalLMReranker(tiny, batch_size=2, max_length=256, score="log_odds").score_pairs(QUERIES, DOCS)

    tok = AutoTokenizer.from_pretrained(str(tiny))
    model = AutoModelForCausalLM.from_pretrained(str(tiny)).eval()
    enc = PromptEncoder(tok, PointwisePrompt(), 256)
    expected = []
    for q, d in zip(QUERIES, DOCS, strict=True):
        ids = torch.tensor([enc.encode_prompt(q, d)])
        with torch.no_grad():
            probs = torch.softmax(model(input_ids=ids).logits[0, -1].double(), -1)
        p_true = probs[list(enc.answers.true_ids)].sum()
        p_false = probs[list(enc.answers.false_ids)].sum()
        expected.append(float(p_true / (p_true + p_false)))
    assert scores.dtype == np.float32 and scores.shape == (len(QUERIES),)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(1 / (1 + np.exp(-log_odds.astype(np.float64))), expected, rtol=0, atol=1e-5)
    assert len(set(np.round(scores, 6))) > 1  # a random model still tells pairs apart


def test_left_padded_batches_equal_single_pairs(tiny: Path) -> None:
    batched = CausalLMReranker(tiny, batch_size=5, share_prefix=False).score_pairs(QUERIES, DOCS)
    single = CausalLMReranker(tiny, batch_size=1, share_prefix=False).score_pairs(QUERIES, DOCS)
    np.testing.assert_allclose(batched, single, rtol=0, atol=1e-5)


def test_shared_query_prefix_gives_the_same_scores(tiny: Path) -> None:
    queries = ["what is glaucoma"] * 5 + ["who gets anemia"] * 3 + ["what is asthma"]
    docs = [f"{k} {v}" for k, v in TOPICS.items()] + ["anemia"]
    plain = CausalLMReranker(tiny, batch_size=3, share_prefix=False).score_pairs(queries, docs)
    for batch_size in (1, 2, 4):
        shared = CausalLMReranker(tiny, batch_size=batch_size, share_prefix=True).score_pairs(queries, docs)
        np.testing.assert_allclose(shared, plain, rtol=0, atol=1e-5)


def test_empty_mismatched_and_bad_options(tiny: Path) -> None:
    reranker = CausalLMReranker(tiny)
    assert reranker.score_pairs([], []).shape == (0,)
    with pytest.raises(DataError, match="2 queries but 1 documents"):
        reranker.score_pairs(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="score must be"):
        CausalLMReranker(tiny, score="logit")
    with pytest.raises(ValueError, match="batch_size"):
        CausalLMReranker(tiny, batch_size=0)
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA"):
            CausalLMReranker(tiny, device="cuda").warm_up()
    with pytest.raises(ModelError, match="neither a Hugging Face model folder"):
        CausalLMReranker(tiny / "model.safetensors").warm_up()


def _random_adapter(tiny: Path, out: Path) -> object:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(str(tiny))
    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "v_proj", "up_proj"],
        init_lora_weights=False,
    )
    model = get_peft_model(base, config).eval()
    model.save_pretrained(str(out))
    return model


def test_adapter_save_load_gives_identical_scores_and_merged_matches(tiny: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    peft_model = _random_adapter(tiny, tmp_path / "adapter")
    tok = AutoTokenizer.from_pretrained(str(tiny))
    in_memory = CausalLMReranker.from_loaded(peft_model, tok, batch_size=2).score_pairs(QUERIES, DOCS)
    base_only = CausalLMReranker(tiny, batch_size=2).score_pairs(QUERIES, DOCS)
    assert not np.allclose(in_memory, base_only, atol=1e-4)  # the adapter changes the model

    loaded = CausalLMReranker(tiny, adapter=tmp_path / "adapter", merge_adapter=False, batch_size=2).score_pairs(
        QUERIES, DOCS
    )
    assert np.array_equal(loaded, in_memory)
    # the adapter folder alone: its config names the base
    by_config = CausalLMReranker(tmp_path / "adapter", merge_adapter=False, batch_size=2).score_pairs(QUERIES, DOCS)
    assert np.array_equal(by_config, in_memory)

    merged_model = peft_model.merge_and_unload()  # type: ignore[attr-defined]
    merged_model.save_pretrained(str(tmp_path / "merged"))
    tok.save_pretrained(str(tmp_path / "merged"))
    merged = CausalLMReranker(tmp_path / "merged", batch_size=2).score_pairs(QUERIES, DOCS)
    merged_on_load = CausalLMReranker(tiny, adapter=tmp_path / "adapter", batch_size=2).score_pairs(QUERIES, DOCS)
    np.testing.assert_allclose(merged, in_memory, rtol=0, atol=1e-5)
    np.testing.assert_allclose(merged_on_load, in_memory, rtol=0, atol=1e-5)
    assert AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged")).config.model_type == "llama"


def test_reasoning_mode_generates_then_scores(tiny: Path) -> None:
    prompt = PointwisePrompt(reasoning=True, max_reasoning_tokens=4)
    reranker = CausalLMReranker(tiny, prompt=prompt, batch_size=2, max_length=256)
    scores = reranker.score_pairs(QUERIES[:3], DOCS[:3])
    assert scores.shape == (3,) and np.all((scores > 0) & (scores < 1))
    plain = CausalLMReranker(tiny, batch_size=2, max_length=256).score_pairs(QUERIES[:3], DOCS[:3])
    assert not np.allclose(scores, plain)  # the prompt and the reason change what is scored


def test_metadata_decides_prompt_and_length(tiny: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "run" / "merged"
    shutil.copytree(tiny, folder)
    meta = {"format": "synthrank-llmrank", "kind": "merged", "max_length": 200, "prompt": {"max_query_tokens": 2}}
    (folder / "llmrank.json").write_text(json.dumps(meta), encoding="utf-8")
    assert is_llmrank_model(tmp_path / "run") and is_llmrank_model(folder) and not is_llmrank_model(tiny)
    scorer = load_llm_scorer(tmp_path / "run", device="cpu", batch_size=3)
    assert scorer.max_length == 200 and scorer.batch_size == 3
    from synthrank.rerank.factory import load_scorer  # the one entry point every adapter and the CLI use

    found = load_scorer(tmp_path / "run", device="cpu", batch_size=3)
    assert isinstance(found, CausalLMReranker) and found.max_length == 200
    assert isinstance(load_scorer(tiny, kind="llm", device="cpu"), CausalLMReranker)
    scorer.warm_up()
    assert scorer.prompt is not None and scorer.prompt.max_query_tokens == 2
    topic_docs = [f"{k} {v}" for k, v in TOPICS.items()]
    assert scorer.score_pairs(["what is glaucoma"] * len(topic_docs), topic_docs).shape == (len(topic_docs),)


def test_default_dtype_is_bf16_on_an_amx_cpu(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from synthrank.models import cpu

    fp32 = CausalLMReranker(tiny, batch_size=2).score_pairs(QUERIES, DOCS)
    monkeypatch.setattr(cpu, "cpu_has_amx", lambda: True)
    reranker = CausalLMReranker(tiny, batch_size=2)
    got = reranker.score_pairs(QUERIES, DOCS)
    assert next(reranker.model.parameters()).dtype == torch.bfloat16
    assert got.dtype == np.float32 and not np.array_equal(got, fp32)
    np.testing.assert_allclose(got, fp32, atol=0.05)
    forced = CausalLMReranker(tiny, batch_size=2, dtype="float32")
    forced.warm_up()
    assert next(forced.model.parameters()).dtype == torch.float32
