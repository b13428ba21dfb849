"""BM25 on Elasticsearch, for corpora that outgrow one machine's memory.

The index is created with an explicit BM25 similarity (same ``k1``/``b``) and a custom analyser
built from the shared :class:`~synthrank.retrieve.Analyzer` (split on non-alphanumerics,
lowercase, the explicit Lucene English stop list, Snowball stemmer), so it sees the same terms
as :class:`~synthrank.retrieve.InMemoryBM25` and ranks the same way. Documents are indexed as
``title + " " + text`` in one field, as the in-memory backend does.

The ``elasticsearch`` client (``pip install 'synthrank[elasticsearch]'``) is imported only when a
client is first needed, so the core stays importable without it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from synthrank.data.records import Document
from synthrank.errors import SynthrankError
from synthrank.retrieve.analysis import LUCENE_ENGLISH_STOPWORDS, Analyzer
from synthrank.retrieve.base import Hit

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

logger = logging.getLogger(__name__)

ANALYZER_NAME = "synthrank_text"
SIMILARITY_NAME = "synthrank_bm25"
TEXT_FIELD = "text"
# Java regex twin of the Analyzer's `[^\W_]+` token pattern: split on anything but letters and digits.
SPLIT_PATTERN = r"[^\p{L}\p{N}]+"
RETRY_STATUSES = (429, 502, 503, 504)


def _resolve_secret(value: Any) -> str | None:
    """Accept a plain string, ``None``, or any object with ``resolve_value()`` (e.g. Haystack's ``Secret``)."""
    if value is None:
        return None
    if hasattr(value, "resolve_value"):
        resolved = value.resolve_value()
        return None if resolved is None else str(resolved)
    return str(value)


def _stemmer_language(name: str) -> str:
    """PyStemmer language names -> Elasticsearch ``snowball`` filter languages (``english`` -> ``English``)."""
    special = {"porter": "Porter", "dutch_porter": "Dutch"}
    return special.get(name.lower(), name[:1].upper() + name[1:].lower())


def index_settings(analyzer: Analyzer, *, k1: float, b: float, shards: int = 1, replicas: int = 0) -> dict[str, Any]:
    """The ``settings`` and ``mappings`` of an index whose BM25 matches :class:`InMemoryBM25` with ``analyzer``."""
    filters: dict[str, Any] = {}
    chain: list[str] = []
    if analyzer.lowercase:
        chain.append("lowercase")
    if analyzer.stopword_set:
        words = LUCENE_ENGLISH_STOPWORDS if analyzer.stopwords == "en" else sorted(analyzer.stopword_set)
        filters["synthrank_stop"] = {"type": "stop", "stopwords": list(words)}
        chain.append("synthrank_stop")
    if analyzer.stemmer is not None:
        filters["synthrank_stemmer"] = {"type": "snowball", "language": _stemmer_language(analyzer.stemmer)}
        chain.append("synthrank_stemmer")
    analysis: dict[str, Any] = {
        "tokenizer": {"synthrank_split": {"type": "pattern", "pattern": SPLIT_PATTERN}},
        "analyzer": {ANALYZER_NAME: {"type": "custom", "tokenizer": "synthrank_split", "filter": chain}},
    }
    if filters:
        analysis["filter"] = filters
    settings = {
        "number_of_shards": shards,
        "number_of_replicas": replicas,
        "similarity": {SIMILARITY_NAME: {"type": "BM25", "k1": k1, "b": b}},
        "analysis": analysis,
    }
    mappings = {
        "dynamic": "strict",
        "properties": {TEXT_FIELD: {"type": "text", "analyzer": ANALYZER_NAME, "similarity": SIMILARITY_NAME}},
    }
    return {"settings": settings, "mappings": mappings}


def _as_strings(value: Any) -> Any:
    """Elasticsearch returns settings as strings; compare ours the same way."""
    if isinstance(value, Mapping):
        return {str(k): _as_strings(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_strings(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class ElasticsearchBM25:
    """BM25 retrieval on an Elasticsearch index, with bulk indexing and batched ``msearch``.

    Args:
        hosts: URL(s) of the cluster; default ``$ELASTICSEARCH_URL`` or ``http://localhost:9200``.
        index_name: the index to create or reuse.
        k1, b: BM25 parameters of the index's similarity (defaults as :class:`InMemoryBM25`).
        analyzer: the shared analyser the index's custom analyser is built from.
        api_key: an API key (string or ``Secret``); default ``$ELASTICSEARCH_API_KEY``.
        username, password: basic auth (password as string or ``Secret``); default
            ``$ELASTICSEARCH_USERNAME`` / ``$ELASTICSEARCH_PASSWORD``. An API key wins over basic auth.
        ca_certs, verify_certs, ssl_show_warn, client_cert, client_key: TLS settings, passed to the
            client only when set.
        request_timeout, max_retries: per request; retries also cover 429/502/503/504 and timeouts.
        reuse_index: when the index already exists with the same analyser and similarity and as many
            documents as the corpus, :meth:`index` keeps it instead of re-indexing.
        bulk_chunk_size, bulk_max_retries: documents per bulk request, and retries of documents
            rejected with 429 (exponential back-off from ``bulk_initial_backoff`` seconds).
        search_batch_size: queries per ``msearch`` request.
        lucene_scale: Elasticsearch scores BM25 with Lucene's ``LegacyBM25Similarity``, i.e. ``(k1 + 1)``
            times the score of :class:`InMemoryBM25`; by default scores are divided by ``k1 + 1`` so
            both backends give the same numbers (absolute margins and score caps then mean the same).
            ``True`` keeps Elasticsearch's own scale.
        shards: primary shards of a new index. With more than one, searches use
            ``dfs_query_then_fetch`` so term statistics (and so scores) stay corpus-wide.
        client_kwargs: anything else for ``elasticsearch.Elasticsearch``.

    Example:
        >>> es = ElasticsearchBM25(hosts="http://localhost:9200", index_name="medquad")
        >>> es.index(corpus.values())
        >>> hits = es.retrieve(["what causes glaucoma"], k=10)[0]
        >>> es.close()
    """

    def __init__(
        self,
        *,
        hosts: str | Sequence[str] | None = None,
        index_name: str = "synthrank-bm25",
        k1: float = 0.9,
        b: float = 0.4,
        analyzer: Analyzer | None = None,
        api_key: Any = None,
        username: str | None = None,
        password: Any = None,
        ca_certs: str | None = None,
        verify_certs: bool | None = None,
        ssl_show_warn: bool | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        request_timeout: float = 60.0,
        max_retries: int = 3,
        reuse_index: bool = False,
        bulk_chunk_size: int = 500,
        bulk_max_retries: int = 5,
        bulk_initial_backoff: float = 2.0,
        search_batch_size: int = 64,
        shards: int = 1,
        lucene_scale: bool = False,
        client_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if search_batch_size < 1 or bulk_chunk_size < 1:
            raise ValueError("search_batch_size and bulk_chunk_size must be at least 1")
        self.hosts = hosts if hosts is not None else os.environ.get("ELASTICSEARCH_URL", "http://localhost:9200")
        self.index_name = index_name
        self.k1 = k1
        self.b = b
        self.analyzer = analyzer or Analyzer()
        self.api_key = api_key
        self.username = username
        self.password = password
        self.ca_certs = ca_certs
        self.verify_certs = verify_certs
        self.ssl_show_warn = ssl_show_warn
        self.client_cert = client_cert
        self.client_key = client_key
        self.request_timeout = request_timeout
        self.max_retries = max_retries
        self.reuse_index = reuse_index
        self.bulk_chunk_size = bulk_chunk_size
        self.bulk_max_retries = bulk_max_retries
        self.bulk_initial_backoff = bulk_initial_backoff
        self.search_batch_size = search_batch_size
        self.shards = shards
        self.lucene_scale = lucene_scale
        self.client_kwargs = dict(client_kwargs or {})
        self._client: Elasticsearch | None = None
        self._count: int | None = None

    def __repr__(self) -> str:
        return f"ElasticsearchBM25(hosts={self.hosts!r}, index_name={self.index_name!r}, k1={self.k1}, b={self.b})"

    # ------------------------------------------------------------------ client

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for ``Elasticsearch(...)``: hosts, auth, TLS, timeouts and retries."""
        options: dict[str, Any] = {
            "hosts": [self.hosts] if isinstance(self.hosts, str) else list(self.hosts),
            "request_timeout": self.request_timeout,
            "max_retries": self.max_retries,
            "retry_on_timeout": True,
            "retry_on_status": RETRY_STATUSES,
        }
        api_key = _resolve_secret(self.api_key) or os.environ.get("ELASTICSEARCH_API_KEY")
        username = self.username or os.environ.get("ELASTICSEARCH_USERNAME")
        password = _resolve_secret(self.password) or os.environ.get("ELASTICSEARCH_PASSWORD")
        if api_key:
            options["api_key"] = api_key
        elif username and password:
            options["basic_auth"] = (username, password)
        elif username or (self.password is not None):
            raise SynthrankError("basic auth needs both a username and a password (or $ELASTICSEARCH_PASSWORD)")
        for name in ("ca_certs", "verify_certs", "ssl_show_warn", "client_cert", "client_key"):
            value = getattr(self, name)
            if value is not None:
                options[name] = value
        options.update(self.client_kwargs)
        return options

    def warm_up(self) -> None:
        """Create the client (cheap: it connects on the first request)."""
        if self._client is None:
            try:
                from elasticsearch import Elasticsearch
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise SynthrankError("the Elasticsearch backend needs: pip install 'synthrank[elasticsearch]'") from exc
            self._client = Elasticsearch(**self.client_options())

    @property
    def client(self) -> Elasticsearch:
        self.warm_up()
        assert self._client is not None
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> ElasticsearchBM25:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ index

    def index_settings(self) -> dict[str, Any]:
        """``{"settings": ..., "mappings": ...}`` of the index this backend creates."""
        return index_settings(self.analyzer, k1=self.k1, b=self.b, shards=self.shards)

    def exists(self) -> bool:
        return bool(self.client.indices.exists(index=self.index_name))

    def delete_index(self) -> None:
        # ignore_unavailable makes ES answer 200 for a missing index; ignore_status covers servers that still 404.
        self.client.options(ignore_status=404).indices.delete(index=self.index_name, ignore_unavailable=True)
        self._count = None

    def check_index(self) -> None:
        """Raise when the existing index was built with another analyser or BM25 similarity than ours."""
        expected = self.index_settings()["settings"]
        response = self.client.indices.get_settings(index=self.index_name)
        actual = next(iter(response.body.values()))["settings"]["index"]
        for key in ("similarity", "analysis"):
            if _as_strings(actual.get(key)) != _as_strings(expected[key]):
                raise SynthrankError(
                    f"Elasticsearch index {self.index_name!r} was built with another {key} than this backend uses "
                    f"(found {actual.get(key)!r}); rebuild it (reuse_index=False) or use another index name"
                )

    def index(self, documents: Iterable[Document], *, show_progress: bool = False) -> None:
        """(Re)create the index and bulk-index ``title + text`` of each document; or reuse a matching index."""
        from elasticsearch import helpers
        from tqdm.auto import tqdm

        docs = documents if isinstance(documents, Sequence) else list(documents)
        if not docs:
            raise SynthrankError("cannot build a BM25 index over zero documents")
        client = self.client
        if self.reuse_index and self.exists():
            self.check_index()
            count = self._refresh_count()
            if count != len(docs):
                raise SynthrankError(
                    f"Elasticsearch index {self.index_name!r} holds {count} documents but the corpus has {len(docs)}; "
                    "rebuild it (reuse_index=False) or use another index name"
                )
            logger.info("reusing Elasticsearch index %r (%d documents)", self.index_name, count)
            return
        self.delete_index()
        body = self.index_settings()
        client.indices.create(index=self.index_name, settings=body["settings"], mappings=body["mappings"])

        def actions() -> Iterator[dict[str, Any]]:
            for doc in docs:
                yield {"_index": self.index_name, "_id": doc.id, "_source": {TEXT_FIELD: doc.full_text(" ")}}

        failures: list[dict[str, Any]] = []
        with tqdm(total=len(docs), desc="Indexing", unit="doc", disable=not show_progress) as bar:
            for ok, item in helpers.streaming_bulk(
                client,
                actions(),
                chunk_size=self.bulk_chunk_size,
                max_retries=self.bulk_max_retries,
                initial_backoff=self.bulk_initial_backoff,
                raise_on_error=False,
                yield_ok=True,
            ):
                bar.update(1)
                if not ok:
                    failures.append(item)
        if failures:
            first = next(iter(failures[0].values()), failures[0])
            raise SynthrankError(
                f"Elasticsearch rejected {len(failures)} of {len(docs)} documents; first: "
                f"id {first.get('_id')!r}: {first.get('error')!r}"
            )
        client.indices.refresh(index=self.index_name)
        count = self._refresh_count()
        if count != len(docs):
            raise SynthrankError(
                f"Elasticsearch index {self.index_name!r} holds {count} documents after indexing {len(docs)} "
                "(duplicate document ids?)"
            )
        logger.info("indexed %d documents into Elasticsearch index %r", count, self.index_name)

    def _refresh_count(self) -> int:
        self._count = int(self.client.count(index=self.index_name)["count"])
        return self._count

    def __len__(self) -> int:
        if self._count is None:
            if not self.exists():
                return 0
            self._refresh_count()
        assert self._count is not None
        return self._count

    # ------------------------------------------------------------------ search

    @property
    def _score_factor(self) -> float:
        return 1.0 if self.lucene_scale else 1.0 / (self.k1 + 1.0)

    def _search_header(self) -> dict[str, Any]:
        header: dict[str, Any] = {"index": self.index_name}
        if self.shards > 1:
            header["search_type"] = "dfs_query_then_fetch"
        return header

    def retrieve(self, queries: Sequence[str], k: int = 100, *, show_progress: bool = False) -> list[list[Hit]]:
        """Top-``k`` hits per query (``match`` on the analysed text), ``search_batch_size`` queries per ``msearch``."""
        from tqdm.auto import tqdm

        if isinstance(queries, str):
            raise TypeError("retrieve() takes a sequence of query strings, not one string")
        results: list[list[Hit]] = []
        header = self._search_header()
        starts = range(0, len(queries), self.search_batch_size)
        for start in tqdm(starts, desc="Elasticsearch", unit="batch", disable=not show_progress):
            batch = queries[start : start + self.search_batch_size]
            searches: list[dict[str, Any]] = []
            for query in batch:
                searches.append(header)
                searches.append({
                    "query": {"match": {TEXT_FIELD: {"query": query}}},
                    "size": k,
                    "_source": False,
                    "track_total_hits": False,
                })
            response = self.client.msearch(searches=searches)
            responses = response["responses"]
            if len(responses) != len(batch):
                raise SynthrankError(f"msearch answered {len(responses)} responses to {len(batch)} queries")
            for offset, item in enumerate(responses):
                if "error" in item:
                    raise SynthrankError(
                        f"Elasticsearch failed on query {start + offset} ({batch[offset]!r}): {item['error']}"
                    )
                results.append(_parse_hits(item, self._score_factor))
        return results

    def score(self, query: str, doc_ids: Sequence[str]) -> np.ndarray:
        """BM25 scores of given documents for one query (0 for documents without a query term)."""
        if not doc_ids:
            return np.zeros(0, dtype=np.float32)
        response = self.client.search(
            index=self.index_name,
            query={"bool": {"must": [{"match": {TEXT_FIELD: {"query": query}}}],
                            "filter": [{"ids": {"values": list(doc_ids)}}]}},
            size=len(doc_ids),
            source=False,
            track_total_hits=False,
            search_type="dfs_query_then_fetch" if self.shards > 1 else None,
        )
        found = {h.doc_id: h.score for h in _parse_hits(response.body, self._score_factor)}
        return np.array([found.get(d, 0.0) for d in doc_ids], dtype=np.float32)

    # ------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict[str, Any]:
        """Settings without secrets (those come from the environment or are passed again)."""
        return {
            "hosts": self.hosts if isinstance(self.hosts, str) else list(self.hosts),
            "index_name": self.index_name,
            "k1": self.k1,
            "b": self.b,
            "analyzer": self.analyzer.to_dict(),
            "username": self.username,
            "ca_certs": self.ca_certs,
            "verify_certs": self.verify_certs,
            "ssl_show_warn": self.ssl_show_warn,
            "client_cert": self.client_cert,
            "client_key": self.client_key,
            "request_timeout": self.request_timeout,
            "max_retries": self.max_retries,
            "reuse_index": self.reuse_index,
            "bulk_chunk_size": self.bulk_chunk_size,
            "bulk_max_retries": self.bulk_max_retries,
            "bulk_initial_backoff": self.bulk_initial_backoff,
            "search_batch_size": self.search_batch_size,
            "shards": self.shards,
            "lucene_scale": self.lucene_scale,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ElasticsearchBM25:
        kwargs = dict(data)
        if isinstance(kwargs.get("analyzer"), Mapping):
            kwargs["analyzer"] = Analyzer.from_dict(dict(kwargs["analyzer"]))
        return cls(**kwargs)


def _parse_hits(response: Mapping[str, Any], factor: float = 1.0) -> list[Hit]:
    try:
        raw = response["hits"]["hits"]
        return [Hit(str(h["_id"]), float(h["_score"]) * factor, rank) for rank, h in enumerate(raw, start=1)]
    except (KeyError, TypeError, ValueError) as exc:
        raise SynthrankError(f"unexpected Elasticsearch search response (missing {exc})") from None
