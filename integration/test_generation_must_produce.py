"""Generation that must produce: the default model, on fixed SciFact passages, writes kept queries of every type,
and labelling them yields training groups with a positive and negatives (#21 item 2).

The plumbing tests (test_llm_server.py, test_pyterrier_synthetic.py, test_haystack_pipelines.py) run SmolLM2-135M
and pass whatever it writes. Here the model is the default one, Qwen2.5-Coder-1.5B: SmolLM2 was measured and does not
suffice (on 8 of these passages, 5 types, 40 calls: 0 kept queries without JSON mode, 3 with it, none of type
keyword, reasoning or instruction). Qwen is slow on 2 CPU cores, so 4 passages: 20 generation calls and ~21
judgements, ~2.5 + ~3.5 minutes on a busy 2-core machine.

Generation runs the run's recipe (all five query types, 160 answer tokens, 1,000 passage characters, temperature
0.7 with per-call seeds from seed 0, every default filter including the BM25 round trip at k=20), against a fresh
response cache, so every answer comes from the model. Measured over three runs: 14, 13, 13 queries kept of 20
slots; per type keyword 3-4, natural 3, instruction 3, persona 2, reasoning 2. Bounds: every type >= 1
(MIN_PER_TYPE), >= 8 in all (MIN_KEPT).

Labelling is the recipe's binary judge except for its threshold: this model's P(yes) sits between 0.13 and 0.58 for
every pair judged, its own query's source passage included (source mean ~0.43, candidates ~0.35), so at the recipe's
0.5 only 2-3 of 13-14 sources pass, by hundredths (0.50, 0.51, 0.57): too close for a stable bound. At 0.45 with the
top two candidates judged: 21 pairs judged, 6 at or above 0.45, 3 groups, each with its source passage as the
positive and 2 negatives. Bound: >= 1 group (MIN_GROUPS), each with a positive and >= 1 judged negative.

Demonstrations (the ``demonstrated`` type, 4 more calls): shown three of SciFact's train claims as its own earlier
answers, the same model writes claims (a sentence ending in a period, not a question) for these passages, where its
natural and keyword types write questions and phrases. A first version counted every non-question as a claim and
passed with the turns left out (the bare task gets keyword phrases, "CD4+ T cell depletion in SIV infection");
counted as sentences, it is seen to fail without them.

Faults seen to fail the checks: the two ``..._fails_...`` tests at the end run them against the fault server in the
model's place (prose instead of JSON: "kept queries per type ... below 1"; JSON whose queries the filters drop; a
judge with no usable verdict: "training groups, fewer than 1"). Mutation seen to fail both default-model tests:
``parse_json`` validating ``{"queries": []}`` instead of the answer (every answer "of the wrong shape": no query
kept, then nothing to label).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration import llm_fixtures
from integration.conftest import shared_dataset
from synthrank.data import Document, read_corpus, read_groups, read_jsonl
from synthrank.label import LabelConfig, Labeler, LabelReport, candidates_from_retriever
from synthrank.llm import LLMClient, LLMConfig, ResponseCache
from synthrank.retrieve import InMemoryBM25
from synthrank.synthesize import QUERY_TYPES, GenerationConfig, GenerationReport, QueryGenerator, build_filters
from tests.fake_openai_server import FakeOpenAIServer, Fault, yes_no_logprobs

pytestmark = [pytest.mark.llm_server, pytest.mark.slow]

qwen_server = llm_fixtures.qwen_server

PASSAGE_IDS = ["8300657", "12691537", "14923462", "10284593"]
"""SciFact abstracts (``sample_passages(corpus, 4, seed=11, min_chars=300, max_chars=1500)``), pinned by id."""

MIN_PER_TYPE = 1  # measured 2-4 per type from these 4 passages
MIN_KEPT = 8  # measured 13-14 of 20 slots
MIN_GROUPS = 1  # measured 3 at yes_threshold 0.45 (2-3 at the recipe's 0.5, by hundredths)

GENERATION = GenerationConfig(seed=0, max_tokens=160, max_passage_chars=1000)  # the run's recipe, all five types
# the recipe's binary judge, its threshold lowered for this model's flat P(yes) (see above), two candidates judged
LABELLING = LabelConfig(judge_mode="binary", judge_top_k=2, yes_threshold=0.45, max_passage_chars=1000)
TOP_K = 30  # the run's mine.top_k: the candidates the judged ones and the negatives come from


@pytest.fixture(scope="module")
def scifact() -> tuple[dict[str, Document], list[Document], InMemoryBM25]:
    corpus = read_corpus(shared_dataset("beir-scifact"))
    missing = [i for i in PASSAGE_IDS if i not in corpus]
    if missing:
        pytest.skip(f"SciFact at {shared_dataset('beir-scifact')} lacks passages {missing}: another version of the set")
    bm25 = InMemoryBM25()
    bm25.index(corpus.values())
    return corpus, [corpus[i] for i in PASSAGE_IDS], bm25


def generate(client: Any, passages: list[Document], bm25: InMemoryBM25, out: Path) -> GenerationReport:
    filters = build_filters(roundtrip_retriever=bm25, roundtrip_k=20)  # the run's default filter chain
    return QueryGenerator(client, GENERATION, filters=filters).generate(passages, out / "queries.jsonl")


def label(client: Any, corpus: dict[str, Document], bm25: InMemoryBM25, out: Path) -> LabelReport:
    candidates = candidates_from_retriever(read_jsonl(out / "queries.jsonl"), bm25, k=TOP_K)
    return Labeler(LABELLING.make_judge(client), corpus, LABELLING).label(candidates, out)


def check_generation(out: Path, report: GenerationReport, passages: list[Document]) -> Counter[str]:
    """Every query type kept at least MIN_PER_TYPE queries, MIN_KEPT in all; raises AssertionError saying why not."""
    kept = read_jsonl(out / "queries.jsonl")
    per_type = Counter(str(q["query_type"]) for q in kept)
    rejected = Counter(f"{r['query_type']}/{r['filter']}" for r in read_jsonl(out / "rejected.jsonl"))
    why = f"kept {dict(per_type)}; rejected {dict(rejected)}; report {json.dumps(report.to_dict(), default=str)[:600]}"
    assert report.slots == len(passages) * len(QUERY_TYPES) and report.slots_failed == 0, why
    short = {t: per_type[t] for t in QUERY_TYPES if per_type[t] < MIN_PER_TYPE}
    assert not short, f"kept queries per type {short} below {MIN_PER_TYPE}: {why}"
    assert sum(per_type.values()) >= MIN_KEPT, f"{sum(per_type.values())} kept queries, fewer than {MIN_KEPT}: {why}"
    ids = {p.id for p in passages}
    for q in kept:
        assert q["source_doc_id"] in ids and isinstance(q["query"], str) and len(q["query"].split()) >= 2, q
    return per_type


def check_groups(out: Path, report: LabelReport) -> int:
    """At least MIN_GROUPS groups, each with its source passage as a judged positive and judged negatives."""
    groups = read_groups(out / "groups.jsonl")
    why = f"label report {json.dumps(report.to_dict(), default=str)[:800]}"
    assert report.pairs_failed == 0 and report.pairs_judged > 0, why
    assert len(groups) >= MIN_GROUPS, f"{len(groups)} training groups, fewer than {MIN_GROUPS}: {why}"
    sources = {q["query_id"]: q["source_doc_id"] for q in read_jsonl(out / "queries.jsonl")}
    for g in groups:
        assert g.query.strip() and g.query_id in sources
        assert g.positive.grade is not None and g.positive.grade >= LABELLING.positive_min_grade, g.positive
        if g.meta["positive_role"] == "source":
            assert g.positive.doc_id == sources[g.query_id]
        assert g.negatives, f"group {g.query_id} has no negative"
        for n in g.negatives:
            assert n.doc_id != g.positive.doc_id and n.grade is not None and n.grade <= LABELLING.negative_max_grade
            assert n.probability is not None and 0.0 <= n.probability < LABELLING.yes_threshold
    return len(groups)


# --------------------------------------------------------------------------------------- the default model


@pytest.fixture(scope="module")
def qwen_run(
    qwen_server: Any, scifact: tuple[dict[str, Document], list[Document], InMemoryBM25], tmp_path_factory: Any
) -> Iterator[tuple[Path, GenerationReport, LLMClient]]:
    _, passages, bm25 = scifact
    out = tmp_path_factory.mktemp("qwen-generation")
    config = LLMConfig(model=qwen_server.alias, base_url=qwen_server.base_url, timeout=900, max_concurrency=2)
    with LLMClient(config, cache=ResponseCache(out / "fresh-cache.sqlite")) as client:
        report = generate(client, passages, bm25, out)
        yield out, report, client


def test_default_model_writes_kept_queries_of_every_type(
    qwen_run: tuple[Path, GenerationReport, LLMClient], scifact: tuple[dict[str, Document], list[Document], InMemoryBM25]
) -> None:
    out, report, client = qwen_run
    assert client.usage.cache_hits == 0  # every answer came from the model
    per_type = check_generation(out, report, scifact[1])
    print(f"kept per type: {dict(per_type)}")  # in the -s / -rA output: the numbers the bounds were set from


def test_labelling_the_default_models_queries_yields_groups_with_positives_and_negatives(
    qwen_run: tuple[Path, GenerationReport, LLMClient], scifact: tuple[dict[str, Document], list[Document], InMemoryBM25]
) -> None:
    out, _, client = qwen_run
    corpus, _, bm25 = scifact
    report = label(client, corpus, bm25, out)
    groups = check_groups(out, report)
    print(f"groups: {groups}; judged {report.pairs_judged}; grades {report.grades}")


# ------------------------------------------------------------- the user's own queries set the register it writes in

DEMONSTRATED_IDS = ["4319174", "4695046", "12258338"]
"""SciFact abstracts that claims of its *train* split judge relevant (benchmarks/make_demonstrations.py's seed-0 draw);
their 7 claims are the demonstrations. None of them is among PASSAGE_IDS."""
QUESTION_RE = re.compile(r"^(what|how|why|which|who|whom|whose|when|where|is|are|do|does|did|can|could|should)\b|\?\s*$",
                         re.IGNORECASE)  # fmt: skip
MIN_DEMONSTRATED_CLAIMS = 0.5  # measured 0.91 of 186 on 80 SciFact passages (the scorecard lever's run)
MAX_OTHER_CLAIMS = 0.25  # the natural and keyword types on the same passages: questions and phrases (0.01 of 171)


def is_claim(query: str) -> bool:
    """A statement as SciFact's users write one: a sentence of five words or more ending in a period, not a
    question. Keyword phrases are not claims: without the demonstrated turns the same task gets phrases."""
    query = query.strip()
    return not QUESTION_RE.search(query) and query.endswith(".") and len(query.split()) >= 5


def test_demonstrations_make_the_default_model_write_in_their_register(
    qwen_run: tuple[Path, GenerationReport, LLMClient], qwen_server: Any,
    scifact: tuple[dict[str, Document], list[Document], InMemoryBM25], tmp_path: Path,
) -> None:
    """Told to write claims, or shown eight claims inside the prompt, this model still asks "What is ...?"; shown
    SciFact's train claims as its own earlier answers, it writes claims for the same passages."""
    from synthrank.data import load_dataset
    from synthrank.synthesize import Demonstration

    corpus, passages, bm25 = scifact
    train = load_dataset(shared_dataset("beir-scifact"), split="train")
    claims = {d: [train.queries[q].text for q in sorted(train.qrels) if q in train.queries and train.qrels[q].get(d, 0) > 0]
              for d in DEMONSTRATED_IDS}  # fmt: skip
    if not all(claims.values()):
        pytest.skip("this SciFact has no train claims on the demonstrated passages")
    demos = [Demonstration(corpus[d].title, corpus[d].text, tuple(claims[d][:3]), d) for d in DEMONSTRATED_IDS]
    config = LLMConfig(model=qwen_server.alias, base_url=qwen_server.base_url, timeout=900, max_concurrency=2)
    cfg = GenerationConfig(query_types=["demonstrated"], n_per_type=3, seed=0, max_tokens=160, max_passage_chars=1000)
    with LLMClient(config, cache=ResponseCache(tmp_path / "fresh-cache.sqlite")) as client:
        filters = build_filters(roundtrip_retriever=bm25, roundtrip_k=20)
        QueryGenerator(client, cfg, filters=filters, demonstrations=demos).generate(passages, tmp_path / "q.jsonl")
    demonstrated = [q["query"] for q in read_jsonl(tmp_path / "q.jsonl")]
    others = [q["query"] for q in read_jsonl(qwen_run[0] / "queries.jsonl") if q["query_type"] in ("natural", "keyword")]
    share = lambda queries: sum(map(is_claim, queries)) / max(1, len(queries))  # noqa: E731
    why = f"demonstrated {demonstrated}; natural and keyword {others}"
    assert len(demonstrated) >= len(passages), f"fewer kept queries than passages: {why}"
    assert share(others) <= MAX_OTHER_CLAIMS, f"the control is no longer questions and phrases: {why}"
    assert share(demonstrated) >= MIN_DEMONSTRATED_CLAIMS, f"claims {share(demonstrated):.2f}: {why}"
    print(f"claims: demonstrated {share(demonstrated):.2f}, natural and keyword {share(others):.2f}")


# ------------------------------------------------------------------ the checks fail on a model that writes nothing


def _fake_client(server: FakeOpenAIServer, tmp_path: Path) -> LLMClient:
    config = LLMConfig(model="fake-model", base_url=server.base_url, max_retries=0, timeout=10)
    return LLMClient(config, cache=ResponseCache(tmp_path / "cache.sqlite"))


_PASSAGE_RE = re.compile(r"<passage>\n(.*?)</passage>", re.S)


def _garbage_generator(style: str) -> Any:
    def respond(body: dict[str, Any]) -> Fault:
        user = body["messages"][-1]["content"]
        if "Does the passage answer the query?" in user:
            return Fault.ok("No", logprobs=yes_no_logprobs(0.1))
        if style == "prose":  # what a weak or broken model writes: no JSON at all
            return Fault.ok("Sure! Here are some great search queries about this interesting passage.")
        # JSON the parser accepts, with queries the filters drop: one word, or a sentence copied from the passage
        passage = _PASSAGE_RE.search(user)
        copied = " ".join((passage.group(1) if passage else "x " * 20).split()[5:17])
        return Fault.ok(json.dumps({"queries": ["query"] if "keyword" in user.lower() else [copied]}))

    return respond


@pytest.mark.parametrize("style", ["prose", "filtered"])
def test_the_generation_check_fails_on_a_model_that_writes_nothing_usable(
    style: str, scifact: tuple[dict[str, Document], list[Document], InMemoryBM25], tmp_path: Path
) -> None:
    _, passages, bm25 = scifact
    with FakeOpenAIServer(responder=_garbage_generator(style)) as server, _fake_client(server, tmp_path) as client:
        report = generate(client, passages, bm25, tmp_path)
    with pytest.raises(AssertionError, match=r"kept queries per type .* below 1"):
        check_generation(tmp_path, report, passages)


def test_the_labelling_check_fails_on_a_judge_without_a_usable_verdict(
    scifact: tuple[dict[str, Document], list[Document], InMemoryBM25], tmp_path: Path
) -> None:
    """Good queries (each passage's title), a judge that answers neither Yes nor No: no group can be built."""
    corpus, passages, bm25 = scifact

    def respond(body: dict[str, Any]) -> Fault:
        user = body["messages"][-1]["content"]
        if "Does the passage answer the query?" in user:
            return Fault.ok("Maybe, it depends.")
        title = user.split("<passage>\n", 1)[1].split("\n", 1)[0]
        return Fault.ok(json.dumps({"queries": [" ".join(title.split()[:4])]}))  # under 5 words: not a copy

    with FakeOpenAIServer(responder=respond) as server, _fake_client(server, tmp_path) as client:
        generate(client, passages, bm25, tmp_path)
        assert read_jsonl(tmp_path / "queries.jsonl"), "the stand-in generator must give the judge queries to judge"
        report = label(client, corpus, bm25, tmp_path)
    with pytest.raises(AssertionError, match="training groups, fewer than"):
        check_groups(tmp_path, report)
