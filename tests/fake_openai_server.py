"""A hand-written OpenAI-compatible server for FAULT INJECTION only (429 + Retry-After, 500,
timeouts, dropped connections, malformed bodies, refusals, truncated output).

The real behaviour of the LLM layer is tested against llama.cpp's server in `integration/`;
this one exists because a real server cannot be made to fail on cue. It listens on
127.0.0.1 only, every sleep is bounded, and it serves a script of faults:

    with FakeOpenAIServer() as server:
        server.script([Fault.status(429, retry_after="0.1"), Fault.ok('{"grade": 3}')])
        ...  # point LLMConfig(base_url=server.base_url) at it

When the script is empty, ``responder(body) -> Fault`` decides (default: echo a fixed answer).

In front of a real server (``upstream="http://127.0.0.1:PORT/v1"``) it is a fault-injecting proxy: a
``Fault.forward()`` (the default responder then) passes the request on and returns the real answer verbatim,
recorded in :attr:`FakeOpenAIServer.forwarded`; any other fault is served instead, and the upstream never
sees that request. ``python -m tests.fake_openai_server --port N --model NAME`` serves echoes in a process of
its own (a stand-in for the local llama.cpp server that a test can kill).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_SLEEP = 5.0
UPSTREAM_TIMEOUT = 600.0
"""Longest wait for the real server behind the proxy (a CPU llama.cpp queue of hundreds of requests)."""


@dataclass
class Fault:
    """What the server does with one request."""

    kind: str  # ok | status | sleep | malformed | drop | forward
    content: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    finish_reason: str = "stop"
    logprobs: list[dict[str, Any]] | None = None

    @classmethod
    def ok(cls, content: str, *, logprobs: list[dict[str, Any]] | None = None) -> Fault:
        return cls("ok", content=content, logprobs=logprobs)

    @classmethod
    def status_code(cls, status: int, *, retry_after: str | None = None, retry_after_ms: str | None = None) -> Fault:
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        if retry_after_ms is not None:
            headers["retry-after-ms"] = retry_after_ms
        return cls("status", status=status, headers=headers)

    @classmethod
    def sleep(cls, seconds: float, content: str = "late") -> Fault:
        return cls("sleep", content=content, seconds=min(seconds, MAX_SLEEP))

    @classmethod
    def malformed(cls) -> Fault:
        return cls("malformed")

    @classmethod
    def drop(cls) -> Fault:
        return cls("drop")

    @classmethod
    def refusal(cls) -> Fault:
        return cls("ok", content="I'm sorry, but I can't help with that request.")

    @classmethod
    def truncated(cls, content: str) -> Fault:
        return cls("ok", content=content, finish_reason="length")

    @classmethod
    def forward(cls) -> Fault:
        """Pass the request on to the upstream server and return its answer as it is."""
        return cls("forward")


def chat_body(model: str, content: str, finish_reason: str = "stop", logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": content},
        "finish_reason": finish_reason,
        "logprobs": {"content": logprobs} if logprobs else None,
    }
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": {"prompt_tokens": 10, "completion_tokens": max(1, len(content.split())), "total_tokens": 10 + len(content.split())},
    }


def yes_no_logprobs(p_yes: float) -> list[dict[str, Any]]:
    """A one-token ``logprobs.content`` with P(Yes) = p_yes, as llama.cpp's server returns it."""
    import math

    top = [
        {"token": "Yes", "logprob": math.log(max(p_yes, 1e-9)), "bytes": None},
        {"token": "No", "logprob": math.log(max(1 - p_yes, 1e-9)), "bytes": None},
    ]
    first = top[0] if p_yes >= 0.5 else top[1]
    return [{"token": first["token"], "logprob": first["logprob"], "bytes": None, "top_logprobs": top}]


def title_query_responder(query_for_title: Callable[[str], str]) -> Callable[[dict[str, Any]], Fault]:
    """A deterministic stand-in for generation and the binary judge, for CLI plumbing tests: a generation call gets
    one query made from the passage's title; a judgement says Yes (P 0.9) when a long query word is in the passage."""
    import re

    title_re = re.compile(r"<passage>\n([^\n]+)\n")

    def respond(body: dict[str, Any]) -> Fault:
        user = body["messages"][-1]["content"]
        if "Does the passage answer the query?" in user:
            query = user.split("\n", 1)[0].removeprefix("Query: ").lower()
            passage = user.split("<passage>", 1)[1].lower()
            hit = any(word in passage for word in query.split() if len(word) > 4)
            return Fault.ok("Yes" if hit else "No", logprobs=yes_no_logprobs(0.9 if hit else 0.1))
        match = title_re.search(user)
        if match is None:
            raise AssertionError(f"neither a judgement nor a passage prompt: {user[:200]!r}")
        return Fault.ok(json.dumps({"queries": [query_for_title(match.group(1).lower())]}))

    return respond


