"""`synthrank`: one command per step of the method, plus `run` for all of them.

Commands are imported lazily (name -> "module:attribute"), so `synthrank --help` is instant
and heavy libraries load only in the command that needs them.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import click

import synthrank

# name -> (module, attribute). Each module keeps its heavy imports inside the command body.
COMMANDS: dict[str, tuple[str, str]] = {
    "evaluate": ("synthrank_cli.evaluate", "evaluate"),
    "index": ("synthrank_cli.index", "index"),
    "generate": ("synthrank_cli.generate", "generate"),
    "label": ("synthrank_cli.label", "label"),
    "models": ("synthrank_cli.models", "models"),
    "mine": ("synthrank_cli.mine", "mine"),
    "llmrank": ("synthrank_cli.llmrank", "llmrank"),
    "train": ("synthrank_cli.train", "train"),
    "run": ("synthrank_cli.run", "run"),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module_name, attr = COMMANDS[cmd_name]
            command: Any = getattr(importlib.import_module(module_name), attr)
            return command  # type: ignore[no-any-return]
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(synthrank.__version__, prog_name="synthrank")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """synthrank: a domain corpus in, a trained reranker out, with no human labels."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


if __name__ == "__main__":  # pragma: no cover
    main()
