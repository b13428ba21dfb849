"""A trained synthrank model directory as a PyTerrier artifact: ``pt.Artifact.load(path).reranker()``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyterrier as pt

from pyterrier_synthrank.reranker import SynthReranker
from synthrank.data.jsonl import write_json
from synthrank.errors import ModelError

PT_META = "pt_meta.json"


class SynthRerankerArtifact(pt.Artifact):
    """A saved synthrank reranker with ``pt_meta.json``: an LCE cross-encoder directory, or an LLM reranker
    output folder (``synthrank llmrank train``: ``merged/`` and/or ``adapter/`` inside).

    ``pt.Artifact.load(path)`` finds this class through the ``pyterrier.artifact`` entry point
    ``reranker.synthrank``; the artifact is a factory for :class:`SynthReranker`.

    Example:
        >>> SynthRerankerArtifact.mark("runs/medquad/model")      # once, after training
        >>> reranker = pt.Artifact.load("runs/medquad/model").reranker(batch_size=64)
    """

    ARTIFACT_TYPE = "reranker"
    ARTIFACT_FORMAT = "synthrank"
    ARTIFACT_PACKAGE_HINT = "synthrank[pyterrier]"

    def __init__(self, path: str | Path, **reranker_kwargs: Any) -> None:
        super().__init__(path)
        _check_model_dir(Path(path))
        self._reranker_kwargs = reranker_kwargs

    @classmethod
    def mark(cls, path: str | Path) -> SynthRerankerArtifact:
        """Write ``pt_meta.json`` into a trained model directory so ``pt.Artifact.load`` recognises it."""
        folder = Path(path)
        _check_model_dir(folder)
        meta_path = folder / PT_META
        meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
        meta.update(
            {"type": cls.ARTIFACT_TYPE, "format": cls.ARTIFACT_FORMAT, "package_hint": cls.ARTIFACT_PACKAGE_HINT}
        )
        write_json(meta_path, meta)
        return cls(folder)

    def reranker(self, **kwargs: Any) -> SynthReranker:
        """A :class:`SynthReranker` over this model (``batch_size``, ``text_field``, ``verbose``, ``device``…)."""
        options = {**self._reranker_kwargs, **kwargs}
        return SynthReranker(str(self.path), **options)

    def __repr__(self) -> str:
        return f"SynthRerankerArtifact({str(self.path)!r})"


def _check_model_dir(folder: Path) -> None:
    """Refuse, naming the folder, anything that holds neither a Hugging Face model nor an LLM reranker output."""
    from synthrank.llmrank.scorer import is_llmrank_model

    if (folder / "config.json").exists() or is_llmrank_model(folder):
        return
    raise ModelError(
        f"{folder} is not a synthrank model directory (no config.json, and no merged/ or adapter/ with "
        "llmrank.json): train or save a model there first"
    )
