"""Token id rows to padded model inputs: one batch, padded to its own longest row (dynamic padding).

Callers sort rows by length first (scorers and the trainer both do), so a batch pads to almost nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch


def pad_rows(rows: Sequence[Sequence[int]], pad_value: int, *, left: bool = False) -> np.ndarray:
    """Stack variable-length id rows into one int64 matrix padded to the longest row (dynamic padding)."""
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), pad_value, dtype=np.int64)
    for i, row in enumerate(rows):
        n = len(row)
        if n:
            if left:
                out[i, width - n :] = row
            else:
                out[i, :n] = row
    return out


def batch_tensors(
    input_ids: Sequence[Sequence[int]],
    token_type_ids: Sequence[Sequence[int]] | None,
    *,
    pad_id: int,
    left: bool = False,
    device: str = "cpu",
    drop_full_mask: bool = False,
) -> dict[str, torch.Tensor]:
    """Model inputs for one batch, padded to its longest row.

    With ``drop_full_mask`` the attention mask is left out when no row is padded (common after length
    sorting, where many pairs fill ``max_length``), which lets SDPA take its faster mask-free kernel.
    """
    import torch

    ids = pad_rows(input_ids, pad_id, left=left)
    lengths = np.fromiter((len(r) for r in input_ids), dtype=np.int64, count=len(input_ids))
    out: dict[str, torch.Tensor] = {"input_ids": torch.from_numpy(ids)}
    if not (drop_full_mask and bool((lengths == ids.shape[1]).all())):
        positions = np.arange(ids.shape[1])
        mask = (
            (positions[None, :] >= ids.shape[1] - lengths[:, None]) if left else (positions[None, :] < lengths[:, None])
        )
        out["attention_mask"] = torch.from_numpy(mask.astype(np.int64))
    if token_type_ids is not None:
        out["token_type_ids"] = torch.from_numpy(pad_rows(token_type_ids, 0, left=left))
    if device != "cpu":
        pin = device.startswith("cuda")
        out = {k: (v.pin_memory() if pin else v).to(device, non_blocking=pin) for k, v in out.items()}
    return out
