"""Hard-negative mining: BM25 candidates per query -> hard negatives -> training groups.

Example:
    >>> from synthrank.mine import MiningConfig, mine_hard_negatives, read_mining_queries
    >>> queries = read_mining_queries("out/queries.jsonl", corpus=corpus)
    >>> groups = mine_hard_negatives(queries, corpus, config=MiningConfig(num_negatives=8, range_min=2))
"""

from __future__ import annotations

from synthrank.mine.dedup import TextHashes, duplicate_groups, normalize_text, text_hash
from synthrank.mine.inputs import MiningQuery, read_mining_queries, read_positives
from synthrank.mine.miner import HardNegativeMiner, MinedQuery, MiningConfig, SamplingStrategy, mine_hard_negatives

__all__ = [
    "HardNegativeMiner",
    "MinedQuery",
    "MiningConfig",
    "MiningQuery",
    "SamplingStrategy",
    "TextHashes",
    "duplicate_groups",
    "mine_hard_negatives",
    "normalize_text",
    "read_mining_queries",
    "read_positives",
    "text_hash",
]
