"""Bi-encoder LCE training: starts as the zero-shot model, learns, merges with its base, resumes, loads everywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from synthrank.errors import DataError, ModelError  # noqa: E402
from synthrank.rerank import BiEncoderScorer, load_scorer  # noqa: E402
from synthrank.train import DevSet, TrainConfig, train_reranker  # noqa: E402
from synthrank.train.config import LATER_DEFAULTS  # noqa: E402
from tests.test_train import make_groups, tiny_config, weights, write_groups_file  # noqa: E402
from tests.test_train import tiny_model as tiny_model  # noqa: E402  (the session fixture)


@pytest.fixture(scope="module")
def no_dropout_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny encoder without dropout, so a training step sees exactly what the zero-shot scorer sees."""
    from transformers import AutoTokenizer, BertModel

    root = tmp_path_factory.mktemp("tiny-bert-no-dropout")
    BertModel.from_pretrained(tiny_model, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).save_pretrained(root)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(root)
    return root


def bi_config(model: Path, **overrides: Any) -> TrainConfig:
    return tiny_config(model, architecture="bi-encoder", **overrides)


def test_pooling_without_a_mask_is_the_mean_over_every_token_and_ignores_padding_with_one() -> None:
    from synthrank.runtime import pool_embeddings

    hidden = torch.randn(2, 5, 4)
    full = torch.ones(2, 5, dtype=torch.long)
    assert torch.allclose(pool_embeddings(hidden, None, "mean", True), pool_embeddings(hidden, full, "mean", True))
    padded = full.clone()
    padded[1, 3:] = 0  # the second row has two padding tokens: they do not count
    assert torch.allclose(pool_embeddings(hidden, padded, "mean", False)[1], hidden[1, :3].mean(0))
    assert torch.equal(pool_embeddings(hidden, None, "cls", False), hidden[:, 0])


def test_settings_are_checked_and_old_fingerprints_still_match() -> None:
    with pytest.raises(DataError, match="merge_with_base needs architecture: bi-encoder") as err:
        TrainConfig(merge_with_base=0.5)
    assert err.value.field == "merge_with_base"
    with pytest.raises(DataError, match="unknown architecture") as err:
        TrainConfig(architecture="colbert")  # type: ignore[arg-type]
    assert err.value.field == "architecture"
    for field, value in (("merge_with_base", 1.0), ("similarity_temperature", 0.0)):
        with pytest.raises(DataError) as err:
            TrainConfig(architecture="bi-encoder", **{field: value})
        assert err.value.field == field
    # a run checkpointed before these settings existed resumes: at their defaults they are not fingerprinted
    assert not set(LATER_DEFAULTS) & set(TrainConfig().fingerprint())
    assert TrainConfig(architecture="bi-encoder").fingerprint()["architecture"] == "bi-encoder"
    assert TrainConfig.from_dict(bi_config(Path("m"), merge_with_base=0.5).to_dict()).merge_with_base == 0.5


def test_a_bi_encoder_is_not_trained_from_a_cross_encoder(tmp_path: Path, tiny_model: Path) -> None:
    crossed = train_reranker(make_groups(n=4), tmp_path / "ce", tiny_config(tiny_model), show_progress=False)
    with pytest.raises(ModelError, match="bi-encoder is trained from a plain transformer encoder"):
        train_reranker(make_groups(n=4), tmp_path / "bi", bi_config(crossed.model_dir), show_progress=False)


def test_training_writes_an_encoder_that_load_scorer_and_sentence_transformers_read(tmp_path: Path, tiny_model: Path) -> None:
    from sentence_transformers import SentenceTransformer

    groups = write_groups_file(tmp_path / "groups.jsonl", make_groups(n=16))
    dev = DevSet.from_groups(make_groups(n=4, seed=1))
    result = train_reranker(groups, tmp_path / "run", bi_config(tiny_model, eval_every=2), dev=dev, show_progress=False)
    folder = result.model_dir
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["BertModel"]
    assert json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"] == 48
    assert json.loads((folder / "1_Pooling" / "config.json").read_text())["pooling_mode_mean_tokens"] is True
    assert [d["step"] for d in result.metrics["dev_history"]] == [2, 4]
    scorer = load_scorer(folder)
    assert isinstance(scorer, BiEncoderScorer)
    queries, docs = ["eye lens", "eye lens", "skin rash"], ["eye lens nerve", "skin rash heart", "skin rash pain"]
    ours = scorer.score_pairs(queries, docs)
    st = SentenceTransformer(str(folder), device="cpu")
    q, d = st.encode(queries, convert_to_numpy=True), st.encode(docs, convert_to_numpy=True)
    theirs = np.einsum("ij,ij->i", q, d)
    assert np.abs(theirs - ours).max() < 1e-5
    # the tuned weights moved away from the base
    base = BiEncoderScorer(str(tiny_model), max_length=48).score_pairs(queries, docs)
    assert np.abs(base - ours).max() > 1e-3


