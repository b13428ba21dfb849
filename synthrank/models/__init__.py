"""Where model weights come from: local folders, packages that ship weights, or a hub name."""

from __future__ import annotations

from synthrank.models.encoders import PACKAGED_ENCODERS, resolve_encoder

__all__ = ["PACKAGED_ENCODERS", "resolve_encoder"]
