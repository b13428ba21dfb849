"""ElasticsearchBM25 against a server: same analysis and BM25 as the in-memory backend, mining, reuse, CLI.

The server is the one named by ``ELASTICSEARCH_URL`` or, failing that, the noida-db imitation
started on loopback (see ``es_fixtures``): against the imitation these tests are a smoke test of
our client code, not evidence of real Elasticsearch behaviour.

Why "same top-10" is checked through scores: Lucene stores each document's length in one byte
(``SmallFloat.intToByte4``: exact up to 39 tokens, then 4 significant bits), while the in-memory
backend uses exact lengths, so documents whose scores differ by less than that rounding can swap
places. The tests therefore check that (1) every score Elasticsearch returns equals Lucene's
BM25 formula over *our* analyser's tokens with Lucene-encoded lengths, (2) every in-memory score
equals the same formula with exact lengths, and (3) the top-10 sets agree for nearly all queries,
any difference being a near-tie that the length encoding explains.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from integration.conftest import shared_dataset
from integration.es_fixtures import Bm25Oracle, EsServer, elasticsearch_server
from synthrank.data import Document, load_dataset, read_groups
from synthrank.errors import SynthrankError
from synthrank.mine import HardNegativeMiner, MiningConfig, MiningQuery, duplicate_groups, text_hash
from synthrank.retrieve import Analyzer, InMemoryBM25

pytest.importorskip("elasticsearch")
from synthrank.retrieve.elasticsearch_backend import ElasticsearchBM25

pytestmark = pytest.mark.elasticsearch


@pytest.fixture(scope="module")
def es_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EsServer]:
    with elasticsearch_server(tmp_path_factory.mktemp("es")) as server:
        yield server


def make_es(server: EsServer, index_name: str, **kwargs) -> ElasticsearchBM25:
    kwargs = {**server.bm25_params, **kwargs}
    return ElasticsearchBM25(hosts=server.url, index_name=index_name, request_timeout=300, **kwargs)


def pseudo_query(doc: Document, words: int = 10) -> str:
    """STAND-IN for an LLM-written synthetic query: the passage's title and the start of its text."""
    return f"{doc.title} {' '.join(doc.text.split()[:words])}".strip()


def medquad_subset(n_docs: int, seed: int = 7) -> dict[str, Document]:
    """A MedQuAD subset that keeps some duplicate groups whole, so near-duplicate exclusion is exercised."""
    corpus = load_dataset(shared_dataset("medquad")).corpus
    keep: list[str] = [d for group in duplicate_groups(corpus)[:6] for d in group]
    rest = sorted(set(corpus) - set(keep))
    keep += random.Random(seed).sample(rest, n_docs - len(keep))
    return {d: corpus[d] for d in keep}


def test_same_analysis_bm25_and_top10_as_in_memory(es_server: EsServer) -> None:
    dataset = load_dataset(shared_dataset("vaswani"))
    docs = list(dataset.corpus.values())[:600]
    queries = [q.text for q in dataset.queries.values()][:40]
    params = es_server.bm25_params
    memory = InMemoryBM25(**params)
    memory.index(docs)
    with make_es(es_server, "synthrank-it-parity") as es:
        es.index(docs)
        assert len(es) == len(docs)
        es_hits = es.retrieve(queries, k=10)
    memory_hits = memory.retrieve(queries, k=10)
    analyzer = Analyzer()
    oracle = Bm25Oracle({d.id: analyzer(d.full_text(" ")) for d in docs}, **params)

    same_sets = 0
    for query, from_es, from_memory in zip(queries, es_hits, memory_hits, strict=True):
        tokens = analyzer(query)
        for hit in from_es:
            assert hit.score == pytest.approx(oracle.score(tokens, hit.doc_id, lucene_norms=True), rel=1e-4), query
        for hit in from_memory:
            assert hit.score == pytest.approx(oracle.score(tokens, hit.doc_id, lucene_norms=False), rel=1e-4), query
        es_ids, memory_ids = {h.doc_id for h in from_es}, {h.doc_id for h in from_memory}
        if es_ids == memory_ids:
            same_sets += 1
            continue
        # A difference must be a near-tie at the cut-off under the two length encodings.
        cutoff = from_memory[-1].score
        for doc_id in es_ids ^ memory_ids:
            exact = oracle.score(tokens, doc_id, lucene_norms=False)
            assert exact == pytest.approx(cutoff, rel=0.08), (query, doc_id)
    print(f"top-10 sets equal for {same_sets}/{len(queries)} queries ({es_server.kind})")
    assert same_sets >= 0.9 * len(queries), f"top-10 sets equal for {same_sets}/{len(queries)} queries"


