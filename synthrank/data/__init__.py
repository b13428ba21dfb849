"""Corpus, queries and qrels: readers, writers and the records that flow between stages."""

from __future__ import annotations

from synthrank.data.groups import Passage, TrainingGroup, iter_groups, read_groups, write_groups
from synthrank.data.jsonl import (
    ResumableJsonlWriter,
    atomic_write,
    iter_jsonl,
    read_jsonl,
    write_json,
    write_jsonl,
)
from synthrank.data.readers import load_dataset, load_ir_dataset, read_corpus, read_qrels, read_queries
from synthrank.data.records import Dataset, Document, Qrels, Query
from synthrank.data.splits import split_dev, subsample_queries

__all__ = [
    "Dataset",
    "Document",
    "Passage",
    "Qrels",
    "Query",
    "ResumableJsonlWriter",
    "TrainingGroup",
    "atomic_write",
    "iter_groups",
    "iter_jsonl",
    "load_dataset",
    "load_ir_dataset",
    "read_corpus",
    "read_groups",
    "read_jsonl",
    "read_qrels",
    "read_queries",
    "split_dev",
    "subsample_queries",
    "write_groups",
    "write_json",
    "write_jsonl",
]
