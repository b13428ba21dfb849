"""`synthrank mine`: BM25 candidates for each synthetic query -> hard negatives -> training groups."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from synthrank.config_fields import field_defaults
from synthrank.mine.miner import MiningConfig
from synthrank_cli.options import friendly_errors, load_config, merge_config, prepare_output_dir

OUTPUTS = ("candidates.jsonl", "groups.jsonl", "mine_config.json", "mine_stats.json")
_D = field_defaults(MiningConfig)  # every default below that MiningConfig has is its field's
_OPTION = {"exclude_near_duplicates": "dedup"}  # MiningConfig fields whose option has another name


@click.command()
@click.option("--corpus", required=True, help="BEIR folder, corpus JSONL/TSV file, or irds:<id> (what the queries were written from).")
@click.option("--queries", "queries_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Synthetic queries JSONL (query_id, query, source_doc_id) from `synthrank generate`.")
@click.option("--output-dir", required=True, type=click.Path(file_okay=False),
              help="Writes candidates.jsonl, groups.jsonl, mine_config.json, mine_stats.json.")
@click.option("--config", "config_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="YAML with any of these options (flags win).")
@click.option("--positives", "positives_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Known positives, never mined as negatives: qrels TSV, or judge labels JSONL (query_id, doc_id, grade).")
@click.option("--positive-grade", default=1, show_default=True, type=int, help="Grade from which --positives count.")
@click.option("--backend", default="memory", show_default=True, type=click.Choice(["memory", "elasticsearch"]),
              help="BM25 backend: in-memory (bm25s) or an Elasticsearch cluster.")
@click.option("--index-dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="A saved in-memory index (`synthrank index`) to load instead of indexing the corpus.")
@click.option("--k1", default=0.9, show_default=True, type=float, help="BM25 k1 (both backends).")
@click.option("--b", default=0.4, show_default=True, type=float, help="BM25 b (both backends).")
@click.option("--stemmer", default="english", show_default=True, help="Snowball stemmer language, or 'none'.")
@click.option("--stopwords", default="en", show_default=True, help="'en' (Lucene's English list) or 'none'.")
@click.option("--es-url", default=None, help="Elasticsearch URL [default: $ELASTICSEARCH_URL or http://localhost:9200].")
@click.option("--es-index", default=None, help="Elasticsearch index name [default: synthrank-<corpus name>].")
@click.option("--es-reuse-index", is_flag=True,
              help="Keep an existing index built with the same analyser/BM25 and size instead of re-indexing.")
@click.option("--es-api-key-env", default="ELASTICSEARCH_API_KEY", show_default=True,
              help="Environment variable holding an API key (never logged or saved).")
@click.option("--es-username", default=None, help="Basic-auth user [default: $ELASTICSEARCH_USERNAME].")
@click.option("--es-password-env", default="ELASTICSEARCH_PASSWORD", show_default=True,
              help="Environment variable holding the basic-auth password.")
@click.option("--es-ca-certs", default=None, type=click.Path(exists=True, dir_okay=False), help="CA bundle for TLS.")
@click.option("--es-verify-certs/--es-no-verify-certs", default=True, show_default=True, help="Verify TLS certificates.")
@click.option("--es-shards", default=1, show_default=True, type=click.IntRange(1),
              help="Primary shards of a new index (more than one searches with dfs_query_then_fetch).")
@click.option("--top-k", default=_D["top_k"], show_default=True, type=click.IntRange(1), help="BM25 candidates per query.")
@click.option("--num-negatives", default=_D["num_negatives"], show_default=True, type=click.IntRange(1), help="Negatives kept per group.")
@click.option("--range-min", default=_D["range_min"], show_default=True, type=click.IntRange(0),
              help="Valid candidates skipped at the top (likeliest unlabelled positives).")
@click.option("--range-max", default=None, type=click.IntRange(1), help="Consider valid candidates up to this position.")
@click.option("--margin", default=None, type=float,
              help="Relative margin: drop candidates scoring above s_pos - |s_pos| * margin (s_pos: positive's BM25).")
@click.option("--absolute-margin", default=None, type=float, help="Drop candidates scoring above s_pos - margin.")
@click.option("--max-score", default=None, type=float, help="Drop candidates scoring above this.")
@click.option("--min-score", default=None, type=float, help="Drop candidates scoring below this.")
@click.option("--sampling", default=_D["sampling"], show_default=True, type=click.Choice(["top", "random"]),
              help="Take the top of the window, or sample it at random (seeded per query).")
@click.option("--dedup/--no-dedup", default=_D["exclude_near_duplicates"], show_default=True,
              help="Exclude near-duplicates (normalised text) of positives and repeated negatives.")
@click.option("--min-negatives", default=_D["min_negatives"], show_default=True, type=click.IntRange(0),
              help="Queries with fewer negatives get no group.")
@click.option("--seed", default=_D["seed"], show_default=True, type=int, help="Seed of --sampling random.")
@click.option("--denoise-model", default=None,
              help="A second model (e.g. minilm, the zero-shot bi-encoder) that vetoes candidates it scores above a positive.")
@click.option("--denoise-margin", default=_D["denoise_margin"], show_default=True, type=float,
              help="With --denoise-model: drop candidates it scores above d_pos - margin.")
@click.option("--batch-size", default=_D["batch_size"], show_default=True, type=click.IntRange(1),
              help="Queries retrieved and written per step.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty output folder (resumes what is there).")
@click.option("--restart", is_flag=True, help="Discard mining results already in the output folder and start over.")
@click.pass_context
@friendly_errors
def mine(ctx: click.Context, output_dir: str, config_file: str | None, overwrite: bool, restart: bool,
         **options: Any) -> None:
    """Mine BM25 hard negatives for synthetic queries and write training groups.

    Writes incrementally; rerunning with --overwrite resumes where a stopped run ended.
    """
    from synthrank.runner.output_dir import removed_if_no_work

    # a failure before any mining (a bad corpus or queries file) leaves no new folder behind
    with removed_if_no_work(Path(output_dir), bookkeeping=["mine_config.json"]):
        _mine(ctx, output_dir, config_file, overwrite, restart, **options)


def _mine(ctx: click.Context, output_dir: str, config_file: str | None, overwrite: bool, restart: bool,
          **options: Any) -> None:
    from synthrank.data import load_dataset, write_json
    from synthrank.mine import HardNegativeMiner, read_mining_queries, read_positives

    v = merge_config(ctx, load_config(config_file), **options)
    out = prepare_output_dir(output_dir, overwrite=overwrite or restart)
    try:
        config = MiningConfig.from_dict({name: v[_OPTION.get(name, name)] for name in _D})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None

    dataset = load_dataset(v["corpus"])
    queries = read_mining_queries(v["queries_file"], corpus=dataset.corpus)
    positives = read_positives(v["positives_file"], min_grade=v["positive_grade"]) if v["positives_file"] else None
    retriever = _make_retriever(v, dataset.name)
    settings = {
        "corpus": str(v["corpus"]),
        "queries": str(v["queries_file"]),
        "positives": v["positives_file"],
        "positive_grade": v["positive_grade"],
        "backend": v["backend"],
        "retriever": _describe(retriever),
        "mining": config.to_dict(),
        "denoise_model": v["denoise_model"],
    }
    _check_resume(out, settings, restart=restart)
    write_json(out / "mine_config.json", settings)

    if v["index_dir"] is None or v["backend"] != "memory":
        retriever.index(list(dataset.corpus.values()), show_progress=v["progress"])
    elif len(retriever) != len(dataset.corpus):
        raise click.UsageError(f"--index-dir holds {len(retriever)} documents but the corpus has {len(dataset.corpus)}")
    try:
        denoiser = None
        if v["denoise_model"]:
            from synthrank.rerank import load_scorer

            denoiser = load_scorer(v["denoise_model"])
        miner = HardNegativeMiner(retriever, dataset.corpus, config, positives=positives, denoiser=denoiser)
        summary = miner.mine_to_files(
            queries, out / "candidates.jsonl", out / "groups.jsonl", show_progress=v["progress"]
        )
    finally:
        close = getattr(retriever, "close", None)
        if close is not None:
            close()
    summary["backend"] = v["backend"]
    write_json(out / "mine_stats.json", summary)
    click.echo(
        f"mined {summary['queries_mined']} queries ({summary['queries_resumed']} resumed) with {v['backend']} BM25: "
        f"{summary['groups_total']} groups, {summary['mean_negatives']:.1f} negatives per query -> {out}"
    )


def _make_retriever(v: dict[str, Any], corpus_name: str) -> Any:
    from synthrank.retrieve import Analyzer, InMemoryBM25

    analyzer = Analyzer(
        stemmer=None if v["stemmer"] == "none" else v["stemmer"],
        stopwords=None if v["stopwords"] == "none" else v["stopwords"],
    )
    if v["backend"] == "memory":
        if v["index_dir"]:
            return InMemoryBM25.load(v["index_dir"])
        return InMemoryBM25(k1=v["k1"], b=v["b"], analyzer=analyzer)
    from synthrank.retrieve.elasticsearch_backend import ElasticsearchBM25

    return ElasticsearchBM25(
        hosts=v["es_url"],
        index_name=v["es_index"] or f"synthrank-{corpus_name}".lower(),
        k1=v["k1"],
        b=v["b"],
        analyzer=analyzer,
        api_key=os.environ.get(v["es_api_key_env"]) if v["es_api_key_env"] else None,
        username=v["es_username"],
        password=os.environ.get(v["es_password_env"]) if v["es_password_env"] else None,
        ca_certs=v["es_ca_certs"],
        verify_certs=None if v["es_verify_certs"] else False,
        reuse_index=v["es_reuse_index"],
        shards=v["es_shards"],
    )


def _describe(retriever: Any) -> dict[str, Any]:
    to_dict = getattr(retriever, "to_dict", None)
    if to_dict is not None:
        return dict(to_dict())
    return {"type": type(retriever).__name__, "k1": retriever.k1, "b": retriever.b,
            "analyzer": retriever.analyzer.to_dict()}


def _check_resume(out: Path, settings: dict[str, Any], *, restart: bool) -> None:
    """Resume only a run with the same settings; --restart discards what is there."""
    if restart:
        for name in OUTPUTS:
            (out / name).unlink(missing_ok=True)
        return
    previous_path = out / "mine_config.json"
    if not previous_path.exists():
        if (out / "candidates.jsonl").exists() or (out / "groups.jsonl").exists():
            raise click.UsageError(f"{out} holds mining results without mine_config.json; pass --restart to start over")
        return
    previous = json.loads(previous_path.read_text(encoding="utf-8"))
    keys = ("corpus", "queries", "positives", "positive_grade", "backend", "retriever", "mining")

    def comparable(value: Any) -> str:
        if isinstance(value, dict):
            value = {k: x for k, x in value.items() if k != "batch_size"}  # batching does not change results
        return json.dumps(value, sort_keys=True)

    changed = [k for k in keys if comparable(previous.get(k)) != comparable(settings[k])]
    if changed:
        raise click.UsageError(
            f"{out} holds a mining run with other settings ({', '.join(changed)}); "
            "pass --restart to start over, or use another --output-dir"
        )
