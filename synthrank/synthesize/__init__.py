"""Synthetic query generation: passage sampling, LIMRANK-style query types and personas, filters."""

from __future__ import annotations

from synthrank.synthesize.demonstrations import Demonstration, read_demonstrations
from synthrank.synthesize.filters import (
    FILTER_ORDER,
    Candidate,
    CopyFilter,
    DedupFilter,
    LengthFilter,
    RoundTripFilter,
    build_filters,
    normalize,
)
from synthrank.synthesize.generator import GenerationConfig, GenerationReport, QueryGenerator, generate_queries
from synthrank.synthesize.prompts import PROMPT_VERSION, QUERY_TYPES, PersonaSet, generation_messages
from synthrank.synthesize.sampling import STRATEGIES, read_doc_meta, read_excluded_ids, sample_passages

__all__ = [
    "FILTER_ORDER",
    "PROMPT_VERSION",
    "QUERY_TYPES",
    "STRATEGIES",
    "Candidate",
    "CopyFilter",
    "DedupFilter",
    "Demonstration",
    "GenerationConfig",
    "GenerationReport",
    "LengthFilter",
    "PersonaSet",
    "QueryGenerator",
    "RoundTripFilter",
    "build_filters",
    "generate_queries",
    "generation_messages",
    "normalize",
    "read_demonstrations",
    "read_doc_meta",
    "read_excluded_ids",
    "sample_passages",
]
