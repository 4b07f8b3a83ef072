"""A fake OpenAI-compatible chat server for tests and benchmarks: real HTTP on loopback, with faults.

It answers POST /v1/chat/completions deterministically from the request content, after a
configurable latency, and injects a fraction of 429 and 500 responses (with a Retry-After) and of
dropped connections (the socket is closed with no response). GET /v1/stats returns its counters.
It is a small asyncio HTTP/1.1 server (keep-alive, Content-Length bodies) rather than an ASGI
app, because only a raw transport can drop a connection mid-request.

    python -m bayling.testing.fake_teacher --latency 0.1 --p429 0.05 --p500 0.05 --pdrop 0.02
    # prints "http://127.0.0.1:PORT/v1" once listening, then serves until killed
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass

__all__ = ["FakeTeacher", "FakeTeacherConfig", "fake_reply"]


@dataclass
class FakeTeacherConfig:
    latency: float = 0.0  # seconds before every answer (or fault)
    p429: float = 0.0
    p500: float = 0.0
    pdrop: float = 0.0  # close the connection without answering
    seed: int = 0
    retry_after: float = 0.0  # seconds, sent as Retry-After with every 429 and 500 (0: the client's own backoff)


def content_key(payload: dict) -> str:
    """The same key the client's cache uses (teacher.request_key), so counts line up."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def fake_reply(messages: list[dict]) -> str:
    """A deterministic reply: a digest of the conversation plus the start of the last user turn."""
    last = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
    digest = hashlib.sha256(json.dumps(messages, ensure_ascii=False).encode()).hexdigest()[:8]
    return f"reply {digest}: {' '.join(last.split())[:120]}"


class FakeTeacher:
    """The server; use as a context manager (runs in a background thread) or `await serve()`."""

    def __init__(self, cfg: FakeTeacherConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.cfg = cfg or FakeTeacherConfig()
        self.host, self.port = host, port
        self.rng = random.Random(self.cfg.seed)
        self.requests = 0
        self.arrivals: list[float] = []  # time.monotonic() of each request, on any route
        self.status = Counter()  # "200", "429", "500", "drop"
        self.served = Counter()  # content key -> successful answers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def stats(self) -> dict:
        return {"requests": self.requests, "status": dict(self.status),
                "unique": len(self.served), "duplicates": sum(n - 1 for n in self.served.values())}

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, self.host, self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def serve(self) -> None:
        await self.start()
        async with self._server:
            await self._server.serve_forever()

    def __enter__(self) -> "FakeTeacher":
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)  # this thread's own
            self._loop.run_until_complete(self.start())
            ready.set()
            self._loop.run_forever()
            self._server.close()
            pending = asyncio.all_tasks(self._loop)  # answers still sleeping on their latency
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(self._server.wait_closed(), *pending, return_exceptions=True))
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fake-teacher", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                answer = await self._answer(method, path, body)
                if answer is None:  # a dropped connection
                    writer.transport.abort()
                    return
                status, payload, extra = answer
                data = json.dumps(payload).encode()
                head_out = (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                            f"Content-Length: {len(data)}\r\n{extra}\r\n")
                writer.write(head_out.encode() + data)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _answer(self, method: str, path: str, body: bytes) -> tuple[str, dict, str] | None:
        self.arrivals.append(time.monotonic())
        path = path.split("?", 1)[0].rstrip("/")
        if method == "GET" and path == "/v1/stats":
            return "200 OK", self.stats(), ""
        if method == "GET" and path == "/v1/models":
            return "200 OK", {"object": "list", "data": [{"id": "fake-teacher", "object": "model"}]}, ""
        if method != "POST" or path != "/v1/chat/completions":
            return "404 Not Found", {"error": {"message": f"no route {method} {path}"}}, ""
        self.requests += 1
        try:
            payload = json.loads(body)
            messages = payload["messages"]
        except (ValueError, KeyError):
            return "400 Bad Request", {"error": {"message": "body must be JSON with 'messages'"}}, ""
        fate = self.rng.random()
        if self.cfg.latency:
            await asyncio.sleep(self.cfg.latency)
        c = self.cfg
        retry_after = f"Retry-After: {c.retry_after:g}\r\n"
        if fate < c.pdrop:
            self.status["drop"] += 1
            return None
        if fate < c.pdrop + c.p429:
            self.status["429"] += 1
            return "429 Too Many Requests", {"error": {"message": "rate limited"}}, retry_after
        if fate < c.pdrop + c.p429 + c.p500:
            self.status["500"] += 1
            return "500 Internal Server Error", {"error": {"message": "injected failure"}}, retry_after
        self.status["200"] += 1
        self.served[content_key(payload)] += 1
        content = fake_reply(messages)
        return "200 OK", {
            "id": "chatcmpl-fake", "object": "chat.completion", "model": payload.get("model", "fake"),
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }, ""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    for name in ("latency", "p429", "p500", "pdrop", "retry-after"):
        p.add_argument(f"--{name}", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    server = FakeTeacher(FakeTeacherConfig(a.latency, a.p429, a.p500, a.pdrop, a.seed, a.retry_after), a.host, a.port)

    async def run() -> None:
        await server.start()
        print(server.url, flush=True)
        async with server._server:
            await server._server.serve_forever()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