def test_lce_on_cosines_learns_the_groups(tmp_path: Path, no_dropout_model: Path) -> None:
    groups = make_groups(n=8)
    cfg = bi_config(no_dropout_model, epochs=20, batch_size=8, learning_rate=1e-2, warmup_ratio=0.0,
                    negative_sampling="top", save_every=0, precision="fp32")  # fmt: skip
    result = train_reranker(groups, tmp_path / "bi", cfg, show_progress=False)
    losses = [h["loss"] for h in result.metrics["history"]]
    assert len(losses) == 20 and np.mean(losses[-3:]) < 0.7 * losses[0]
    # the first step's loss is the zero-shot model's LCE loss: training starts as the base bi-encoder
    scorer = BiEncoderScorer(str(no_dropout_model), max_length=48, dtype="float32")
    logits = []
    for g in groups:
        passages = [g.positive.text] + [n.text for n in g.negatives[:3]]
        logits.append(scorer.score_pairs([g.query] * len(passages), passages) / cfg.similarity_temperature)
    expected = float(torch.nn.functional.cross_entropy(torch.tensor(np.array(logits)), torch.zeros(8, dtype=torch.long)))
    assert losses[0] == pytest.approx(expected, rel=1e-4)


def test_merge_with_base_averages_the_weights_and_survives_a_kill(tmp_path: Path, tiny_model: Path) -> None:
    groups = write_groups_file(tmp_path / "groups.jsonl", make_groups(n=16))
    dev = DevSet.from_groups(make_groups(n=4, seed=1))
    tuned = train_reranker(groups, tmp_path / "tuned", bi_config(tiny_model, epochs=2, eval_every=2), dev=dev,
                           show_progress=False)  # fmt: skip
    cfg = bi_config(tiny_model, epochs=2, eval_every=2, merge_with_base=0.25)
    part = train_reranker(groups, tmp_path / "merged", cfg, dev=dev, stop_after_steps=3, show_progress=False)
    assert not part.completed and not (tmp_path / "merged" / "merged").exists()
    merged = train_reranker(groups, tmp_path / "merged", cfg, dev=dev, show_progress=False)
    assert merged.completed and merged.best_step == tuned.best_step
    from safetensors.torch import load_file

    base = load_file(str(tiny_model / "model.safetensors"))
    a, b = weights(tuned.model_dir), weights(merged.model_dir)
    assert a.keys() == b.keys()
    for key in a:
        if a[key].is_floating_point():
            torch.testing.assert_close(b[key], 0.75 * a[key] + 0.25 * base[key], rtol=0, atol=1e-6)
    assert merged.metrics["merge_with_base"] == 0.25 and set(merged.metrics["merged_dev"]) >= {"nDCG@10"}
    assert not (tmp_path / "merged" / "merged").exists() and not (tmp_path / "merged" / "best").exists()


def test_both_adapters_rerank_with_a_trained_bi_encoder(tmp_path: Path, tiny_model: Path) -> None:
    import pandas as pd
    from haystack import Document

    from haystack_synthrank import SynthRankRanker
    from pyterrier_synthrank import SynthReranker

    result = train_reranker(make_groups(n=8), tmp_path / "bi", bi_config(tiny_model), show_progress=False)
    texts = ["eye lens nerve", "skin rash heart", "blood sugar insulin"]
    expected = BiEncoderScorer(str(result.model_dir)).score_pairs(["eye lens"] * 3, texts)
    ranker = SynthRankRanker(model=str(result.model_dir), scale_score=False)
    ranker.warm_up()
    docs = ranker.run(query="eye lens", documents=[Document(content=t) for t in texts])["documents"]
    assert [d.content for d in docs] == [texts[i] for i in np.argsort(-expected)]
    assert np.allclose(sorted((d.score for d in docs), reverse=True), sorted(expected, reverse=True), atol=1e-5)
    frame = pd.DataFrame({"qid": ["1"] * 3, "query": ["eye lens"] * 3, "docno": ["a", "b", "c"], "text": texts})
    out = SynthReranker(str(result.model_dir)).transform(frame)
    assert np.allclose(out.sort_values("docno")["score"].to_numpy(), expected, atol=1e-5)


