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


def test_a_first_stage_fusion_row_is_the_rerankers_run_fused_with_bm25s(tiny_beir: Path) -> None:
    from synthrank.rerank.first_stage import fuse_with_first_stage

    ds = load_dataset(tiny_beir)
    bm25 = InMemoryBM25()
    bm25.index(ds.corpus.values())
    fusions = {"longest + BM25": ("longest", 0.4), "all BM25": ("longest", 1.0)}
    report = evaluate_systems(ds, bm25, {"longest": ReverseScorer()}, top_k=3, first_stage_fusions=fusions)
    by_name = {s.name: s for s in report.systems}
    assert list(by_name) == ["bm25", "longest", "longest + BM25", "all BM25"]
    assert by_name["longest + BM25"].run == fuse_with_first_stage(by_name["bm25"].run, by_name["longest"].run, 0.4)
    assert by_name["all BM25"].evaluation.per_query == by_name["bm25"].evaluation.per_query  # BM25's order back
    assert by_name["longest + BM25"].seconds == by_name["longest"].seconds
    assert {(t["system"], t["baseline"]) for t in report.significance} >= {("longest + BM25", "bm25")}
    with pytest.raises(ValueError, match="no reranker 'nope'"):
        evaluate_systems(ds, bm25, {"longest": ReverseScorer()}, top_k=3, first_stage_fusions={"x": ("nope", 0.5)})


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


# --------------------------------------------------------------------------- issue #20: no result lost silently


class FixedScorer:
    """Scores each document by a fixed table (unknown documents 0): two rerankers that differ on purpose."""

    def __init__(self, prefer: str) -> None:
        self.prefer = prefer

    def score_pairs(self, queries, documents, *, show_progress=False):
        return np.array([1.0 if self.prefer in d else 0.0 for d in documents], dtype=np.float32)


