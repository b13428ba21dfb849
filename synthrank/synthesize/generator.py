"""Synthetic query generation: passages in, filtered queries with provenance out (JSONL, resumable).

For each sampled passage the generator asks the LLM for ``n_per_type`` queries of each
configured type (one call per type, and per persona for persona queries), repairs and
validates the JSON, runs the filters, and appends every query to ``queries.jsonl`` (kept) or
``rejected.jsonl`` (with the filter that dropped it). A (passage, type, persona) slot counts
as done once any of its records is written, so a killed run resumes where it stopped and a
rerun makes zero LLM calls (the response cache has everything); a slot whose call failed
for good writes nothing and is retried next time, so nothing is lost.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from synthrank.config_fields import strict_from_dict
from synthrank.data.jsonl import ResumableJsonlWriter, iter_jsonl
from synthrank.data.records import Document
from synthrank.errors import DataError
from synthrank.llm.client import Completion, LLMCallError, LLMClient, LLMRequest
from synthrank.llm.parsing import ParseError, parse_json
from synthrank.synthesize.demonstrations import Demonstration
from synthrank.synthesize.filters import (
    FILTER_ORDER,
    Candidate,
    DedupFilter,
    QueryFilter,
    apply_filters,
)
from synthrank.synthesize.prompts import (
    KNOWN_QUERY_TYPES,
    PROMPT_VERSION,
    QUERY_TYPES,
    REALISTIC_STYLES,
    PersonaSet,
    check_search_task,
    echoes_example_instruction,
    generation_messages,
)

logger = logging.getLogger(__name__)


@dataclass
class GenerationConfig:
    """What to ask for and how much to spend.

    Args:
        query_types: any of ``keyword``, ``natural``, ``persona``, ``reasoning``, ``instruction`` (LIMRANK's five,
            the default), and ``realistic``: users' own register (a first-person message with context, a terse
            fragment, a claim to check, or a description of an unnamed thing; one style drawn per passage), and
            ``demonstrated``: in the register of the user's own example queries, replayed as earlier turns
            (:mod:`synthrank.synthesize.demonstrations`; the generator's ``demonstrations``).
        n_per_type: queries asked for per call.
        personas_per_passage: persona queries are written as this many personas (drawn per passage, seeded).
        temperature: sampling temperature (diversity); each call gets a seed derived from ``seed``,
            the passage and the slot, so a rerun sends the same request and hits the cache.
        max_tokens: answer length limit per call.
        max_passage_chars: passages are cut to this many characters in prompts.
        json_mode: ask the endpoint for ``response_format=json_object`` (grammar-constrained; ~2x slower on llama.cpp).
        max_queries: stop once this many queries are kept (counting a resumed run's); checked between
            batches, so the last batch may add up to ``batch_size`` passages' worth more.
        max_tokens_total: stop once the LLM has answered this many tokens (prompt + completion,
            cached answers included, so a rerun stops at the same place).
        batch_size: passages whose calls are sent together (keeps the endpoint busy).
        types_per_passage: ask for only this many of ``query_types`` per passage, drawn per passage
            (seeded, balanced over the corpus): the same diversity for a fraction of the calls.
            ``None`` asks for every type for every passage.
        search_task: one sentence, in the user's words, on who searches the collection and for what
            (e.g. "scientists checking whether a claim is supported by a research abstract"): every
            query is written as those searchers would, whatever its type. ``None``: the types alone.
    """

    query_types: list[str] = field(default_factory=lambda: list(QUERY_TYPES))
    n_per_type: int = 1
    personas_per_passage: int = 1
    temperature: float = 0.7
    max_tokens: int = 256
    max_passage_chars: int = 2000
    json_mode: bool = False
    seed: int = 0
    max_queries: int | None = None
    max_tokens_total: int | None = None
    batch_size: int = 4
    types_per_passage: int | None = None
    search_task: str | None = None

    def __post_init__(self) -> None:
        self.search_task = check_search_task(self.search_task)
        unknown = [t for t in self.query_types if t not in KNOWN_QUERY_TYPES]
        if unknown or not self.query_types:
            raise DataError(f"unknown query types {unknown}; choose from {', '.join(KNOWN_QUERY_TYPES)}",
                            field="query_types")
        if self.n_per_type < 1:
            raise DataError("must be at least 1", field="n_per_type")
        if self.types_per_passage is not None and self.types_per_passage < 1:
            raise DataError("must be at least 1 (or None for all types)", field="types_per_passage")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationConfig:
        """Build from a mapping of this config's own fields (dashes count as underscores); an unknown key is a
        :class:`DataError` naming it, as for the other steps' configs."""
        return strict_from_dict(cls, data, section="generate")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> GenerationConfig:
        """The config from a larger option set (CLI options, a run config section): its own keys, rest ignored.

        A ``None`` value means "not given" and keeps the default (except where ``None`` is meaningful).
        """
        nullable = {"max_queries", "max_tokens_total", "types_per_passage", "search_task"}
        known = {f.name for f in fields(cls)}
        picked = {k: v for k, v in options.items() if k in known and (v is not None or k in nullable)}
        if "query_types" in picked:
            picked["query_types"] = list(picked["query_types"])
        return cls.from_dict(picked)


@dataclass(frozen=True)
class Slot:
    """One call's worth of work: a passage, a query type and (for persona queries) a persona."""

    doc_id: str
    query_type: str
    persona: str | None = None
    persona_kind: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.doc_id, self.query_type, self.persona or "")


def _stable_int(*parts: object) -> int:
    digest = hashlib.sha1("\t".join(str(p) for p in parts).encode("utf-8")).hexdigest()
    return int(digest[:8], 16)


def query_id_for(doc_id: str, query_type: str, persona: str | None, index: int, query: str) -> str:
    """Stable across reruns, unique within a run even without dedup (the answer's item index is part of it)."""
    key = f"{doc_id}\t{query_type}\t{persona or ''}\t{index}\t{query}"
    return "sq-" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]