class FakeOpenAIServer:
    """Scripted faults on ``POST /v1/chat/completions``; ``GET /v1/models`` lists one model."""

    def __init__(
        self,
        *,
        model: str = "fake-model",
        responder: Callable[[dict[str, Any]], Fault] | None = None,
        upstream: str | None = None,
        port: int = 0,
    ) -> None:
        self.model = model
        self.upstream = upstream.rstrip("/") if upstream else None
        default = Fault.forward() if upstream else Fault.ok('{"ok": true}')
        self.responder = responder or (lambda body: default)
        self.port = port
        self.requests: list[dict[str, Any]] = []
        self.headers_seen: list[dict[str, str]] = []
        self.forwarded: list[tuple[dict[str, Any], int, dict[str, Any]]] = []
        """(request body, upstream status, upstream JSON answer) of every forwarded request, in answer order."""
        self.in_flight = 0
        self.max_in_flight = 0
        """Most chat requests the server held at once (arrived, not yet answered)."""
        self._script: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def script(self, faults: list[Fault]) -> None:
        with self._lock:
            self._script.extend(faults)

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self.requests)

    def _next(self, body: dict[str, Any]) -> Fault:
        with self._lock:
            self.requests.append(body)
            if self._script:
                return self._script.popleft()
        return self.responder(body)

    def _forward(self, raw: bytes, body: dict[str, Any]) -> tuple[int, bytes]:
        if self.upstream is None:
            raise AssertionError("Fault.forward() needs an upstream URL")
        request = urllib.request.Request(
            f"{self.upstream}/chat/completions", data=raw, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=UPSTREAM_TIMEOUT) as resp:
                status, payload = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        try:
            answer = json.loads(payload)
        except json.JSONDecodeError:
            answer = {"unparsed": payload.decode("utf-8", errors="replace")}
        with self._lock:
            self.forwarded.append((body, status, answer))
        return status, payload

    def __enter__(self) -> FakeOpenAIServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # silence
                pass

            def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    body = {"object": "list", "data": [{"id": server.model, "object": "model"}]}
                    self._send(200, json.dumps(body).encode())
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    self._send(400, b'{"error": {"message": "bad json"}}')
                    return
                with server._lock:
                    server.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._answer(raw, body)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self, raw: bytes, body: dict[str, Any]) -> None:
                fault = server._next(body)
                model = body.get("model", server.model)
                if fault.kind == "forward":
                    status, forwarded = server._forward(raw, body)
                    self._send(status, forwarded)
                elif fault.kind == "status":
                    err = {"error": {"message": f"injected HTTP {fault.status}", "type": "fault", "code": fault.status}}
                    self._send(fault.status, json.dumps(err).encode(), fault.headers)
                elif fault.kind == "malformed":
                    self._send(200, b'{"id": "x", "choices": [{"message": {"content": "trunc')
                elif fault.kind == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                else:
                    if fault.kind == "sleep":
                        time.sleep(fault.seconds)
                    payload = chat_body(model, fault.content, fault.finish_reason, fault.logprobs)
                    self._send(200, json.dumps(payload).encode())

        class Listener(ThreadingHTTPServer):
            request_queue_size = 1024  # hundreds of clients connect at once in the load test

        self._httpd = Listener(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def echo_responder(body: dict[str, Any]) -> Fault:
    """Answers ``echo: <the last message>``, so an answer shows which request it belongs to."""
    return Fault.ok(f"echo: {body['messages'][-1]['content']}")


def main() -> None:  # pragma: no cover - runs as a separate process
    """Serve echoes on 127.0.0.1:PORT until killed: a stand-in for the local llama.cpp server."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True)
    args = parser.parse_args()
    server = FakeOpenAIServer(model=args.model, responder=echo_responder, port=args.port)
    server.start()
    while True:
        time.sleep(3600)


if __name__ == "__main__":  # pragma: no cover
    main()
