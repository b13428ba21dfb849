"""`synthrank run --print-config`: needs no output folder, prints it when given, and checks the corpus."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from synthrank_cli.main import main


def test_print_config_needs_no_output_dir_and_prints_it_when_given(tiny_beir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    alone = runner.invoke(main, ["run", "--corpus", str(tiny_beir), "--print-config"])
    assert alone.exit_code == 0, alone.output
    assert yaml.safe_load(alone.output)["corpus"] == str(tiny_beir)  # still valid YAML: the folder line is a comment
    assert "# output dir: (none given" in alone.output
    given = runner.invoke(main, ["run", "--corpus", str(tiny_beir), "--output-dir", str(tmp_path / "o"), "--print-config"])
    assert given.exit_code == 0 and f"# output dir: {tmp_path / 'o'}" in given.output
    assert not (tmp_path / "o").exists()  # printing creates nothing
    missing = runner.invoke(main, ["run", "--corpus", str(tiny_beir)])
    assert missing.exit_code == 2 and "--output-dir" in missing.output


def test_print_config_checks_the_corpus(tmp_path: Path) -> None:
    runner = CliRunner()
    gone = runner.invoke(main, ["run", "--corpus", str(tmp_path / "nope"), "--print-config"])
    assert gone.exit_code == 2 and "nope does not exist" in gone.output and "--corpus" in gone.output
    none = runner.invoke(main, ["run", "--print-config"])
    assert none.exit_code == 2 and "no corpus" in none.output
    irds = runner.invoke(main, ["run", "--corpus", "irds:beir/scifact/test", "--print-config"])
    assert irds.exit_code == 0, irds.output  # checked when loaded (needs ir_datasets and maybe a download)
