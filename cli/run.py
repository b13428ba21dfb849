"""`synthrank run`: corpus -> synthetic queries -> BM25 candidates -> LLM labels -> LCE training -> evaluation."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import click

from synthrank_cli.options import Interrupted, friendly_errors, stop_cleanly_on_signals

STEPS = ("generate", "mine", "label", "train", "evaluate")


def _nest(overrides: dict[str, Any], dotted: str, value: Any) -> None:
    section, _, key = dotted.partition(".")
    if not key:
        overrides[section] = value
        return
    overrides.setdefault(section, {})
    _nest(overrides[section], key, value)


def _check_corpus(corpus: Any) -> None:
    """What --print-config can check without loading anything: a corpus is set, and a local one exists."""
    if corpus is None:
        raise click.UsageError("no corpus: pass --corpus or set `corpus:` in the --config file")
    text = str(corpus)
    if not text.startswith("irds:") and not Path(text).expanduser().exists():
        raise click.BadParameter(f"{text} does not exist (a BEIR folder, a corpus JSONL/TSV file or irds:<id>)",
                                 param_hint="'--corpus' / corpus:")


@click.command()
@click.option("--corpus", default=None, help="BEIR folder, corpus JSONL/TSV file, or irds:<id> (only its passages train).")
@click.option("--output-dir", default=None, type=click.Path(file_okay=False),
              help="Every artifact goes here; rerunning with the same folder resumes (required unless --print-config).")
@click.option("--config", "config_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Run config YAML (see `synthrank run --print-config`); flags win over it.")
@click.option("--llm-model", default=None, help="LLM: a packaged GGUF name, a .gguf path, or the model at --base-url.")
@click.option("--base-url", default=None, help="Use an OpenAI-compatible endpoint instead of the local llama.cpp model.")
@click.option("--backend", default=None, type=click.Choice(["memory", "elasticsearch"]), help="BM25 backend for mining.")
@click.option("--es-url", default=None, help="Elasticsearch URL (implies --backend elasticsearch).")
@click.option("--max-passages", default=None, type=int, help="Budget: corpus passages to write queries for.")
@click.option("--search-task", default=None,
              help="One sentence on who searches this corpus and for what (e.g. 'scientists checking whether a claim "
                   "is supported by a research abstract'): the LLM writes every query as they would "
                   "[default: none, the query types alone; generate.search_task in the config].")
@click.option("--demonstrations", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Your own example queries, JSON lines of {\"query\", \"doc_id\"} (or {\"query\", \"text\"}): the "
                   "LLM sees a few as its earlier answers and writes in their register (query type 'demonstrated', "
                   "which this flag selects); leave them out of any evaluation [generate.demonstrations].")
@click.option("--architecture", default=None, type=click.Choice(["bi-encoder", "cross-encoder"]),
              help="Reranker to train [default: bi-encoder, the zero-shot encoder tuned and merged back; "
              "cross-encoder, a fresh relevance head, for budgets of many hundreds of queries].")
@click.option("--label/--no-label", "label", default=None,
              help="Judge the candidates with the LLM (positives and hard negatives by its verdicts) or not (the "
                   "source passage positive, BM25 negatives) [default: no judge, label.enabled in the config].")
@click.option("--eval-data", default=None, help="Judged queries to evaluate on (default: the corpus, if it has qrels).")
@click.option("--eval-split", default=None, help="Qrels split of the evaluation data [default: test].")
@click.option("--eval-max-queries", default=None, type=click.IntRange(1),
              help="Evaluate on a seeded sample of this many judged queries [default: all].")
@click.option("--until", default=None, type=click.Choice(STEPS), help="Stop after this step.")
@click.option("--force", multiple=True, type=click.Choice(STEPS), help="Rerun this step and what follows (repeatable).")
@click.option("--print-config", is_flag=True,
              help="Print the full config (defaults + --config + flags) and the output folder, check the corpus exists, "
                   "and exit.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@friendly_errors
def run(corpus: str | None, output_dir: str | None, config_file: str | None, llm_model: str | None, base_url: str | None,
        backend: str | None, es_url: str | None, max_passages: int | None, search_task: str | None, demonstrations: str | None, architecture: str | None, label: bool | None, eval_data: str | None,
        eval_split: str | None, eval_max_queries: int | None, until: str | None, force: tuple[str, ...], print_config: bool, progress: bool) -> None:  # fmt: skip
    """Train a reranker for a corpus with no human labels, then evaluate it; resumable step by step.

    Each step writes its artifacts into OUTPUT_DIR and is skipped when they are complete for the same
    settings, so a killed run repeats no finished LLM call and no finished step. Defaults run on one
    machine with no key and no server: the packaged Qwen2.5-Coder-1.5B through llama.cpp and in-memory BM25.
    """
    import yaml

    from synthrank.pipeline import load_run_config, run_pipeline

    overrides: dict[str, Any] = {}
    for dotted, value in (
        ("corpus", corpus), ("llm.model", llm_model), ("llm.base_url", base_url), ("mine.backend", backend),
        ("mine.elasticsearch.url", es_url), ("generate.max_passages", max_passages), ("generate.search_task", search_task), ("train.architecture", architecture), ("evaluate.data", eval_data),
        ("evaluate.split", eval_split), ("evaluate.max_queries", eval_max_queries),
    ):  # fmt: skip
        if value is not None:
            _nest(overrides, dotted, value)
    if es_url is not None:
        _nest(overrides, "mine.backend", "elasticsearch")
    if demonstrations is not None:
        _nest(overrides, "generate.demonstrations", demonstrations)
        _nest(overrides, "generate.query_types", ["demonstrated"])
    if label is not None:
        _nest(overrides, "label.enabled", label)
    config = load_run_config(config_file, overrides)
    if print_config:
        _check_corpus(config.get("corpus"))
        click.echo(f"# output dir: {output_dir if output_dir is not None else '(none given: pass --output-dir to run)'}")
        click.echo(yaml.safe_dump(config, sort_keys=False))
        return
    if output_dir is None:
        raise click.UsageError("Missing option '--output-dir': every artifact of the run goes there")
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()) and not (out / ".steps").is_dir():
        raise click.UsageError(f"{out} is not empty and holds no synthrank run; choose another --output-dir")
    try:
        with stop_cleanly_on_signals(hold_after_stop=True):  # the command exits right after a stop
            results = run_pipeline(config, out, until=until, force=force, show_progress=progress)
    except Interrupted as stop:
        # one line, no traceback: the LLM server, its log and the open files were closed on the way out
        click.echo(f"Interrupted by {signal.Signals(stop.signum).name}: stopped cleanly; rerun the same command "
                   f"to resume {out} (answered LLM calls are cached)", err=True)
        sys.exit(128 + stop.signum)
    for r in results:
        click.echo(f"{r.name:9s} {r.status:8s} {r.seconds:8.1f}s")
    text = out / "evaluation.txt"
    if text.exists() and any(r.name == "evaluate" for r in results):
        click.echo(text.read_text(encoding="utf-8").rstrip())
    click.echo(f"report: {out / 'report.md'}")