def _validate_queries(obj: Any) -> list[tuple[str, str | None]]:
    """``{"queries": [...]}`` (or a bare list) of strings or ``{"query", "instruction"}`` objects."""
    items = obj.get("queries", obj.get("questions")) if isinstance(obj, dict) else obj
    if isinstance(obj, dict) and items is None and "query" in obj:
        items = [obj]
    if not isinstance(items, list):
        raise ValueError("expected a list under 'queries'")
    out: list[tuple[str, str | None]] = []
    for item in items:
        if isinstance(item, str):
            query, instruction = item, None
        elif isinstance(item, dict) and isinstance(item.get("query"), str):
            query = item["query"]
            raw = item.get("instruction")
            instruction = raw.strip() if isinstance(raw, str) and raw.strip() else None
        else:
            continue
        query = " ".join(query.split()).strip().strip('"').strip()
        if query:
            out.append((query, instruction))
    if not out:
        raise ValueError("no query strings in the answer")
    return out


@dataclass
class GenerationReport:
    """What a generation run did: counts per filter, survival shares, throughput and LLM usage."""

    passages: int = 0
    filters: list[str] = field(default_factory=list)
    slots: int = 0
    slots_done_before: int = 0
    slots_failed: int = 0
    generated: int = 0
    kept: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    parse_failures: dict[str, int] = field(default_factory=dict)
    repaired: int = 0
    instructions_echoed: int = 0  # instructions that copied the prompt's example, dropped (their queries kept bare)
    stopped_by: str | None = None
    seconds: float = 0.0
    usage: dict[str, Any] = field(default_factory=dict)

    def survival(self) -> dict[str, float]:
        """Share of generated queries still alive after each active filter, in the order they run."""
        out: dict[str, float] = {}
        alive = self.generated
        for name in self.filters:
            alive -= self.rejected.get(name, 0)
            out[name] = round(alive / self.generated, 4) if self.generated else 0.0
        return out

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["survival"] = self.survival()
        out["queries_per_second"] = round(self.kept / self.seconds, 4) if self.seconds else None
        return out


