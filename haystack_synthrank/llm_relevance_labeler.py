"""`LLMRelevanceLabeler`: (query, documents) -> documents with the core LLM judge's grade, probability and reason."""

from __future__ import annotations

import asyncio
import copy
import logging
from dataclasses import replace
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.core.serialization import component_to_dict
from haystack.utils import deserialize_chatgenerator_inplace

from haystack_synthrank.chat_client import ChatGeneratorClient
from haystack_synthrank.synth_rank_ranker import document_text
from haystack_synthrank.synthetic_query_generator import default_chat_generator
from synthrank.errors import DataError
from synthrank.label.judge import JudgeItem, LLMJudge

logger = logging.getLogger(__name__)


@component
class LLMRelevanceLabeler:
    """Labels how relevant each document is to a query, with the core's pointwise LLM judge.

    Every output document is a copy of an input document with ``meta`` entries
    ``relevance_grade`` (0-3, ``None`` when the judge could not answer), ``relevance_probability``
    (P(relevant) from the endpoint's log-probabilities, when it gives them),
    ``relevance_reason``, ``relevance_relevant`` (grade >= ``relevant_grade``) and
    ``relevance_judge`` (model and prompt version). The passage is shown to the judge as data,
    between delimiters (the core's prompts), so instructions inside a document are not followed.

    Usage example:

    ```python
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack_synthrank import LLMRelevanceLabeler

    labeler = LLMRelevanceLabeler(chat_generator=OpenAIChatGenerator(model="gpt-4o-mini"))
    result = labeler.run(query="what damages the optic nerve", documents=retrieved)
    grades = [d.meta["relevance_grade"] for d in result["documents"]]
    ```
    """

    def __init__(
        self,
        *,
        chat_generator: Any = None,
        mode: str = "graded",
        relevant_grade: int = 2,
        self_consistency: int = 1,
        sc_temperature: float = 0.8,
        logprobs: bool = True,
        top_logprobs: int = 20,
        max_passage_chars: int = 2000,
        max_tokens: int = 96,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        cache_path: str | None = None,
        max_concurrency: int = 4,
    ) -> None:
        """
        Create the labeler.

        :param chat_generator: any Haystack chat generator; default: an OpenAI-compatible ``OpenAIChatGenerator``.
        :param mode: ``graded`` (grade 0-3 + reason) or ``binary`` (one Yes/No token).
        :param relevant_grade: grades at or above this count as relevant.
        :param self_consistency: samples for borderline pairs (majority vote); 1 = off.
        :param sc_temperature: temperature of the extra samples.
        :param logprobs: ask for log-probabilities (P(relevant)); turn off for endpoints without them.
        :param top_logprobs: alternatives per token position.
        :param max_passage_chars: documents are cut to this many characters in prompts.
        :param max_tokens: answer length limit (graded mode).
        :param meta_fields_to_embed: meta fields shown before the content, e.g. ``["title"]``.
        :param embedding_separator: joins the meta fields and the content.
        :param cache_path: SQLite response cache shared across runs (``None``: none).
        :param max_concurrency: judge calls in flight at once.
        """
        self.chat_generator = chat_generator if chat_generator is not None else default_chat_generator()
        self.mode = mode
        self.relevant_grade = relevant_grade
        self.self_consistency = self_consistency
        self.sc_temperature = sc_temperature
        self.logprobs = logprobs
        self.top_logprobs = top_logprobs
        self.max_passage_chars = max_passage_chars
        self.max_tokens = max_tokens
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator
        self.cache_path = cache_path
        self.max_concurrency = max_concurrency
        self._judge(ChatGeneratorClient(self.chat_generator, max_concurrency=1))  # validate the options now

    def _judge(self, client: ChatGeneratorClient) -> LLMJudge:
        return LLMJudge(
            client,  # type: ignore[arg-type]  # offers what the judge uses of an LLMClient
            mode=self.mode,  # type: ignore[arg-type]
            relevant_grade=self.relevant_grade,
            self_consistency=self.self_consistency,
            sc_temperature=self.sc_temperature,
            top_logprobs=self.top_logprobs,
            logprobs=self.logprobs,
            max_passage_chars=self.max_passage_chars,
            max_tokens=self.max_tokens,
        )

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
            mode=self.mode,
            relevant_grade=self.relevant_grade,
            self_consistency=self.self_consistency,
            sc_temperature=self.sc_temperature,
            logprobs=self.logprobs,
            top_logprobs=self.top_logprobs,
            max_passage_chars=self.max_passage_chars,
            max_tokens=self.max_tokens,
            meta_fields_to_embed=self.meta_fields_to_embed,
            embedding_separator=self.embedding_separator,
            cache_path=self.cache_path,
            max_concurrency=self.max_concurrency,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LLMRelevanceLabeler:
        data = copy.deepcopy(data)
        init = data.get("init_parameters", {})
        if init.get("chat_generator"):
            deserialize_chatgenerator_inplace(init, key="chat_generator")
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document], relevant_documents=list[Document])
    def run(self, query: str, documents: list[Document], instruction: str | None = None) -> dict[str, list[Document]]:
        """
        Judge every document for ``query``.

        :param query: the query; must not be empty.
        :param documents: the documents to label (never modified: labelled copies are returned).
        :param instruction: an optional instruction narrowing what counts as relevant.
        :returns: ``documents``: labelled copies in input order; ``relevant_documents``: those judged relevant.
        :raises ValueError: on an empty query.
        :raises DataError: when a document has no text (naming its id).
        """
        if not documents:
            return {"documents": [], "relevant_documents": []}
        if not isinstance(query, str) or not query.strip():
            raise ValueError("LLMRelevanceLabeler got an empty query: there is nothing to judge the documents against")
        texts = [document_text(d, self.meta_fields_to_embed, self.embedding_separator) for d in documents]
        empty = [d.id for d, t in zip(documents, texts, strict=True) if not t.strip()]
        if empty:
            raise DataError(f"LLMRelevanceLabeler: documents without text, e.g. ids {empty[:5]}", field="content")
        self.warm_up()
        client = ChatGeneratorClient(
            self.chat_generator, max_concurrency=self.max_concurrency, cache_path=self.cache_path
        )
        try:
            judge = self._judge(client)
            judgements = judge.judge_many([JudgeItem(query, t, instruction) for t in texts])
        finally:
            client.close()
        labelled = []
        for doc, j in zip(documents, judgements, strict=True):
            meta = {
                **doc.meta,
                "relevance_grade": j.grade,
                "relevance_probability": j.probability,
                "relevance_reason": j.reason,
                "relevance_relevant": judge.relevant(j),
                "relevance_judge": {"model": client.model, "prompt_version": judge.prompt_version},
            }
            if j.error is not None:
                meta["relevance_error"] = j.error
            labelled.append(replace(doc, meta=meta))
        failed = sum(1 for j in judgements if j.grade is None)
        if failed:
            logger.warning("the judge gave no usable answer for %d of %d documents", failed, len(documents))
        return {"documents": labelled, "relevant_documents": [d for d in labelled if d.meta["relevance_relevant"]]}

    @component.output_types(documents=list[Document], relevant_documents=list[Document])
    async def run_async(
        self, query: str, documents: list[Document], instruction: str | None = None
    ) -> dict[str, list[Document]]:
        """:meth:`run` without blocking the event loop: the judge calls are I/O and run in worker threads."""
        return await asyncio.to_thread(self.run, query, documents, instruction)
