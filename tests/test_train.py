"""Cross-encoder training: loss math, sampling, config, errors, outputs, exact resume, best checkpoint."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from synthrank.data.groups import Passage, TrainingGroup  # noqa: E402
from synthrank.errors import DataError, SynthrankError  # noqa: E402
from synthrank.train import (  # noqa: E402
    DevSet,
    GroupSampler,
    TrainConfig,
    bce_loss,
    lce_loss,
    listwise_loss,
    train_reranker,
)

WORDS = [
    "eye", "lens", "nerve", "blood", "sugar", "insulin", "lung", "airway",
    "asthma", "head", "pain", "migraine", "skin", "rash", "heart", "beat",
]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT encoder (no head) with MiniLM's tokenizer: trains in a fraction of a second per step."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from synthrank.errors import ModelError
    from synthrank.models import resolve_encoder

    try:
        source = resolve_encoder("minilm")
    except ModelError as exc:
        pytest.skip(str(exc))
    root = tmp_path_factory.mktemp("tiny-bert")
    tok = AutoTokenizer.from_pretrained(source)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(root)
    tok.save_pretrained(root)
    return root


def make_groups(n: int = 24, negatives: int = 6, seed: int = 0) -> list[TrainingGroup]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        topic = rng.sample(WORDS, 3)
        positive = Passage(f"p{i}", " ".join(topic + rng.sample(WORDS, 4)), rank=1)
        negs = [Passage(f"n{i}-{j}", " ".join(rng.sample(WORDS, 7)), rank=j + 2) for j in range(negatives)]
        out.append(TrainingGroup(f"q{i}", " ".join(topic), positive, negs))
    return out


def write_groups_file(path: Path, groups: list[TrainingGroup]) -> Path:
    path.write_text("".join(json.dumps(g.to_json()) + "\n" for g in groups), encoding="utf-8")
    return path


def tiny_config(model: Path, **overrides: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "model": str(model),
        "group_size": 4,
        "batch_size": 4,
        "epochs": 1,
        "max_length": 48,
        "learning_rate": 1e-3,
        "save_every": 2,
        "num_threads": 1,
        "length_bucket_rows": 8,
    }
    base.update(overrides)
    return TrainConfig(**base)


def weights(model_dir: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


# --------------------------------------------------------------------------- losses


def test_lce_loss_is_softmax_cross_entropy_of_the_positive() -> None:
    logits = torch.tensor([[2.0, 0.0, 1.0], [0.5, 0.5, 0.5]])
    by_hand = [
        -math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(0.0) + math.exp(1.0))),
        -math.log(1 / 3),
    ]
    assert float(lce_loss(logits)) == pytest.approx(sum(by_hand) / 2, abs=1e-6)
    # the positive must be column 0: swapping it with a negative raises the loss
    assert float(lce_loss(torch.tensor([[0.0, 2.0, 1.0]]))) > float(lce_loss(torch.tensor([[2.0, 0.0, 1.0]])))


def test_bce_loss_matches_hand_computation() -> None:
    logits = torch.tensor([[1.0, -1.0]])
    labels = torch.tensor([[1.0, 0.0]])
    sig = 1 / (1 + math.exp(-1.0))
    assert float(bce_loss(logits, labels)) == pytest.approx(-math.log(sig), abs=1e-6)
    soft = torch.tensor([[0.8, 0.1]])
    expected = -(0.8 * math.log(sig) + 0.2 * math.log(1 - sig) + 0.1 * math.log(1 - sig) + 0.9 * math.log(sig)) / 2
    assert float(bce_loss(logits, soft)) == pytest.approx(expected, abs=1e-6)


def test_listwise_loss_is_kl_to_the_grade_softmax() -> None:
    logits = torch.tensor([[1.0, 0.0, -1.0]])
    grades = torch.tensor([[3.0, 1.0, 0.0]])
    target = np.exp([3.0, 1.0, 0.0]) / np.exp([3.0, 1.0, 0.0]).sum()
    log_q = np.array([1.0, 0.0, -1.0]) - np.log(np.exp([1.0, 0.0, -1.0]).sum())
    expected = float((target * (np.log(target) - log_q)).sum())
    assert float(listwise_loss(logits, grades)) == pytest.approx(expected, abs=1e-6)
    assert float(listwise_loss(grades, grades)) == pytest.approx(0.0, abs=1e-6)  # matching the teacher costs nothing


def test_margin_mse_regresses_student_margins_on_the_judges_log_odds() -> None:
    from synthrank.train.losses import margin_mse_loss, teacher_logits

    student = torch.tensor([[3.0, 1.0, 2.0]])
    teacher = torch.tensor([[2.0, 1.0, 0.0]])
    # margins: student (2, 1), teacher (1, 2): squared errors 1 and 1
    assert float(margin_mse_loss(student, teacher)) == pytest.approx(1.0, abs=1e-6)
    assert float(margin_mse_loss(teacher + 5.0, teacher)) == pytest.approx(0.0, abs=1e-6)  # only margins count
    probs = torch.tensor([[0.9, 0.5, 0.0]])
    logits = teacher_logits(probs)
    assert float(logits[0, 0]) == pytest.approx(math.log(9.0), abs=1e-5) and float(logits[0, 1]) == pytest.approx(0.0)
    assert math.isfinite(float(logits[0, 2]))  # P = 0 is clipped, not -inf


def test_margin_mse_keeps_judged_relevant_negatives_as_soft_targets() -> None:
    group = TrainingGroup("q", "eye lens", Passage("p", "eye lens", probability=0.9),
                          [Passage("n1", "eye nerve", rank=1, grade=3, probability=0.8),
                           Passage("n2", "skin", rank=2, grade=0, probability=0.1)])  # fmt: skip
    lce = GroupSampler([group], TrainConfig(group_size=3, loss="lce"))
    assert [n.doc_id for n in lce.pools[0]] == ["n2"]  # LCE drops the false negative
    mse = GroupSampler([group], TrainConfig(group_size=3, loss="margin_mse", negative_sampling="top"))
    assert mse.sample(0, epoch=0).labels == (0.9, 0.8, 0.1)  # MarginMSE learns the small margin instead


# --------------------------------------------------------------------------- config


def test_config_round_trips_and_names_bad_fields() -> None:
    cfg = TrainConfig(loss="bce", group_size=4, learning_rate=1e-4)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert TrainConfig.from_dict({"group-size": 6}).group_size == 6  # YAML keys may use dashes
    with pytest.raises(DataError, match="field 'learnig_rate'"):
        TrainConfig.from_dict({"learnig_rate": 1e-4})
    with pytest.raises(DataError, match="field 'group_size'"):
        TrainConfig(group_size=1)
    with pytest.raises(DataError, match="field 'loss'"):
        TrainConfig(loss="hinge")  # type: ignore[arg-type]
    semantic = cfg.fingerprint()
    assert "learning_rate" in semantic and "save_every" not in semantic


# --------------------------------------------------------------------------- sampling


def test_negative_sampling_is_seeded_per_epoch_and_localized() -> None:
    groups = make_groups(n=5, negatives=10)
    cfg = TrainConfig(group_size=4, seed=7, negative_pool=6)
    a, b = GroupSampler(groups, cfg), GroupSampler(groups, cfg)
    assert a.sample(2, epoch=0) == b.sample(2, epoch=0)  # same seed, same draw
    assert np.array_equal(a.epoch_order(1), b.epoch_order(1))
    draws = {a.sample(2, epoch=e).passages[1:] for e in range(8)}
    assert len(draws) > 1  # a fresh draw each epoch
    pool_texts = {n.text for n in sorted(groups[2].negatives, key=lambda n: n.rank or 0)[:6]}
    for e in range(8):
        s = a.sample(2, epoch=e)
        assert s.passages[0] == groups[2].positive.text
        assert len(s.passages) == 4 and set(s.passages[1:]) <= pool_texts  # only the top-6 are eligible
        assert s.labels == (1.0, 0.0, 0.0, 0.0)
    other_seed = GroupSampler(groups, TrainConfig(group_size=4, seed=8, negative_pool=6))
    assert not np.array_equal(other_seed.epoch_order(0), a.epoch_order(0)) or other_seed.sample(0, 0) != a.sample(0, 0)
    top = GroupSampler(groups, TrainConfig(group_size=4, negative_sampling="top"))
    assert top.sample(0, 0).passages[1:] == tuple(n.text for n in groups[0].negatives[:3])


def test_small_pools_false_negatives_and_grades() -> None:
    g = TrainingGroup(
        "q", "query", Passage("p", "positive text", grade=3),
        [Passage("a", "judged relevant", rank=1, grade=3), Passage("b", "real negative", rank=2, grade=0)],
    )
    empty = TrainingGroup("q2", "query two", Passage("p2", "text"), [])
    sampler = GroupSampler([g, empty], TrainConfig(group_size=4))
    assert len(sampler) == 1 and sampler.stats["false_negatives_dropped"] == 1
    s = sampler.sample(0, 0)
    assert s.passages == ("positive text", "real negative", "real negative", "real negative")  # drawn again
    bce = GroupSampler([g], TrainConfig(group_size=3, loss="bce", negative_sampling="top"))
    assert bce.sample(0, 0).labels == (1.0, 1.0, 0.0)  # BCE keeps the judged-relevant one as a positive label
    assert bce.sample(0, 0).grades == (3.0, 3.0, 0.0)
    with pytest.raises(DataError, match="no training group has a usable negative"):
        GroupSampler([empty], TrainConfig(group_size=4))


def test_bad_groups_name_file_line_and_field(tmp_path: Path, tiny_model: Path) -> None:
    good = make_groups(n=2)
    path = write_groups_file(tmp_path / "groups.jsonl", good)
    bad = good[1].to_json()
    bad["negatives"][1]["grade"] = 7
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("\n" + json.dumps(bad) + "\n")  # a blank line first: line numbers must still be right
    with pytest.raises(DataError) as info:
        train_reranker(path, tmp_path / "out", tiny_config(tiny_model), show_progress=False)
    assert info.value.line == 4 and info.value.field == "negatives[1].grade" and str(path) in str(info.value)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"query": "q", "negatives": []}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="field 'positive'") as info2:
        train_reranker(broken, tmp_path / "out2", tiny_config(tiny_model), show_progress=False)
    assert info2.value.line == 1
    with pytest.raises(DataError, match="no such groups file"):
        train_reranker(tmp_path / "missing.jsonl", tmp_path / "out3", tiny_config(tiny_model), show_progress=False)


# --------------------------------------------------------------------------- dev sets


class KeywordScorer:
    """Scores a pair by shared words: enough to check that a dev set reranks and measures."""

    def score_pairs(self, queries: Any, documents: Any, *, show_progress: bool = False) -> np.ndarray:
        return np.array(
            [len(set(q.lower().split()) & set(d.lower().split())) for q, d in zip(queries, documents, strict=True)],
            dtype=np.float32,
        )


def test_dev_set_from_dataset_and_from_groups(tiny_beir: Path) -> None:
    from synthrank.data import load_dataset

    dataset = load_dataset(tiny_beir, split="test")
    dev = DevSet.from_dataset(dataset, top_k=6, max_queries=2)
    assert len(dev) == 2 and dev.num_pairs <= 12
    assert set(dev.baseline) == {"nDCG@10", "MRR@10"}
    found = dev.evaluate(KeywordScorer())
    assert 0.0 <= found["nDCG@10"] <= 1.0
    groups = make_groups(n=6)
    gdev = DevSet.from_groups(groups)
    assert len(gdev) == 6 and gdev.baseline["MRR@10"] == pytest.approx(1.0)  # the positive was ranked first
    assert gdev.evaluate(KeywordScorer())["MRR@10"] > 0.3


# --------------------------------------------------------------------------- training runs


def test_training_writes_a_standard_hf_folder(tmp_path: Path, tiny_model: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    from synthrank.rerank import CrossEncoderReranker, load_scorer

    groups = write_groups_file(tmp_path / "groups.jsonl", make_groups(n=16))
    dev = DevSet.from_groups(make_groups(n=4, seed=1))
    result = train_reranker(groups, tmp_path / "run", tiny_config(tiny_model, eval_every=2), dev=dev, show_progress=False)
    model_dir = result.model_dir
    assert model_dir == tmp_path / "run" / "model" and result.completed
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= {p.name for p in model_dir.iterdir()}
    assert not list(model_dir.glob("*.bin"))
    config = json.loads((model_dir / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"] and len(config["id2label"]) == 1
    for name in ("metrics.json", "README.md", "loss.png", "dev_ndcg.png", "run_config.yaml"):
        assert (tmp_path / "run" / name).stat().st_size > 0, name
    assert not (tmp_path / "run" / "checkpoints").exists()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["global_step"] == 4 and len(metrics["history"]) == 4 and metrics["groups_per_second"] > 0
    assert [d["step"] for d in metrics["dev_history"]] == [2, 4]
    assert "Localized Contrastive Estimation" in (model_dir / "README.md").read_text()
    hf = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    assert hf.config.num_labels == 1
    trained_length = tiny_config(tiny_model).max_length
    assert json.loads((model_dir / "tokenizer_config.json").read_text())["model_max_length"] == trained_length
    default = load_scorer(model_dir)
    default.warm_up()
    assert default._max_length == trained_length  # scoring defaults to the length it was trained at
    scorer = load_scorer(model_dir, max_length=48)
    assert isinstance(scorer, CrossEncoderReranker)
    ours = scorer.score_pairs(["eye lens", "eye lens"], ["eye lens nerve", "skin rash"])
    from sentence_transformers import CrossEncoder

    st = CrossEncoder(str(model_dir), max_length=48, device="cpu")
    theirs = st.predict([("eye lens", "eye lens nerve"), ("eye lens", "skin rash")], activation_fn=torch.nn.Identity())
    assert np.abs(np.asarray(theirs) - ours).max() < 1e-4
    # a second call with the same settings is a no-op that returns the finished run
    again = train_reranker(groups, tmp_path / "run", tiny_config(tiny_model, eval_every=2), dev=dev, show_progress=False)
    assert again.metrics["train_seconds"] == result.metrics["train_seconds"]


@pytest.mark.parametrize("loss", ["lce", "bce", "listwise", "margin_mse"])
def test_every_loss_lowers_the_training_loss(tmp_path: Path, tiny_model: Path, loss: str) -> None:
    groups = make_groups(n=8)
    cfg = tiny_config(tiny_model, loss=loss, epochs=20, batch_size=8, learning_rate=1e-2, warmup_ratio=0.0,
                      negative_sampling="top", save_every=0)
    result = train_reranker(groups, tmp_path / loss, cfg, show_progress=False)
    losses = [h["loss"] for h in result.metrics["history"]]
    assert len(losses) == 20 and all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-3:]) < 0.9 * losses[0]


def test_resume_after_interruption_reaches_the_same_weights(tmp_path: Path, tiny_model: Path) -> None:
    groups = write_groups_file(tmp_path / "groups.jsonl", make_groups(n=20))
    cfg = tiny_config(tiny_model, epochs=2, save_every=2, gradient_accumulation=2, batch_size=2)  # 10 steps
    straight = train_reranker(groups, tmp_path / "straight", cfg, show_progress=False)
    part = train_reranker(groups, tmp_path / "resumed", cfg, stop_after_steps=3, show_progress=False)
    assert not part.completed and part.global_step == 3
    assert (tmp_path / "resumed" / "checkpoints" / "step-000003").exists()
    resumed = train_reranker(groups, tmp_path / "resumed", cfg, show_progress=False)
    assert resumed.completed and resumed.global_step == straight.global_step == 10
    a, b = weights(straight.model_dir), weights(resumed.model_dir)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [h["loss"] for h in resumed.metrics["history"]] == [h["loss"] for h in straight.metrics["history"]]


def test_resume_refuses_a_tampered_checkpoint_without_running_it(tmp_path: Path, tiny_model: Path) -> None:
    """A checkpoint folder written by someone else is read weights-only. Caught: ``torch.load(...,
    weights_only=False)`` in the resume path (the pickle's ``exec`` wrote the marker file before any error)."""
    from synthrank.errors import ModelError
    from tests.test_checkpoint import write_tampered_state

    groups = make_groups(n=16)
    cfg = tiny_config(tiny_model)
    train_reranker(groups, tmp_path / "run", cfg, stop_after_steps=2, show_progress=False)
    state = tmp_path / "run" / "checkpoints" / "step-000002" / "trainer_state.pt"
    write_tampered_state(state, tmp_path / "ran.txt")
    with pytest.raises(ModelError, match=rf"refusing to load checkpoint state {state}"):
        train_reranker(groups, tmp_path / "run", cfg, show_progress=False)
    assert not (tmp_path / "ran.txt").exists()


def test_resume_refuses_other_settings_and_restart_starts_over(tmp_path: Path, tiny_model: Path) -> None:
    groups = make_groups(n=16)
    cfg = tiny_config(tiny_model)
    train_reranker(groups, tmp_path / "run", cfg, stop_after_steps=1, show_progress=False)
    with pytest.raises(SynthrankError, match=r"other settings.*learning_rate"):
        train_reranker(groups, tmp_path / "run", tiny_config(tiny_model, learning_rate=5e-4), show_progress=False)
    # operational settings may change between a run and its resume
    done = train_reranker(groups, tmp_path / "run", tiny_config(tiny_model, save_every=3), show_progress=False)
    assert done.completed
    with pytest.raises(SynthrankError, match="other settings"):
        train_reranker(make_groups(n=16, seed=5), tmp_path / "run", cfg, show_progress=False)
    fresh = train_reranker(make_groups(n=16, seed=5), tmp_path / "run", cfg, restart=True, show_progress=False)
    assert fresh.completed and fresh.global_step == 4


def test_best_checkpoint_is_kept_and_early_stopping(tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scripted = iter([0.50, 0.70, 0.60, 0.65, 0.90])
    snapshots: dict[int, dict[str, Any]] = {}
    calls: list[int] = []

    def fake_evaluate(self: DevSet, scorer: Any, *, show_progress: bool = False) -> dict[str, float]:
        calls.append(len(calls) + 1)
        snapshots[len(calls)] = {k: v.detach().clone() for k, v in scorer.model.state_dict().items()}
        value = next(scripted)
        return {"nDCG@10": value, "MRR@10": value}

    monkeypatch.setattr(DevSet, "evaluate", fake_evaluate)
    dev = DevSet.from_groups(make_groups(n=3, seed=2))
    cfg = tiny_config(tiny_model, eval_every=1, early_stopping_patience=2, batch_size=2, epochs=1,
                      dev_min_queries=3)  # 8 steps planned; the 3-query dev set may choose
    result = train_reranker(make_groups(n=16), tmp_path / "run", cfg, dev=dev, show_progress=False)
    assert calls == [1, 2, 3, 4]  # 0.60 and 0.65 do not beat 0.70: stop after the 4th evaluation
    assert result.metrics["stopped_early"] and result.global_step == 4 and result.best_step == 2
    assert result.metrics["best_dev"]["nDCG@10"] == 0.70
    saved = weights(result.model_dir)
    for key, value in snapshots[2].items():
        if key in saved:
            assert torch.equal(saved[key], value), key
    assert any(not torch.equal(saved[k], v) for k, v in snapshots[4].items() if k in saved)
    card = (result.model_dir / "README.md").read_text()
    assert "stopped early" in card and "step 2" in card


def _scripted_dev(monkeypatch: pytest.MonkeyPatch, values: list[float]) -> dict[int, dict[str, Any]]:
    """Make DevSet.evaluate return ``values`` in turn; returns each evaluation's weights by call number."""
    scripted = iter(values)
    snapshots: dict[int, dict[str, Any]] = {}

    def fake_evaluate(self: DevSet, scorer: Any, *, show_progress: bool = False) -> dict[str, float]:
        snapshots[len(snapshots) + 1] = {k: v.detach().clone() for k, v in scorer.model.state_dict().items()}
        value = next(scripted)
        return {"nDCG@10": value, "MRR@10": value}

    monkeypatch.setattr(DevSet, "evaluate", fake_evaluate)
    return snapshots


def test_a_dev_set_below_dev_min_queries_keeps_the_last_step(tmp_path: Path, tiny_model: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """2 held-out queries scoring 1.0 at every step used to keep step 1's weights; now they choose nothing."""
    snapshots = _scripted_dev(monkeypatch, [1.0, 0.5, 0.5, 0.5])
    dev = DevSet.from_groups(make_groups(n=2, seed=2))
    cfg = tiny_config(tiny_model, eval_every=1, early_stopping_patience=1, batch_size=4, epochs=1, save_every=0)
    assert cfg.dev_min_queries > len(dev)
    result = train_reranker(make_groups(n=16), tmp_path / "run", cfg, dev=dev, show_progress=False)
    assert result.global_step == 4 and not result.metrics["stopped_early"]  # no early stop on a tiny dev set
    assert result.best_step is None and len(result.metrics["dev_history"]) == 4  # scored for the record
    saved = weights(result.model_dir)
    assert all(torch.equal(saved[k], v) for k, v in snapshots[4].items() if k in saved)  # the last step's weights
    assert any(not torch.equal(saved[k], v) for k, v in snapshots[1].items() if k in saved)


def test_a_dev_tie_keeps_the_later_checkpoint(tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snapshots = _scripted_dev(monkeypatch, [0.8, 0.8, 0.6, 0.5])
    dev = DevSet.from_groups(make_groups(n=2, seed=2))
    cfg = tiny_config(tiny_model, eval_every=1, batch_size=4, epochs=1, save_every=0, dev_min_queries=1)
    result = train_reranker(make_groups(n=16), tmp_path / "run", cfg, dev=dev, show_progress=False)
    assert result.best_step == 2
    saved = weights(result.model_dir)
    assert all(torch.equal(saved[k], v) for k, v in snapshots[2].items() if k in saved)


def test_gradient_checkpointing_gives_the_same_training(tmp_path: Path, tiny_model: Path) -> None:
    groups = make_groups(n=8)
    plain = train_reranker(groups, tmp_path / "plain", tiny_config(tiny_model, save_every=0), show_progress=False)
    ckpt = train_reranker(groups, tmp_path / "ckpt", tiny_config(tiny_model, save_every=0, gradient_checkpointing=True),
                          show_progress=False)
    a, b = weights(plain.model_dir), weights(ckpt.model_dir)
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key
    assert not json.loads((ckpt.model_dir / "config.json").read_text()).get("gradient_checkpointing", False)


def test_bf16_on_cpu_trains_under_autocast(tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    seen: set[torch.dtype] = set()
    real_linear = torch.nn.functional.linear

    def spy(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        out = real_linear(x, *args, **kwargs)
        seen.add(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.functional, "linear", spy)
    result = train_reranker(make_groups(n=8), tmp_path / "run", tiny_config(tiny_model, precision="bf16"),
                            show_progress=False)  # fmt: skip
    monkeypatch.undo()
    assert seen == {torch.bfloat16}
    assert result.metrics["precision"] == "bf16"
    saved = weights(result.model_dir)
    assert all(t.dtype == torch.float32 for t in saved.values())  # fp32 master weights, fp32 checkpoint
    with pytest.raises(DataError, match="fp16 training needs a CUDA GPU"):
        train_reranker(make_groups(n=4), tmp_path / "fp16", tiny_config(tiny_model, precision="fp16"), show_progress=False)


def test_bf16_is_fast_on_amx_and_avx512_bf16_cpus_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """AMX (Sapphire Rapids) or native AVX512-BF16 (AMD Zen 4): bf16 autocast; AVX-512 alone emulates bf16."""
    from synthrank.models import cpu

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw avx512_bf16 avx512_vnni\n", encoding="utf-8")
    assert "avx512_bf16" in cpu.cpu_flags(info) and cpu.cpu_flags(tmp_path / "absent") == frozenset()
    cases = [(False, "avx2 avx512f avx512_bf16", True), (True, "avx2", True), (False, "avx2 avx512f avx512bw", False)]
    for amx, flags, fast in cases:
        monkeypatch.setattr(cpu, "cpu_has_amx", lambda amx=amx: amx)
        monkeypatch.setattr(cpu, "cpu_flags", lambda flags=flags: frozenset(flags.split()))
        cpu.cpu_bf16_is_fast.cache_clear()
        assert cpu.cpu_bf16_is_fast() is fast, (amx, flags)
    cpu.cpu_bf16_is_fast.cache_clear()


# --------------------------------------------------------------------------- CLI


def test_cli_trains_resumes_and_refuses_other_settings(tmp_path: Path, tiny_model: Path, tiny_beir: Path) -> None:
    from click.testing import CliRunner

    from synthrank_cli.main import main

    groups = write_groups_file(tmp_path / "groups.jsonl", make_groups(n=16))
    dev_groups = write_groups_file(tmp_path / "dev.jsonl", make_groups(n=4, seed=3))
    (tmp_path / "run.yaml").write_text(
        f"model: {tiny_model}\ngroup-size: 4\nbatch-size: 4\nmax-length: 48\nlearning-rate: 0.001\nnum-threads: 1\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    base = ["train", "--groups", str(groups), "--output-dir", str(out), "--config", str(tmp_path / "run.yaml"),
            "--no-progress"]
    runner = CliRunner()
    first = runner.invoke(main, [*base, "--dev-groups", str(dev_groups), "--eval-every", "2", "--dev-min-queries", "4"])
    assert first.exit_code == 0, first.output
    assert "model:" in first.output and "dev (step" in first.output
    assert (out / "model" / "model.safetensors").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["group_size"] == 4 and metrics["config"]["learning_rate"] == 0.001  # from the YAML
    # same settings again: the finished run is found, nothing is retrained
    again = runner.invoke(main, [*base, "--dev-groups", str(dev_groups), "--eval-every", "2", "--dev-min-queries", "4"])
    assert again.exit_code == 0, again.output
    other = runner.invoke(main, [*base, "--dev-groups", str(dev_groups), "--eval-every", "2", "--dev-min-queries", "4",
                                 "--learning-rate", "0.01"])
    assert other.exit_code != 0 and "other settings" in other.output
    restarted = runner.invoke(main, [*base, "--learning-rate", "0.01", "--restart", "--dev-data", str(tiny_beir),
                                     "--dev-split", "test", "--dev-top-k", "6"])
    assert restarted.exit_code == 0, restarted.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["learning_rate"] == 0.01
    assert metrics["dev"]["queries"] == 3 and metrics["dev"]["name"] == "tiny" and metrics["dev_history"]
    assert metrics["best_step"] is None and "not used to choose" in restarted.output  # 3 < the default 20 queries
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("not a run", encoding="utf-8")
    refused = runner.invoke(main, ["train", "--groups", str(groups), "--output-dir", str(stranger), "--no-progress"])
    assert refused.exit_code != 0 and "--overwrite" in refused.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("learnig-rate: 0.1\n", encoding="utf-8")
    typo = runner.invoke(main, ["train", "--groups", str(groups), "--output-dir", str(tmp_path / "o2"), "--config", str(bad)])
    assert typo.exit_code != 0 and "learnig-rate" in typo.output
