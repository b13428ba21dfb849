"""Sentence-embedding models: pooling, and the folder files that make an encoder a sentence-transformers model.

Shared by the bi-encoder scorer (which reads a folder's pooling and length) and the trainer (which pools
the same way while training and writes the files beside the weights it saves).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from synthrank.errors import ModelError

Pooling = Literal["mean", "cls"]


def pool_embeddings(hidden: Any, attention_mask: Any, pooling: Pooling, normalize: bool) -> Any:
    """One vector per row of ``hidden`` ``[N, T, H]``: the CLS state or the mean over real tokens.

    ``attention_mask`` may be ``None`` (callers leave it out when no row is padded): every token is real.
    """
    import torch

    if pooling == "cls":
        pooled = hidden[:, 0]
    elif attention_mask is None:
        pooled = hidden.mean(1)
    else:
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, dim=-1) if normalize else pooled


def read_sentence_transformers_settings(folder: Path) -> tuple[int | None, Pooling | None]:
    """``(max_seq_length, pooling)`` a sentence-transformers folder declares (``None`` where it says nothing)."""
    max_length: int | None = None
    pooling: Pooling | None = None
    if (folder / "sentence_bert_config.json").exists():
        data = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
        if isinstance(data.get("max_seq_length"), int):
            max_length = data["max_seq_length"]
    pooling_cfg = folder / "1_Pooling" / "config.json"
    if pooling_cfg.exists():
        data = json.loads(pooling_cfg.read_text(encoding="utf-8"))
        if data.get("pooling_mode_cls_token"):
            pooling = "cls"
        elif data.get("pooling_mode_mean_tokens", True):
            pooling = "mean"
        else:
            raise ModelError(f"{pooling_cfg}: only mean or CLS pooling is supported")
    return max_length, pooling


def write_sentence_transformers_files(
    folder: Path, *, max_length: int, pooling: Pooling, hidden_size: int, normalize: bool = True
) -> None:
    """Make a saved encoder folder a sentence-transformers model too (modules, pooling, length)."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (folder / "2_Normalize").mkdir(exist_ok=True)
    (folder / "modules.json").write_text(json.dumps(modules, indent=2), encoding="utf-8")
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_length, "do_lower_case": False}, indent=2), encoding="utf-8"
    )
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": hidden_size,
        "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }, indent=2), encoding="utf-8")  # fmt: skip
