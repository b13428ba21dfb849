"""`synthrank mine`: artifacts, resume, settings checks, config files and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from synthrank.data import read_groups, read_jsonl

main = pytest.importorskip("synthrank_cli.main").main

QUERIES = [
    {"query_id": "s1", "query": "optic nerve eye disease", "source_doc_id": "d1", "query_type": "keyword"},
    {"query_id": "s2", "query": "blood glucose disease insulin", "source_doc_id": "d2", "query_type": "natural"},
    {"query_id": "s3", "query": "eye lens clouding vision", "source_doc_id": "d4", "query_type": "keyword"},
]


@pytest.fixture
def queries_file(tmp_path: Path) -> Path:
    path = tmp_path / "queries.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in QUERIES), encoding="utf-8")
    return path


def run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["mine", *map(str, args), "--no-progress"])
    return result.exit_code, result.output


def test_mine_writes_candidates_groups_config_and_stats(tiny_beir: Path, queries_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, output = run("--corpus", tiny_beir, "--queries", queries_file, "--output-dir", out, "--num-negatives", "2")
    assert code == 0, output
    assert "mined 3 queries" in output
    candidates = read_jsonl(out / "candidates.jsonl")
    assert [c["query_id"] for c in candidates] == ["s1", "s2", "s3"]
    assert candidates[1]["source_doc_id"] == "d2" and candidates[1]["candidates"][0]["rank"] == 1
    groups = read_groups(out / "groups.jsonl")
    assert [g.positive.doc_id for g in groups] == ["d1", "d2", "d4"]
    assert all(0 < len(g.negatives) <= 2 and g.positive.doc_id not in {n.doc_id for n in g.negatives} for g in groups)
    assert groups[1].meta == {"source_doc_id": "d2", "query_type": "natural"}
    config = json.loads((out / "mine_config.json").read_text())
    assert config["backend"] == "memory" and config["mining"]["num_negatives"] == 2
    stats = json.loads((out / "mine_stats.json").read_text())
    assert stats["groups_total"] == 3 and stats["queries_mined"] == 3


def test_rerun_needs_overwrite_and_then_resumes(tiny_beir: Path, queries_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ("--corpus", tiny_beir, "--queries", queries_file, "--output-dir", out, "--num-negatives", "2")
    assert run(*args)[0] == 0
    groups_before = (out / "groups.jsonl").read_text()
    code, output = run(*args)
    assert code == 2 and "not empty" in output
    code, output = run(*args, "--overwrite")
    assert code == 0, output
    assert "mined 0 queries (3 resumed)" in output
    assert (out / "groups.jsonl").read_text() == groups_before


def test_resume_refuses_other_settings_unless_restarted(tiny_beir: Path, queries_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ("--corpus", tiny_beir, "--queries", queries_file, "--output-dir", out)
    assert run(*args, "--num-negatives", "2")[0] == 0
    code, output = run(*args, "--num-negatives", "1", "--overwrite")
    assert code == 2 and "other settings (mining)" in output
    code, output = run(*args, "--num-negatives", "1", "--restart")
    assert code == 0, output
    assert all(len(g.negatives) == 1 for g in read_groups(out / "groups.jsonl"))
    # Batching does not change results, so it does not block a resume.
    assert run(*args, "--num-negatives", "1", "--batch-size", "2", "--overwrite")[0] == 0


def test_config_file_values_apply_and_flags_win(tiny_beir: Path, queries_file: Path, tmp_path: Path) -> None:
    config = tmp_path / "mine.yaml"
    config.write_text("num-negatives: 1\nrange-min: 1\nsampling: random\n", encoding="utf-8")
    out = tmp_path / "out"
    code, output = run(
        "--corpus", tiny_beir, "--queries", queries_file, "--output-dir", out, "--config", config, "--range-min", "0"
    )
    assert code == 0, output
    mining = json.loads((out / "mine_config.json").read_text())["mining"]
    assert (mining["num_negatives"], mining["range_min"], mining["sampling"]) == (1, 0, "random")


def test_known_positives_are_never_negatives(tiny_beir: Path, queries_file: Path, tmp_path: Path) -> None:
    positives = tmp_path / "labels.jsonl"
    positives.write_text(json.dumps({"query_id": "s2", "doc_id": "d5", "grade": 3}) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    code, output = run(
        "--corpus",
        tiny_beir,
        "--queries",
        queries_file,
        "--output-dir",
        out,
        "--positives",
        positives,
        "--positive-grade",
        "2",
        "--num-negatives",
        "2",
    )
    assert code == 0, output
    s2 = [g for g in read_groups(out / "groups.jsonl") if g.query_id == "s2"]
    assert [g.positive.doc_id for g in s2] == ["d2", "d5"]
    assert all("d5" not in {n.doc_id for n in g.negatives} for g in s2)


def test_saved_index_is_loaded(tiny_beir: Path, queries_file: Path, tmp_path: Path) -> None:
    from synthrank.data import read_corpus
    from synthrank.retrieve import InMemoryBM25

    bm25 = InMemoryBM25()
    bm25.index(read_corpus(tiny_beir).values())
    bm25.save(tmp_path / "index")
    code, output = run(
        "--corpus",
        tiny_beir,
        "--queries",
        queries_file,
        "--output-dir",
        tmp_path / "out",
        "--index-dir",
        tmp_path / "index",
        "--num-negatives",
        "2",
    )
    assert code == 0, output
    assert len(read_groups(tmp_path / "out" / "groups.jsonl")) == 3


def test_bad_query_line_is_named(tiny_beir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps(QUERIES[0]) + "\n" + json.dumps({"query_id": "s9", "query": "x", "source_doc_id": "d99"}) + "\n",
        encoding="utf-8",
    )
    code, output = run("--corpus", tiny_beir, "--queries", bad, "--output-dir", tmp_path / "out")
    assert code == 1
    assert f"{bad}:2" in output and "source_doc_id" in output and "d99" in output


def test_a_bad_corpus_or_queries_file_leaves_no_output_folder_behind(
    tiny_beir: Path, queries_file: Path, tmp_path: Path
) -> None:
    """Caught: ``prepare_output_dir`` making the folder before the inputs are read (an empty folder stayed)."""
    bad = tmp_path / "corpus.jsonl"
    bad.write_text('{"_id": "d1", "text": "eye lens"}\n{"_id": "d2"}\n', encoding="utf-8")
    code, output = run("--corpus", bad, "--queries", queries_file, "--output-dir", tmp_path / "out")
    assert code == 1 and f"{bad}:2" in output and "text" in output
    assert not (tmp_path / "out").exists()
    code, output = run("--corpus", tiny_beir, "--queries", tmp_path / "none.jsonl", "--output-dir", tmp_path / "out")
    assert code != 0 and "none.jsonl" in output and not (tmp_path / "out").exists()


def test_inconsistent_options_are_a_usage_error(tiny_beir: Path, queries_file: Path, tmp_path: Path) -> None:
    code, output = run(
        "--corpus",
        tiny_beir,
        "--queries",
        queries_file,
        "--output-dir",
        tmp_path / "out",
        "--range-min",
        "5",
        "--range-max",
        "3",
    )
    assert code == 2 and "range_max" in output


def test_denoise_model_is_a_real_second_opinion(tiny_beir: Path, queries_file: Path, tmp_path: Path) -> None:
    """With MiniLM as the denoiser, every kept negative scores below its query's positive under MiniLM."""
    import numpy as np

    from synthrank.data import load_dataset
    from synthrank.rerank import BiEncoderScorer

    out = tmp_path / "out"
    code, output = run("--corpus", tiny_beir, "--queries", queries_file, "--output-dir", out, "--num-negatives", "3",
                       "--top-k", "6", "--denoise-model", "minilm", "--denoise-margin", "0.05")  # fmt: skip
    assert code == 0, output
    assert json.loads((out / "mine_config.json").read_text())["denoise_model"] == "minilm"
    stats = json.loads((out / "mine_stats.json").read_text())
    corpus = load_dataset(tiny_beir).corpus
    scorer = BiEncoderScorer("minilm")
    for group in read_groups(out / "groups.jsonl"):
        texts = [corpus[group.positive.doc_id].full_text(), *(corpus[n.doc_id].full_text() for n in group.negatives)]
        scores = scorer.score_pairs([group.query] * len(texts), texts)
        assert np.all(scores[1:] <= scores[0] - 0.05 + 1e-5), group.query_id
    assert stats["skipped"]["denoised"] >= 1  # the veto did fire on this corpus
