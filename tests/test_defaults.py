"""One home for each default: the step dataclasses own them, `synthrank run` lays one recipe over them,
the step commands' options read them, and a step run alone builds what the run builds (issue #22 item 1)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import click
import pytest
from click.testing import CliRunner

from synthrank.config_fields import field_defaults
from synthrank.data import TrainingGroup, read_groups
from synthrank.label import LabelConfig
from synthrank.mine import MiningConfig
from synthrank.pipeline import RunContext, build_steps, load_run_config
from synthrank.pipeline.config import RECIPE, STEP_ONLY, step_defaults
from synthrank.synthesize import GenerationConfig
from synthrank.train import TrainConfig
from tests.fake_openai_server import FakeOpenAIServer, title_query_responder

EXPECTED = json.loads((Path(__file__).parent / "default_run_config.json").read_text(encoding="utf-8"))


def test_default_run_config_and_fingerprints_are_those_before_the_recipe_overlay(tmp_path: Path) -> None:
    """Captured from `load_run_config(None)` before the defaults moved: `--print-config` (key order included)
    and every step's marker fingerprint of the default run are unchanged, so no run folder restarts.

    Regenerated only when the recipe changes on purpose (#19: no judge, three queries per call, 20 passages,
    128 tokens); a folder made by the earlier recipe resumes with its settings given back, as
    benchmarks/scorecard.py's JUDGED_RECIPE does."""
    assert json.dumps(load_run_config(None)) == json.dumps(EXPECTED["config"])
    config = load_run_config(None, {"corpus": "corpus-x"})
    fingerprints = {step.name: step.config for step in build_steps(RunContext(config, tmp_path))}
    assert json.dumps(fingerprints) == json.dumps(EXPECTED["fingerprints"])


def test_the_recipe_only_overrides_settings_the_steps_have() -> None:
    base = step_defaults()
    for section, values in RECIPE.items():
        assert set(values) <= set(base[section]), section
        assert any(base[section][k] != v for k, v in values.items()), f"{section}: the recipe changes nothing"



# ---------------------------------------------------------------------------- click options read the dataclasses


def _command(name: str) -> click.Command:
    from synthrank_cli.main import main

    command = main.get_command(click.Context(main), name)
    assert command is not None
    return command


def _defaults(name: str) -> dict[str, object]:
    """Each option's default as the command sees it (a flag without one is False)."""
    command = _command(name)
    ctx = click.Context(command)
    return {p.name: p.get_default(ctx) for p in command.params if p.name}


@pytest.mark.parametrize(
    ("command", "cls", "option_names"),
    [
        ("generate", GenerationConfig, {}),
        ("mine", MiningConfig, {"exclude_near_duplicates": "dedup"}),
        ("label", LabelConfig, {}),
        ("train", TrainConfig, {}),
    ],
)
def test_step_options_default_to_their_dataclass_fields(command: str, cls: type, option_names: dict[str, str]) -> None:
    options = _defaults(command)
    # None is the architecture's value (TrainConfig.from_dict resolves it), as in a run: the only exceptions
    architecture_dependent = {"learning_rate", "merge_with_base"} if cls is TrainConfig else set()
    checked = []
    for name, default in field_defaults(cls).items():
        option = option_names.get(name, name)
        if option not in options or name in architecture_dependent:
            continue
        expected = ",".join(default) if name == "query_types" else default
        assert options[option] == expected, f"synthrank {command} --{option.replace('_', '-')}"
        checked.append(name)
    assert len(checked) >= len(field_defaults(cls)) - 3, checked
    if architecture_dependent:
        assert all(options[name] is None for name in architecture_dependent)


def test_step_only_settings_and_llm_options_default_as_the_run_sections_before_the_recipe() -> None:
    """Settings no dataclass holds: the step commands' flags and the run's step defaults agree."""
    base = step_defaults()
    option_names = {"generate": {"sampling": "strategy"}}
    for section, values in STEP_ONLY.items():
        options = _defaults({"generate": "generate", "mine": "mine", "label": "label", "train": "train"}[section])
        for key, value in values.items():
            option = option_names.get(section, {}).get(key, key)
            if option in options:
                assert options[option] == value == base[section][key], f"{section}.{key}"
    assert base["train"]["dev_fraction"] == _defaults("train")["dev_fraction"] == 0.0
    for command in ("generate", "label"):
        options = _defaults(command)
        assert {k: options[k] for k in base["llm"]} == base["llm"], command


# ---------------------------------------------------------------------------- a step run alone = the run's step


# queries named after the passage's title; the binary judge says Yes when a long query word is in the passage
_responder = title_query_responder(lambda title: f"{title}: what is this chronic disease of the eye, lungs or blood?")


