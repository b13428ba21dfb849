"""The LLM reranker with real models: Qwen2.5-Coder-0.5B converted from its GGUF, MedQuAD pairs, LoRA, llama.cpp.

Slow: converting the GGUF takes ~2 minutes once (cached), and the 0.5B model scores ~1 pair/s
on 2 CPU cores. The training run is a plumbing check of a few steps, not a quality claim (see
benchmarks/bench_llmrank.py for that).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from integration import llm_fixtures, llmrank_fixtures
from integration.conftest import shared_dataset
from synthrank.data import Dataset, load_dataset
from synthrank.llmrank import (
    CausalLMReranker,
    EndpointLLMReranker,
    LoRATrainer,
    LoRATrainingConfig,
    PointwisePrompt,
    PromptEncoder,
    SFTExample,
)

pytestmark = pytest.mark.slow

qwen05_dir = llmrank_fixtures.qwen05_dir
qwen05_server = llmrank_fixtures.qwen05_server
llama_server = llm_fixtures.llama_server


@pytest.fixture(scope="module")
def medquad() -> Dataset:
    return load_dataset(shared_dataset("medquad"), split="test_sample1000")


def _pairs(dataset: Dataset, n: int, seed: int = 0) -> tuple[list[str], list[str], list[bool]]:
    """For n questions: (question, a relevant answer) and (question, a random answer)."""
    rng = random.Random(seed)
    qids = rng.sample(sorted(dataset.judged_queries()), n)
    doc_ids = sorted(dataset.corpus)
    queries, docs, labels = [], [], []
    for qid in qids:
        relevant = sorted(d for d, g in dataset.qrels[qid].items() if g > 0)[0]
        other = rng.choice(doc_ids)
        while other in dataset.qrels[qid]:
            other = rng.choice(doc_ids)
        for did, label in ((relevant, True), (other, False)):
            queries.append(dataset.queries[qid].text)
            docs.append(dataset.corpus[did].full_text())
            labels.append(label)
    return queries, docs, labels


def test_qwen_prompt_tokenizes_like_the_whole_chat_string(qwen05_dir: Path, medquad: Dataset) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(qwen05_dir))
    enc = PromptEncoder(tok, PointwisePrompt(), max_length=4096)
    queries, docs, _ = _pairs(medquad, 4)
    for q, d in zip(queries, docs, strict=True):
        whole = tok.apply_chat_template(PointwisePrompt().messages(q.strip(), d.strip()), tokenize=False, add_generation_prompt=True)
        assert enc.encode_prompt(q, d) == tok.encode(whole, add_special_tokens=False)
    assert tok.decode([enc.answers.true_id]) == "true" and tok.decode([enc.answers.false_id]) == "false"


def test_untuned_qwen_scores_medquad_pairs(qwen05_dir: Path, medquad: Dataset) -> None:
    queries, docs, labels = _pairs(medquad, 6)
    # fp32 pinned: prefix sharing must give the plain forward's numbers (bf16, the default on AMX CPUs and
    # CUDA, differs by batching at the 1e-2 level and is checked separately below)
    reranker = CausalLMReranker(qwen05_dir, batch_size=4, max_length=192, dtype="float32")
    scores = reranker.score_pairs(queries, docs)
    assert scores.shape == (12,) and np.all((scores > 0) & (scores < 1))
    lab = np.array(labels)
    assert scores[lab].mean() > scores[~lab].mean()  # even untuned, answers to the question look more relevant
    plain = CausalLMReranker(qwen05_dir, batch_size=3, max_length=192, share_prefix=False, dtype="float32")
    np.testing.assert_allclose(scores, plain.score_pairs(queries, docs), rtol=0, atol=1e-4)
    bf16 = CausalLMReranker(qwen05_dir, batch_size=4, max_length=192, dtype="bfloat16").score_pairs(queries, docs)
    assert np.abs(bf16 - scores).max() < 0.06 and bf16[lab].mean() > bf16[~lab].mean()


def test_lora_steps_on_qwen_write_a_loadable_adapter(qwen05_dir: Path, medquad: Dataset, tmp_path: Path) -> None:
    # training data from the corpus only (titles as stand-in queries), never MedQuAD's questions
    docs = [d for d in sorted(medquad.corpus.values(), key=lambda d: d.id) if d.title][:40]
    rng = random.Random(1)
    examples = []
    for doc in rng.sample(docs, 4):
        other = rng.choice([d for d in docs if d.title != doc.title])
        examples.append(SFTExample(f"what is {doc.title}", doc.full_text(), True))
        examples.append(SFTExample(f"what is {doc.title}", other.full_text(), False))
    config = LoRATrainingConfig(
        base_model=str(qwen05_dir), max_length=96, max_steps=2, batch_size=2, gradient_accumulation_steps=1,
        lora_r=4, lora_layers=2, learning_rate=1e-3, checkpoint_every=1, merge=False,
    )  # fmt: skip
    result = LoRATrainer(config, tmp_path / "run").train(examples, show_progress=False)
    assert result.completed and result.global_step == 2 and np.isfinite(result.metrics["final_loss"])
    assert result.metrics["trainable_parameters"] < 1_000_000  # two layers of rank-4 adapters

    queries = [e.query for e in examples]
    passages = [e.passage for e in examples]
    fp32 = {"batch_size": 4, "max_length": 96, "dtype": "float32"}  # exact comparisons: bf16 rounds per batch
    tuned = CausalLMReranker(result.model_dir, merge_adapter=False, **fp32).score_pairs(queries, passages)
    merged = CausalLMReranker(result.model_dir, **fp32).score_pairs(queries, passages)
    base = CausalLMReranker(qwen05_dir, **fp32).score_pairs(queries, passages)
    np.testing.assert_allclose(merged, tuned, rtol=0, atol=1e-4)
    assert not np.allclose(tuned, base, atol=1e-4)  # the adapter is applied


@pytest.mark.llm_server
def test_endpoint_agrees_with_local_scorer(qwen05_server: object, qwen05_dir: Path, medquad: Dataset) -> None:
    """llama.cpp (Q4_K_M weights) and transformers (the same weights dequantized) read nearly the same P(true)."""
    queries, docs, _ = _pairs(medquad, 3, seed=2)
    docs = [d.strip()[:400] for d in docs]  # the endpoint cuts passages by characters; give both the same text
    base_url = qwen05_server.base_url  # type: ignore[attr-defined]
    with EndpointLLMReranker(llmrank_fixtures.QWEN, base_url=base_url, max_passage_chars=400, max_concurrency=1) as remote:
        over_http = remote.score_pairs(queries, docs)
        assert remote.unparsed == 0
    local = CausalLMReranker(qwen05_dir, batch_size=3, max_length=1024).score_pairs(queries, docs)
    np.testing.assert_allclose(over_http, local, rtol=0, atol=0.05)


@pytest.mark.llm_server
def test_endpoint_plumbing_with_smollm2(llama_server: object) -> None:
    base_url = llama_server.base_url  # type: ignore[attr-defined]
    reranker = EndpointLLMReranker("smollm2-135m", base_url=base_url, max_concurrency=2)
    queries = ["what damages the optic nerve"] * 2 + ["what lowers blood sugar"] * 2
    docs = ["Glaucoma damages the optic nerve.", "Asthma narrows the airways.", "Insulin lowers blood sugar.", "A cataract clouds the lens."]
    scores = reranker.score_pairs(queries, docs)
    assert scores.shape == (4,) and np.all((scores >= 0) & (scores <= 1))
    assert reranker.unparsed < 4  # the small model's top logprobs carry true/false for most pairs
    reranker.close()
