"""The serving settings a run writes into its model folder, and how the adapters' "auto" reads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthrank.errors import DataError
from synthrank.rerank.serving import (
    SERVING_FILE,
    check_first_stage_setting,
    resolve_first_stage_weight,
    served_first_stage_weight,
    write_serving_settings,
)


def test_a_written_weight_is_read_back_and_auto_serves_it(tmp_path: Path) -> None:
    path = write_serving_settings(tmp_path, 0.3, queries=41, picked_on="synthetic queries")
    assert json.loads(path.read_text()) == {"first_stage_weight": 0.3, "first_stage": "bm25", "queries": 41,
                                            "picked_on": "synthetic queries"}  # fmt: skip
    assert served_first_stage_weight(tmp_path) == 0.3
    assert resolve_first_stage_weight("auto", tmp_path) == 0.3
    assert resolve_first_stage_weight(0.0, tmp_path) == 0.0 and resolve_first_stage_weight(0.8, tmp_path) == 0.8
    write_serving_settings(tmp_path, 0.1)  # replaced, not appended
    assert served_first_stage_weight(tmp_path) == 0.1 and not list(tmp_path.glob("*.tmp"))


def test_auto_is_zero_without_a_folder_or_a_file(tmp_path: Path) -> None:
    assert served_first_stage_weight(tmp_path) is None
    assert resolve_first_stage_weight("auto", tmp_path) == 0.0
    assert resolve_first_stage_weight("auto", "minilm") == 0.0 and resolve_first_stage_weight("auto", None) == 0.0


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "cannot read"),
    ('{"weight": 0.3}', "cannot read"),
    ('{"first_stage_weight": 1.5}', r"number in \[0, 1\], got 1.5"),
    ('{"first_stage_weight": "0.3"}', "number in"),
    ('{"first_stage_weight": true}', "number in"),
])  # fmt: skip
def test_a_bad_file_names_itself_and_the_field(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / SERVING_FILE).write_text(content)
    with pytest.raises(DataError, match=message) as err:
        resolve_first_stage_weight("auto", tmp_path)
    assert SERVING_FILE in str(err.value) and "first_stage_weight" in str(err.value)


def test_settings_are_auto_or_a_weight_in_the_unit_interval(tmp_path: Path) -> None:
    assert check_first_stage_setting("auto") == "auto" and check_first_stage_setting(1) == 1.0
    for bad in ("bm25", -0.1, 1.01, True):
        with pytest.raises(ValueError, match="first_stage_weight"):
            check_first_stage_setting(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="first_stage_weight"):
        write_serving_settings(tmp_path, 2.0)
