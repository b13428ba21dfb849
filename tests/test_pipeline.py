"""`synthrank run`'s config, data split, evaluation subset and report; the LLM-free parts of the pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from synthrank.data import Passage, TrainingGroup, load_dataset, read_groups, write_groups
from synthrank.errors import DataError
from synthrank.pipeline import (
    DEFAULTS,
    RunContext,
    build_steps,
    load_run_config,
    split_dev,
    subsample_queries,
    train_config_from_section,
)
from synthrank.pipeline.report import write_report
from synthrank.pipeline.stages import judge_cost, run_label, run_mine
from synthrank.runner import StepContext, StepResult, StepRunner
from synthrank_cli.main import main


def _group(qid: str, pos: str = "d1") -> TrainingGroup:
    return TrainingGroup(qid, f"query {qid}", Passage(pos, "text"), [Passage("d2", "other", rank=1, score=1.0)])


def test_config_layers_and_unknown_keys_name_the_field(tmp_path: Path) -> None:
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text(
        "corpus: data/x\ngenerate:\n  max_passages: 7\nmine:\n  elasticsearch:\n    url: http://es:9200\n"
    )
    cfg = load_run_config(cfg_file, {"generate": {"seed": 3}})
    assert cfg["corpus"] == "data/x" and cfg["generate"]["max_passages"] == 7 and cfg["generate"]["seed"] == 3
    assert cfg["mine"]["elasticsearch"]["url"] == "http://es:9200" and cfg["mine"]["top_k"] == DEFAULTS["mine"]["top_k"]
    assert DEFAULTS["generate"]["max_passages"] != 7  # defaults are not mutated
    cfg_file.write_text("generate:\n  max_pasages: 7\n")
    with pytest.raises(DataError) as err:
        load_run_config(cfg_file)
    assert "generate.max_pasages" in str(err.value) and str(cfg_file) in str(err.value)
    cfg_file.write_text("generate: [1, 2\n")
    with pytest.raises(DataError) as err:
        load_run_config(cfg_file)
    assert "line" in str(err.value)
    # free-form trainer options pass through untouched
    assert load_run_config(None, {"train": {"options": {"max_steps": 5}}})["train"]["options"] == {"max_steps": 5}


def test_run_trains_a_merged_bi_encoder_by_default_and_a_cross_encoder_when_asked(tmp_path: Path) -> None:
    """The default budget is too small for a fresh head; unset settings follow the chosen architecture."""
    default = train_config_from_section(load_run_config()["train"])
    assert (default.architecture, default.learning_rate, default.merge_with_base) == ("bi-encoder", 2e-5, 0.5)
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("train:\n  architecture: cross-encoder\n")
    ce = train_config_from_section(load_run_config(cfg_file)["train"])
    assert (ce.architecture, ce.learning_rate, ce.merge_with_base) == ("cross-encoder", 7e-5, 0.0)
    # explicit values win, and the free-form options (where older configs put these) win over the section
    cfg_file.write_text("train:\n  learning_rate: 3.0e-5\n  options:\n    merge_with_base: 0.25\n")
    tuned = train_config_from_section(load_run_config(cfg_file)["train"])
    assert (tuned.architecture, tuned.learning_rate, tuned.merge_with_base) == ("bi-encoder", 3e-5, 0.25)
    cfg_file.write_text("train:\n  options:\n    architecture: cross-encoder\n")
    assert train_config_from_section(load_run_config(cfg_file)["train"]).merge_with_base == 0.0
    cfg_file.write_text("train:\n  architecture: cross-encoder\n  merge_with_base: 0.5\n")
    with pytest.raises(DataError, match="merge_with_base needs architecture: bi-encoder"):
        train_config_from_section(load_run_config(cfg_file)["train"])


def test_train_step_fingerprint_is_the_resolved_settings(tmp_path: Path) -> None:
    """An unset value and its explicit equal are one run; a setting that changes the model is not."""

    def train_fingerprint(train: dict) -> dict:
        config = load_run_config(None, {"corpus": "x", "train": train})
        return next(s for s in build_steps(RunContext(config, tmp_path)) if s.name == "train").config

    unset = train_fingerprint({})
    assert unset == train_fingerprint({"learning_rate": 2e-5, "merge_with_base": 0.5})
    assert unset == train_fingerprint({"options": {"architecture": "bi-encoder", "save_every": 7}})  # not semantic
    assert unset != train_fingerprint({"epochs": 4}) and unset != train_fingerprint({"dev_fraction": 0.2})
    assert unset != train_fingerprint({"architecture": "cross-encoder"})


def _sourced(qid: str, source: str, pos: str | None = None) -> TrainingGroup:
    g = _group(qid, pos or source)
    g.meta["source_doc_id"] = source
    return g


def _query_split_before_passage_units(groups: list[TrainingGroup], fraction: float, seed: int) -> tuple[list, list]:
    """split_dev as it was before passages became the unit: the scorecard's older folders are trained on it."""
    import hashlib
    import random

    def bucket(qid: str) -> float:
        return int(hashlib.sha256(f"{seed}:{qid}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF

    train = [g for g in groups if bucket(g.query_id) >= fraction]
    dev = [g for g in groups if bucket(g.query_id) < fraction]
    if not dev or not train:
        qids = sorted({g.query_id for g in groups})
        if len(qids) < 2:
            return list(groups), []
        held = random.Random(seed).choice(qids)
        train = [g for g in groups if g.query_id != held]
        dev = [g for g in groups if g.query_id == held]
    return train, dev


def test_split_dev_holds_out_whole_source_passages() -> None:
    """Three queries per passage: a dev query's passage is never a training positive, as it was with query units."""
    groups = [_sourced(f"q{p}-{k}", f"d{p}") for p in range(100) for k in range(3)]
    groups += [_sourced("q0-0", "d0", pos="d77")]  # a second positive of a query: it goes where its query goes
    train, dev = split_dev(groups, 0.2, seed=42)
    assert len(train) + len(dev) == len(groups) and dev
    assert not {g.meta["source_doc_id"] for g in train} & {g.meta["source_doc_id"] for g in dev}
    assert not {g.query_id for g in train} & {g.query_id for g in dev}
    assert 0.08 < len(dev) / len(groups) < 0.35
    assert split_dev(groups, 0.2, seed=42) == (train, dev)
    by_query = split_dev(groups, 0.2, seed=42, holdout="query")[1]
    leaked = [g for g in by_query if any(t.positive.doc_id == g.positive.doc_id for t in groups if t not in by_query)]
    assert leaked, "query units leave siblings of a dev query in training (the reason for passage units)"
    tiny_train, tiny_dev = split_dev([_sourced("a", "d1"), _sourced("b", "d1"), _sourced("c", "d2")], 0.01, seed=3)
    assert tiny_dev and {g.meta["source_doc_id"] for g in tiny_dev} != {g.meta["source_doc_id"] for g in tiny_train}
    assert split_dev([_sourced("a", "d1"), _sourced("b", "d1")], 0.5, seed=1)[1] == []  # one passage: no dev
    with pytest.raises(DataError, match="dev holdout"):
        split_dev(groups, 0.1, seed=1, holdout="doc")


def test_split_dev_holds_out_whole_queries_stably() -> None:
    groups = [_group(f"q{i}", pos) for i in range(200) for pos in ("d1", "d3")]
    sourced = [_sourced(f"q{i}", f"d{i % 7}") for i in range(60)]
    for data, fraction, seed in ((groups, 0.1, 42), (sourced, 0.1, 42), (sourced, 0.2, 5), (sourced[:3], 0.01, 1)):
        assert split_dev(data, fraction, seed, holdout="query") == _query_split_before_passage_units(data, fraction, seed)
    assert split_dev(groups, 0.1, seed=42) == split_dev(groups, 0.1, seed=42, holdout="query")  # no source: queries
    train, dev = split_dev(groups, 0.1, seed=42)
    assert len(train) + len(dev) == len(groups)
    assert not {g.query_id for g in train} & {g.query_id for g in dev}
    assert 0.03 < len(dev) / len(groups) < 0.2
    assert split_dev(groups, 0.1, seed=42) == (train, dev)
    tiny_train, tiny_dev = split_dev([_group("a"), _group("b")], 0.1, seed=1)
    assert len(tiny_train) == 1 and len(tiny_dev) == 1  # a tiny run still gets a dev query
    assert split_dev([_group("a")], 0.5, seed=1) == ([_group("a")], [])
    assert split_dev(groups, 0.0, seed=1) == (groups, [])


def test_subsample_queries_is_seeded(tiny_beir: Path) -> None:
    ds = load_dataset(tiny_beir)
    sub = subsample_queries(ds, 2)
    assert len(sub.qrels) == 2 and set(sub.qrels) <= set(ds.qrels)
    assert subsample_queries(ds, 2).qrels == sub.qrels
    assert subsample_queries(ds, None) is ds


def test_mine_and_no_label_steps_resume_over_real_bm25(tiny_beir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    queries = [{"query_id": "s1", "query": "eye disease damaging the optic nerve", "source_doc_id": "d1"},
               {"query_id": "s2", "query": "blood glucose hormone", "source_doc_id": "d5"}]  # fmt: skip
    (out / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    config = load_run_config(None, {"corpus": str(tiny_beir), "mine": {"top_k": 5, "num_negatives": 3},
                                    "label": {"enabled": False}})  # fmt: skip
    run = RunContext(config, out, show_progress=False)
    assert run.dataset.queries == {} and run.dataset.qrels == {}  # the corpus' own questions never train
    steps = [s for s in build_steps(run) if s.name in ("mine", "label")]
    results = StepRunner(out).run(steps)
    assert [r.status for r in results] == ["ran", "ran"]
    groups = [json.loads(line) for line in (out / "groups.jsonl").read_text().splitlines()]
    assert [g["positive"]["doc_id"] for g in groups] == ["d1", "d5"]
    assert all(n["doc_id"] not in ("d1", "d5") or g["positive"]["doc_id"] != n["doc_id"]
               for g in groups for n in g["negatives"])  # fmt: skip
    assert run_mine is not None and run_label is not None
    again = StepRunner(out).run([s for s in build_steps(RunContext(config, out, show_progress=False))
                                 if s.name in ("mine", "label")])  # fmt: skip
    assert [r.status for r in again] == ["skipped", "skipped"]


def test_label_step_needs_candidates(tiny_beir: Path, tmp_path: Path) -> None:
    config = load_run_config(None, {"corpus": str(tiny_beir), "label": {"enabled": False}})
    with pytest.raises(Exception) as err:
        run_label(RunContext(config, tmp_path), StepContext(tmp_path, {}))
    assert "mined_groups.jsonl" in str(err.value)


def test_report_lists_steps_usage_and_evaluation(tmp_path: Path) -> None:
    (tmp_path / "evaluation.json").write_text(json.dumps({"main": {
        "dataset": "medquad", "split": "test", "top_k": 30,
        "systems": [{"name": "bm25", "metrics": {"nDCG@10": 0.6}, "seconds_per_query": 0.001},
                    {"name": "synthrank", "metrics": {"nDCG@10": 0.7}, "seconds_per_query": 0.05}],
        "significance": [{"system": "synthrank", "baseline": "bm25", "metric": "nDCG@10", "delta": 0.1,
                          "p_value": 0.001}]},
        "fusion": {"weight": 0.3, "weights": [0.7, 0.3], "metric": "nDCG@10", "dev_groups": 40},
        "first_stage_fusion": {"weight": 0.2, "best_weight": 0.6, "se": 0.03, "queries": 25, "table": {}},
        "llm_judge_subset": {
            "dataset": "medquad", "split": "test", "top_k": 10,
            "systems": [{"name": "llm judge", "metrics": {"nDCG@10": 0.62}, "seconds_per_query": 13.4}],
            "usage": {"calls": 133, "cache_hits": 367},
            "judge_cost": judge_cost({"calls": 133, "wall_seconds": 673.9}, 10)}}))  # fmt: skip
    usage = {"calls": 12, "cache_hits": 3, "prompt_tokens": 100, "completion_tokens": 50, "cost_usd": 0.0,
             "wall_seconds": 9.5}  # fmt: skip
    results = [StepResult("generate", "ran", 10.0, "f1", {"queries": 5, "usage": usage}),
               StepResult("mine", "skipped", 0.0, "f2", {"groups_total": 5})]  # fmt: skip
    config = load_run_config(None, {"corpus": "medquad"})
    report = write_report(tmp_path, config, results).read_text()
    assert "| generate | ran | 10.0 | 12 | 3 | 100 | 50 |" in report
    assert "| synthrank | 0.7000 | 0.0500 |" in report and "| synthrank | bm25 | 0.1000 | 0.0010 |" in report
    assert "weighs the zero-shot model 0.3 and the trained model 0.7" in report and "40 held-out" in report
    assert "BM25's z-scores 0.2 and the trained model's 0.8" in report and "best (0.6) on 25 kept" in report
    assert "`first_stage_weight=0.2`" in report
    assert "133 calls, 367 cache hits. Without the cache the judge costs 5.07 s per judgment, 50.7 s per query at top-10" in report
    totals = json.loads((tmp_path / "usage.json").read_text())["total"]
    assert totals["calls"] == 12 and totals["cache_hits"] == 3


def test_judge_cost_counts_only_the_calls_made() -> None:
    """Cache hits cost ~0 s: the judge's price as a reranker is its uncached throughput times the depth."""
    cost = judge_cost({"calls": 4, "cache_hits": 96, "wall_seconds": 10.0}, 30)
    assert cost == {"uncached_calls": 4, "seconds_per_judgment": 2.5, "candidates_per_query": 30,
                    "seconds_per_query_uncached": 75.0}  # fmt: skip
    assert judge_cost({"calls": 0, "cache_hits": 5, "wall_seconds": 0.1}, 30) is None


def test_cli_run_refuses_foreign_folder_and_prints_config(tmp_path: Path, tiny_beir: Path) -> None:
    runner = CliRunner()
    printed = runner.invoke(main, ["run", "--corpus", str(tiny_beir), "--output-dir", str(tmp_path / "o"),
                                   "--max-passages", "3", "--es-url", "http://h:9200", "--eval-max-queries", "7",
                                   "--architecture", "cross-encoder", "--search-task", "nurses checking doses",
                                   "--print-config"])  # fmt: skip
    assert printed.exit_code == 0, printed.output
    assert "max_passages: 3" in printed.output and "backend: elasticsearch" in printed.output
    assert "search_task: nurses checking doses" in printed.output
    assert "max_queries: 7" in printed.output and "architecture: cross-encoder" in printed.output
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "thesis.tex").write_text("x")
    refused = runner.invoke(main, ["run", "--corpus", str(tiny_beir), "--output-dir", str(tmp_path / "busy")])
    assert refused.exit_code != 0 and "holds no synthrank run" in refused.output
    missing = runner.invoke(main, ["run", "--output-dir", str(tmp_path / "new")])
    assert missing.exit_code != 0 and "corpus" in missing.output


def test_fill_negatives_tops_up_with_unjudged_mined_passages(tmp_path: Path) -> None:
    from synthrank.label import fill_negatives

    def p(doc_id: str, rank: int) -> Passage:
        return Passage(doc_id, f"text {doc_id}", rank=rank, score=10.0 - rank)

    labelled = [TrainingGroup("q1", "query", p("src", 2), [p("n1", 3)]),
                TrainingGroup("q1", "query", p("rescued", 1), [p("n1", 3)])]  # fmt: skip
    mined = [
        TrainingGroup("q1", "query", p("src", 2), [p("rescued", 1), p("n1", 3), p("n9", 9), p("n5", 5), p("n7", 7)])
    ]
    write_groups(tmp_path / "groups.jsonl", labelled)
    write_groups(tmp_path / "mined.jsonl", mined)
    added, dropped = fill_negatives(tmp_path / "groups.jsonl", tmp_path / "mined.jsonl", pool_size=3)

    groups = read_groups(tmp_path / "groups.jsonl")
    assert added == 4 and dropped == 0
    # the judge's positive ("rescued") never becomes a negative; fill in rank order up to the pool size
    assert [[n.doc_id for n in g.negatives] for g in groups] == [["n1", "n5", "n7"], ["n1", "n5", "n7"]]
    write_groups(tmp_path / "groups.jsonl", labelled)
    assert fill_negatives(tmp_path / "groups.jsonl", tmp_path / "mined.jsonl", pool_size=3, min_negatives=4) == (0, 2)
    assert read_groups(tmp_path / "groups.jsonl") == []


def test_fusion_weight_is_tuned_on_dev_groups_the_denoiser_did_not_filter(tiny_beir: Path, tmp_path: Path) -> None:
    """With a denoiser, mined dev groups hold only negatives it ranks below the positive; fusion must not see those."""
    import numpy as np

    from synthrank.pipeline.stages import _tune_fusion

    out = tmp_path / "run"
    out.mkdir()
    queries = [{"query_id": "s1", "query": "eye disease damaging the optic nerve", "source_doc_id": "d1"},
               {"query_id": "s2", "query": "blood glucose hormone", "source_doc_id": "d5"}]  # fmt: skip
    (out / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    config = load_run_config(None, {"corpus": str(tiny_beir), "mine": {"top_k": 5, "num_negatives": 3,
                                    "denoise_model": "minilm"}, "label": {"enabled": False}})  # fmt: skip
    run = RunContext(config, out, show_progress=False)
    ctx = StepContext(out, {})
    # dev groups as a denoised mine step could leave them: nothing but the positive
    write_groups(out / "dev_groups.jsonl", [
        TrainingGroup("s1", queries[0]["query"], Passage("d1", "x"), [Passage("d9", "unrelated", rank=5)]),
        TrainingGroup("s2", queries[1]["query"], Passage("d5", "y"), [Passage("d9", "unrelated", rank=5)])])  # fmt: skip

    class Seen:
        def __init__(self) -> None:
            self.docs: set[str] = set()

        def score_pairs(self, queries: list[str], documents: list[str], *, show_progress: bool = False) -> np.ndarray:
            self.docs.update(documents)
            return np.arange(len(documents), dtype=np.float32)

    trained, zero_shot = Seen(), Seen()
    tuned = _tune_fusion(run, ctx, {"synthrank": trained, "zero-shot bi-encoder": zero_shot})
    assert tuned is not None and tuned["dev_groups"] == 2 and set(tuned["table"]) >= {"0.0", "1.0"}
    corpus = run.dataset.corpus
    assert "unrelated" not in zero_shot.docs  # re-mined: real BM25 negatives, not the denoised ones
    assert corpus["d1"].full_text() in zero_shot.docs and len(zero_shot.docs) > 2
    # no zero-shot model evaluated, or no dev groups: no fusion row
    assert _tune_fusion(run, ctx, {"synthrank": trained}) is None
    (out / "dev_groups.jsonl").write_text("")
    assert _tune_fusion(run, ctx, {"synthrank": trained, "zero-shot bi-encoder": zero_shot}) is None


def test_evaluate_passes_dtype_to_every_model_and_the_judge_depth(
    tiny_beir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """evaluate.dtype reaches the trained and the zero-shot scorer; the judge subset reranks llm_judge_top_k."""
    import numpy as np

    import synthrank.evaluate as evaluate_module
    import synthrank.label as label_module
    import synthrank.llm as llm_module
    import synthrank.rerank as rerank_module
    from synthrank.pipeline.stages import run_evaluate

    built: list[tuple[str, dict]] = []

    class Fake:
        def __init__(self, model: object, **kwargs: object) -> None:
            built.append((str(model), dict(kwargs)))

        def score_pairs(self, queries: list[str], documents: list[str], *, show_progress: bool = False) -> np.ndarray:
            return np.zeros(len(documents), dtype=np.float32)

    class FakeClient:
        usage = type("U", (), {"to_dict": lambda self: {}})()

        def __init__(self, *a: object, **k: object) -> None: ...
        def __enter__(self) -> FakeClient:
            return self

        def __exit__(self, *a: object) -> None: ...

    depths: list[int] = []
    real = evaluate_module.evaluate_systems

    def spy(*args: object, top_k: int, **kwargs: object) -> object:
        depths.append(top_k)
        return real(*args, top_k=top_k, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rerank_module, "BiEncoderScorer", Fake)
    monkeypatch.setattr(rerank_module, "load_scorer", Fake)
    monkeypatch.setattr(label_module, "LLMJudge", lambda client, mode: Fake("judge"))
    monkeypatch.setattr(llm_module, "LLMClient", FakeClient)
    monkeypatch.setattr(evaluate_module, "evaluate_systems", spy)
    out = tmp_path / "run"
    out.mkdir()
    config = load_run_config(None, {"corpus": str(tiny_beir), "evaluate": {
        "dtype": "bfloat16", "top_k": 5, "llm_judge_top_k": 3, "fusion": False,
        "baselines": ["bm25", "zero-shot", "llm-judge"]}})  # fmt: skip
    summary = run_evaluate(RunContext(config, out, show_progress=False), StepContext(out, {}))
    assert [name for name, _ in built][::2] == ["minilm", "judge"] and len(built) == 3  # zero-shot, trained, judge
    assert [kw.get("dtype") for _, kw in built] == ["bfloat16", "bfloat16", None]
    assert depths == [5, 3]
    assert "BM25 top-3, with the LLM judge" in (out / "evaluation.txt").read_text()
    assert summary["queries"] == 3


def test_evaluation_dtype_auto_is_bf16_only_where_it_is_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """evaluate.dtype auto: bf16 autocast on an AMX / AVX512-BF16 CPU, fp32 on others, the scorer's choice on CUDA."""
    import torch

    import synthrank.models.cpu as cpu
    from synthrank.pipeline.stages import evaluation_dtype

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(cpu, "cpu_bf16_is_fast", lambda: True)
    assert evaluation_dtype("auto") == "bfloat16"
    assert evaluation_dtype("float32") == "float32"  # asked for: kept
    monkeypatch.setattr(cpu, "cpu_bf16_is_fast", lambda: False)
    assert evaluation_dtype("auto") == "float32"
    assert evaluation_dtype("bfloat16") == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert evaluation_dtype("auto") == "auto"


def _corpus_file(tmp_path: Path, n: int = 12) -> Path:
    path = tmp_path / "corpus.jsonl"
    rows = [{"_id": f"d{i}", "title": f"t{i}", "text": f"passage number {i} about topic {i} " * 4} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_exclude_ids_keep_passages_out_of_generation(tmp_path: Path) -> None:
    from synthrank.pipeline.stages import generation_passages

    corpus = _corpus_file(tmp_path)
    excluded = tmp_path / "exclude.txt"
    excluded.write_text("# relevant to evaluation questions\nd0\nd3  # trailing comment\n\nd7\n", encoding="utf-8")
    config = load_run_config(None, {"corpus": str(corpus), "generate": {"max_passages": None, "exclude_ids": str(excluded)}})
    picked = {d.id for d in generation_passages(RunContext(config, tmp_path / "out"))}
    assert picked == {f"d{i}" for i in range(12)} - {"d0", "d3", "d7"}
    listed = load_run_config(None, {"corpus": str(corpus), "generate": {"max_passages": 5, "exclude_ids": ["d1", "d2"]}})
    picked = {d.id for d in generation_passages(RunContext(listed, tmp_path / "out"))}
    assert len(picked) == 5 and not picked & {"d1", "d2"}


def test_exclude_ids_errors_name_the_file_line_and_field(tmp_path: Path) -> None:
    from synthrank.pipeline.stages import generation_passages

    corpus = _corpus_file(tmp_path)
    excluded = tmp_path / "exclude.txt"
    excluded.write_text("d1\nnope\n", encoding="utf-8")
    config = load_run_config(None, {"corpus": str(corpus), "generate": {"exclude_ids": str(excluded)}})
    with pytest.raises(DataError, match=r"exclude.txt:2, field 'generate.exclude_ids': names unknown document 'nope'"):
        generation_passages(RunContext(config, tmp_path / "out"))
    config["generate"]["exclude_ids"] = str(tmp_path / "missing.txt")
    with pytest.raises(DataError, match="exclude_ids file does not exist"):
        generation_passages(RunContext(config, tmp_path / "out"))


def test_exclusion_file_content_is_part_of_the_generate_fingerprint(tmp_path: Path) -> None:
    corpus = _corpus_file(tmp_path)

    def fingerprint(config: dict) -> dict:
        return next(s for s in build_steps(RunContext(config, tmp_path)) if s.name == "generate").config

    plain = load_run_config(None, {"corpus": str(corpus)})
    assert "exclude_ids" not in fingerprint(plain)["generate"]  # run folders from before the setting keep their marker
    excluded = tmp_path / "exclude.txt"
    excluded.write_text("d1\n", encoding="utf-8")
    config = load_run_config(None, {"corpus": str(corpus), "generate": {"exclude_ids": str(excluded)}})
    before = fingerprint(config)
    excluded.write_text("d1\nd2\n", encoding="utf-8")
    assert fingerprint(config) != before


def test_run_refuses_before_the_llm_steps_when_training_cannot_fit_memory(
    tiny_beir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psutil

    from synthrank.errors import SynthrankError
    from synthrank.pipeline import run_pipeline

    class Tight:  # 300 MiB available: less than the MiniLM trainer's process and model alone
        available = 300 * 1024 * 1024

    called: list[str] = []
    monkeypatch.setattr(psutil, "virtual_memory", lambda: Tight())
    monkeypatch.setattr("synthrank.pipeline.stages.run_generate", lambda run, ctx: called.append("generate"))
    config = load_run_config(None, {"corpus": str(tiny_beir), "llm": {"base_url": "http://127.0.0.1:9/v1"}})
    with pytest.raises(SynthrankError, match=r"training needs about \d+ MiB.*and 300 MiB are available"):
        run_pipeline(config, tmp_path / "run", show_progress=False)
    assert called == [] and not (tmp_path / "run").exists()  # no LLM step ran, no folder left behind
    # a run that stops before training (--until label) is not refused for training's memory
    with pytest.raises(Exception) as other:
        run_pipeline(config, tmp_path / "run", until="mine", show_progress=False)
    assert "training needs" not in str(other.value)


def test_evaluate_section_is_validated_when_the_config_loads(tmp_path: Path) -> None:
    from synthrank.config_fields import field_defaults
    from synthrank.evaluate.config import EvaluateConfig

    assert load_run_config()["evaluate"] == field_defaults(EvaluateConfig)  # one home for the defaults
    for bad, where in (({"baselines": ["bm26"]}, "evaluate.baselines"), ({"top_k": 0}, "evaluate.top_k"),
                       ({"dtype": "int4"}, "evaluate.dtype"), ({"max_queries": -1}, "evaluate.max_queries")):  # fmt: skip
        with pytest.raises(DataError) as err:
            load_run_config(None, {"evaluate": bad})
        assert err.value.field == where, bad
    assert load_run_config(None, {"evaluate": {"baselines": ["bm25", "llm-judge"], "dtype": "bf16"}})


def test_a_search_task_restarts_generation_and_its_absence_keeps_older_folders(tmp_path: Path) -> None:
    """Unset, the generate fingerprint is the one folders made before the setting had (they resume); set or
    changed, the queries are written again for the new searchers."""
    def generate_fingerprint(overrides: dict[str, Any]) -> Any:
        config = load_run_config(None, {"corpus": "corpus-x", **overrides})
        return next(s.config for s in build_steps(RunContext(config, tmp_path)) if s.name == "generate")

    plain = generate_fingerprint({})
    assert "search_task" not in plain["generate"]
    told = generate_fingerprint({"generate": {"search_task": "nurses checking doses"}})
    assert told != plain and told["generate"]["search_task"] == "nurses checking doses"
    assert generate_fingerprint({"generate": {"search_task": "parents asking about fevers"}}) != told
