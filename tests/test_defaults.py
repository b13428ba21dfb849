"""One home for each default: the step dataclasses own them, `synthrank run` lays one recipe over them,
the step commands' options read them, and a step run alone builds what the run builds (issue #22 item 1)."""

from __future__ import annotations

import json
from pathlib import Path

from synthrank.pipeline import RunContext, build_steps, load_run_config
from synthrank.pipeline.config import RECIPE, step_defaults

EXPECTED = json.loads((Path(__file__).parent / "default_run_config.json").read_text(encoding="utf-8"))


def test_default_run_config_and_fingerprints_are_those_before_the_recipe_overlay(tmp_path: Path) -> None:
    """Captured from `load_run_config(None)` before the defaults moved: `--print-config` (key order included)
    and every step's marker fingerprint of the default run are unchanged, so no run folder restarts."""
    assert json.dumps(load_run_config(None)) == json.dumps(EXPECTED["config"])
    config = load_run_config(None, {"corpus": "corpus-x"})
    fingerprints = {step.name: step.config for step in build_steps(RunContext(config, tmp_path))}
    assert json.dumps(fingerprints) == json.dumps(EXPECTED["fingerprints"])


def test_the_recipe_only_overrides_settings_the_steps_have() -> None:
    base = step_defaults()
    for section, values in RECIPE.items():
        assert set(values) <= set(base[section]), section
        assert any(base[section][k] != v for k, v in values.items()), f"{section}: the recipe changes nothing"
