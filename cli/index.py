"""`synthrank index`: build the in-memory BM25 index once and save it for later steps."""

from __future__ import annotations

import click

from synthrank_cli.options import friendly_errors, prepare_output_dir


@click.command()
@click.option("--corpus", required=True, help="BEIR folder, corpus JSONL/TSV file, or irds:<id>.")
@click.option("--output-dir", required=True, type=click.Path(file_okay=False), help="Folder for the saved index.")
@click.option("--k1", default=0.9, show_default=True, type=float)
@click.option("--b", default=0.4, show_default=True, type=float)
@click.option("--stemmer", default="english", show_default=True, help="Snowball stemmer language, or 'none'.")
@click.option("--stopwords", default="en", show_default=True, help="'en' (Lucene's English list) or 'none'.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty output folder.")
@friendly_errors
def index(corpus: str, output_dir: str, k1: float, b: float, stemmer: str, stopwords: str, overwrite: bool) -> None:
    """Index a corpus (title + text) with BM25 and save it."""
    from synthrank.data import load_dataset
    from synthrank.retrieve import Analyzer, InMemoryBM25

    out = prepare_output_dir(output_dir, overwrite=overwrite)
    dataset = load_dataset(corpus)
    analyzer = Analyzer(stemmer=None if stemmer == "none" else stemmer, stopwords=None if stopwords == "none" else stopwords)
    bm25 = InMemoryBM25(k1=k1, b=b, analyzer=analyzer)
    bm25.index(dataset.corpus.values(), show_progress=True)
    bm25.save(out)
    click.echo(f"indexed {len(bm25)} documents into {out}")
