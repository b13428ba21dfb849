"""The real packaged all-MiniLM-L6-v2 on MedQuAD: our Reranker equals sentence-transformers, the bi-encoder ranks.

A one-logit head is added once (seeded) and saved, so both libraries load the very same folder.
Untrained, the cross-encoder's scores mean nothing for relevance; what is checked is that the
numbers are identical. The zero-shot bi-encoder, in contrast, must rank MedQuAD's relevant answers
well above chance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from integration.conftest import shared_dataset

torch = pytest.importorskip("torch")

N_QUERIES = 24
CANDIDATES = 15


@pytest.fixture(autouse=True)
def one_torch_thread() -> Any:
    """The machine is shared: one OpenMP thread avoids barrier waits behind other processes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def one_logit_minilm(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Path:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from synthrank.runtime import quiet_transformers

    folder = tmp_path_factory.mktemp("minilm-one-logit")
    torch.manual_seed(0)
    with quiet_transformers():
        model = AutoModelForSequenceClassification.from_pretrained(minilm_dir, num_labels=1)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_dir).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def medquad_candidates() -> dict[str, Any]:
    """A few judged MedQuAD questions with their BM25 top-k answers (title + text) and qrels."""
    from synthrank.data import load_dataset
    from synthrank.retrieve import InMemoryBM25

    ds = load_dataset(shared_dataset("medquad"), split="test_sample1000")
    queries = list(ds.judged_queries().values())[:N_QUERIES]
    bm25 = InMemoryBM25()
    bm25.index(ds.corpus.values())
    hits = bm25.retrieve([q.text for q in queries], k=CANDIDATES)
    return {
        "queries": queries,
        "candidates": [[h.doc_id for h in hs] for hs in hits],
        "texts": {h.doc_id: ds.corpus[h.doc_id].full_text() for hs in hits for h in hs},
        "qrels": ds.qrels,
    }


def test_reranker_scores_equal_sentence_transformers_cross_encoder(
    one_logit_minilm: Path, medquad_candidates: dict[str, Any]
) -> None:
    from sentence_transformers import CrossEncoder

    from synthrank.rerank import CrossEncoderReranker, load_scorer
    from synthrank.rerank.cross_encoder import sigmoid

    data = medquad_candidates
    pairs = [
        (q.text, data["texts"][d])
        for q, docs in zip(data["queries"][:8], data["candidates"], strict=False)
        for d in docs[:6]
    ]
    queries = [p[0] for p in pairs]
    docs = [p[1] for p in pairs]
    ours = load_scorer(one_logit_minilm, max_length=256, batch_size=16)
    assert isinstance(ours, CrossEncoderReranker)
    got = ours.score_pairs(queries, docs)

    peer = CrossEncoder(str(one_logit_minilm), max_length=256, device="cpu")
    logits = np.asarray(peer.predict(pairs, batch_size=16, activation_fn=torch.nn.Identity(), show_progress_bar=False))
    probabilities = np.asarray(peer.predict(pairs, batch_size=16, show_progress_bar=False))

    assert got.shape == (len(pairs),)
    assert np.abs(got - logits).max() < 1e-3
    assert np.abs(sigmoid(got) - probabilities).max() < 1e-4
    assert float(np.std(logits)) > 1e-3  # distinct numbers, not one constant compared with itself

    # the same pairs through the int8 and maxp paths: they run on real inputs and stay in range
    int8 = CrossEncoderReranker(one_logit_minilm, max_length=256, quantize="int8").score_pairs(queries, docs)
    # a fresh head's logits vary little across pairs, so int8 noise shows: r measured 0.87 with the x86 int8
    # kernels on an Intel AMX CPU, above 0.9 on AMD EPYC; a broken path gives ~0
    assert np.corrcoef(int8, got)[0, 1] > 0.75
    # bf16 autocast (the AMX path on CPUs that have it): the same order, close numbers
    bf16 = CrossEncoderReranker(one_logit_minilm, max_length=256, dtype="bfloat16").score_pairs(queries, docs)
    assert np.corrcoef(np.argsort(np.argsort(bf16)), np.argsort(np.argsort(got)))[0, 1] > 0.95
    assert np.abs(bf16 - got).max() < 0.05 * max(1.0, float(np.abs(got).max()))
    maxp = CrossEncoderReranker(one_logit_minilm, max_length=128, long_documents="maxp", stride=32)
    trunc = CrossEncoderReranker(one_logit_minilm, max_length=128).score_pairs(queries, docs)
    assert (maxp.score_pairs(queries, docs) >= trunc - 1e-4).all()


def _mrr(ranked: list[str], relevant: set[str]) -> float:
    for rank, doc in enumerate(ranked[:10], start=1):
        if doc in relevant:
            return 1.0 / rank
    return 0.0


def test_zero_shot_bi_encoder_beats_a_random_order(medquad_candidates: dict[str, Any]) -> None:
    from synthrank.rerank import BiEncoderScorer, load_scorer

    data = medquad_candidates
    scorer = load_scorer("minilm")
    assert isinstance(scorer, BiEncoderScorer)
    rng = np.random.default_rng(0)
    ours, chance = [], []
    for query, docs in zip(data["queries"], data["candidates"], strict=True):
        relevant = {d for d, rel in data["qrels"][query.id].items() if rel > 0}
        if not relevant & set(docs):
            continue  # BM25 missed it: no order of these candidates can find it
        scores = scorer.score_pairs([query.text] * len(docs), [data["texts"][d] for d in docs])
        ours.append(_mrr([docs[i] for i in np.argsort(-scores, kind="stable")], relevant))
        chance.append(np.mean([_mrr(list(rng.permutation(docs)), relevant) for _ in range(200)]))
    assert len(ours) >= N_QUERIES // 2
    assert np.mean(ours) > np.mean(chance) + 0.2, (np.mean(ours), np.mean(chance))


def test_bf16_bi_encoder_ranks_like_fp32(medquad_candidates: dict[str, Any]) -> None:
    """bf16 autocast scoring (every model's evaluation dtype on AMX CPUs) keeps the zero-shot rankings."""
    from synthrank.rerank import BiEncoderScorer

    data = medquad_candidates
    fp32, bf16 = BiEncoderScorer("minilm"), BiEncoderScorer("minilm", dtype="bfloat16")
    agree = []
    for query, docs in zip(data["queries"], data["candidates"], strict=True):
        texts = [data["texts"][d] for d in docs]
        a = fp32.score_pairs([query.text] * len(docs), texts)
        b = bf16.score_pairs([query.text] * len(docs), texts)
        assert np.abs(a - b).max() < 0.02
        agree.append(int(np.argmax(a) == np.argmax(b)))
    assert np.mean(agree) >= 0.9