def test_steps_one_by_one_build_what_the_run_builds(tiny_beir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """generate -> mine -> label -> train as four commands, given the run's recipe as flags, write the run's
    artifacts and train on the same groups with the same settings and dev set.

    Before the label step took LabelConfig's fill_negatives, `synthrank label` had no way to fill groups from
    the mined pool (no --fill-negatives), and `synthrank train` could not hold out the run's dev split.
    """
    import synthrank.train
    from synthrank.pipeline import run_pipeline
    from synthrank_cli.main import main

    trained: list[tuple[list[TrainingGroup], TrainConfig, object]] = []

    def fake_train(groups: object, out: Path, config: TrainConfig, *, dev: object = None, **kw: object) -> object:
        trained.append((list(groups) if isinstance(groups, list) else read_groups(groups), config, dev))  # type: ignore[arg-type]
        metrics = {"global_step": 1, "total_steps": 1, "final_loss": 0.5, "groups_per_second": 1.0}
        return SimpleNamespace(model_dir=Path(out) / "model", best_step=None, metrics=metrics)

    monkeypatch.setattr(synthrank.train, "train_reranker", fake_train)

    with FakeOpenAIServer(model="fake", responder=_responder) as server:
        llm = {"base_url": server.base_url, "model": "fake", "cache": str(tmp_path / "cache.sqlite")}
        mine = {"top_k": 6, "num_negatives": 4}
        run_dir = tmp_path / "run"
        config = load_run_config(None, {"corpus": str(tiny_beir), "llm": llm, "mine": mine, "label": {"enabled": True}})
        run_pipeline(config, run_dir, until="train", show_progress=False)

        recipe = config["generate"], config["label"]
        flags = ["--base-url", server.base_url, "--model", "fake", "--cache", str(tmp_path / "cache.sqlite")]
        gen, mined, labelled = tmp_path / "gen", tmp_path / "mine", tmp_path / "label"
        runner = CliRunner()
        steps = [
            ["generate", "--corpus", str(tiny_beir), "--output-dir", str(gen), "--max-passages", str(recipe[0]["max_passages"]),
             "--types-per-passage", "1", "--n-per-type", "3", "--max-tokens", "256", "--max-passage-chars", "1000",
             *flags],
            ["mine", "--corpus", str(tiny_beir), "--queries", str(gen / "queries.jsonl"), "--output-dir", str(mined),
             "--top-k", "6", "--num-negatives", "4", "--no-progress"],
            ["label", "--corpus", str(tiny_beir), "--candidates", str(mined / "candidates.jsonl"),
             "--queries", str(gen / "queries.jsonl"), "--output-dir", str(labelled), "--judge-mode", "binary",
             "--judge-top-k", "3", "--fill-negatives", "--max-passage-chars", "1000", *flags],
            ["train", "--groups", str(labelled / "groups.jsonl"), "--output-dir", str(tmp_path / "train"),
             "--architecture", "bi-encoder", "--epochs", "2", "--max-length", "128", "--dev-fraction", "0.1",
             "--no-progress"],
        ]  # fmt: skip
        for args in steps:
            result = runner.invoke(main, args)
            assert result.exit_code == 0, f"{args[0]}: {result.output}"

    def lines(path: Path) -> list[str]:
        return path.read_text(encoding="utf-8").splitlines()

    assert lines(gen / "queries.jsonl") == lines(run_dir / "queries.jsonl")
    assert lines(mined / "candidates.jsonl") == lines(run_dir / "candidates.jsonl")
    assert lines(mined / "groups.jsonl") == lines(run_dir / "mined_groups.jsonl")
    groups = lines(labelled / "groups.jsonl")
    assert groups == lines(run_dir / "groups.jsonl")
    assert any(n.get("grade") is None for g in map(json.loads, groups) for n in g["negatives"]), "nothing was filled"
    (run_groups, run_config, run_dev), (cli_groups, cli_config, cli_dev) = trained
    assert cli_config == run_config and cli_groups == run_groups
    assert lines(tmp_path / "train" / "dev_groups.jsonl") == lines(run_dir / "dev_groups.jsonl")
    assert run_dev is not None and cli_dev is not None


def test_label_fill_negatives_names_the_missing_pool(tiny_beir: Path, tmp_path: Path) -> None:
    from synthrank_cli.main import main

    mined = tmp_path / "mine"
    mined.mkdir()
    (mined / "candidates.jsonl").write_text(
        json.dumps({"query_id": "q", "query": "eye", "source_doc_id": "d1", "candidates": [{"doc_id": "d1"}]}) + "\n"
    )
    args = ["label", "--corpus", str(tiny_beir), "--candidates", str(mined / "candidates.jsonl"), "--fill-negatives"]
    result = CliRunner().invoke(main, [*args, "--output-dir", str(tmp_path / "a")])
    assert result.exit_code == 2 and "groups.jsonl does not exist; give --mined-groups" in result.output
    (mined / "groups.jsonl").write_text("")
    result = CliRunner().invoke(main, [*args, "--output-dir", str(tmp_path / "b")])
    assert result.exit_code == 2 and "mine_config.json; give --num-negatives" in result.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # refused before any work


def test_haystack_components_default_to_the_dataclass_fields() -> None:
    """Haystack serialises a component by its init arguments, so they keep literal defaults: the same ones."""
    pytest.importorskip("haystack")
    import inspect

    from haystack_synthrank import HardNegativeMiner, LCETrainer, LLMRelevanceLabeler, SyntheticQueryGenerator

    pairs = [(HardNegativeMiner, MiningConfig, {}), (LCETrainer, TrainConfig, {}),
             (SyntheticQueryGenerator, GenerationConfig, {}), (LLMRelevanceLabeler, LabelConfig, {"mode": "judge_mode"})]  # fmt: skip
    for component, cls, field_names in pairs:
        defaults = field_defaults(cls)
        shared = 0
        for name, param in inspect.signature(component.__init__).parameters.items():
            field = field_names.get(name, name)
            if field not in defaults or param.default is inspect.Parameter.empty:
                continue
            if not (field == "query_types" and param.default is None):  # None: every default type
                assert param.default == defaults[field], f"{component.__name__}({name}=...)"
            shared += 1
        assert shared >= 3, component.__name__
