"""`synthrank run` end to end on a MedQuAD slice with a real LLM, real BM25 and real MiniLM training.

SmolLM2-135M stands in for the default Qwen model (same code path, ~10x faster; its queries and
labels are poor, so these tests check the plumbing, resumption and artifacts, not quality; the
quality numbers live in benchmarks/). The kill test runs the command in a subprocess, kills it
with SIGKILL mid-run and checks that the rerun asks the LLM nothing it was asked before.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from integration.llm_fixtures import llama_server  # noqa: F401  (fixture)
from integration.slices import beir_slice
from synthrank.llm.local import LocalLlamaServer
from synthrank_cli.main import main

pytestmark = [pytest.mark.llm_server, pytest.mark.slow]


def _medquad_slice(root: Path, n_queries: int = 12, n_other: int = 150) -> Path:
    """A BEIR folder: judged MedQuAD questions, their answers, and other answers as distractors."""
    return beir_slice("medquad", "test_sample1000", root, n_queries=n_queries, n_other=n_other)


def _config(path: Path, cache: Path, **llm: object) -> Path:
    config = {
        "llm": {"model": "smollm2-135m", "cache": str(cache), "n_ctx": 2048, **llm},
        # SmolLM2's queries are poor: the quality filters are off here (they are tested on their own)
        "generate": {
            "max_passages": 6,
            "query_types": ["keyword", "natural"],
            "types_per_passage": 1,
            "n_per_type": 1,  # SmolLM2 cannot fit three queries in 96 tokens (the default recipe asks three per call)
            "json_mode": True,
            "max_tokens": 96,
            "roundtrip_k": 0,
            "max_copy_ratio": 0,
            "min_words": 1,
            "max_words": 0,
        },
        "mine": {"top_k": 20, "num_negatives": 6},
        # the judge on (the default recipe has none): these tests cover labelling, its resumption and faults;
        # SmolLM2 rarely says yes with confidence
        "label": {"enabled": True, "judge_top_k": 3, "yes_threshold": 0.2},
        # half the queries held out, so the fusion weight has dev groups to be picked on
        "train": {
            "group_size": 4,
            "epochs": 1,
            "batch_size": 2,
            "max_length": 128,
            "dev_fraction": 0.5,
            "options": {"max_steps": 3},
        },
        "evaluate": {"top_k": 10, "baselines": ["bm25", "zero-shot"]},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _cache_entries(cache: Path) -> int:
    if not cache.exists():
        return 0
    with sqlite3.connect(cache) as db:
        return int(db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])


def _marker(out: Path, step: str) -> dict:
    return json.loads((out / ".steps" / f"{step}.json").read_text())


def test_run_end_to_end_then_everything_is_skipped(tmp_path: Path, llama_server: LocalLlamaServer) -> None:  # noqa: F811
    corpus = _medquad_slice(tmp_path / "medquad-slice")
    cache = tmp_path / "llm-cache.sqlite"
    config = _config(tmp_path / "run.yaml", cache, model=llama_server.alias, base_url=llama_server.base_url)
    out = tmp_path / "out"
    runner = CliRunner()
    args = ["run", "--corpus", str(corpus), "--output-dir", str(out), "--config", str(config), "--no-progress"]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    for artifact in ("queries.jsonl", "candidates.jsonl", "labels.jsonl", "groups.jsonl", "train_summary.json",
                     "evaluation.json", "report.md", "usage.json"):  # fmt: skip
        assert (out / artifact).exists(), artifact
    model_dir = Path(json.loads((out / "train_summary.json").read_text())["model_dir"])
    assert (model_dir / "config.json").exists() and list(model_dir.glob("*.safetensors"))
    # the run's default recipe for a small budget: the zero-shot encoder tuned as a bi-encoder, merged back
    assert (model_dir / "modules.json").exists(), "the default run trains a sentence-transformers bi-encoder"
    assert json.loads((out / "run_config.json").read_text())["train"]["architecture"] == "bi-encoder"
    evaluated = json.loads((out / "evaluation.json").read_text())
    evaluation = evaluated["main"]
    names = [s["name"] for s in evaluation["systems"]]
    assert names[:3] == ["bm25", "zero-shot bi-encoder", "synthrank"]
    # the fused row exists exactly when held-out synthetic groups could pick its weight
    assert names[3:] == ["synthrank + zero-shot (fused)", "synthrank + BM25 (fused)"]
    assert 0.0 <= evaluated["fusion"]["weight"] <= 1.0
    # BM25's weight: picked on the kept synthetic queries (one-standard-error rule), never above the best weight
    picked = evaluated["first_stage_fusion"]
    assert 0.0 <= picked["weight"] <= picked["best_weight"] <= 1.0 and picked["queries"] >= 1
    assert len(picked["table"]) == 11 and picked["table"][f"{picked['weight']:.1f}"] >= (
        max(picked["table"].values()) - picked["se"] - 1e-9
    )
    # the weight travels with the model: the adapters serve it by default
    served = json.loads((model_dir / "synthrank_serving.json").read_text())
    assert served["first_stage_weight"] == picked["weight"] and served["first_stage"] == "bm25"
    by_name = {s["name"]: s for s in evaluation["systems"]}
    assert by_name["synthrank + BM25 (fused)"]["seconds"] == by_name["synthrank"]["seconds"]  # a re-sort, no model
    if "fusion" in evaluated:  # its cost is both models' (their scores are computed once and shared)
        seconds = {s["name"]: s["seconds_per_query"] for s in evaluation["systems"]}
        assert seconds["synthrank + zero-shot (fused)"] >= seconds["synthrank"] + seconds["zero-shot bi-encoder"]
    assert {(s["system"], s["baseline"]) for s in evaluation["significance"]} >= {
        ("synthrank", "bm25"),
        ("synthrank", "zero-shot bi-encoder"),
        ("synthrank + BM25 (fused)", "zero-shot bi-encoder"),
    }
    assert evaluation["systems"][0]["num_queries"] == 12
    report = (out / "report.md").read_text()
    assert "| generate | ran |" in report and "| synthrank |" in report
    assert f"first_stage_weight={picked['weight']:.1f}" in report and "| synthrank + BM25 (fused) |" in report
    assert _marker(out, "generate")["summary"]["usage"]["calls"] > 0
    assert _marker(out, "label")["summary"]["usage"]["calls"] > 0
    # the same command again: every step complete, nothing recomputed, no LLM call
    entries = _cache_entries(cache)
    second = runner.invoke(main, args)
    assert second.exit_code == 0, second.output
    assert all(f"{s:9s} skipped" in second.output for s in ("generate", "mine", "label", "train", "evaluate"))
    assert _cache_entries(cache) == entries
    # forcing a step reruns it (and would rerun what follows): its judgements come back from the cache
    third = runner.invoke(main, [*args, "--force", "label", "--until", "label"])
    assert third.exit_code == 0, third.output
    assert "generate  skipped" in third.output and "label     ran" in third.output
    assert _marker(out, "label")["summary"]["usage"]["calls"] == 0  # every judgement came from labels/cache


def test_killed_run_resumes_without_repeating_llm_calls(tmp_path: Path) -> None:
    corpus = _medquad_slice(tmp_path / "medquad-slice")  # the same slice and passages as above
    cache = tmp_path / "llm-cache.sqlite"
    config = _config(tmp_path / "run.yaml", cache)  # the embedded default path: a local llama.cpp server
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "synthrank_cli.main", "run", "--corpus", str(corpus), "--output-dir", str(out),
           "--config", str(config), "--until", "label", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 600
    while _cache_entries(cache) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert proc.poll() is None, "the run finished before it could be killed: " + proc.stderr.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()  # type: ignore[union-attr]
    time.sleep(2)  # the local server dies with its parent (PR_SET_PDEATHSIG)
    before = _cache_entries(cache)
    assert before >= 3
    resumed = CliRunner().invoke(main, cmd[3:])
    assert resumed.exit_code == 0, resumed.output
    calls = sum(_marker(out, s)["summary"]["usage"]["calls"] for s in ("generate", "label"))
    assert calls == _cache_entries(cache) - before  # each call of the rerun was a new question
    assert (out / "groups.jsonl").exists()
