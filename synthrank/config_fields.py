"""The defaults and the strict construction of the steps' config dataclasses, in one place.

Every step's settings are a dataclass (``GenerationConfig``, ``MiningConfig``, ``LabelConfig``,
``TrainConfig``); their field defaults are the only copy of a step's defaults. `synthrank run`'s
config and the click options of the step commands read them from here instead of repeating them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from synthrank.errors import DataError

T = TypeVar("T")


def field_defaults(cls: type) -> dict[str, Any]:
    """Each field's default (a ``default_factory`` is called), in field order; fields without one are left out."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def strict_from_dict(cls: type[T], data: Mapping[str, Any], *, section: str = "") -> T:
    """``cls(**data)``, where a key that is not a field (dashes count as underscores) is a :class:`DataError`
    naming it and the known fields, so a typo never silently falls back to a default."""
    known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    clean: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in known:
            where = f"{section}.{key}" if section else str(key)
            raise DataError(f"unknown setting; known: {', '.join(sorted(known))}", field=where)
        clean[name] = value
    return cls(**clean)
