"""An Elasticsearch-API server for integration tests, and Lucene's BM25 written out to check scores against.

Where the server comes from, in order:

1. ``ELASTICSEARCH_URL`` (a real cluster, e.g. ``docker run elasticsearch:8.x`` on a developer's
   machine, with ``ELASTICSEARCH_API_KEY`` or ``ELASTICSEARCH_USERNAME``/``ELASTICSEARCH_PASSWORD``);
2. otherwise ``noida-db`` (PyPI), started here on 127.0.0.1 on a free port. It is a closed
   third-party *imitation* of the Elasticsearch 8 REST API: a smoke test of our client code
   (index creation, bulk, msearch, analysis settings, result parsing), never evidence of how
   real Elasticsearch behaves. Known here: it ignores a custom BM25 similarity's ``k1``/``b``
   (always 1.2/0.75, checked with ``_explain``), so tests against it use those values; it
   scans every document per query (about a second per query at 2,000 MedQuAD passages), so
   tests keep its corpora small;
3. otherwise the test is skipped, saying so.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import socket
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

NOIDA_K1, NOIDA_B = 1.2, 0.75


@dataclass(frozen=True)
class EsServer:
    url: str
    kind: str  # "elasticsearch" (a real server named by ELASTICSEARCH_URL) or "noida-db" (the imitation)

    @property
    def is_imitation(self) -> bool:
        return self.kind == "noida-db"

    @property
    def bm25_params(self) -> dict[str, float]:
        """k1/b to test with: ours on a real server; the only ones noida-db honours on the imitation."""
        return {"k1": NOIDA_K1, "b": NOIDA_B} if self.is_imitation else {"k1": 0.9, "b": 0.4}


def _root(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/", timeout=2) as response:
            return json.loads(response.read())
    except Exception:
        return None


def _noida_binary() -> Path | None:
    spec = importlib.util.find_spec("noida_db")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "noida-db"
    return binary if binary.is_file() else None


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def elasticsearch_server(workdir: Path) -> Iterator[EsServer]:
    """A reachable Elasticsearch-API server: ELASTICSEARCH_URL, or noida-db on loopback (stopped on exit), or skip."""
    url = os.environ.get("ELASTICSEARCH_URL")
    if url:
        info = _root(url)
        kind = "noida-db" if info and info.get("version", {}).get("build_hash") == "noida" else "elasticsearch"
        yield EsServer(url, kind)
        return
    binary = _noida_binary()
    if binary is None:
        pytest.skip("no Elasticsearch server: set ELASTICSEARCH_URL, or pip install noida-db for the loopback imitation")
    binary.chmod(0o755)
    port = _free_port()
    data_dir = workdir
    log = open(data_dir / "noida.log", "w")  # noqa: SIM115 - closed at teardown
    process = subprocess.Popen(
        [str(binary), "start", "--only", "elasticsearch", "--host", "127.0.0.1", "--elasticsearch-port", str(port),
         "--data-dir", str(data_dir / "data")],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while _root(url) is None:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"noida-db did not start (exit {process.poll()}); see {data_dir / 'noida.log'}")
            time.sleep(0.2)
        yield EsServer(url, "noida-db")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


# --------------------------------------------------------------------------- Lucene's BM25, written out


def lucene_length(length: int) -> int:
    """A field length as Lucene stores it: one byte (``SmallFloat.intToByte4``), decoded back."""
    free = 24  # SmallFloat.NUM_FREE_VALUES
    if length < free:
        return length
    value = length - free
    bits = value.bit_length()
    if bits < 4:
        return length
    shift = bits - 4
    return free + ((value >> shift) << shift)


class Bm25Oracle:
    """BM25 of Lucene's formula over pre-analysed documents, with exact or Lucene-encoded lengths.

    ``idf = ln(1 + (N - df + 0.5) / (df + 0.5))``, ``tf = f / (f + k1 (1 - b + b dl / avgdl))``,
    summed over query tokens (repeated tokens count again, as Lucene's boolean query does).
    """

    def __init__(self, docs: dict[str, list[str]], *, k1: float, b: float) -> None:
        self.docs = {d: Counter(tokens) for d, tokens in docs.items()}
        self.lengths = {d: len(tokens) for d, tokens in docs.items()}
        self.df: Counter[str] = Counter()
        for counts in self.docs.values():
            self.df.update(counts.keys())
        self.n = len(docs)
        self.avgdl = sum(self.lengths.values()) / self.n
        self.k1, self.b = k1, b

    def score(self, query_tokens: Sequence[str], doc_id: str, *, lucene_norms: bool) -> float:
        counts = self.docs[doc_id]
        length = lucene_length(self.lengths[doc_id]) if lucene_norms else self.lengths[doc_id]
        total = 0.0
        for token in query_tokens:
            freq = counts.get(token, 0)
            if not freq:
                continue
            df = self.df[token]
            idf = math.log(1 + (self.n - df + 0.5) / (df + 0.5))
            total += idf * freq / (freq + self.k1 * (1 - self.b + self.b * length / self.avgdl))
        return total