class QueryGenerator:
    """Writes synthetic queries for passages through any :class:`~synthrank.llm.client.LLMClient`.

    Example:
        >>> with LLMClient(LLMConfig(model="qwen2.5-coder-1.5b")) as llm:
        ...     gen = QueryGenerator(llm, GenerationConfig(query_types=["keyword", "natural"]),
        ...                          filters=build_filters(roundtrip_retriever=bm25))
        ...     report = gen.generate(sample_passages(corpus, 100, seed=1), out / "queries.jsonl")
    """

    def __init__(
        self,
        client: LLMClient,
        config: GenerationConfig | None = None,
        *,
        personas: PersonaSet | None = None,
        filters: Sequence[QueryFilter] = (),
        demonstrations: Sequence[Demonstration] = (),
    ) -> None:
        self.client = client
        self.config = config or GenerationConfig()
        self.personas = personas or PersonaSet.default()
        self.filters = list(filters)
        self.demonstrations = list(demonstrations)
        if "persona" in self.config.query_types and not self.personas.all():
            raise DataError("persona queries need at least one persona", field="personas")
        if "demonstrated" in self.config.query_types and not self.demonstrations:
            raise DataError("the demonstrated query type needs the user's example queries",
                            field="generate.demonstrations")  # fmt: skip

    def __repr__(self) -> str:
        return f"QueryGenerator(client={self.client!r}, types={self.config.query_types}, n={self.config.n_per_type})"

    # ------------------------------------------------------------------ planning

    def plan(self, doc: Document) -> list[Slot]:
        """The calls for one passage: one per query type, one per drawn persona for persona queries."""
        slots: list[Slot] = []
        for qtype in self.types_for(doc):
            if qtype == "realistic":  # the style travels as the slot's persona: resumed and cached per style
                style = random.Random(_stable_int(self.config.seed, doc.id, "style")).choice(sorted(REALISTIC_STYLES))
                slots.append(Slot(doc.id, qtype, style, "style"))
                continue
            if qtype != "persona":
                slots.append(Slot(doc.id, qtype))
                continue
            pool = self.personas.all()
            rng = random.Random(_stable_int(self.config.seed, doc.id, "persona"))
            for kind, persona in rng.sample(pool, min(self.config.personas_per_passage, len(pool))):
                slots.append(Slot(doc.id, qtype, persona, kind))
        return slots

    def types_for(self, doc: Document) -> list[str]:
        """The query types asked for ``doc``: all, or a seeded rotation of ``types_per_passage`` of them."""
        types = list(self.config.query_types)
        k = self.config.types_per_passage
        if k is None or k >= len(types):
            return types
        start = _stable_int(self.config.seed, doc.id, "types") % len(types)
        return [types[(start + i) % len(types)] for i in range(k)]

    def request(self, doc: Document, slot: Slot) -> LLMRequest:
        messages = generation_messages(
            slot.query_type,
            doc.title,
            doc.text,
            n=self.config.n_per_type,
            persona=slot.persona,
            max_passage_chars=self.config.max_passage_chars,
            search_task=self.config.search_task,
            demonstrations=self.demonstrations,
        )
        max_tokens = self.config.max_tokens * (2 if slot.query_type == "instruction" else 1)
        return LLMRequest.chat(
            messages,
            temperature=self.config.temperature,
            max_tokens=max_tokens,
            seed=_stable_int(self.config.seed, *slot.key) % (2**31),
            json_mode=self.config.json_mode,
        )

    # ------------------------------------------------------------------ running

    def generate(
        self,
        passages: Sequence[Document],
        output: str | Path,
        *,
        rejected: str | Path | None = None,
        show_progress: bool = False,
    ) -> GenerationReport:
        """Generate, filter and append queries for ``passages`` to ``output``; resumes a stopped run.

        ``rejected`` (default: ``rejected.jsonl`` beside ``output``) receives every dropped query
        and every unparseable answer, with the reason.
        """
        from tqdm.auto import tqdm

        output = Path(output)
        rejected_path = Path(rejected) if rejected is not None else output.with_name("rejected.jsonl")
        started = time.perf_counter()
        report = GenerationReport(passages=len(passages), filters=[f.name for f in self.filters])
        docs = {d.id: d for d in passages}

        def slot_key(rec: dict[str, Any]) -> tuple[str, str, str]:
            return (str(rec.get("source_doc_id")), str(rec.get("query_type")), rec.get("persona") or "")

        with (
            ResumableJsonlWriter(output, key=slot_key) as kept_writer,
            ResumableJsonlWriter(rejected_path, key=slot_key) as rej_writer,
        ):
            done = kept_writer.done | rej_writer.done
            self._seed_dedup(output, rejected_path)
            kept_total = kept_writer.records_on_open
            all_slots = [s for d in passages for s in self.plan(d)]
            report.slots = len(all_slots)
            pending = [s for s in all_slots if s.key not in done]
            report.slots_done_before = report.slots - len(pending)
            bar = tqdm(total=len(pending), desc="generate", unit="call", disable=not show_progress or not pending)
            batch_slots = max(1, self.config.batch_size) * len(self.config.query_types)
            try:
                for start in range(0, len(pending), batch_slots):
                    stop_reason = self._budget_exhausted(kept_total)
                    if stop_reason:
                        report.stopped_by = stop_reason
                        break
                    batch = pending[start : start + batch_slots]
                    requests = [self.request(docs[s.doc_id], s) for s in batch]
                    results = self.client.complete_many(requests, on_done=lambda i, r: bar.update(1))
                    for slot, result in zip(batch, results, strict=True):
                        kept_total += self._handle(slot, docs[slot.doc_id], result, kept_writer, rej_writer, report)
                    bar.set_postfix({"kept": kept_total, **self.client.usage.postfix()}, refresh=False)
            finally:
                bar.close()
        self._count_from_files(output, rejected_path, report, set(docs))
        report.seconds = round(time.perf_counter() - started, 3)
        report.usage = self.client.usage.to_dict()
        return report

    def _budget_exhausted(self, kept_total: int) -> str | None:
        cfg = self.config
        if cfg.max_queries is not None and kept_total >= cfg.max_queries:
            return "max_queries"
        if cfg.max_tokens_total is not None and self.client.usage.total_tokens >= cfg.max_tokens_total:
            return "max_tokens_total"
        return None

    def _seed_dedup(self, output: Path, rejected_path: Path) -> None:
        dedup = next((f for f in self.filters if isinstance(f, DedupFilter)), None)
        if dedup is None:
            return
        after_dedup = set(FILTER_ORDER[FILTER_ORDER.index("dedup") + 1 :])
        for path, wanted in ((output, None), (rejected_path, after_dedup)):
            if path.exists():
                dedup.remember(
                    rec["query"]
                    for _, rec in iter_jsonl(path)
                    if isinstance(rec.get("query"), str) and (wanted is None or rec.get("filter") in wanted)
                )

    def _handle(
        self,
        slot: Slot,
        doc: Document,
        result: Completion | LLMCallError,
        kept_writer: ResumableJsonlWriter,
        rej_writer: ResumableJsonlWriter,
        report: GenerationReport,
    ) -> int:
        base = {"source_doc_id": slot.doc_id, "query_type": slot.query_type, "persona": slot.persona}
        if isinstance(result, LLMCallError):
            report.slots_failed += 1
            logger.warning(
                "no queries for %s/%s: %s (will retry on the next run)", slot.doc_id, slot.query_type, result
            )
            return 0
        try:
            items, repaired = parse_json(result.text, _validate_queries, truncated=result.truncated)
        except ParseError as exc:
            self.client.usage.record_parse_failure(exc.kind)
            rej_writer.append({**base, "query": None, "filter": "parse", "detail": exc.kind, "raw": result.text[:300]})
            return 0
        if repaired:
            report.repaired += 1
        kept = 0
        passage_text = doc.full_text()
        for index, (query, instruction) in enumerate(items[: self.config.n_per_type]):
            echoed = slot.query_type == "instruction" and echoes_example_instruction(instruction)
            if slot.query_type != "instruction" or echoed:
                instruction = None  # an echoed example says nothing about this passage: the query stays, bare
            candidate = Candidate(query, slot.doc_id, slot.query_type, slot.persona, instruction)
            verdict = apply_filters(self.filters, candidate, passage_text)
            record = {
                "query_id": query_id_for(slot.doc_id, slot.query_type, slot.persona, index, query),
                "query": query,
                **base,
                "persona_kind": slot.persona_kind,
                "instruction": instruction,
                "model": self.client.model,
                "prompt_version": PROMPT_VERSION,
                **candidate.info,
                **({"instruction_echo": True} if echoed else {}),
            }
            if verdict.keep:
                kept_writer.append(record)
                kept += 1
            else:
                rej_writer.append({**record, "filter": verdict.filter, "detail": verdict.detail})
        return kept

    @staticmethod
    def _count_from_files(output: Path, rejected_path: Path, report: GenerationReport, doc_ids: set[str]) -> None:
        """Exact funnel counts for these passages from what is on disk (covers resumed runs)."""
        rejected: Counter[str] = Counter()
        parse: Counter[str] = Counter()
        kept = 0
        echoed = 0
        if output.exists():
            for _, rec in iter_jsonl(output):
                if rec.get("source_doc_id") in doc_ids:
                    kept += 1
                    echoed += bool(rec.get("instruction_echo"))
        if rejected_path.exists():
            for _, rec in iter_jsonl(rejected_path):
                if rec.get("source_doc_id") not in doc_ids:
                    continue
                echoed += bool(rec.get("instruction_echo"))
                if rec.get("filter") == "parse":
                    parse[str(rec.get("detail"))] += 1
                else:
                    rejected[str(rec.get("filter"))] += 1
        report.kept = kept
        report.instructions_echoed = echoed
        report.rejected = dict(rejected)
        report.parse_failures = dict(parse)
        report.generated = kept + sum(rejected.values())


def generate_queries(
    client: LLMClient,
    corpus: Mapping[str, Document] | Sequence[Document],
    output: str | Path,
    *,
    config: GenerationConfig | None = None,
    filters: Sequence[QueryFilter] = (),
    personas: PersonaSet | None = None,
    show_progress: bool = False,
) -> GenerationReport:
    """Convenience wrapper: generate for every passage given (sample first with :func:`sample_passages`)."""
    passages = list(corpus.values()) if isinstance(corpus, Mapping) else list(corpus)
    generator = QueryGenerator(client, config, personas=personas, filters=filters)
    return generator.generate(passages, output, show_progress=show_progress)
