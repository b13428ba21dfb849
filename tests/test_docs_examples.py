"""Examples in docstrings, the README and docs/ name data splits that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from synthrank.train import DevSet

ROOT = Path(__file__).parents[1]


def _named_splits(text: str) -> list[tuple[str, str]]:
    calls = re.findall(r'load_dataset\("([^"]+)", split="([^"]+)"\)', text)
    flags = re.findall(r"--dev-data (\S+) --dev-split (\S+?)[\] ]", text)
    return calls + flags


# the README's long sections live in docs/ (the training page holds the --dev-data example)
MARKDOWN = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("where", ["DevSet", *MARKDOWN])
def test_example_splits_exist_in_the_shared_data(where: str) -> None:
    if not (ROOT.parent / "shared" / "data").is_dir():
        pytest.skip("../shared/data is not here")
    text = (DevSet.__doc__ or "") if where == "DevSet" else (ROOT / where).read_text(encoding="utf-8")
    named = _named_splits(text)
    assert named or where != "DevSet"
    for data, split in named:
        if data.startswith("path/to/"):  # a placeholder for the reader's own folder, not a shared data set
            continue
        folder = (ROOT / data) if data.startswith("..") else (ROOT.parent / "shared" / "data" / data)
        if not folder.exists():
            pytest.fail(f"{where} names {data!r}, which is not a data folder (expected one of ../shared/data/*)")
        assert (folder / "qrels" / f"{split}.tsv").exists(), f"{where}: {data} has no {split!r} split"
