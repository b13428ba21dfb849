"""Options and helpers shared by the commands: config files, output folders, errors."""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from synthrank.data.jsonl import SPACE_ERRNOS
from synthrank.errors import SynthrankError

F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger(__name__)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised in the main thread so that every ``finally`` and ``with`` cleans up."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_cleanly_on_signals(*, hold_after_stop: bool = False) -> Iterator[None]:
    """Turn the first SIGINT or SIGTERM into :class:`Interrupted`; ignore further ones while cleaning up.

    ``hold_after_stop``: once a signal stopped the block, ignore further ones after it too (SIG_IGN), for a command
    that exits right after: restoring Python's default SIGTERM there, or keeping a Python handler (interpreter
    finalization resets those to the default), lets a second signal arriving before the process is gone kill it
    (exit -15, not 130; seen in integration/test_run_signals.py).

    Python's default SIGTERM ends the process on the spot: no ``finally`` runs, so the local LLM
    server's log and half-written files stay behind. And a second signal (Ctrl-C pressed twice,
    or a supervisor's SIGTERM after a SIGINT) must not cut the cleanup of the first one short:
    it is logged and ignored. Outside the main thread this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if received:
            logger.info("%s while stopping: still cleaning up", signal.Signals(signum).name)
            return
        received.append(signum)
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            # after a stop in a command that exits next: ignored at the OS level (SIG_IGN), which Python's own
            # finalization leaves alone, where it resets a Python handler to the default that a late SIGTERM kills by
            signal.signal(sig, signal.SIG_IGN if received and hold_after_stop else old)


def friendly_errors(func: F) -> F:
    """Turn synthrank's own errors, and a full disk anywhere, into a clean one-line `Error: ...`, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SynthrankError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:
            if exc.errno not in SPACE_ERRNOS:
                raise
            # a write outside synthrank's own writers (a model or checkpoint saved by a library)
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(
                f"{where}cannot write ({exc.strerror or exc}); free some space and rerun the same command to resume"
            ) from exc

    return wrapper  # type: ignore[return-value]


def load_config(path: str | Path | None) -> dict[str, Any]:
    """Read a YAML config (flags given on the command line override its values)."""
    if path is None:
        return {}
    import yaml

    from synthrank.errors import DataError

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise DataError(f"malformed YAML: {exc}", path=path, line=(mark.line + 1) if mark else None) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DataError("a config file must hold a mapping of option names to values", path=path)
    return data


def merge_config(ctx: click.Context, config: dict[str, Any], **values: Any) -> dict[str, Any]:
    """Values from flags the user typed win; otherwise the config file's; otherwise the defaults."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        source = ctx.get_parameter_source(name)
        key = name.replace("_", "-")
        if source is not None and source.name == "COMMANDLINE":
            out[name] = value
        elif key in config:
            out[name] = config[key]
        elif name in config:
            out[name] = config[name]
        else:
            out[name] = value
    unknown = set(config) - {n for n in values} - {n.replace("_", "-") for n in values}
    if unknown:
        raise click.UsageError(f"unknown config keys: {', '.join(sorted(unknown))}")
    return out


def prepare_output_dir(path: str | Path, *, overwrite: bool, resume: bool = False) -> Path:
    """Create the output folder; refuse a non-empty one unless --overwrite (or a resumable step)."""
    out = Path(path)
    if out.exists() and any(out.iterdir()) and not (overwrite or resume):
        raise click.UsageError(f"{out} exists and is not empty; pass --overwrite to write into it")
    out.mkdir(parents=True, exist_ok=True)
    return out
