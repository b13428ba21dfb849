"""`synthrank run`: --print-config needs no output folder and checks the corpus; a bad corpus leaves no folder."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
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


def test_the_judge_is_off_by_default_and_label_turns_it_on(tiny_beir: Path, tmp_path: Path) -> None:
    """The default recipe spends no LLM call on judging (#18 lever nolabel, #19); --label and a config file's
    label.enabled bring the judge back, and --no-label wins over a config file that turns it on."""
    runner = CliRunner()

    def enabled(*args: str) -> bool:
        result = runner.invoke(main, ["run", "--corpus", str(tiny_beir), "--print-config", *args])
        assert result.exit_code == 0, result.output
        return bool(yaml.safe_load(result.output)["label"]["enabled"])

    judged = tmp_path / "judged.yaml"
    judged.write_text("label:\n  enabled: true\n", encoding="utf-8")
    assert enabled() is False
    assert enabled("--label") is True
    assert enabled("--config", str(judged)) is True
    assert enabled("--config", str(judged), "--no-label") is False


def test_print_config_checks_the_corpus(tmp_path: Path) -> None:
    runner = CliRunner()
    gone = runner.invoke(main, ["run", "--corpus", str(tmp_path / "nope"), "--print-config"])
    assert gone.exit_code == 2 and "nope does not exist" in gone.output and "--corpus" in gone.output
    none = runner.invoke(main, ["run", "--print-config"])
    assert none.exit_code == 2 and "no corpus" in none.output
    irds = runner.invoke(main, ["run", "--corpus", "irds:beir/scifact/test", "--print-config"])
    assert irds.exit_code == 0, irds.output  # checked when loaded (needs ir_datasets and maybe a download)


def test_a_bad_corpus_leaves_no_output_folder_behind(tmp_path: Path) -> None:
    """The run fails on the corpus before any work, naming file and line, and leaves no folder that looks like a
    run to resume. Caught: writing run_config.json and .steps/generate.started.json before the corpus is read, with
    nothing to take them back (the folder stayed, and an existing empty one kept the markers)."""
    bad = tmp_path / "corpus.jsonl"
    bad.write_text('{"_id": "d1", "text": "eye lens"}\n{"_id": "d2", "text": \n', encoding="utf-8")
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(main, ["run", "--corpus", str(bad), "--output-dir", str(out), "--no-progress"])
    assert result.exit_code == 1 and f"{bad}:2" in result.output and "malformed JSON" in result.output
    assert not out.exists()
    missing = runner.invoke(main, ["run", "--corpus", str(tmp_path / "gone.jsonl"), "--output-dir", str(out)])
    assert missing.exit_code == 1 and "gone.jsonl" in missing.output and not out.exists()
    out.mkdir()  # a folder made for the run beforehand stays, and stays empty
    again = runner.invoke(main, ["run", "--corpus", str(bad), "--output-dir", str(out), "--no-progress"])
    assert again.exit_code == 1 and list(out.iterdir()) == []


def test_the_first_signal_stops_the_run_and_a_second_one_does_not_cut_its_cleanup_short() -> None:
    """Caught: a handler that raises on every signal (the SIGINT during cleanup escaped and the cleanup after it never
    ran), and Python's default SIGTERM (no ``finally`` runs at all: checked by integration/test_run_signals.py)."""
    from synthrank_cli.options import Interrupted, stop_cleanly_on_signals

    cleaned: list[str] = []
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as stopped, stop_cleanly_on_signals():
        try:
            signal.raise_signal(signal.SIGTERM)
            cleaned.append("not reached")
        finally:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C while the server and files are being closed
            cleaned.append("closed")
    assert stopped.value.signum == signal.SIGTERM and cleaned == ["closed"]
    assert signal.getsignal(signal.SIGTERM) is before  # the handlers are put back


def test_a_command_that_exits_after_a_stop_keeps_ignoring_signals_until_it_does() -> None:
    """Caught: the handlers put back at the block's end, or a Python handler kept (interpreter finalization resets it
    to the default), so a SIGTERM arriving between the end of the cleanup and `synthrank run`'s exit killed it
    (exit -15 instead of 130 in integration/test_run_signals.py)."""
    from synthrank_cli.options import Interrupted, stop_cleanly_on_signals

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(Interrupted), stop_cleanly_on_signals(hold_after_stop=True):
            signal.raise_signal(signal.SIGINT)
        # ignored by the OS until the exit: not Python's default, nor a Python handler (finalization resets those)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        signal.raise_signal(signal.SIGTERM)  # a SIGTERM after the block, before the exit: nothing happens
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
