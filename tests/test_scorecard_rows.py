"""benchmarks/scorecard.py's choices that cost hours when wrong: which LLM runs a set of rows needs, and which
dev split an older run folder was trained on."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from synthrank.data import Passage, TrainingGroup, split_dev, write_groups


@pytest.fixture(scope="module")
def scorecard() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "scorecard.py"
    spec = importlib.util.spec_from_file_location("scorecard_under_test", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


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
