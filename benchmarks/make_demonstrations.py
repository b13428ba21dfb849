"""A demonstrations file (``generate.demonstrations``) from a corpus's judged queries of one split.

The ``demonstrated`` query type needs a few of the user's own (query, passage) pairs. On a benchmark corpus they
come from a split the evaluation never reads (BEIR SciFact's ``train`` claims, disjoint from its ``test`` claims):
a seeded draw of ``--passages`` passages that some query of the split judges relevant, each with up to
``--queries-per-passage`` of those queries, written as ``{"query", "doc_id"}`` lines. Where the evaluation reads a
sample of the same split (MedQuAD: ``test_sample1000`` of ``test``), ``--exclude-split`` keeps out its queries and
every passage they judge relevant.

    .venv/bin/python benchmarks/make_demonstrations.py --corpus ../shared/data/beir-scifact --split train \\
        --output runs/demonstrations/beir-scifact-train.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def demonstration_lines(
    corpus_dir: Path, split: str, passages: int, per_passage: int, seed: int, exclude_split: str | None = None
) -> list[dict[str, str]]:
    """``{"query", "doc_id"}`` records: ``passages`` seeded passages judged relevant by the split's queries, none
    of ``exclude_split``'s queries or of the passages they judge relevant."""
    from synthrank.data import load_dataset

    dataset = load_dataset(corpus_dir, split=split)
    held_queries: set[str] = set()
    held_docs: set[str] = set()
    if exclude_split:
        held = load_dataset(corpus_dir, split=exclude_split).qrels
        held_queries = set(held)
        held_docs = {d for rels in held.values() for d, g in rels.items() if g > 0}
    by_doc: dict[str, list[str]] = {}
    for qid in sorted(dataset.qrels):
        if qid not in dataset.queries or qid in held_queries:
            continue
        for doc_id, grade in sorted(dataset.qrels[qid].items()):
            if grade > 0 and doc_id in dataset.corpus and doc_id not in held_docs:
                by_doc.setdefault(doc_id, []).append(qid)
    if len(by_doc) < passages:
        raise SystemExit(f"{corpus_dir} split {split!r} judges only {len(by_doc)} passages relevant")
    picked = random.Random(seed).sample(sorted(by_doc), passages)
    return [
        {"query": dataset.queries[qid].text, "doc_id": doc_id}
        for doc_id in picked
        for qid in by_doc[doc_id][:per_passage]
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True, help="a corpus folder with queries and qrels")
    parser.add_argument("--split", default="train", help="the qrels split to draw from (never the evaluation's)")
    parser.add_argument("--exclude-split", default=None, help="a split the evaluation reads: none of its queries, "
                        "and none of the passages they judge relevant, is drawn")  # fmt: skip
    parser.add_argument("--passages", type=int, default=3)
    parser.add_argument("--queries-per-passage", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sys.path.insert(0, str(REPO))
    lines = demonstration_lines(args.corpus, args.split, args.passages, args.queries_per_passage, args.seed,
                                args.exclude_split)  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    logging.getLogger("demonstrations").info("%d queries on %d passages -> %s", len(lines),
                                             len({line["doc_id"] for line in lines}), args.output)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
