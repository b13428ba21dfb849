"""Runs as files: TREC run format in and out, and conversion from retriever hits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from synthrank.data.jsonl import atomic_write, open_text
from synthrank.errors import DataError
from synthrank.evaluate.metrics import Run
from synthrank.retrieve.base import Hit


def hits_to_run(query_ids: Sequence[str], hits: Sequence[Sequence[Hit]]) -> Run:
    return {qid: {h.doc_id: h.score for h in qhits} for qid, qhits in zip(query_ids, hits, strict=True)}


def write_trec_run(path: str | Path, run: Mapping[str, Mapping[str, float]], tag: str = "synthrank") -> None:
    with atomic_write(path) as fh:
        for qid, docs in run.items():
            ranked = sorted(docs.items(), key=lambda kv: (-kv[1], kv[0]))
            for rank, (did, score) in enumerate(ranked, start=1):
                fh.write(f"{qid} Q0 {did} {rank} {score:.6f} {tag}\n")


def read_trec_run(path: str | Path) -> Run:
    run: Run = {}
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            cols = line.split()
            if len(cols) != 6:
                raise DataError(f"expected 6 columns (qid Q0 docid rank score tag), got {len(cols)}", path=path, line=lineno)
            try:
                score = float(cols[4])
            except ValueError:
                raise DataError(f"score {cols[4]!r} is not a number", path=path, line=lineno, field="score") from None
            run.setdefault(cols[0], {})[cols[2]] = score
    return run
