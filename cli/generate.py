"""`synthrank generate`: write synthetic queries for sampled corpus passages with an LLM.

Also holds the LLM options shared with `synthrank label` (`llm_options`, `make_llm_config`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from synthrank.config_fields import field_defaults
from synthrank.llm.config import llm_option_defaults
from synthrank.synthesize.generator import GenerationConfig
from synthrank_cli.options import friendly_errors, load_config, merge_config, prepare_output_dir

F = TypeVar("F", bound=Callable[..., Any])

_D = field_defaults(GenerationConfig)  # every default below that GenerationConfig has is its field's

LLM_OPTION_NAMES = (
    "model", "base_url", "api_key_env", "concurrency", "timeout", "max_retries", "cache", "no_cache",
    "price_table", "n_ctx", "n_threads",
)  # fmt: skip


def llm_options(func: F) -> F:
    """The endpoint/model/limits options every LLM-backed command takes (defaults: the LLM config dataclasses')."""
    llm = llm_option_defaults()
    options = [
        click.option(
            "--model",
            default=llm["model"],
            show_default=True,
            help="Model served by --base-url; without it, a GGUF for the local llama.cpp server: a packaged "
            "name (see `synthrank models list`), a .gguf path, or org/repo:file.gguf.",
        ),
        click.option(
            "--base-url",
            default=None,
            help="OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp, Ollama). Default: run --model locally.",
        ),
        click.option(
            "--api-key-env",
            default=llm["api_key_env"],
            show_default=True,
            help="Name of the environment variable holding the API key (the key is never logged or saved).",
        ),
        click.option("--concurrency", default=None, type=int, help="Requests in flight (default 2 local, 8 remote)."),
        click.option("--timeout", default=llm["timeout"], show_default=True, type=float, help="Seconds per call."),
        click.option(
            "--max-retries",
            default=llm["max_retries"],
            show_default=True,
            type=int,
            help="Retries on 429/5xx/timeouts, with exponential backoff (Retry-After honoured).",
        ),
        click.option(
            "--cache",
            default=None,
            type=click.Path(dir_okay=False),
            help="SQLite response cache shared by runs [default: $SYNTHRANK_CACHE/llm-cache.sqlite or "
            "~/.cache/synthrank/llm-cache.sqlite].",
        ),
        click.option("--no-cache", is_flag=True, help="Do not read or write the response cache."),
        click.option(
            "--price-table",
            default=None,
            type=click.Path(exists=True, dir_okay=False),
            help="JSON/YAML: model -> {prompt, completion} USD per 1M tokens (for the cost report).",
        ),
        click.option("--n-ctx", default=llm["n_ctx"], show_default=True, type=int, help="Context size of the local model."),
        click.option("--n-threads", default=None, type=int, help="CPU threads of the local model (default: all)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def make_llm_config(values: dict[str, Any]) -> Any:
    """An :class:`~synthrank.llm.config.LLMConfig` from the merged option values."""
    from synthrank.llm.config import llm_config_from_options

    return llm_config_from_options(values)


def _split(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split(",") if v.strip()]


@click.command()
@click.option("--corpus", required=True, help="BEIR folder, corpus JSONL/TSV file, or irds:<id>.")
@click.option(
    "--output-dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Writes queries.jsonl, rejected.jsonl, generate_stats.json, generate_config.json.",
)
@click.option(
    "--config",
    "config_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="YAML with any of these options (flags win).",
)
@click.option(
    "--query-types",
    default=",".join(_D["query_types"]),
    show_default=True,
    help="Comma-separated query types: LIMRANK's five, and realistic (users' own register: a first-person message, "
    "a terse fragment, a claim to check, or an everyday description; one style drawn per passage).",
)
@click.option("--n-per-type", default=_D["n_per_type"], show_default=True, type=int, help="Queries per passage and type.")
@click.option(
    "--types-per-passage",
    default=None,
    type=int,
    help="Ask each passage for only this many of the types (seeded rotation): fewer calls, same diversity.",
)
@click.option(
    "--search-task",
    default=None,
    help="One sentence on who searches this corpus and for what (e.g. 'scientists checking whether a claim is "
    "supported by a research abstract'): every query is written as they would.",
)
@click.option("--personas-per-passage", default=_D["personas_per_passage"], show_default=True, type=int)
@click.option(
    "--personas",
    "personas_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="Extra personas: YAML {daily_life: [...], expert: [...]} or one per line ('expert: ' prefix).",
)
@click.option("--temperature", default=_D["temperature"], show_default=True, type=float)
@click.option("--max-tokens", default=_D["max_tokens"], show_default=True, type=int, help="Answer tokens per call.")
@click.option("--max-passage-chars", default=_D["max_passage_chars"], show_default=True, type=int)
@click.option("--json-mode", is_flag=True, help="Ask for response_format=json_object (slower on llama.cpp).")
@click.option(
    "--sample",
    "strategy",
    default="random",
    show_default=True,
    type=click.Choice(["random", "stratified", "length"]),
    help="Passage sampling strategy.",
)
@click.option("--stratify-field", default=None, help="Metadata field for --sample stratified.")
@click.option(
    "--doc-meta",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="TSV of document metadata (header; first column the doc id), e.g. medquad/doc_meta.tsv.gz.",
)
@click.option(
    "--exclude-ids",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="File of document ids (one per line, '#' comments) never given to the LLM, e.g. every passage relevant "
    "to an evaluation question (the run config's generate.exclude_ids).",
)
@click.option("--length-bins", default=4, show_default=True, type=int)
@click.option("--min-chars", default=50, show_default=True, type=int, help="Skip passages shorter than this.")
@click.option("--max-chars", default=None, type=int, help="Skip passages longer than this.")
@click.option("--seed", default=_D["seed"], show_default=True, type=int)
@click.option("--max-passages", default=100, show_default=True, type=int, help="Budget: passages to sample (0: all).")
@click.option("--max-queries", default=None, type=int, help="Budget: stop after this many kept queries.")
@click.option("--max-tokens-total", default=None, type=int, help="Budget: stop after this many LLM tokens.")
@click.option("--dedup/--no-dedup", default=True, show_default=True, help="Drop duplicate queries (normalised).")
@click.option("--min-words", default=2, show_default=True, type=int, help="Length filter (0 disables).")
@click.option("--max-words", default=40, show_default=True, type=int, help="Length filter (0 disables).")
@click.option(
    "--max-copy-ratio",
    default=0.75,
    show_default=True,
    type=float,
    help="Copy filter: drop queries whose longest verbatim run from the passage covers this share (0 disables).",
)
@click.option(
    "--roundtrip-k",
    default=20,
    show_default=True,
    type=int,
    help="Round-trip filter: source must be in BM25's top-k (0 disables).",
)
@click.option("--roundtrip-judge", is_flag=True, help="Give round-trip failures a second chance with the LLM judge.")
@click.option("--batch-size", default=_D["batch_size"], show_default=True, type=int, help="Passages whose calls are sent together.")
@llm_options
@click.option("--overwrite", is_flag=True, help="Write into a non-empty output folder (resumes what is there).")
@click.pass_context
@friendly_errors
def generate(
    ctx: click.Context, corpus: str, output_dir: str, config_file: str | None, overwrite: bool, **options: Any
) -> None:
    """Write synthetic queries (LIMRANK-style types and personas) for sampled passages, filtered and with provenance.

    Reruns resume: finished passages are skipped, and the response cache answers what was asked before.
    """
    from synthrank.data import load_dataset, write_json
    from synthrank.llm import LLMClient
    from synthrank.synthesize import (
        GenerationConfig,
        PersonaSet,
        QueryGenerator,
        build_filters,
        read_doc_meta,
        read_excluded_ids,
        sample_passages,
    )

    v = merge_config(ctx, load_config(config_file), **options)
    dataset = load_dataset(corpus)
    excluded = read_excluded_ids(v["exclude_ids"], dataset.corpus)  # a bad id fails before any folder is made
    out = prepare_output_dir(output_dir, overwrite=overwrite)
    doc_meta = read_doc_meta(v["doc_meta"]) if v["doc_meta"] else None
    passages = sample_passages(
        [doc for doc_id, doc in dataset.corpus.items() if doc_id not in excluded],
        v["max_passages"] or None,
        strategy=v["strategy"],
        seed=v["seed"],
        field=v["stratify_field"],
        doc_meta=doc_meta,
        length_bins=v["length_bins"],
        min_chars=v["min_chars"],
        max_chars=v["max_chars"],
    )
    gen_config = GenerationConfig.from_options({**v, "query_types": _split(v["query_types"])})
    personas = PersonaSet.from_file(v["personas_file"]) if v["personas_file"] else PersonaSet.default()
    llm_config = make_llm_config(v)
    write_json(
        out / "generate_config.json",
        {
            "corpus": corpus,
            "passages": len(passages),
            "generation": gen_config.to_dict(),
            "llm": llm_config.to_dict(),
            "options": {k: v[k] for k in sorted(v)},
        },
    )
    retriever = None
    if v["roundtrip_k"]:
        from synthrank.retrieve import InMemoryBM25

        retriever = InMemoryBM25()
        retriever.index(dataset.corpus.values())
    with LLMClient(llm_config) as client:
        judge = None
        if v["roundtrip_judge"] and retriever is not None:
            from synthrank.label import LLMJudge

            judge = LLMJudge(client, mode="binary")  # one token: the cheap second chance
        filters = build_filters(
            dedup=v["dedup"],
            min_words=v["min_words"] or None,
            max_words=v["max_words"] or None,
            max_copy_ratio=v["max_copy_ratio"] or None,
            roundtrip_retriever=retriever,
            roundtrip_k=v["roundtrip_k"] or 20,
            roundtrip_judge=judge,
        )
        generator = QueryGenerator(client, gen_config, personas=personas, filters=filters)
        report = generator.generate(passages, out / "queries.jsonl", show_progress=True)
    stats = report.to_dict()
    write_json(out / "generate_stats.json", stats)
    survival = ", ".join(f"{k} {v:.0%}" for k, v in stats["survival"].items())
    click.echo(
        f"{report.kept} queries kept of {report.generated} generated for {report.passages} passages "
        f"({survival or 'no filters'}); {report.usage['calls']} LLM calls, {report.usage['cache_hits']} cache hits, "
        f"{report.slots_failed} failed calls (rerun to retry) -> {out / 'queries.jsonl'}"
    )
