"""`SyntheticQueryGenerator`: documents -> synthetic queries with provenance, written by any Haystack chat generator."""

from __future__ import annotations

import asyncio
import copy
import logging
import tempfile
from pathlib import Path
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.components.generators.chat import OpenAIChatGenerator
from haystack.core.serialization import component_to_dict
from haystack.utils import Secret, deserialize_chatgenerator_inplace, deserialize_component_inplace

from haystack_synthrank.chat_client import ChatGeneratorClient
from haystack_synthrank.store_corpus import RetrieverAdapter, StoreCorpus, document_store_of, to_core_document
from synthrank.data.jsonl import iter_jsonl
from synthrank.errors import DataError
from synthrank.synthesize import GenerationConfig, PersonaSet, QueryGenerator, build_filters

logger = logging.getLogger(__name__)


def default_chat_generator() -> OpenAIChatGenerator:
    """An OpenAI-compatible chat generator: ``OPENAI_API_KEY`` and (for other endpoints) ``OPENAI_BASE_URL``.

    A local llama.cpp / vLLM / Ollama server works with ``OPENAI_BASE_URL=http://127.0.0.1:PORT/v1``
    and any non-empty ``OPENAI_API_KEY``.
    """
    return OpenAIChatGenerator(api_key=Secret.from_env_var(["OPENAI_API_KEY"], strict=False), model="gpt-4o-mini")


