"""The scorecard benchmark end to end at toy size, so the script cannot rot between full runs.

A Vaswani slice (its first judged queries' relevant abstracts plus distractors) stands in for the shared
folder; SmolLM2-135M writes and judges (plumbing, not quality); every row of the scorecard trains with two
seeds and is evaluated; the JSON, markdown and plot come out; a rerun trains nothing again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from integration.conftest import REPO_ROOT
from integration.llm_fixtures import llama_server  # noqa: F401  (fixture)
from integration.slices import beir_slice
from synthrank.llm.local import LocalLlamaServer

pytestmark = [pytest.mark.llm_server, pytest.mark.slow]


def _vaswani_slice(root: Path, n_queries: int = 8, n_other: int = 120) -> Path:
    """A shared-data folder holding a Vaswani slice: its first judged queries, their abstracts, distractors."""
    beir_slice("vaswani", "test", root / "vaswani", n_queries=n_queries, n_other=n_other)
    return root


def test_scorecard_smoke(tmp_path: Path, llama_server: LocalLlamaServer) -> None:  # noqa: F811
    shared = _vaswani_slice(tmp_path / "shared")
    run_config = tmp_path / "smoke.yaml"
    run_config.write_text(yaml.safe_dump({
        "llm": {"model": llama_server.alias, "base_url": llama_server.base_url, "cache": str(tmp_path / "cache.sqlite")},
        # SmolLM2's queries are poor: the quality filters are off (they are tested on their own)
        "generate": {"query_types": ["keyword", "natural"], "json_mode": True, "max_tokens": 96, "roundtrip_k": 0,
                     "max_copy_ratio": 0, "min_words": 1, "max_words": 0},
        "label": {"yes_threshold": 0.2},
        "train": {"epochs": 1, "batch_size": 2, "group_size": 4, "max_length": 96, "dev_fraction": 0.3},
    }))  # fmt: skip
    lever = tmp_path / "lever.yaml"
    lever.write_text(yaml.safe_dump({"train": {"epochs": 2, "learning_rate": 5e-5}}))  # a training lever: no LLM data
    nolabel = tmp_path / "nolabel.yaml"  # a data lever: no judge, as many passages as the default run made calls
    nolabel.write_text(yaml.safe_dump({"scorecard": {"equal_calls": True}, "label": {"enabled": False}}))
    output = tmp_path / "results" / "scorecard.json"
    cmd = [sys.executable, str(REPO_ROOT / "benchmarks" / "scorecard.py"), "--corpora", "vaswani", "--budgets",
           "default", "--passages", "default=16", "--seeds", "1,2", "--run-config", str(run_config),
           "--work-dir", str(tmp_path / "work"), "--output", str(output), "--dtype", "float32",
           "--variants", f"longer={lever},nolabel={nolabel}"]  # fmt: skip
    env = {**os.environ, "SYNTHRANK_SHARED_DATA": str(shared)}
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    assert first.returncode == 0, first.stderr[-4000:]
    card = json.loads(output.read_text())
    cells = card["cells"]
    assert {"vaswani/-/bm25", "vaswani/-/zero-shot"} <= set(cells)
    for row in ("synthrank", "synthrank@longer", "synthrank@nolabel", "inpars", "gpl", "st"):
        for seed in (1, 2):
            cell = cells[f"vaswani/default/{row}/seed{seed}"]
            assert cell["queries"] == 8 and len(cell["per_query"]) == 8, row
            assert 0.0 <= cell["metrics"]["nDCG@10"] <= 1.0 and cell["groups"] >= 1, row
    run = card["runs"]["vaswani/default"]
    assert run["usage"]["calls"] > 0 and run["usage"]["llm_minutes"] > 0
    spent = card["runs"]["vaswani/default@nolabel"]  # the judge's calls went to more passages, none to judging
    assert spent["passages"] == run["usage"]["calls"] > 16 and spent["usage"]["steps"]["label"]["calls"] == 0
    assert spent["config"]["generate"]["max_passages"] == spent["passages"] and "scorecard" not in spent["config"]
    block = card["summary"]["default"]["corpora"]["vaswani"]
    fused = {f"{r}{f}" for r in ("synthrank", "synthrank@longer", "synthrank@nolabel") for f in ("+bm25", "+bm25se", "+bm25bag")}
    assert set(block["rows"]) == {"synthrank", "synthrank@longer", "synthrank@nolabel", "inpars", "gpl", "st", *fused}
    weight = cells["vaswani/default/bm25-weight"]  # picked on the run's synthetic queries, used by every fused row
    assert 0.0 <= weight["weight"] <= 1.0 and weight["queries"] >= 1 and len(weight["table"]) == 11
    # the 1-SE rule: the least BM25 weight within one standard error of the best
    assert weight["weight_1se"] <= weight["weight"] and weight["se"] >= 0.0
    assert weight["table"][f"{weight['weight_1se']:.1f}"] >= max(weight["table"].values()) - weight["se"] - 1e-9
    assert cells["vaswani/default/synthrank+bm25se/seed2"]["bm25_weight"] == weight["weight_1se"]
    assert block["zero-shot+bm25se"]["weight"] == weight["weight_1se"]
    # the bagged rule: the 1-SE choice averaged over resamples of the source passages, a weight between grid points
    assert 0.0 <= weight["weight_bagged"] <= 1.0 and weight["bagged_spread"] >= 0.0
    assert cells["vaswani/default/synthrank+bm25bag/seed1"]["bm25_weight"] == weight["weight_bagged"]
    assert cells["vaswani/default/synthrank+bm25/seed1"]["bm25_weight"] == weight["weight"]
    own = cells["vaswani/default/bm25-weight@nolabel"]  # a data lever's weight comes from its own queries
    assert own["queries"] > weight["queries"]
    assert cells["vaswani/default/synthrank@nolabel+bm25/seed1"]["bm25_weight"] == own["weight"]
    assert cells["vaswani/default/synthrank@longer+bm25/seed1"]["bm25_weight"] == weight["weight"]
    assert block["zero-shot+bm25"]["weight"] == weight["weight"] and block["zero-shot+bm25"]["vs_zero_shot"]
    assert block["rows"]["synthrank@longer"]["vs_synthrank"]["queries"] == 8  # the lever is tested against the recipe
    assert "vaswani/default@longer" not in card["runs"]  # a training lever asks the LLM nothing
    assert cells["vaswani/default/synthrank@longer/seed1"]["groups"] == cells["vaswani/default/synthrank/seed1"]["groups"]
    assert block["rows"]["synthrank"]["vs_zero_shot"]["queries"] == 8 and block["best_peer"] in ("inpars", "gpl", "st")
    markdown = output.with_suffix(".md").read_text()
    assert "| synthrank, judged recipe (the default before #19) |" in markdown and "sentence-transformers recipe" in markdown
    assert output.with_suffix(".png").stat().st_size > 0
    # resumable: a rerun finds every cell and trains nothing
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-4000:]
    assert "trained" not in again.stderr and json.loads(output.read_text())["cells"] == cells
