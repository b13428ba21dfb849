"""How a trained model is meant to be served, written next to its weights: today, BM25's fusion weight.

``synthrank run`` picks the weight of BM25's own score on the run's synthetic queries
(:func:`~synthrank.rerank.first_stage.pick_first_stage_weight`, the one-standard-error rule) and writes it into the
model folder, so the adapters (``SynthRankRanker``, ``SynthReranker``) serve what the run measured
(``first_stage_weight="auto"``, their default) without the user copying a number out of a report. On the
scorecard the model fused this way gained over the zero-shot encoder on every corpus, and alone it did not.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from synthrank.data.jsonl import write_json
from synthrank.errors import DataError

logger = logging.getLogger(__name__)

SERVING_FILE = "synthrank_serving.json"
AUTO = "auto"


def weight_text(weight: float) -> str:
    """A weight as reports and logs show it: one decimal for a grid weight (0.2), two for a bagged one (0.21)."""
    return f"{weight:.1f}" if abs(weight - round(weight, 1)) < 1e-9 else f"{weight:.2f}"


def write_serving_settings(model_dir: str | Path, first_stage_weight: float, **provenance: Any) -> Path:
    """Write the weight (and where it came from: ``provenance``, e.g. the queries it was picked on) into the
    model folder; an existing file is replaced."""
    if not 0.0 <= float(first_stage_weight) <= 1.0:
        raise ValueError(f"first_stage_weight must lie in [0, 1], got {first_stage_weight}")
    path = Path(model_dir) / SERVING_FILE
    write_json(path, {"first_stage_weight": float(first_stage_weight), "first_stage": "bm25", **provenance}, indent=1)
    return path


def served_first_stage_weight(model: str | Path) -> float | None:
    """The weight the model folder says to serve with; None where the model is not a folder or carries none."""
    path = Path(model) / SERVING_FILE
    if not path.is_file():
        return None
    try:
        weight = json.loads(path.read_text(encoding="utf-8"))["first_stage_weight"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"cannot read the served first-stage weight: {exc}", path=path, field="first_stage_weight") from exc
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not 0.0 <= float(weight) <= 1.0:
        raise DataError(f"first_stage_weight must be a number in [0, 1], got {weight!r}", path=path,
                        field="first_stage_weight")  # fmt: skip
    return float(weight)


def check_first_stage_setting(setting: float | str) -> float | str:
    """``"auto"`` or a weight in [0, 1], as the adapters take it."""
    if isinstance(setting, str):
        if setting != AUTO:
            raise ValueError(f'first_stage_weight must be "auto" or a number in [0, 1], got {setting!r}')
        return AUTO
    if isinstance(setting, bool) or not 0.0 <= float(setting) <= 1.0:
        raise ValueError(f"first_stage_weight must lie in [0, 1], got {setting}")
    return float(setting)


def resolve_first_stage_weight(setting: float | str, model: str | Path | None) -> float:
    """An explicit weight as given; ``"auto"``: the model folder's (0 where it carries none, e.g. a model from
    ``synthrank train`` or a run stopped before its evaluate step)."""
    checked = check_first_stage_setting(setting)
    if checked != AUTO:
        return float(checked)
    weight = served_first_stage_weight(model) if model is not None else None
    if weight is None:
        return 0.0
    logger.info("serving %s fused with the first stage's score at weight %s (%s; first_stage_weight=0 turns it off)",
                model, weight_text(weight), SERVING_FILE)  # fmt: skip
    return weight
