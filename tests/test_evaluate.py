from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from synthrank.data import load_dataset
from synthrank.evaluate import evaluate_run, evaluate_systems, paired_t_test
from synthrank.evaluate.runs import read_trec_run, write_trec_run
from synthrank.retrieve import InMemoryBM25
from synthrank_cli.main import main


def test_metrics_match_hand_computation() -> None:
    qrels = {"q1": {"a": 1, "b": 1}, "q2": {"c": 2}, "q3": {"x": 0}}
    run = {"q1": {"z": 3.0, "a": 2.0, "b": 1.0}, "q2": {}}
    ev = evaluate_run(run, qrels)
    assert ev.num_queries == 2  # q3 has no relevant document
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3)
    assert ev.per_query["nDCG@10"]["q1"] == pytest.approx(dcg / idcg)
    assert ev.per_query["MRR@10"]["q1"] == pytest.approx(0.5)
    assert ev.per_query["nDCG@10"]["q2"] == 0.0  # empty result counts as 0, not dropped
    assert ev.aggregate["nDCG@10"] == pytest.approx(dcg / idcg / 2)
    assert ev.aggregate["Recall@100"] == pytest.approx(0.5)


def test_unknown_metric() -> None:
    with pytest.raises(ValueError, match="unknown metric 'Foo@3'"):
        evaluate_run({}, {"q": {"d": 1}}, metrics=("Foo@3",))


def test_paired_t_test() -> None:
    qrels = {f"q{i}": {"good": 1} for i in range(6)}
    better = {q: {"good": 2.0, "bad": 1.0} for q in qrels}
    worse = {q: ({"bad": 2.0, "good": 1.0} if i % 3 else {"good": 2.0}) for i, q in enumerate(qrels)}
    test = paired_t_test(evaluate_run(better, qrels), evaluate_run(worse, qrels), "MRR@10")
    assert test.delta > 0 and test.p_value < 0.05 and test.significant and test.num_queries == 6
    same = paired_t_test(evaluate_run(better, qrels), evaluate_run(better, qrels), "MRR@10")
    assert same.p_value == 1.0


class ReverseScorer:
    """Ranks the longest documents first: a real (bad) reranker to check the plumbing."""

    def score_pairs(self, queries, documents, *, show_progress=False):
        return np.array([len(d) for d in documents], dtype=np.float32)


def test_evaluate_systems_reranks_top_k(tiny_beir: Path) -> None:
    ds = load_dataset(tiny_beir)
    bm25 = InMemoryBM25()
    bm25.index(ds.corpus.values())
    report = evaluate_systems(ds, bm25, {"longest": ReverseScorer()}, top_k=2)
    names = [s.name for s in report.systems]
    assert names == ["bm25", "longest"]
    reranked = report.systems[1].run
    assert all(len(docs) <= 2 for docs in reranked.values())
    assert {s["metric"] for s in report.significance} == {"nDCG@10", "MRR@10", "Recall@100"}
    payload = report.to_json()
    assert set(payload["per_query"]["bm25"]["nDCG@10"]) == {"q1", "q2", "q3"}


def test_trec_run_round_trip(tmp_path: Path) -> None:
    run = {"q1": {"a": 1.5, "b": 2.5}}
    write_trec_run(tmp_path / "r.trec", run)
    assert read_trec_run(tmp_path / "r.trec") == run
    assert (tmp_path / "r.trec").read_text().splitlines()[0] == "q1 Q0 b 1 2.500000 synthrank"


def test_cli_evaluate_prints_table_and_writes_json(tiny_beir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        main, ["evaluate", "--data", str(tiny_beir), "--no-progress", "--output", str(out), "--run-dir", str(tmp_path / "runs")]
    )
    assert result.exit_code == 0, result.output
    assert "nDCG@10" in result.output and "bm25" in result.output
    report = json.loads(out.read_text())
    assert report["systems"][0]["name"] == "bm25"
    assert report["systems"][0]["metrics"]["nDCG@10"] > 0.9
    assert (tmp_path / "runs" / "bm25.trec").exists()


def test_cli_reports_bad_data_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl").write_text('{"_id": "a", "text": "x"}\n{"oops"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["evaluate", "--data", str(tmp_path)])
    assert result.exit_code == 1
    assert "Error: " in result.output and "corpus.jsonl:2: malformed JSON" in result.output
    assert "Traceback" not in result.output


def test_cli_help_and_version() -> None:
    runner = CliRunner()
    assert "evaluate" in runner.invoke(main, ["--help"]).output
    assert "0.1.0" in runner.invoke(main, ["--version"]).output


def test_cli_index_saves_a_loadable_index_and_refuses_overwrite(tiny_beir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "idx"
    result = runner.invoke(main, ["index", "--corpus", str(tiny_beir), "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert InMemoryBM25.load(out).retrieve(["optic nerve"], k=1)[0][0].doc_id == "d1"
    again = runner.invoke(main, ["index", "--corpus", str(tiny_beir), "--output-dir", str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.output