def test_cli_trains_a_merged_bi_encoder_and_names_a_bad_setting(tmp_path: Path, tiny_model: Path) -> None:
    from click.testing import CliRunner

    from synthrank_cli.main import main

    groups = write_groups_file(tmp_path / "groups.jsonl", make_groups(n=8))
    dev = write_groups_file(tmp_path / "dev.jsonl", make_groups(n=4, seed=3))
    base = ["train", "--groups", str(groups), "--model", str(tiny_model), "--group-size", "4", "--batch-size", "4",
            "--max-length", "48", "--num-threads", "1", "--no-progress", "--architecture", "bi-encoder"]  # fmt: skip
    runner = CliRunner()
    done = runner.invoke(main, [*base, "--output-dir", str(tmp_path / "out"), "--merge-with-base", "0.5",
                                "--dev-groups", str(dev)])  # fmt: skip
    assert done.exit_code == 0, done.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["config"]["architecture"] == "bi-encoder" and metrics["merge_with_base"] == 0.5
    assert isinstance(load_scorer(tmp_path / "out" / "model"), BiEncoderScorer)
    card = (tmp_path / "out" / "model" / "README.md").read_text()
    assert "bi-encoder reranker" in card and "0.50 x backbone" in card and "merged with its backbone" in card
    refused = runner.invoke(main, [*base[:-2], "--output-dir", str(tmp_path / "o2"), "--merge-with-base", "0.5"])
    assert refused.exit_code != 0 and "merge_with_base" in refused.output


def test_synthrank_run_trains_and_evaluates_a_bi_encoder_from_its_config(
    tiny_beir: Path, tmp_path: Path, tiny_model: Path
) -> None:
    from synthrank.data import write_groups
    from synthrank.pipeline import RunContext, load_run_config
    from synthrank.pipeline.stages import run_evaluate, run_train
    from synthrank.runner import StepContext

    out = tmp_path / "run"
    out.mkdir()
    write_groups(out / "groups.jsonl", make_groups(n=12))
    config = load_run_config(None, {
        "corpus": str(tiny_beir),
        "train": {"model": str(tiny_model), "group_size": 4, "batch_size": 4, "max_length": 48, "epochs": 1,
                  "options": {"architecture": "bi-encoder", "merge_with_base": 0.5, "num_threads": 1}},
        "evaluate": {"top_k": 5, "baselines": ["bm25"], "fusion": False},
    })  # fmt: skip
    run, ctx = RunContext(config, out, show_progress=False), StepContext(out, {})
    summary = run_train(run, ctx)
    assert summary["metrics"]["merge_with_base"] == 0.5
    assert isinstance(load_scorer(summary["model_dir"]), BiEncoderScorer)
    run_evaluate(run, ctx)
    systems = {s["name"]: s for s in json.loads((out / "evaluation.json").read_text())["main"]["systems"]}
    assert {"bm25", "synthrank"} <= set(systems) and systems["synthrank"]["num_queries"] == 3