def test_two_models_both_named_model_keep_their_own_rows(tiny_beir: Path, tmp_path: Path, monkeypatch) -> None:
    import synthrank.rerank.factory as factory

    monkeypatch.setattr(factory, "load_scorer", lambda model, **kw: FixedScorer("optic" if "/a/" in model else "lungs"))
    runs = tmp_path / "runs"
    out = tmp_path / "report.json"
    result = CliRunner().invoke(main, [
        "evaluate", "--data", str(tiny_beir), "--no-progress", "--output", str(out), "--run-dir", str(runs),
        "--reranker", "runs/a/train/model", "--reranker", "runs/b/train/model",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    names = [s["name"] for s in report["systems"]]
    assert names == ["bm25", "a/train/model", "b/train/model"]
    assert set(report["per_query"]) == set(names)
    assert sorted(p.name for p in runs.iterdir()) == ["a_train_model.trec", "b_train_model.trec", "bm25.trec"]
    assert "a/train/model" in result.output and "b/train/model" in result.output


def test_rerankers_can_be_named_and_compared_pairwise(tiny_beir: Path, tmp_path: Path, monkeypatch) -> None:
    import synthrank.rerank.factory as factory

    monkeypatch.setattr(factory, "load_scorer", lambda model, **kw: FixedScorer("optic" if model == "m1" else "lungs"))
    out = tmp_path / "report.json"
    args = ["evaluate", "--data", str(tiny_beir), "--no-progress", "--output", str(out),
            "--reranker", "ours=m1", "--reranker", "theirs=m2", "--baseline", "theirs"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert [s["name"] for s in report["systems"]] == ["bm25", "ours", "theirs"]
    pairs = {(t["system"], t["baseline"]) for t in report["significance"]}
    assert pairs == {("ours", "bm25"), ("theirs", "bm25"), ("ours", "theirs")}
    assert "ours vs theirs" in result.output
    unknown = CliRunner().invoke(main, [*args[:-1], "nobody"])
    assert unknown.exit_code == 2 and "'nobody' names no system" in unknown.output
    twice = CliRunner().invoke(main, ["evaluate", "--data", str(tiny_beir), "--reranker", "x=m1", "--reranker", "x=m2"])
    assert twice.exit_code == 2 and "--reranker" in twice.output and "'x'" in twice.output


def test_name_systems_tells_paths_apart() -> None:
    from synthrank_cli.evaluate import name_systems

    assert name_systems(["runs/a/train/model", "runs/b/train/model"]) == {
        "a/train/model": "runs/a/train/model",
        "b/train/model": "runs/b/train/model",
    }
    assert name_systems(["minilm", "runs/x/model"]) == {"minilm": "minilm", "model": "runs/x/model"}
    assert name_systems(["m", "m"]) == {"m": "m", "m-2": "m"}
    assert name_systems(["bm25"]) == {"bm25-2": "bm25"}  # the first stage keeps its name
    assert name_systems(["model=runs/a/model", "runs/b/model"]) == {"model": "runs/a/model", "b/model": "runs/b/model"}


def test_cli_default_depth_is_the_runs_and_recall_is_at_that_depth(tiny_beir: Path, tmp_path: Path) -> None:
    from synthrank.pipeline.config import DEFAULTS
    from synthrank_cli.evaluate import DEFAULT_TOP_K

    assert DEFAULTS["evaluate"]["top_k"] == DEFAULT_TOP_K  # `synthrank evaluate` and `synthrank run`: one number
    out = tmp_path / "report.json"
    result = CliRunner().invoke(main, ["evaluate", "--data", str(tiny_beir), "--no-progress", "--output", str(out),
                                       "--top-k", "3"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["top_k"] == 3
    assert set(report["systems"][0]["metrics"]) == {"nDCG@10", "MRR@10", "Recall@3"}
    assert "Recall@100" not in result.output
    deeper = CliRunner().invoke(main, ["evaluate", "--data", str(tiny_beir), "--no-progress", "--top-k", "3",
                                       "--metric", "Recall@100"])  # fmt: skip
    assert deeper.exit_code == 0 and "note: Recall@100 is cut off deeper than the 3 documents" in deeper.output


def test_a_bad_metric_is_a_usage_error_not_a_traceback(tiny_beir: Path) -> None:
    result = CliRunner().invoke(main, ["evaluate", "--data", str(tiny_beir), "--metric", "nDCG@x"])
    assert result.exit_code == 2, result.output
    assert "--metric" in result.output and "unknown metric 'nDCG@x'" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_one_judged_query_reports_metrics_and_skips_the_tests(tiny_beir: Path) -> None:
    ds = load_dataset(tiny_beir)
    ds.qrels = {"q1": ds.qrels["q1"]}
    bm25 = InMemoryBM25()
    bm25.index(ds.corpus.values())
    report = evaluate_systems(ds, bm25, {"longest": ReverseScorer()}, top_k=3)
    assert report.systems[1].evaluation.num_queries == 1
    assert report.significance == []
    assert any("paired t-tests skipped" in note for note in report.notes)
    assert report.to_json()["notes"] == report.notes


def test_one_judged_query_through_the_cli(tiny_beir: Path, tmp_path: Path, monkeypatch) -> None:
    import synthrank.rerank.factory as factory

    monkeypatch.setattr(factory, "load_scorer", lambda model, **kw: ReverseScorer())
    result = CliRunner().invoke(main, ["evaluate", "--data", str(tiny_beir), "--no-progress", "--max-queries", "1",
                                       "--reranker", "longest=x"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "longest" in result.output and "note: paired t-tests skipped" in result.output


def test_the_table_carries_the_notes_so_a_runs_evaluation_txt_shows_them(tiny_beir: Path) -> None:
    from synthrank.evaluate import format_table

    ds = load_dataset(tiny_beir)
    bm25 = InMemoryBM25()
    bm25.index(ds.corpus.values())
    report = evaluate_systems(ds, bm25, {"longest": ReverseScorer()}, top_k=2)  # the default metrics hold Recall@100
    assert "note: Recall@100 is cut off deeper than the 2 documents retrieved per query: it equals Recall@2" in (
        format_table(report)
    )
