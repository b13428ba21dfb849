"""`QueryGenerator`: a document frame -> synthetic queries (``querygen``), with the core generator."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyterrier as pt

from pyterrier_synthrank.frames import documents_from
from synthrank.data.jsonl import iter_jsonl
from synthrank.synthesize import GenerationConfig, PersonaSet, build_filters
from synthrank.synthesize import QueryGenerator as CoreGenerator
from synthrank.synthesize.filters import QueryFilter

logger = logging.getLogger(__name__)

TOPIC_COLUMNS = ("qid", "query", "source_doc_id", "query_type", "persona", "instruction", "model", "prompt_version")


class QueryGenerator(pt.Transformer):
    """Writes synthetic queries for each document with an LLM (the core's prompts, query types, personas, filters).

    By default the document frame comes back with a ``querygen`` column (the kept queries,
    one per line, as ``pyterrier-doc2query`` does). With ``as_topics=True`` the output is a
    query frame instead — one row per query: ``qid, query, source_doc_id, query_type, persona,
    instruction, model, prompt_version`` — so the synthetic-data pipeline composes:
    ``QueryGenerator(llm, as_topics=True) >> SynthBM25(...) >> HardNegativeMiner(corpus)``.

    Args:
        llm: a :class:`synthrank.llm.LLMClient` (any OpenAI-compatible endpoint); ``None`` starts the
            packaged local model on first use.
        config: a :class:`~synthrank.synthesize.GenerationConfig`; ``**options`` set its fields instead.
        personas: the persona lists for persona queries.
        filters: the filter chain; ``None`` uses the core's standard chain (length, dedup, copy), built
            fresh for every call.
        output: a ``queries.jsonl`` to append to and resume from (``rejected.jsonl`` goes beside it);
            ``None`` keeps nothing on disk.
        as_topics: return a query frame of the generated queries instead of the documents.
        text_field, title_field: the document columns shown to the LLM (``title + text``).
        verbose: progress bar.

    Example:
        >>> gen = QueryGenerator(LLMClient(LLMConfig(model="qwen2.5-coder-1.5b")), query_types=["natural"], as_topics=True)
        >>> topics = gen(pd.DataFrame({"docno": ["d1"], "text": ["Glaucoma damages the optic nerve."]}))
    """

    def __init__(
        self,
        llm: Any = None,
        *,
        config: GenerationConfig | None = None,
        personas: PersonaSet | None = None,
        filters: Sequence[QueryFilter] | None = None,
        output: str | Path | None = None,
        as_topics: bool = False,
        text_field: str = "text",
        title_field: str | None = "title",
        verbose: bool = False,
        **options: Any,
    ) -> None:
        if config is not None and options:
            raise ValueError("pass either config= or generation options, not both")
        self.config = config if config is not None else GenerationConfig(**options)
        self.llm = llm
        self.personas = personas
        self.filters = list(filters) if filters is not None else None
        self.output = Path(output) if output is not None else None
        self.as_topics = as_topics
        self.text_field = text_field
        self.title_field = title_field
        self.verbose = verbose

    def __repr__(self) -> str:
        model = getattr(self.llm, "model", "local default") if self.llm is not None else "local default"
        return (
            f"QueryGenerator(model={model!r}, query_types={self.config.query_types}, "
            f"n_per_type={self.config.n_per_type}, as_topics={self.as_topics})"
        )

    def _client(self) -> Any:
        if self.llm is None:
            from synthrank.llm.client import LLMClient

            self.llm = LLMClient()
        return self.llm

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        pt.validate.document_frame(inp, extra_columns=[self.text_field])
        if len(inp) == 0:
            return self._empty(inp)
        docs = documents_from(inp, text_field=self.text_field, title_field=self.title_field)
        filters = self.filters if self.filters is not None else build_filters()
        generator = CoreGenerator(self._client(), self.config, personas=self.personas, filters=filters)
        if self.output is not None:
            records = self._generate(generator, docs, self.output)
        else:
            with tempfile.TemporaryDirectory(prefix="synthrank-querygen-") as tmp:
                records = self._generate(generator, docs, Path(tmp) / "queries.jsonl")
        if self.as_topics:
            topics = pd.DataFrame([{c: r.get(c) for c in TOPIC_COLUMNS[1:]} | {"qid": r["query_id"]} for r in records])
            return topics[list(TOPIC_COLUMNS)] if len(topics) else self._empty(inp)
        by_doc: dict[str, list[str]] = {}
        for r in records:
            by_doc.setdefault(str(r["source_doc_id"]), []).append(r["query"])
        out = inp.copy()
        out["querygen"] = ["\n".join(by_doc.get(str(d), [])) for d in out["docno"]]
        return out

    def _generate(self, generator: CoreGenerator, docs: list[Any], output: Path) -> list[dict[str, Any]]:
        report = generator.generate(docs, output, show_progress=self.verbose)
        logger.info("generated %d queries (%s)", report.kept, report.survival())
        ids = {d.id for d in docs}
        return [r for _, r in iter_jsonl(output) if r.get("source_doc_id") in ids] if output.exists() else []

    def _empty(self, inp: pd.DataFrame) -> pd.DataFrame:
        if self.as_topics:
            return pd.DataFrame({c: pd.Series(dtype="object") for c in TOPIC_COLUMNS})
        out = inp.copy()
        out["querygen"] = pd.Series(dtype="object")
        return out
