"""Training the real all-MiniLM-L6-v2 cross-encoder on MedQuAD pilot groups: kill -9 + resume, and loading elsewhere.

The groups are a clearly labelled LLM-FREE STAND-IN for synthetic queries: a passage's title and
the first words of its text, with BM25 negatives mined over a slice of the corpus. MedQuAD's
questions and qrels are not used.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from integration.conftest import shared_dataset
from synthrank.data import Document, read_corpus, write_groups
from synthrank.mine import MiningConfig, MiningQuery, mine_hard_negatives

torch = pytest.importorskip("torch")

SETTINGS = [
    "--model", "minilm", "--group-size", "4", "--batch-size", "2", "--max-length", "64", "--learning-rate", "5e-5",
    "--save-every", "1", "--num-threads", "1", "--seed", "3", "--no-progress",
]


def pseudo_query(doc: Document, words: int = 10) -> str:
    """STAND-IN for an LLM-written query: the passage's title and the start of its text."""
    return f"{doc.title} {' '.join(doc.text.split()[:words])}".strip()


@pytest.fixture(scope="module")
def pilot_groups(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Path:
    corpus_file = next(shared_dataset("medquad").glob("corpus.jsonl*"))
    corpus = read_corpus(corpus_file)
    ids = sorted(corpus)[:3000]
    part = {d: corpus[d] for d in ids}
    picked = [ids[i] for i in np.random.default_rng(11).choice(len(ids), size=12, replace=False)]
    queries = [MiningQuery(f"pq-{i}", pseudo_query(part[d]), d) for i, d in enumerate(picked)]
    groups = mine_hard_negatives(queries, part, config=MiningConfig(top_k=30, num_negatives=6))
    assert len(groups) == 12
    path = tmp_path_factory.mktemp("pilot") / "groups.jsonl"
    write_groups(path, groups)
    return path


def run_cli(groups: Path, out: Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "synthrank_cli", "train", "--groups", str(groups), "--output-dir", str(out), *SETTINGS]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def load_weights(model_dir: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


@pytest.mark.slow
def test_kill9_mid_training_resumes_to_the_same_weights(tmp_path: Path, pilot_groups: Path) -> None:
    straight = run_cli(pilot_groups, tmp_path / "straight")
    output, _ = straight.communicate(timeout=900)
    assert straight.returncode == 0, output

    killed_dir = tmp_path / "killed"
    proc = run_cli(pilot_groups, killed_dir)
    deadline = time.monotonic() + 600
    target = killed_dir / "checkpoints" / "step-000002"
    while not target.exists():  # the run is past step 2 (of 6): kill it with no chance to clean up
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed_dir / "model").exists()

    resumed = run_cli(pilot_groups, killed_dir)
    output, _ = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, output
    assert "steps: 6/6" in output
    a, b = load_weights(tmp_path / "straight" / "model"), load_weights(killed_dir / "model")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_trained_model_loads_in_sentence_transformers_with_our_scores(tmp_path: Path, pilot_groups: Path) -> None:
    from sentence_transformers import CrossEncoder
    from transformers import AutoModelForSequenceClassification

    from synthrank.data import read_groups
    from synthrank.rerank import CrossEncoderReranker, load_scorer
    from synthrank.train import TrainConfig, train_reranker

    cfg = TrainConfig(model="minilm", group_size=4, batch_size=4, max_length=128, num_threads=1, save_every=0)
    result = train_reranker(pilot_groups, tmp_path / "run", cfg, show_progress=False)
    assert AutoModelForSequenceClassification.from_pretrained(result.model_dir).config.num_labels == 1
    scorer = load_scorer(result.model_dir)  # no max_length: the trained length (128) is the saved default
    assert isinstance(scorer, CrossEncoderReranker)
    groups = read_groups(pilot_groups)
    pairs = [(g.query, p.text) for g in groups[:4] for p in (g.positive, *g.negatives[:4])]
    ours = scorer.score_pairs([q for q, _ in pairs], [d for _, d in pairs])
    st = CrossEncoder(str(result.model_dir), device="cpu")
    scorer.warm_up()
    assert st.max_seq_length == 128 and scorer._max_length == 128
    theirs = np.asarray(st.predict(pairs, activation_fn=torch.nn.Identity(), batch_size=8), dtype=np.float32)
    assert np.abs(theirs - ours).max() < 1e-3
    assert np.std(ours) > 1e-4  # a trained head, not a constant


def test_bi_encoder_training_starts_as_the_zero_shot_minilm_and_merges_back(tmp_path: Path, pilot_groups: Path) -> None:
    """The real MiniLM as a bi-encoder: step 0 is the zero-shot model; the merged folder is a sentence-transformers model."""
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer

    from synthrank.data import read_groups
    from synthrank.models import resolve_encoder
    from synthrank.rerank import BiEncoderScorer, load_scorer
    from synthrank.train import TrainConfig, train_reranker

    common = {"model": "minilm", "architecture": "bi-encoder", "group_size": 4, "batch_size": 12, "max_length": 128,
              "learning_rate": 5e-5, "warmup_ratio": 0.0, "negative_sampling": "top", "num_threads": 1,
              "save_every": 0, "precision": "fp32", "epochs": 2}  # fmt: skip
    tuned = train_reranker(pilot_groups, tmp_path / "tuned", TrainConfig(**common), show_progress=False)
    merged = train_reranker(pilot_groups, tmp_path / "merged", TrainConfig(**common, merge_with_base=0.5),
                            show_progress=False)  # fmt: skip
    groups = read_groups(pilot_groups)
    texts = [(g.query, p.text) for g in groups[:4] for p in (g.positive, *g.negatives[:2])]
    queries, docs = [q for q, _ in texts], [d for _, d in texts]
    zero_shot = BiEncoderScorer("minilm", max_length=128, dtype="float32").score_pairs(queries, docs)
    # one step at a vanishing learning rate: the saved model scores as the zero-shot MiniLM does
    still = train_reranker(pilot_groups, tmp_path / "still", TrainConfig(**{**common, "learning_rate": 1e-12,
                                                                            "max_steps": 1}), show_progress=False)  # fmt: skip
    assert np.abs(load_scorer(still.model_dir, dtype="float32").score_pairs(queries, docs) - zero_shot).max() < 1e-5
    assert tuned.metrics["history"][-1]["loss"] < tuned.metrics["history"][0]["loss"]
    base = load_file(str(Path(resolve_encoder("minilm")) / "model.safetensors"))
    a, b = load_weights(tuned.model_dir), load_weights(merged.model_dir)
    key = "encoder.layer.0.attention.self.query.weight"
    base_key = key if key in base else next(k for k in base if k.endswith(key))
    torch.testing.assert_close(b[key], 0.5 * a[key] + 0.5 * base[base_key], rtol=0, atol=1e-6)
    scorer = load_scorer(merged.model_dir, dtype="float32")
    assert isinstance(scorer, BiEncoderScorer)
    ours = scorer.score_pairs(queries, docs)
    assert np.abs(ours - zero_shot).max() > 1e-3  # it moved
    st = SentenceTransformer(str(merged.model_dir), device="cpu")
    theirs = np.einsum("ij,ij->i", st.encode(queries), st.encode(docs))
    assert np.abs(theirs - ours).max() < 1e-4
