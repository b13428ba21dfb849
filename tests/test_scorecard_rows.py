"""benchmarks/scorecard.py's choices that cost hours when wrong: which LLM runs a set of rows needs, and which
dev split an older run folder was trained on."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from synthrank.data import Passage, TrainingGroup, split_dev, write_groups
from tests.benchmark_modules import load_benchmark


@pytest.fixture(scope="module")
def scorecard() -> ModuleType:
    return load_benchmark("scorecard")


def test_only_rows_on_the_judged_data_need_its_llm_runs(scorecard: ModuleType) -> None:
    quick = {"scorecard": {"passages": {"default": 20, "large": 80}}, "label": {"enabled": False}}
    variants = {"quick": quick, "longer": {"train": {"epochs": 6}}, "nolabel": {"scorecard": {"equal_calls": True}}}
    assert not scorecard.needs_base_data(["synthrank@quick"], variants)
    assert not scorecard.needs_base_data(["synthrank@quick+bm25se"], variants)
    for rows in (["synthrank"], ["synthrank@quick", "gpl"], ["synthrank@longer"], ["synthrank@nolabel"], ["st"]):
        assert scorecard.needs_base_data(rows, variants), rows


def test_a_folder_from_before_passage_units_keeps_its_query_split(scorecard: ModuleType, tmp_path: Path) -> None:
    groups = []
    for p in range(30):
        for k in range(3):
            g = TrainingGroup(f"q{p}-{k}", f"query {p} {k}", Passage(f"d{p}", "text"), [Passage("x", "other")])
            g.meta["source_doc_id"] = f"d{p}"
            groups.append(g)
    write_groups(tmp_path / "groups.jsonl", groups)
    section = {"dev_fraction": 0.2, "seed": 42}
    (tmp_path / "run_config.json").write_text(json.dumps({"train": section}))
    _, old_dev, _ = scorecard.training_split(tmp_path)
    (tmp_path / "run_config.json").write_text(json.dumps({"train": {**section, "dev_holdout": "passage"}}))
    _, new_dev, _ = scorecard.training_split(tmp_path)
    assert old_dev == split_dev(groups, 0.2, 42, holdout="query")[1]
    for dev, whole in ((old_dev, False), (new_dev, True)):
        held = {g.meta["source_doc_id"] for g in dev}
        assert dev and (len(dev) == 3 * len(held)) is whole  # passage units hold out all three queries of a passage
    # a lever's YAML that names the unit moves an old folder to it; cells say which split trained them
    (tmp_path / "run_config.json").write_text(json.dumps({"train": section}))
    _, lever_dev, lever_section = scorecard.training_split(tmp_path, {"dev_holdout": "passage"})
    assert lever_dev == new_dev and lever_section["dev_holdout"] == "passage"
    assert scorecard.training_split(tmp_path)[2]["dev_holdout"] == "query"
    assert scorecard.trained_holdout({}, tmp_path) == "query"  # a cell from before the field: the folder's split
    assert scorecard.trained_holdout({"dev_holdout": "passage"}, tmp_path) == "passage"


def test_a_cell_trained_on_another_dev_split_is_trained_again(scorecard: ModuleType, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    folder = tmp_path / "vaswani-default@quick"
    (folder / ".steps").mkdir(parents=True)
    (folder / ".steps" / "label.json").write_text("{}")
    groups = [TrainingGroup(f"q{i}", "query", Passage(f"d{i // 3}", "text"), [Passage("x", "other")],
                            meta={"source_doc_id": f"d{i // 3}"}) for i in range(30)]  # fmt: skip
    write_groups(folder / "groups.jsonl", groups)
    (folder / "run_config.json").write_text(json.dumps({"train": {"dev_fraction": 0.2, "seed": 42}}))
    card = scorecard.Scorecard(tmp_path / "card.json", {})
    ok = {"metrics": {"nDCG@10": 0.5}, "per_query": {"1": 0.5}}
    for key in ("vaswani/-/bm25", "vaswani/-/zero-shot"):
        card.put(key, ok)
    card.put("vaswani/default/bm25-weight@quick", {"weight": 0.3, "weight_1se": 0.2, "weight_bagged": 0.25})
    card.put("vaswani/default/synthrank@quick/seed1", {**ok, "groups": 1})  # before the field: the folder's split
    card.put("vaswani/default/synthrank@quick/seed2", {**ok, "groups": 2, "dev_holdout": "passage"})
    trained: list[tuple[int, str]] = []

    def fake_train(row: str, folder: Path, train: list, dev: list, qids: set, section: dict, seed: int,
                   out: Path, corpus: dict) -> tuple[Path, dict]:  # fmt: skip
        trained.append((seed, section["dev_holdout"]))
        return out, {"groups": len(train)}

    class FakeEvaluator:
        dataset = type("D", (), {"corpus": {}})()

        def scorer(self, model_dir: Path) -> None:
            return None

        def run_with_ranking(self, name: str, scorer: object) -> tuple[dict, dict]:
            return {"metrics": {"nDCG@10": 0.6}, "per_query": {"1": 0.6}}, {"1": {"d0": 1.0}}

        def fused_with_bm25(self, ranking: dict, weight: float) -> dict:
            return {"metrics": {"nDCG@10": 0.7}, "per_query": {"1": 0.7}, "bm25_weight": weight}

    monkeypatch.setattr(scorecard, "train_row", fake_train)
    quick = {"scorecard": {"passages": {"default": 20}}, "label": {"enabled": False},
             "train": {"dev_holdout": "passage"}}  # fmt: skip
    corpus = scorecard.Corpus("vaswani", "vaswani", "test")
    scorecard.run_rows(corpus, "default", tmp_path, card, "synthrank@quick", [1, 2], lambda c: FakeEvaluator(),
                       {"quick": quick})  # fmt: skip
    assert trained == [(1, "passage")]  # seed 2 already held out by passage
    cells = json.loads((tmp_path / "card.json").read_text())["cells"]
    assert cells["vaswani/default/synthrank@quick/seed1"]["dev_holdout"] == "passage"
    assert cells["vaswani/default/synthrank@quick/seed1"]["metrics"]["nDCG@10"] == 0.6
    assert cells["vaswani/default/synthrank@quick+bm25se/seed1"]["bm25_weight"] == 0.2
    assert cells["vaswani/default/synthrank@quick+bm25bag/seed1"]["bm25_weight"] == 0.25
    scorecard.run_rows(corpus, "default", tmp_path, card, "synthrank@quick", [1, 2], lambda c: FakeEvaluator(),
                       {"quick": quick})  # fmt: skip
    assert trained == [(1, "passage")]  # a rerun trains nothing


def test_a_lever_can_train_on_another_levers_data(scorecard: ModuleType, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """quick-2ep = the quick recipe's data, trained for 2 epochs: no LLM run of its own, quick's folder and weight."""
    quick = {"scorecard": {"passages": {"default": 20}}, "label": {"enabled": False}}
    two = {"scorecard": {"data": "quick"}, "train": {"epochs": 2}}
    variants = {"quick": quick, "quick-2ep": two}
    assert scorecard.data_variant("quick-2ep", variants) == "quick" == scorecard.data_variant("quick", variants)
    assert scorecard.data_variant("longer", {"longer": {"train": {"epochs": 6}}}) is None
    assert not scorecard.needs_base_data(["synthrank@quick-2ep"], variants)
    for bad, message in (({"quick-2ep": two}, "give quick=its.yaml"),
                         ({"quick": quick, "quick-2ep": {**two, "generate": {"n_per_type": 1}}}, "may only set train")):
        paths = []
        for name, overlay in bad.items():
            path = tmp_path / f"{name}.yaml"
            path.write_text(json.dumps(overlay))  # JSON is YAML
            paths.append(f"{name}={path}")
        with pytest.raises(SystemExit):
            scorecard.main(["--phase", "report", "--variants", ",".join(paths), "--output", str(tmp_path / "c.json")])
        assert message in capsys.readouterr().err


def test_a_levers_per_corpus_settings_reach_only_that_corpus(scorecard: ModuleType) -> None:
    base = {"generate": {"max_passages": 20, "n_per_type": 3}, "label": {"enabled": False}}
    lever = {"scorecard": {"passages": {"default": 20}, "per_corpus": {
        "beir-scifact": {"generate": {"search_task": "scientists checking claims"}}}}}  # fmt: skip
    merged = scorecard.deep_merge(base, lever)
    scifact = scorecard.lever_config(merged, "beir-scifact")
    assert scifact == {"generate": {"max_passages": 20, "n_per_type": 3, "search_task": "scientists checking claims"},
                       "label": {"enabled": False}}  # fmt: skip
    assert scorecard.lever_config(merged, "vaswani") == base  # another corpus: the lever's shared settings only


def test_a_lever_is_tested_against_the_default_recipe_fusion_for_fusion(scorecard: ModuleType, tmp_path: Path) -> None:
    card = scorecard.Scorecard(tmp_path / "card.json", {"variants": {"quick": {}, "task": {}}})
    queries = [f"q{i}" for i in range(8)]

    def put(row: str, values: list[float], seed: int | None = 42) -> None:
        per_query = dict(zip(queries, values, strict=True))
        key = scorecard.cell_key("vaswani", None if seed is None else "default", row, seed)
        card.data["cells"][key] = {"metrics": {"nDCG@10": sum(values) / len(values)}, "per_query": per_query}

    put("zero-shot", [0.5, 0.4, 0.45, 0.5, 0.4, 0.5, 0.55, 0.5], seed=None)
    put("synthrank@quick", [0.5, 0.6] * 4)
    put("synthrank@quick+bm25se", [0.6, 0.7] * 4)
    put("synthrank@task", [0.6, 0.6] * 4)  # +0.05 over quick's model
    put("synthrank@task+bm25se", [0.6, 0.7, 0.6, 0.7, 0.6, 0.7, 0.6, 0.6])  # -0.0125 against quick as served
    summary = scorecard.summarize(card, ["vaswani"], ["default"], ["synthrank@quick", "synthrank@task"], [42])
    rows = summary["default"]["corpora"]["vaswani"]["rows"]
    assert rows["synthrank@task"]["vs_default_recipe"]["delta"] == pytest.approx(0.05)
    assert rows["synthrank@task+bm25se"]["vs_default_recipe"]["delta"] == pytest.approx(-0.0125)
    assert "vs_default_recipe" not in rows["synthrank@quick"]  # the default recipe itself


def test_a_lever_on_another_levers_data_trains_on_that_levers_split(scorecard: ModuleType, tmp_path: Path) -> None:
    """Seen on the scorecard: quick's folder predated dev_holdout, so its 2-epoch lever fell back to the query split
    while quick's own row held out by passage, and the two rows were not comparable."""
    variants = {"quick": {"train": {"max_length": 128, "dev_holdout": "passage"}},
                "quick-2ep": {"scorecard": {"data": "quick"}, "train": {"epochs": 2}},
                "longer": {"train": {"epochs": 10}}}  # fmt: skip
    assert scorecard.lever_train_overlay("quick-2ep", variants) == {"max_length": 128, "dev_holdout": "passage",
                                                                   "epochs": 2}  # fmt: skip
    assert scorecard.lever_train_overlay("quick", variants) == variants["quick"]["train"]
    assert scorecard.lever_train_overlay("longer", variants) == {"epochs": 10}
    assert scorecard.lever_train_overlay(None, variants) is None
    folder = tmp_path / "quick-data"
    folder.mkdir()
    (folder / "run_config.json").write_text(json.dumps({"train": {"dev_fraction": 0.2, "seed": 0, "epochs": 3}}))
    groups = [TrainingGroup(f"q{i}", "query", Passage(f"d{i // 3}", "text"), [Passage("x", "other")],
                            meta={"source_doc_id": f"d{i // 3}"}) for i in range(60)]  # fmt: skip
    write_groups(folder / "groups.jsonl", groups)
    _, dev, section = scorecard.training_split(folder, scorecard.lever_train_overlay("quick-2ep", variants))
    assert section["dev_holdout"] == "passage" and section["epochs"] == 2 and section["max_length"] == 128
    held = {g.meta["source_doc_id"] for g in dev}
    assert dev and len(dev) == 3 * len(held)  # whole passages held out, as quick's own row does
