"""`HardNegativeMiner`: synthetic queries with positives -> LCE training groups, over a Haystack BM25 retriever."""

from __future__ import annotations

import copy
import logging
from typing import Any

from haystack import component, default_from_dict, default_to_dict
from haystack.core.serialization import component_to_dict
from haystack.utils import deserialize_component_inplace

from haystack_synthrank.store_corpus import RetrieverAdapter, StoreCorpus, document_store_of
from synthrank.errors import DataError
from synthrank.mine import HardNegativeMiner as CoreMiner
from synthrank.mine import MiningConfig, MiningQuery

logger = logging.getLogger(__name__)


@component
class HardNegativeMiner:
    """Mines BM25 hard negatives for synthetic queries and returns training groups, with the core miner.

    The candidates come from the Haystack retriever given to it (``InMemoryBM25Retriever``,
    ``ElasticsearchBM25Retriever``, or any retriever with ``run(query, top_k)`` and a
    ``document_store``); exclusions, the rank window and sampling are the core
    :class:`synthrank.mine.HardNegativeMiner`'s, with the same option names and meanings
    (see :class:`synthrank.mine.MiningConfig`).

    Inputs are query records as :class:`SyntheticQueryGenerator` writes them
    (``query_id``, ``query``, ``source_doc_id``); outputs are training groups
    (``synthrank.data.groups`` JSON) and the candidates of each query.

    Usage example:

    ```python
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
    from haystack_synthrank import HardNegativeMiner

    miner = HardNegativeMiner(retriever=InMemoryBM25Retriever(document_store=store), num_negatives=8, range_min=2)
    groups = miner.run(queries=[{"query_id": "s1", "query": "what damages the optic nerve",
                                 "source_doc_id": "d1"}])["groups"]
    ```
    """

    def __init__(
        self,
        *,
        retriever: Any,
        top_k: int = 100,
        num_negatives: int = 16,
        range_min: int = 0,
        range_max: int | None = None,
        margin: float | None = None,
        absolute_margin: float | None = None,
        sampling: str = "top",
        exclude_near_duplicates: bool = True,
        min_negatives: int = 1,
        seed: int = 42,
        title_meta_field: str | None = "title",
        filters: dict[str, Any] | None = None,
    ) -> None:
        """
        Create the miner.

        :param retriever: a Haystack BM25 retriever component over the corpus the queries were written from.
        :param top_k: BM25 depth per query.
        :param num_negatives: negatives kept per query (the trainer samples its group from them).
        :param range_min: valid candidates skipped at the top (likely unlabelled positives).
        :param range_max: consider candidates only up to this position.
        :param margin: relative margin below the positive's BM25 score (sentence-transformers' ``relative_margin``).
        :param absolute_margin: absolute margin below the positive's BM25 score.
        :param sampling: ``"top"`` or ``"random"`` (seeded) within the window.
        :param exclude_near_duplicates: never take a near-duplicate of a positive as a negative.
        :param min_negatives: queries with fewer negatives produce no group.
        :param seed: seed of the random sampling.
        :param title_meta_field: meta field holding a document's title (the core's texts are ``title + text``).
        :param filters: filters passed to the retriever on every query.
        :raises ValueError: on inconsistent mining options (from the core's ``MiningConfig``).
        """
        self.retriever = retriever
        self.top_k = top_k
        self.num_negatives = num_negatives
        self.range_min = range_min
        self.range_max = range_max
        self.margin = margin
        self.absolute_margin = absolute_margin
        self.sampling = sampling
        self.exclude_near_duplicates = exclude_near_duplicates
        self.min_negatives = min_negatives
        self.seed = seed
        self.title_meta_field = title_meta_field
        self.filters = filters
        self.config = MiningConfig(
            top_k=top_k,
            num_negatives=num_negatives,
            range_min=range_min,
            range_max=range_max,
            margin=margin,
            absolute_margin=absolute_margin,
            sampling=sampling,  # type: ignore[arg-type]
            exclude_near_duplicates=exclude_near_duplicates,
            min_negatives=min_negatives,
            seed=seed,
        )
        document_store_of(retriever)  # fail early on a retriever without a store

    def warm_up(self) -> None:
        if hasattr(self.retriever, "warm_up"):
            self.retriever.warm_up()

    def close(self) -> None:
        if hasattr(self.retriever, "close"):
            self.retriever.close()

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            retriever=component_to_dict(obj=self.retriever, name="retriever"),
            top_k=self.top_k,
            num_negatives=self.num_negatives,
            range_min=self.range_min,
            range_max=self.range_max,
            margin=self.margin,
            absolute_margin=self.absolute_margin,
            sampling=self.sampling,
            exclude_near_duplicates=self.exclude_near_duplicates,
            min_negatives=self.min_negatives,
            seed=self.seed,
            title_meta_field=self.title_meta_field,
            filters=self.filters,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HardNegativeMiner:
        data = copy.deepcopy(data)
        deserialize_component_inplace(data["init_parameters"], key="retriever")
        return default_from_dict(cls, data)

    @component.output_types(groups=list[dict[str, Any]], candidates=list[dict[str, Any]])
    def run(
        self, queries: list[dict[str, Any]], positives: dict[str, list[str]] | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """
        Mine hard negatives for each query.

        :param queries: records with ``query_id``, ``query`` and ``source_doc_id`` (the passage it was written from).
        :param positives: further known positives per query id (e.g. judged relevant); never mined as negatives.
        :returns: ``groups``: one training group per (query, positive); ``candidates``: every query's BM25 hits.
        :raises DataError: on a query record without an id or text (naming its position).
        """
        mining_queries = [_mining_query(record, i) for i, record in enumerate(queries)]
        if not mining_queries:
            return {"groups": [], "candidates": []}
        corpus = StoreCorpus(document_store_of(self.retriever), title_meta_field=self.title_meta_field)
        corpus.fetch([q.source_doc_id for q in mining_queries if q.source_doc_id is not None])
        retriever = RetrieverAdapter(self.retriever, corpus, filters=self.filters)
        miner = CoreMiner(retriever, corpus, self.config, positives=positives)
        groups: list[dict[str, Any]] = []
        candidates: list[dict[str, Any]] = []
        for mined in miner.mine(mining_queries):
            candidates.append(mined.candidates_record())
            if mined.positive_ids and len(mined.negatives) >= self.config.min_negatives:
                groups.extend(g.to_json() for g in mined.groups(corpus))
        logger.info("mined %d groups from %d queries (%s)", len(groups), len(mining_queries), dict(miner.stats))
        return {"groups": groups, "candidates": candidates}


def _mining_query(record: Any, position: int) -> MiningQuery:
    if not isinstance(record, dict):
        raise DataError(f"query {position}: expected a dict with query_id and query, got {type(record).__name__}")
    try:
        query = MiningQuery.from_dict(record)
    except ValueError as exc:
        raise DataError(f"query {position}: {exc}", field="query_id") from None
    if not query.query.strip():
        raise DataError(f"query {position} ({query.query_id!r}) has an empty text", field="query")
    return query