@component
class SyntheticQueryGenerator:
    """Writes synthetic search queries for documents, with the core's prompts, query types, personas and filters.

    Each document gets ``n_per_type`` queries of each type in ``query_types`` (keyword, natural,
    persona, reasoning, instruction); answers are parsed and repaired, filtered (length, dedup,
    copy, optionally BM25 round trip) and returned as records with provenance
    (``query_id, query, source_doc_id, query_type, persona, instruction, model, prompt_version``)
    and as Haystack documents (``content`` = the query, ``meta`` = the rest). With
    ``output_dir``, queries are appended to ``queries.jsonl`` (and rejections to
    ``rejected.jsonl``) as they come, and a rerun resumes where it stopped.

    Usage example:

    ```python
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack_synthrank import SyntheticQueryGenerator

    generator = SyntheticQueryGenerator(
        chat_generator=OpenAIChatGenerator(model="gpt-4o-mini"), query_types=["keyword", "natural"]
    )
    queries = generator.run(documents=store.filter_documents())["queries"]
    ```
    """

    def __init__(
        self,
        *,
        chat_generator: Any = None,
        query_types: list[str] | None = None,
        n_per_type: int = 1,
        personas_per_passage: int = 1,
        personas: dict[str, list[str]] | None = None,
        temperature: float = 0.7,
        max_tokens: int = 256,
        max_passage_chars: int = 2000,
        json_mode: bool = False,
        seed: int = 0,
        max_queries: int | None = None,
        batch_size: int = 4,
        search_task: str | None = None,
        dedup: bool = True,
        min_words: int | None = 2,
        max_words: int | None = 40,
        max_copy_ratio: float | None = 0.75,
        roundtrip_retriever: Any = None,
        roundtrip_k: int = 20,
        title_meta_field: str | None = "title",
        output_dir: str | None = None,
        cache_path: str | None = None,
        max_concurrency: int = 4,
    ) -> None:
        """
        Create the generator.

        :param chat_generator: any Haystack chat generator; default: :func:`default_chat_generator`.
        :param query_types: any of ``keyword``, ``natural``, ``persona``, ``reasoning``, ``instruction`` (default: all).
        :param n_per_type: queries asked for per (document, type).
        :param personas_per_passage: personas drawn per document for persona queries.
        :param personas: extra personas, ``{"daily_life": [...], "expert": [...]}``, added to the defaults.
        :param temperature: sampling temperature (each call gets a seed derived from ``seed``).
        :param max_tokens: answer length limit per call.
        :param max_passage_chars: documents are cut to this many characters in prompts.
        :param json_mode: ask the endpoint for JSON output (``response_format``).
        :param seed: seed of persona draws and sampling.
        :param max_queries: stop once this many queries are kept.
        :param batch_size: documents whose calls are sent together.
        :param search_task: one sentence on who searches these documents and for what; every query is written
            as they would (``None``: the query types alone).
        :param dedup: drop queries already kept (normalised text).
        :param min_words: shortest query kept (``None``: no bound).
        :param max_words: longest query kept (``None``: no bound).
        :param max_copy_ratio: drop queries copying this share of their words verbatim (``None``: off).
        :param roundtrip_retriever: a Haystack BM25 retriever over the same documents: keep a query only if it
            finds its own document in the top ``roundtrip_k`` (``None``: off).
        :param roundtrip_k: depth of the round-trip check.
        :param title_meta_field: meta field holding a document's title (prompts show ``title + text``).
        :param output_dir: where ``queries.jsonl``/``rejected.jsonl`` are appended and resumed; ``None``: a temporary folder.
        :param cache_path: SQLite response cache shared across runs (``None``: no cache).
        :param max_concurrency: chat calls in flight at once.
        """
        self.chat_generator = chat_generator if chat_generator is not None else default_chat_generator()
        self.query_types = list(query_types) if query_types is not None else None
        self.n_per_type = n_per_type
        self.personas_per_passage = personas_per_passage
        self.personas = personas
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_passage_chars = max_passage_chars
        self.json_mode = json_mode
        self.seed = seed
        self.max_queries = max_queries
        self.batch_size = batch_size
        self.search_task = search_task
        self.dedup = dedup
        self.min_words = min_words
        self.max_words = max_words
        self.max_copy_ratio = max_copy_ratio
        self.roundtrip_retriever = roundtrip_retriever
        self.roundtrip_k = roundtrip_k
        self.title_meta_field = title_meta_field
        self.output_dir = output_dir
        self.cache_path = cache_path
        self.max_concurrency = max_concurrency
        self._config = self._generation_config()  # validate now, not at the first run
        self._persona_set = self._personas()
        if roundtrip_retriever is not None:
            document_store_of(roundtrip_retriever)

    def _generation_config(self) -> GenerationConfig:
        options: dict[str, Any] = {
            "n_per_type": self.n_per_type,
            "personas_per_passage": self.personas_per_passage,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "max_passage_chars": self.max_passage_chars,
            "json_mode": self.json_mode,
            "seed": self.seed,
            "max_queries": self.max_queries,
            "batch_size": self.batch_size,
            "search_task": self.search_task,
        }
        if self.query_types is not None:
            options["query_types"] = list(self.query_types)
        return GenerationConfig(**options)

    def _personas(self) -> PersonaSet:
        extra = self.personas or {}
        unknown = set(extra) - {"daily_life", "expert"}
        if unknown:
            raise ValueError(f"personas takes the keys 'daily_life' and 'expert', got {sorted(unknown)}")
        return PersonaSet.default().extended(daily_life=extra.get("daily_life", ()), expert=extra.get("expert", ()))

    def warm_up(self) -> None:
        if hasattr(self.chat_generator, "warm_up"):
            self.chat_generator.warm_up()

    def close(self) -> None:
        if hasattr(self.chat_generator, "close"):
            self.chat_generator.close()

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            chat_generator=component_to_dict(obj=self.chat_generator, name="chat_generator"),
            query_types=self.query_types,
            n_per_type=self.n_per_type,
            personas_per_passage=self.personas_per_passage,
            personas=self.personas,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            max_passage_chars=self.max_passage_chars,
            json_mode=self.json_mode,
            seed=self.seed,
            max_queries=self.max_queries,
            batch_size=self.batch_size,
            search_task=self.search_task,
            dedup=self.dedup,
            min_words=self.min_words,
            max_words=self.max_words,
            max_copy_ratio=self.max_copy_ratio,
            roundtrip_retriever=(
                component_to_dict(obj=self.roundtrip_retriever, name="roundtrip_retriever")
                if self.roundtrip_retriever is not None
                else None
            ),
            roundtrip_k=self.roundtrip_k,
            title_meta_field=self.title_meta_field,
            output_dir=self.output_dir,
            cache_path=self.cache_path,
            max_concurrency=self.max_concurrency,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SyntheticQueryGenerator:
        data = copy.deepcopy(data)
        init = data.get("init_parameters", {})
        if init.get("chat_generator"):
            deserialize_chatgenerator_inplace(init, key="chat_generator")
        if init.get("roundtrip_retriever"):
            deserialize_component_inplace(init, key="roundtrip_retriever")
        return default_from_dict(cls, data)

    @component.output_types(queries=list[dict[str, Any]], documents=list[Document], report=dict[str, Any])
    def run(self, documents: list[Document]) -> dict[str, Any]:
        """
        Generate queries for ``documents``.

        :param documents: the passages to write queries for (``content``, and the title in ``title_meta_field``).
        :returns: ``queries`` (records with provenance), ``documents`` (the same as Haystack documents:
            ``content`` = query, ``meta`` = provenance) and ``report`` (counts per filter, survival, LLM usage).
        :raises DataError: when a document has no text (naming its id).
        """
        if not documents:
            return {"queries": [], "documents": [], "report": {}}
        passages = [to_core_document(d, self.title_meta_field) for d in documents]
        empty = [p.id for p in passages if not p.full_text().strip()]
        if empty:
            raise DataError(f"SyntheticQueryGenerator: documents without text, e.g. ids {empty[:5]}", field="content")
        filters = build_filters(
            dedup=self.dedup,
            min_words=self.min_words,
            max_words=self.max_words,
            max_copy_ratio=self.max_copy_ratio,
            roundtrip_retriever=self._roundtrip(),
            roundtrip_k=self.roundtrip_k,
        )
        client = ChatGeneratorClient(
            self.chat_generator, max_concurrency=self.max_concurrency, cache_path=self.cache_path
        )
        self.warm_up()
        # ChatGeneratorClient offers what the core generator uses of an LLMClient (complete_many, usage, model)
        generator = QueryGenerator(client, self._config, personas=self._persona_set, filters=filters)  # type: ignore[arg-type]
        try:
            if self.output_dir is not None:
                records, report = self._generate(generator, passages, Path(self.output_dir))
            else:
                with tempfile.TemporaryDirectory(prefix="synthrank-queries-") as tmp:
                    records, report = self._generate(generator, passages, Path(tmp))
        finally:
            client.close()
        docs = [Document(content=r["query"], meta={k: v for k, v in r.items() if k != "query"}) for r in records]
        return {"queries": records, "documents": docs, "report": report}

    @component.output_types(queries=list[dict[str, Any]], documents=list[Document], report=dict[str, Any])
    async def run_async(self, documents: list[Document]) -> dict[str, Any]:
        """:meth:`run` without blocking the event loop: the calls are I/O and run in worker threads."""
        return await asyncio.to_thread(self.run, documents)

    def _roundtrip(self) -> RetrieverAdapter | None:
        if self.roundtrip_retriever is None:
            return None
        corpus = StoreCorpus(document_store_of(self.roundtrip_retriever), title_meta_field=self.title_meta_field)
        return RetrieverAdapter(self.roundtrip_retriever, corpus)

    @staticmethod
    def _generate(
        generator: QueryGenerator, passages: list[Any], folder: Path
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        output = folder / "queries.jsonl"
        report = generator.generate(passages, output, rejected=folder / "rejected.jsonl")
        ids = {p.id for p in passages}
        records = [r for _, r in iter_jsonl(output) if r.get("source_doc_id") in ids] if output.exists() else []
        logger.info("kept %d synthetic queries for %d documents", len(records), len(passages))
        return records, report.to_dict()