def test_the_run_writes_bm25s_weight_into_the_model_folder_and_the_adapters_serve_it(
    tiny_beir: Path, tmp_path: Path, tiny_model: Path
) -> None:
    """The weight picked on the kept synthetic queries travels with the model: SynthReranker serves it unless told
    otherwise; an evaluation with the fusion off takes it back."""
    from synthrank.data import Passage, TrainingGroup, write_groups
    from synthrank.pipeline import RunContext, load_run_config
    from synthrank.pipeline.stages import run_evaluate, run_train
    from synthrank.rerank.serving import SERVING_FILE
    from synthrank.runner import StepContext

    pytest.importorskip("pyterrier")
    from pyterrier_synthrank import SynthReranker

    out = tmp_path / "run"
    out.mkdir()
    corpus = {json.loads(line)["_id"]: json.loads(line) for line in (tiny_beir / "corpus.jsonl").open()}
    synthetic = {"s1": ("optic nerve damage in the eye", "d1"), "s2": ("blood glucose hormone", "d5"),
                 "s3": ("chronic lung airways", "d3"), "s4": ("glaucoma eye pressure", "d1")}  # fmt: skip
    kept = [TrainingGroup(q, text, Passage(pos, corpus[pos]["text"]),
                          [Passage(d, corpus[d]["text"], rank=i + 2) for i, d in enumerate(x for x in corpus if x != pos)])
            for q, (text, pos) in synthetic.items()]  # fmt: skip
    write_groups(out / "groups.jsonl", make_groups(n=10) + kept)
    with (out / "candidates.jsonl").open("w", encoding="utf-8") as fh:
        for q, (text, pos) in synthetic.items():
            scores = {d: (5.0 if d == pos else 1.0 + i / 10) for i, d in enumerate(corpus)}
            fh.write(json.dumps({"query_id": q, "query": text, "source_doc_id": pos,
                                 "candidates": [{"doc_id": d, "score": s} for d, s in scores.items()]}) + "\n")  # fmt: skip
    config = load_run_config(None, {
        "corpus": str(tiny_beir),
        "train": {"model": str(tiny_model), "group_size": 4, "batch_size": 4, "max_length": 48, "epochs": 1,
                  "options": {"architecture": "bi-encoder", "merge_with_base": 0.5, "num_threads": 1}},
        "evaluate": {"top_k": 5, "baselines": ["bm25"], "fusion": False, "zero_shot_model": str(tiny_model)},
    })  # fmt: skip
    run, ctx = RunContext(config, out, show_progress=False), StepContext(out, {})
    model_dir = Path(run_train(run, ctx)["model_dir"])
    run_evaluate(run, ctx)
    picked = json.loads((out / "evaluation.json").read_text())["first_stage_fusion"]
    served = json.loads((model_dir / SERVING_FILE).read_text())
    assert served["first_stage_weight"] == picked["weight"] and served["queries"] == picked["queries"] == 4
    assert picked["weight"] > 0 and SynthReranker(model_dir).first_stage_weight == picked["weight"]
    assert SynthReranker(model_dir, first_stage_weight=0).first_stage_weight == 0.0
    assert SynthReranker(model_dir, first_stage_weight=0.7).first_stage_weight == 0.7
    off = load_run_config(None, {**{k: config[k] for k in ("corpus", "train")},
                                 "evaluate": {**config["evaluate"], "first_stage_fusion": False}})  # fmt: skip
    run_evaluate(RunContext(off, out, show_progress=False), ctx)
    assert not (model_dir / SERVING_FILE).exists() and SynthReranker(model_dir).first_stage_weight == 0.0
    # the bagged rule: the one-standard-error choice averaged over resamples of the source passages, served as is
    from synthrank.data import load_dataset
    from synthrank.rerank import BiEncoderScorer
    from synthrank.rerank.first_stage import (
        bagged_one_standard_error_weight,
        per_query_by_weight,
        source_passages_of_run,
        synthetic_queries_of_run,
    )

    bagged = load_run_config(None, {**{k: config[k] for k in ("corpus", "train")},
                                    "evaluate": {**config["evaluate"], "first_stage_rule": "bagged"}})  # fmt: skip
    run_evaluate(RunContext(bagged, out, show_progress=False), ctx)
    picked_bagged = json.loads((out / "evaluation.json").read_text())["first_stage_fusion"]
    assert picked_bagged["units"] == 3  # s1 and s4 were written from one passage: resampled together
    served = json.loads((model_dir / SERVING_FILE).read_text())
    assert picked_bagged["rule"] == "bagged" and picked_bagged["one_se_weight"] == picked["weight"]
    assert served["first_stage_weight"] == picked_bagged["weight"] and "bagged" in served["picked_on"]
    candidates, relevant, texts = synthetic_queries_of_run(out, load_dataset(str(tiny_beir)).corpus)
    per_query = per_query_by_weight(candidates, relevant, BiEncoderScorer(str(tiny_model)), texts)
    assert picked_bagged["weight"] == bagged_one_standard_error_weight(per_query, source_passages_of_run(out))["weight"]
