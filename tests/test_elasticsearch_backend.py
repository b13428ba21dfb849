"""ElasticsearchBM25 through the real `elasticsearch` client and transport, answered by canned responses.

No Elasticsearch server can be installed on this machine (see /work/shared/ENGINES.md), so
these tests plug a node class into the client's own transport (`elastic_transport`): every
request goes through the real client (URL building, NDJSON serialisation of `_bulk` and
`_msearch`, auth headers, retries, the product check, response parsing), and is answered with
a body in Elasticsearch 8.x's documented response format. There was no real server to record
from: the bodies follow the ES 8 reference (and their shape was cross-checked against the
noida-db imitation). What a real server ranks is checked by `integration/test_elasticsearch.py`
wherever `ELASTICSEARCH_URL` points at one.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

pytest.importorskip("elasticsearch")

from elastic_transport import ApiResponseMeta, BaseNode, HttpHeaders
from elastic_transport._node import NodeApiResponse

from synthrank.data import Document
from synthrank.errors import SynthrankError
from synthrank.retrieve import Analyzer
from synthrank.retrieve.analysis import LUCENE_ENGLISH_STOPWORDS
from synthrank.retrieve.elasticsearch_backend import ElasticsearchBM25, index_settings

ES_HEADERS = {
    "X-Elastic-Product": "Elasticsearch",
    "content-type": "application/vnd.elasticsearch+json;compatible-with=8",
}
INDEX = "synthrank-test"
DOCS = [
    Document("d1", "Glaucoma is a group of eye diseases that damage the optic nerve.", "Glaucoma"),
    Document("d2", "Diabetes is a disease in which blood glucose levels are too high.", "Diabetes"),
    Document("d3", "Asthma is a chronic disease of the airways in the lungs.", ""),
]


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes | None

    def json(self) -> Any:
        assert self.body is not None
        return json.loads(self.body)

    def ndjson(self) -> list[Any]:
        assert self.body is not None
        return [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]


Responder = Callable[[Request], tuple[int, Any]]


@dataclass
class CannedServer:
    """Routes (method, path regex) to responders; responders may be lists consumed one per call."""

    routes: list[tuple[str, str, Any]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    def on(self, method: str, path: str, *responses: Any) -> CannedServer:
        self.routes.append((method, path, list(responses)))
        return self

    def handle(self, request: Request) -> tuple[int, Any]:
        self.requests.append(request)
        for method, pattern, responses in self.routes:
            if method == request.method and re.fullmatch(pattern, request.path):
                response = responses[0] if len(responses) == 1 else responses.pop(0)
                return response(request) if callable(response) else response
        raise AssertionError(f"no canned response for {request.method} {request.path}")

    def sent(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and re.fullmatch(path, r.path)]


def make_node_class(server: CannedServer) -> type[BaseNode]:
    class CannedNode(BaseNode):
        _CLIENT_META_HTTP_CLIENT = ("canned", "1.0")

        def perform_request(self, method, target, body=None, headers=None, request_timeout=None):  # type: ignore[override]
            path, _, query = target.partition("?")
            merged = {k.lower(): v for k, v in {**self.headers, **(headers or {})}.items()}
            status, payload = server.handle(Request(method, path, query, merged, body))
            data = b"" if payload is None else json.dumps(payload).encode()
            meta = ApiResponseMeta(
                status=status, http_version="1.1", headers=HttpHeaders(ES_HEADERS), duration=0.001, node=self.config
            )
            return NodeApiResponse(meta, data)

    return CannedNode


def backend(server: CannedServer, **kwargs: Any) -> ElasticsearchBM25:
    kwargs.setdefault("hosts", "http://es.test:9200")
    return ElasticsearchBM25(index_name=INDEX, client_kwargs={"node_class": make_node_class(server)}, **kwargs)


# --------------------------------------------------------------------------- real-format bodies

SHARDS = {"total": 1, "successful": 1, "skipped": 0, "failed": 0}
ACK = {"acknowledged": True}
CREATED = {"acknowledged": True, "shards_acknowledged": True, "index": INDEX}
NOT_FOUND = {
    "error": {
        "root_cause": [{"type": "index_not_found_exception", "reason": f"no such index [{INDEX}]",
                        "resource.type": "index_or_alias", "resource.id": INDEX, "index_uuid": "_na_", "index": INDEX}],
        "type": "index_not_found_exception", "reason": f"no such index [{INDEX}]", "resource.type": "index_or_alias",
        "resource.id": INDEX, "index_uuid": "_na_", "index": INDEX,
    },
    "status": 404,
}


def bulk_ok(request: Request, fail: dict[str, tuple[int, dict[str, Any]]] | None = None) -> tuple[int, Any]:
    lines = request.ndjson()
    items = []
    for action in lines[0::2]:
        doc_id = action["index"]["_id"]
        if fail and doc_id in fail:
            status, error = fail[doc_id]
            items.append({"index": {"_index": INDEX, "_id": doc_id, "status": status, "error": error}})
        else:
            items.append({"index": {"_index": INDEX, "_id": doc_id, "_version": 1, "result": "created",
                                    "_shards": {"total": 1, "successful": 1, "failed": 0}, "_seq_no": 0,
                                    "_primary_term": 1, "status": 201}})
    return 200, {"errors": any("error" in i["index"] for i in items), "took": 7, "items": items}


def search_hits(*hits: tuple[str, float]) -> dict[str, Any]:
    return {
        "took": 3, "timed_out": False, "_shards": SHARDS,
        "hits": {"max_score": hits[0][1] if hits else None,
                 "hits": [{"_index": INDEX, "_id": d, "_score": s} for d, s in hits]},
    }


def msearch(*responses: dict[str, Any]) -> tuple[int, Any]:
    return 200, {"took": 5, "responses": [{**r, "status": r.get("status", 200)} for r in responses]}


def real_settings(es: ElasticsearchBM25) -> dict[str, Any]:
    """What GET /<index>/_settings answers for an index we created: every leaf a string, plus server keys."""

    def stringify(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: stringify(v) for k, v in value.items()}
        if isinstance(value, list):
            return [stringify(v) for v in value]
        return str(value).lower() if isinstance(value, bool) else str(value)

    ours = stringify(es.index_settings()["settings"])
    ours.update({"routing": {"allocation": {"include": {"_tier_preference": "data_content"}}},
                 "provided_name": INDEX, "creation_date": "1717171717171", "uuid": "kF0b2-3mQ5aV8Yq1ZQx1Yw",
                 "version": {"created": "8505000"}})
    return {INDEX: {"settings": {"index": ours}}}


# --------------------------------------------------------------------------- settings


def test_index_settings_mirror_the_shared_analyzer_and_bm25() -> None:
    body = index_settings(Analyzer(), k1=0.9, b=0.4)
    settings = body["settings"]
    assert settings["similarity"] == {"synthrank_bm25": {"type": "BM25", "k1": 0.9, "b": 0.4}}
    analysis = settings["analysis"]
    assert analysis["tokenizer"]["synthrank_split"] == {"type": "pattern", "pattern": r"[^\p{L}\p{N}]+"}
    assert analysis["analyzer"]["synthrank_text"] == {
        "type": "custom", "tokenizer": "synthrank_split", "filter": ["lowercase", "synthrank_stop", "synthrank_stemmer"],
    }
    assert analysis["filter"]["synthrank_stop"] == {"type": "stop", "stopwords": list(LUCENE_ENGLISH_STOPWORDS)}
    assert analysis["filter"]["synthrank_stemmer"] == {"type": "snowball", "language": "English"}
    assert body["mappings"]["properties"]["text"] == {
        "type": "text", "analyzer": "synthrank_text", "similarity": "synthrank_bm25",
    }
    assert settings["number_of_shards"] == 1


def test_index_settings_follow_analyzer_variants() -> None:
    bare = index_settings(Analyzer(stemmer=None, stopwords=None, lowercase=False), k1=1.2, b=0.75)["settings"]
    assert bare["analysis"]["analyzer"]["synthrank_text"]["filter"] == []
    assert "filter" not in bare["analysis"]
    custom = index_settings(Analyzer(stemmer="porter", stopwords=("foo", "Bar")), k1=1.2, b=0.75)["settings"]
    assert custom["analysis"]["filter"]["synthrank_stop"]["stopwords"] == ["bar", "foo"]
    assert custom["analysis"]["filter"]["synthrank_stemmer"]["language"] == "Porter"


# --------------------------------------------------------------------------- indexing


def test_index_creates_the_index_and_bulk_indexes_title_and_text() -> None:
    server = (CannedServer()
              .on("DELETE", f"/{INDEX}", (404, NOT_FOUND))
              .on("PUT", f"/{INDEX}", (200, CREATED))
              .on("PUT", "/_bulk", bulk_ok)
              .on("POST", f"/{INDEX}/_refresh", (200, {"_shards": SHARDS}))
              .on("POST", f"/{INDEX}/_count", (200, {"count": 3, "_shards": SHARDS})))
    es = backend(server, bulk_chunk_size=2)
    es.index(DOCS)
    assert len(es) == 3
    assert server.sent("DELETE", f"/{INDEX}")[0].query == "ignore_unavailable=true"
    create = server.sent("PUT", f"/{INDEX}")[0].json()
    assert create == es.index_settings()
    bulks = server.sent("PUT", "/_bulk")
    assert len(bulks) == 2, "two chunks of at most 2 documents"
    lines = [line for b in bulks for line in b.ndjson()]
    assert lines[0] == {"index": {"_index": INDEX, "_id": "d1"}}
    assert lines[1] == {"text": "Glaucoma Glaucoma is a group of eye diseases that damage the optic nerve."}
    assert lines[5] == {"text": DOCS[2].text}
    assert "x-ndjson" in bulks[0].headers["content-type"]
    assert [r.method + " " + r.path for r in server.requests][-2:] == [f"POST /{INDEX}/_refresh", f"POST /{INDEX}/_count"]


def test_bulk_retries_documents_rejected_with_429() -> None:
    rejected = (429, {"type": "es_rejected_execution_exception",
                      "reason": "rejected execution of coordinating operation [coordinating_and_primary_bytes=0]"})
    server = (CannedServer()
              .on("DELETE", f"/{INDEX}", (200, ACK))
              .on("PUT", f"/{INDEX}", (200, CREATED))
              .on("PUT", "/_bulk", lambda r: bulk_ok(r, {"d2": rejected}), bulk_ok)
              .on("POST", f"/{INDEX}/_refresh", (200, {"_shards": SHARDS}))
              .on("POST", f"/{INDEX}/_count", (200, {"count": 3, "_shards": SHARDS})))
    es = backend(server, bulk_initial_backoff=0.01)
    es.index(DOCS)
    retried = server.sent("PUT", "/_bulk")[1].ndjson()
    assert retried == [{"index": {"_index": INDEX, "_id": "d2"}}, {"text": DOCS[1].full_text(" ")}]


def test_bulk_failure_names_the_document() -> None:
    bad = (400, {"type": "document_parsing_exception", "reason": "[1:9] failed to parse field [text]"})
    server = (CannedServer()
              .on("DELETE", f"/{INDEX}", (200, ACK))
              .on("PUT", f"/{INDEX}", (200, CREATED))
              .on("PUT", "/_bulk", lambda r: bulk_ok(r, {"d3": bad})))
    with pytest.raises(SynthrankError, match=r"rejected 1 of 3 documents.*'d3'.*failed to parse"):
        backend(server).index(DOCS)


def test_reuse_index_skips_indexing_when_settings_and_count_match() -> None:
    es = backend(CannedServer(), reuse_index=True)
    server = (CannedServer()
              .on("HEAD", f"/{INDEX}", (200, None))
              .on("GET", f"/{INDEX}/_settings", (200, real_settings(es)))
              .on("POST", f"/{INDEX}/_count", (200, {"count": 3, "_shards": SHARDS})))
    es = backend(server, reuse_index=True)
    es.index(DOCS)
    assert len(es) == 3
    assert not server.sent("PUT", f"/{INDEX}") and not server.sent("PUT", "/_bulk")


def test_reuse_index_refuses_an_index_with_other_settings_or_size() -> None:
    other = backend(CannedServer(), k1=1.2, b=0.75)
    server = (CannedServer()
              .on("HEAD", f"/{INDEX}", (200, None))
              .on("GET", f"/{INDEX}/_settings", (200, real_settings(other))))
    with pytest.raises(SynthrankError, match="another similarity"):
        backend(server, reuse_index=True).index(DOCS)
    es = backend(CannedServer())
    server = (CannedServer()
              .on("HEAD", f"/{INDEX}", (200, None))
              .on("GET", f"/{INDEX}/_settings", (200, real_settings(es)))
              .on("POST", f"/{INDEX}/_count", (200, {"count": 2, "_shards": SHARDS})))
    with pytest.raises(SynthrankError, match="holds 2 documents but the corpus has 3"):
        backend(server, reuse_index=True).index(DOCS)


def test_len_of_a_missing_index_is_zero() -> None:
    server = CannedServer().on("HEAD", f"/{INDEX}", (404, None))
    assert len(backend(server)) == 0


# --------------------------------------------------------------------------- search


def test_retrieve_batches_queries_into_msearch_and_parses_hits() -> None:
    server = CannedServer().on(
        "POST", "/_msearch",
        msearch(search_hits(("d1", 4.4), ("d3", 2.2)), search_hits()),
        msearch(search_hits(("d2", 1.9))),
    )
    es = backend(server, search_batch_size=2)
    results = es.retrieve(["optic nerve damage", "the", "blood sugar"], k=7)
    assert [[(h.doc_id, h.rank) for h in r] for r in results] == [[("d1", 1), ("d3", 2)], [], [("d2", 1)]]
    # Elasticsearch's LegacyBM25Similarity scores are (k1 + 1) times Lucene's/bm25s': scaled back.
    assert results[0][0].score == pytest.approx(4.4 / 1.9)
    first, second = server.sent("POST", "/_msearch")
    lines = first.ndjson()
    assert lines[0] == {"index": INDEX}
    assert lines[1] == {"query": {"match": {"text": {"query": "optic nerve damage"}}}, "size": 7,
                        "_source": False, "track_total_hits": False}
    assert len(lines) == 4 and len(second.ndjson()) == 2


def test_retrieve_keeps_elasticsearch_scale_on_request() -> None:
    server = CannedServer().on("POST", "/_msearch", msearch(search_hits(("d1", 4.4))))
    assert backend(server, lucene_scale=True).retrieve(["optic"], k=1)[0][0].score == pytest.approx(4.4)


def test_multi_shard_index_searches_with_global_term_statistics() -> None:
    server = CannedServer().on("POST", "/_msearch", msearch(search_hits()))
    backend(server, shards=3).retrieve(["optic"], k=1)
    assert server.sent("POST", "/_msearch")[0].ndjson()[0] == {"index": INDEX, "search_type": "dfs_query_then_fetch"}


def test_msearch_item_error_names_the_query() -> None:
    error = {"error": {"root_cause": [{"type": "query_shard_exception", "reason": "failed to create query"}],
                       "type": "search_phase_execution_exception", "reason": "all shards failed", "phase": "query",
                       "grouped": True}, "status": 400}
    server = CannedServer().on("POST", "/_msearch", msearch(search_hits(("d1", 1.0)), error))
    with pytest.raises(SynthrankError, match=r"query 1 \('bad'\).*all shards failed"):
        backend(server).retrieve(["good", "bad"], k=3)


def test_msearch_is_retried_on_503() -> None:
    unavailable = (503, {"error": {"type": "cluster_block_exception", "reason": "blocked"}, "status": 503})
    server = CannedServer().on("POST", "/_msearch", unavailable, msearch(search_hits(("d2", 2.0))))
    assert backend(server, max_retries=2).retrieve(["sugar"], k=1)[0][0].doc_id == "d2"
    assert len(server.sent("POST", "/_msearch")) == 2


def test_score_filters_to_the_given_ids() -> None:
    server = CannedServer().on("POST", f"/{INDEX}/_search", (200, search_hits(("d2", 3.8))))
    scores = backend(server).score("blood sugar", ["d2", "d1"])
    assert scores.tolist() == pytest.approx([2.0, 0.0])
    body = server.sent("POST", f"/{INDEX}/_search")[0].json()
    assert body["query"] == {"bool": {"must": [{"match": {"text": {"query": "blood sugar"}}}],
                                      "filter": [{"ids": {"values": ["d2", "d1"]}}]}}
    assert body["size"] == 2


# --------------------------------------------------------------------------- auth, TLS, serialisation


def test_api_key_is_sent_and_wins_over_basic_auth() -> None:
    server = CannedServer().on("HEAD", f"/{INDEX}", (404, None))

    class Secret:  # Haystack's Secret resolves the same way
        def resolve_value(self) -> str:
            return "a2V5OnNlY3JldA=="

    es = backend(server, api_key=Secret(), username="elastic", password="pw")
    len(es)
    assert server.requests[0].headers["authorization"] == "ApiKey a2V5OnNlY3JldA=="


def test_basic_auth_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ELASTICSEARCH_API_KEY", raising=False)
    monkeypatch.setenv("ELASTICSEARCH_USERNAME", "elastic")
    monkeypatch.setenv("ELASTICSEARCH_PASSWORD", "changeme")
    server = CannedServer().on("HEAD", f"/{INDEX}", (404, None))
    len(backend(server))
    expected = "Basic " + base64.b64encode(b"elastic:changeme").decode()
    assert server.requests[0].headers["authorization"] == expected


def test_username_without_password_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ELASTICSEARCH_API_KEY", "ELASTICSEARCH_PASSWORD", "ELASTICSEARCH_USERNAME"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SynthrankError, match="username and a password"):
        backend(CannedServer(), username="elastic").warm_up()


def test_tls_options_reach_the_node_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ELASTICSEARCH_API_KEY", raising=False)
    es = backend(CannedServer(), hosts="https://es.test:9243", ca_certs="/etc/ssl/ca.pem", verify_certs=True,
                 client_cert="/etc/ssl/client.pem", client_key="/etc/ssl/client.key")
    node = es.client.transport.node_pool.get()
    assert node.config.scheme == "https" and node.config.port == 9243
    assert node.config.ca_certs == "/etc/ssl/ca.pem" and node.config.client_cert == "/etc/ssl/client.pem"
    assert "ca_certs" not in backend(CannedServer()).client_options()


def test_hosts_default_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELASTICSEARCH_URL", "http://search.internal:9201")
    assert ElasticsearchBM25().hosts == "http://search.internal:9201"


def test_to_dict_round_trips_without_secrets() -> None:
    es = ElasticsearchBM25(hosts="http://es.test:9200", index_name="i", k1=1.1, api_key="secret",
                           analyzer=Analyzer(stemmer="porter"), shards=2, reuse_index=True)
    data = es.to_dict()
    assert "secret" not in json.dumps(data)
    again = ElasticsearchBM25.from_dict(data)
    assert again.to_dict() == data and again.analyzer == Analyzer(stemmer="porter")


def test_core_import_does_not_load_the_client() -> None:
    code = (
        "import sys, synthrank.retrieve, synthrank.mine; assert 'elasticsearch' not in sys.modules; "
        "from synthrank.retrieve import ElasticsearchBM25; ElasticsearchBM25(hosts='http://x:9200'); "
        "assert 'elasticsearch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
