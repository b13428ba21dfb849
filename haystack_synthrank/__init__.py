"""synthrank for Haystack 3.x: the synthrank ranker, the synthetic-data stages and the trainer as components.

Importing this package registers it as trusted for pipeline deserialisation, so
``Pipeline.loads(yaml)`` accepts its components. Without the import, Haystack refuses the module
before importing it (its guard against YAML that imports arbitrary code, so a component path alone
cannot register it): pass ``Pipeline.loads(yaml, allowed_modules=["haystack_synthrank"])`` or set
``HAYSTACK_DESERIALIZATION_ALLOWLIST=haystack_synthrank``.

Example:
    >>> from haystack import Pipeline
    >>> from haystack_synthrank import SynthRankRanker
    >>> pipe = Pipeline()
    >>> pipe.add_component("ranker", SynthRankRanker(model="runs/medquad/model"))
"""

from __future__ import annotations

from haystack.core.serialization import allow_deserialization_module

from haystack_synthrank.chat_client import ChatGeneratorClient
from haystack_synthrank.hard_negative_miner import HardNegativeMiner
from haystack_synthrank.lce_trainer import LCETrainer
from haystack_synthrank.llm_relevance_labeler import LLMRelevanceLabeler
from haystack_synthrank.synth_rank_ranker import SynthRankRanker
from haystack_synthrank.synthetic_query_generator import SyntheticQueryGenerator

allow_deserialization_module("haystack_synthrank")

__all__ = [
    "ChatGeneratorClient",
    "HardNegativeMiner",
    "LCETrainer",
    "LLMRelevanceLabeler",
    "SynthRankRanker",
    "SyntheticQueryGenerator",
]
