"""Errors that name the input that was wrong, so a user can fix it without a debugger."""

from __future__ import annotations

from pathlib import Path


class SynthrankError(Exception):
    """Base class of every error synthrank raises on purpose."""


class DataError(SynthrankError, ValueError):
    """Bad input data: the message names the file, the line and the field."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        where = []
        if self.path is not None:
            where.append(self.path if line is None else f"{self.path}:{line}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ModelError(SynthrankError, ValueError):
    """A model path or name that cannot serve the role asked of it."""
