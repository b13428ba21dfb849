"""`synthrank llmrank train|score|convert` on a tiny random LM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from synthrank.data import Passage, TrainingGroup, read_corpus, write_groups
from synthrank_cli.main import main
from tests.llmrank_tiny import build_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp("tiny") / "model")


def _groups(corpus_dir: Path, path: Path) -> Path:
    corpus = read_corpus(corpus_dir)
    pairs = [("what damages the optic nerve", "d1", ["d4", "d6"]), ("high blood sugar", "d2", ["d3", "d6"]), ("airway disease", "d3", ["d1", "d2"])]
    groups = [
        TrainingGroup(f"s{i}", q, Passage(pos, corpus[pos].full_text()), [Passage(n, corpus[n].full_text()) for n in negs])
        for i, (q, pos, negs) in enumerate(pairs)
    ]
    write_groups(path, groups)
    return path


def test_train_then_score_candidates(tiny: Path, tiny_beir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    groups = _groups(tiny_beir, tmp_path / "groups.jsonl")
    out = tmp_path / "model"
    args = [
        "llmrank", "train", "--base-model", str(tiny), "--groups", str(groups), "--output-dir", str(out),
        "--max-length", "200", "--batch-size", "2", "--grad-accum", "1", "--lora-r", "4", "--checkpoint-every", "1",
        "--no-progress",
    ]  # fmt: skip
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "6 examples (3 relevant, 3 not relevant)" in result.output
    assert (out / "merged" / "llmrank.json").exists() and (out / "adapter" / "adapter_config.json").exists()
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 3
    assert len((out / "examples.jsonl").read_text().splitlines()) == 6

    again = runner.invoke(main, args)  # a finished run in the folder: nothing to redo
    assert again.exit_code == 0, again.output
    other = runner.invoke(main, [*args[:-1], "--learning-rate", "0.1", "--no-progress"])
    assert other.exit_code != 0 and "other settings" in other.output
    fresh = runner.invoke(main, [*args, "--learning-rate", "0.1", "--restart"])
    assert fresh.exit_code == 0, fresh.output

    candidates = tmp_path / "candidates.jsonl"
    candidates.write_text(
        json.dumps({"query_id": "q1", "query": "what damages the optic nerve",
                    "candidates": [{"doc_id": d, "rank": i + 1, "score": 10.0 - i} for i, d in enumerate(["d4", "d1", "d6"])]})
        + "\n"
        + json.dumps({"query_id": "q2", "query": "high blood sugar", "candidates": [{"doc_id": "d2", "rank": 1, "score": 3.0}]})
        + "\n",
        encoding="utf-8",
    )  # fmt: skip
    scores = tmp_path / "reranked.jsonl"
    result = runner.invoke(main, ["llmrank", "score", "--model", str(out), "--candidates", str(candidates), "--corpus",
                                  str(tiny_beir), "--output", str(scores), "--top-k", "2", "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in scores.read_text().splitlines()]
    assert [r["query_id"] for r in lines] == ["q1", "q2"]
    first = lines[0]["candidates"]
    assert {c["doc_id"] for c in first} == {"d4", "d1"}  # top-2 of the first stage only
    assert [c["rank"] for c in first] == [1, 2] and first[0]["score"] >= first[1]["score"]
    assert all(0.0 <= c["score"] <= 1.0 for c in first) and first[0]["first_stage_rank"] in (1, 2), first

    resumed = runner.invoke(main, ["llmrank", "score", "--model", str(out), "--candidates", str(candidates), "--corpus",
                                   str(tiny_beir), "--output", str(scores), "--no-progress"])  # fmt: skip
    assert resumed.exit_code == 0 and "reranked 0 queries (2 already done)" in resumed.output


def test_usage_errors(tiny: Path, tiny_beir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    groups = _groups(tiny_beir, tmp_path / "groups.jsonl")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine", encoding="utf-8")
    result = runner.invoke(main, ["llmrank", "train", "--base-model", str(tiny), "--groups", str(groups), "--output-dir", str(busy)])
    assert result.exit_code != 0 and "not empty" in result.output
    result = runner.invoke(main, ["llmrank", "train", "--base-model", str(tiny), "--output-dir", str(tmp_path / "x")])
    assert result.exit_code != 0 and "exactly one of --groups, --labels or --examples" in result.output
    result = runner.invoke(main, ["llmrank", "train", "--labels", str(groups), "--output-dir", str(tmp_path / "y")])
    assert result.exit_code != 0 and "--labels needs --queries" in result.output

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"query_id": "q", "query": "x", "candidates": [{"doc_id": "nope"}]}) + "\n", encoding="utf-8")
    result = runner.invoke(main, ["llmrank", "score", "--model", str(tiny), "--candidates", str(bad), "--corpus", str(tiny_beir),
                                  "--output", str(tmp_path / "o.jsonl")])  # fmt: skip
    assert result.exit_code != 0 and "bad.jsonl:1" in result.output and "candidates[0].doc_id" in result.output
    result = runner.invoke(main, ["llmrank", "score", "--candidates", str(bad), "--corpus", str(tiny_beir), "--output", "o.jsonl"])
    assert result.exit_code != 0 and "exactly one of --model or --endpoint" in result.output
    result = runner.invoke(main, ["llmrank", "convert", str(tmp_path / "missing.gguf")])
    assert result.exit_code != 0 and "does not exist" in result.output


def test_train_from_labels_with_config_file(tiny: Path, tiny_beir: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    rows = [("q1", "d1", 3), ("q1", "d4", 0), ("q2", "d2", 2), ("q2", "d6", 0), ("q3", "d3", 3), ("q3", "d5", 1)]
    labels.write_text("".join(json.dumps({"query_id": q, "doc_id": d, "grade": g, "reason": "r"}) + "\n" for q, d, g in rows))
    config = tmp_path / "cfg.yaml"
    config.write_text("max-steps: 1\nbatch-size: 2\ngrad-accum: 1\nmax-length: 200\nlora-r: 2\nprogress: false\n", encoding="utf-8")
    result = CliRunner().invoke(main, [
        "llmrank", "train", "--base-model", str(tiny), "--labels", str(labels), "--queries", str(tiny_beir / "queries.jsonl"),
        "--corpus", str(tiny_beir), "--output-dir", str(tmp_path / "m"), "--config", str(config), "--no-merge",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "5 examples (3 relevant, 2 not relevant)" in result.output  # grade 1 left out
    saved = json.loads((tmp_path / "m" / "train_config.json").read_text())
    assert saved["max_steps"] == 1 and saved["lora_r"] == 2 and saved["merge"] is False
    assert not (tmp_path / "m" / "merged").exists() and (tmp_path / "m" / "adapter" / "llmrank.json").exists()