def test_medquad_groups_mined_by_both_backends(es_server: EsServer, tmp_path: Path) -> None:
    corpus = medquad_subset(300)
    duplicated = {d for group in duplicate_groups(corpus) for d in group}
    sources = sorted(duplicated)[:6] + sorted(set(corpus) - duplicated)[:14]
    queries = [MiningQuery(f"sq-{i}", pseudo_query(corpus[d]), d) for i, d in enumerate(sources)]
    config = MiningConfig(num_negatives=5, range_min=1, top_k=30)
    params = es_server.bm25_params

    memory = InMemoryBM25(**params)
    memory.index(corpus.values())
    by_memory = HardNegativeMiner(memory, corpus, config).mine_groups(queries)
    with make_es(es_server, "synthrank-it-medquad") as es:
        es.index(list(corpus.values()))
        miner = HardNegativeMiner(es, corpus, config)
        summary = miner.mine_to_files(queries, tmp_path / "candidates.jsonl", tmp_path / "groups.jsonl")
    by_es = read_groups(tmp_path / "groups.jsonl")

    assert summary["queries_mined"] == len(queries) and len(by_es) >= 0.9 * len(queries)
    assert summary["skipped"]["near_duplicate"] >= 1
    for group in by_es:
        positive_hash = text_hash(corpus[group.positive.doc_id].full_text(" "))
        for negative in group.negatives:
            assert negative.doc_id != group.positive.doc_id
            assert text_hash(corpus[negative.doc_id].full_text(" ")) != positive_hash
    memory_negatives = {g.query_id: {n.doc_id for n in g.negatives} for g in by_memory}
    overlaps = [len({n.doc_id for n in g.negatives} & memory_negatives.get(g.query_id, set())) / len(g.negatives)
                for g in by_es]
    assert sum(overlaps) / len(overlaps) >= 0.8, overlaps


def test_existing_index_is_reused_not_rebuilt(es_server: EsServer) -> None:
    docs = list(load_dataset(shared_dataset("vaswani")).corpus.values())[:200]
    with make_es(es_server, "synthrank-it-reuse") as es:
        es.index(docs)
        created = es.client.indices.get_settings(index=es.index_name)[es.index_name]["settings"]["index"]["uuid"]
        before = es.retrieve(["magnetic field measurements"], k=5)
    with make_es(es_server, "synthrank-it-reuse", reuse_index=True) as again:
        again.index(docs)
        uuid = again.client.indices.get_settings(index=again.index_name)[again.index_name]["settings"]["index"]["uuid"]
        assert uuid == created, "the index was re-created"
        assert again.retrieve(["magnetic field measurements"], k=5) == before
    other = make_es(es_server, "synthrank-it-reuse", reuse_index=True, analyzer=Analyzer(stemmer=None))
    with other, pytest.raises(SynthrankError, match="another analysis"):
        other.index(docs)


def test_cli_mines_with_the_elasticsearch_backend(es_server: EsServer, tmp_path: Path) -> None:
    from synthrank_cli.main import main

    corpus = medquad_subset(120, seed=3)
    corpus_file = tmp_path / "corpus.jsonl"
    corpus_file.write_text("".join(json.dumps(d.to_json()) + "\n" for d in corpus.values()), encoding="utf-8")
    queries_file = tmp_path / "queries.jsonl"
    sources = sorted(corpus)[:8]
    queries_file.write_text("".join(
        json.dumps({"query_id": f"sq-{i}", "query": pseudo_query(corpus[d]), "source_doc_id": d,
                    "query_type": "stand-in"}) + "\n" for i, d in enumerate(sources)), encoding="utf-8")
    params = es_server.bm25_params
    result = CliRunner().invoke(main, [
        "mine", "--corpus", str(corpus_file), "--queries", str(queries_file), "--output-dir", str(tmp_path / "out"),
        "--backend", "elasticsearch", "--es-url", es_server.url, "--es-index", "synthrank-it-cli",
        "--k1", str(params["k1"]), "--b", str(params["b"]), "--num-negatives", "3", "--top-k", "20", "--no-progress",
    ])
    assert result.exit_code == 0, result.output
    groups = read_groups(tmp_path / "out" / "groups.jsonl")
    assert len(groups) >= 7 and all(len(g.negatives) == 3 for g in groups)
    stats = json.loads((tmp_path / "out" / "mine_stats.json").read_text())
    assert stats["backend"] == "elasticsearch"
