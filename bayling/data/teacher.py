"""Teacher mode: an OpenAI-compatible chat endpoint writes the assistant turns (and optionally
the user's follow-ups) of planned conversations.

Works with anything that serves POST <base_url>/chat/completions: vLLM, llama.cpp server,
OpenAI, this project's own server. Reliability, in layers:
  - bounded concurrency (`concurrency` conversations in flight; turns of one conversation are sequential);
  - retries by the `openai` SDK (bayling.infer.remote's client: backoff with jitter, honouring
    Retry-After) on 408/409/429, 5xx, timeouts and dropped connections; other HTTP errors stop the
    run with the server's message; every attempt is counted on the wire (`TeacherStats`);
  - a content-keyed response cache (SQLite; key = sha256 of model + messages + sampling params),
    so a rerun never pays twice for the same request;
  - a checkpoint: finished records are appended to `<out>.partial` (flushed and fsynced); a rerun
    rebuilds the set of done ids from it, drops a torn last line, and skips them. The final file
    is written in plan order to a temp file and renamed into place only when every conversation
    is done, so a killed run never leaves a file that looks complete.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import json
import os
import sqlite3
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import httpx
import openai

from bayling.data.io import atomic_open, dumps
from bayling.data.records import Plan, to_record
from bayling.errors import BaylingError

__all__ = ["ResponseCache", "RetriesExhausted", "TeacherClient", "TeacherConfig", "TeacherError", "TeacherStats",
           "run_teacher", "teacher_build"]

_RETRIED = {408, 409, 429}  # what the SDK retries, plus every 5xx

USER_SIMULATOR = (
    "You write the next message of the *user* in a conversation between a user and a translation "
    "assistant. Write only that message, in {language}, with no quotes or explanations."
)


class TeacherError(BaylingError, RuntimeError):
    """The teacher endpoint refused a request (not worth retrying) or a run could not finish."""


class RetriesExhausted(TeacherError):
    """One request kept failing with retryable errors; its conversation is left for a rerun."""


@dataclass
class TeacherConfig:
    base_url: str  # e.g. http://127.0.0.1:8000/v1
    model: str = "teacher"
    api_key: str | None = None  # default: $OPENAI_API_KEY, else "EMPTY" (local servers ignore it)
    concurrency: int = 16
    max_retries: int = 8  # the SDK's, per request
    timeout: float = 120.0  # seconds per attempt
    temperature: float = 0.7
    max_tokens: int = 512
    write_users: bool = False  # the teacher also writes the user's style/length/... follow-ups
    cache: str | None = None  # SQLite path; default: <out>.cache.sqlite


@dataclass
class TeacherStats:
    conversations: int = 0
    resumed: int = 0  # already in the checkpoint
    written: int = 0
    failed: int = 0
    requests: int = 0  # HTTP attempts, counted on the wire (retries included)
    asked: int = 0  # completions not in the cache, each sent 1 + its retries times
    cache_hits: int = 0
    errors: Counter = field(default_factory=Counter)  # failed attempts by reason: "HTTP 429", "ReadTimeout", ...

    @property
    def retries(self) -> int:
        return self.requests - self.asked

    def as_dict(self) -> dict:
        return {**asdict(self), "errors": dict(self.errors), "retries": self.retries}


class ResponseCache:
    """content key -> (content, finish_reason), in SQLite (WAL: a killed process loses no commit)."""

    def __init__(self, path: str | Path) -> None:
        self.db = sqlite3.connect(str(path))
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, content TEXT, finish TEXT)")

    def get(self, key: str) -> tuple[str, str] | None:
        row = self.db.execute("SELECT content, finish FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else (row[0], row[1])

    def put(self, key: str, content: str, finish: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)", (key, content, finish))

    def close(self) -> None:
        self.db.close()


def request_key(payload: dict) -> str:
    """sha256 of the request's model, messages and sampling parameters."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class _CountingTransport(httpx.AsyncHTTPTransport):
    """Counts every attempt the SDK sends and each failed one by reason (its retries are invisible above it)."""

    def __init__(self, stats: TeacherStats, **kw) -> None:
        super().__init__(**kw)
        self.stats = stats

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.stats.requests += 1
        try:
            response = await super().handle_async_request(request)
        except httpx.TransportError as e:  # incl. timeouts and dropped connections
            self.stats.errors[type(e).__name__] += 1
            raise
        if response.status_code >= 400:
            self.stats.errors[f"HTTP {response.status_code}"] += 1
        return response


class TeacherClient:
    """Chat completions through the cache, over one AsyncOpenAI client and its connection pool."""

    def __init__(self, cfg: TeacherConfig, cache: ResponseCache, stats: TeacherStats) -> None:
        from bayling.infer.remote import openai_client

        self.cfg, self.cache, self.stats = cfg, cache, stats
        limits = httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency)
        self.client = openai_client(cfg.base_url, cfg.api_key, timeout=cfg.timeout, max_retries=cfg.max_retries,
                                    asynchronous=True,
                                    http_client=httpx.AsyncClient(transport=_CountingTransport(stats, limits=limits)))

    async def complete(self, messages: list[dict]) -> tuple[str, str]:
        """(content, finish_reason) for a chat, from the cache or the endpoint."""
        payload = {"model": self.cfg.model, "messages": messages,
                   "temperature": self.cfg.temperature, "max_tokens": self.cfg.max_tokens}
        key = request_key(payload)
        hit = self.cache.get(key)
        if hit is not None:
            self.stats.cache_hits += 1
            return hit
        self.stats.asked += 1
        url = self.cfg.base_url
        try:
            r = await self.client.chat.completions.create(**payload)
        except openai.APIError as e:
            status = getattr(e, "status_code", None)  # None: no response (connection or timeout)
            if status is None or status in _RETRIED or status >= 500:
                raise RetriesExhausted(f"{url}: gave up after {self.cfg.max_retries} retries ({e})") from e
            raise TeacherError(f"{url}: HTTP {status}: {e.response.text[:300]}") from e
        try:
            content, finish = r.choices[0].message.content or "", r.choices[0].finish_reason or "stop"
        except (AttributeError, IndexError, TypeError):
            raise TeacherError(f"{url}: response has no choices[0].message.content: {str(r)[:200]}")
        self.cache.put(key, content, finish)
        return content, finish

    async def close(self) -> None:
        await self.client.close()


def _transcript(plan: Plan, upto: int) -> str:
    lines = []
    for m in plan.messages(upto):
        if m["role"] != "system":
            lines.append(f"{m['role'].capitalize()}: {m['content']}")
    return "\n\n".join(lines)


async def fill_plan(plan: Plan, client: TeacherClient, write_users: bool) -> dict:
    """Ask the teacher for every missing turn of a plan, in order; return the finished record."""
    from bayling.languages import resolve

    finish: list[str | None] = []
    for i, turn in enumerate(plan.turns):
        if write_users and turn.brief and i > 0:
            language = resolve(plan.instruction_lang).name
            ask = [{"role": "system", "content": USER_SIMULATOR.format(language=language)},
                   {"role": "user", "content": f"{_transcript(plan, i)}\n\nNow write the user's next message. "
                                               f"In it, the user {turn.brief}."}]
            text, _ = await client.complete(ask)
            if text.strip():
                turn.user = text.strip()
        if turn.answer is None:
            turn.answer, reason = await client.complete(plan.messages(i + 1))
            finish.append(reason)
        else:
            finish.append(None)
    extra = {"teacher": client.cfg.model, "finish": finish} if any(finish) else {}
    return to_record(plan, **extra)


def _requests_needed(plan: Plan, write_users: bool) -> int:
    return sum((t.answer is None) + (write_users and bool(t.brief) and i > 0) for i, t in enumerate(plan.turns))


def _fingerprint(plans_key: str, cfg: TeacherConfig) -> str:
    params = {"plans": plans_key, "model": cfg.model, "temperature": cfg.temperature,
              "max_tokens": cfg.max_tokens, "write_users": cfg.write_users}
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def _load_checkpoint(partial: Path, fingerprint: str) -> set[str]:
    """Ids already written; a torn last line (killed mid-write) is cut off the file."""
    data = partial.read_bytes() if partial.exists() else b""
    end = data.rfind(b"\n") + 1
    if end == 0:  # new, or killed before its first line was complete
        partial.write_text(json.dumps({"fingerprint": fingerprint}) + "\n", encoding="utf-8")
        return set()
    if end < len(data):
        with open(partial, "r+b") as f:
            f.truncate(end)
    lines = data[:end].decode("utf-8").splitlines()
    if json.loads(lines[0]).get("fingerprint") != fingerprint:
        raise TeacherError(f"{partial}: a checkpoint from a run with other settings is in the way; "
                           "rerun with the same arguments, or delete it to start over")
    return {json.loads(line)["meta"]["id"] for line in lines[1:] if line.strip()}


async def run_teacher(plans: Iterable[Plan], out: str | Path, cfg: TeacherConfig, plans_key: str = "",
                      progress: Callable[[int], None] | None = None) -> TeacherStats:
    """Fill every plan with the teacher and write the records to `out` (resuming a killed run).

    `plans_key` identifies the plan stream (e.g. a hash of the build arguments): a checkpoint
    made with another key or other teacher settings is refused rather than mixed in.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    done = _load_checkpoint(partial, _fingerprint(plans_key, cfg))
    stats = TeacherStats()
    cache = ResponseCache(cfg.cache or out.with_name(out.name + ".cache.sqlite"))
    client = TeacherClient(cfg, cache, stats)
    order: list[str] = []
    queue: asyncio.Queue = asyncio.Queue(maxsize=2 * cfg.concurrency)
    lines: asyncio.Queue = asyncio.Queue()
    fd = os.open(partial, os.O_WRONLY | os.O_APPEND)

    async def produce() -> None:
        # Longest conversations first within a window, so the run does not end waiting on a
        # few 5-turn conversations while the other workers idle (turns of one are sequential).
        window: list[tuple[int, int, Plan]] = []
        for seq, plan in enumerate(plans):
            order.append(plan.id)
            stats.conversations += 1
            if plan.id in done:
                stats.resumed += 1
                continue
            heapq.heappush(window, (-_requests_needed(plan, cfg.write_users), seq, plan))
            if len(window) >= 4 * cfg.concurrency:
                await queue.put(heapq.heappop(window)[2])
        while window:
            await queue.put(heapq.heappop(window)[2])
        for _ in range(cfg.concurrency):
            await queue.put(None)

    async def work() -> None:
        while (plan := await queue.get()) is not None:
            try:
                record = await fill_plan(plan, client, cfg.write_users)
            except RetriesExhausted:
                stats.failed += 1
                continue
            await lines.put((dumps(record) + "\n").encode())

    async def write() -> None:
        # Group commit: everything that arrived while the last fsync ran goes out in one write.
        while (line := await lines.get()) is not None:
            batch = [line]
            while not lines.empty():
                nxt = lines.get_nowait()
                if nxt is None:
                    lines.put_nowait(None)
                    break
                batch.append(nxt)
            os.write(fd, b"".join(batch))
            await asyncio.to_thread(os.fsync, fd)
            stats.written += len(batch)
            if progress is not None:
                progress(stats.resumed + stats.written)

    writer = asyncio.create_task(write())
    tasks = [asyncio.create_task(produce())] + [asyncio.create_task(work()) for _ in range(cfg.concurrency)]
    try:
        finished, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in finished:
            task.result()  # a fatal error (e.g. HTTP 401) stops the whole run here
        await lines.put(None)
        await writer
    finally:
        for task in tasks + [writer]:
            task.cancel()
        await asyncio.gather(*tasks, writer, return_exceptions=True)
        os.close(fd)
        await client.close()
        cache.close()
    if stats.failed:
        raise TeacherError(f"{stats.failed} conversation(s) failed after {cfg.max_retries} retries; "
                           f"rerun the same command to resume from {partial}")
    _finish(partial, out, order)
    return stats


def _finish(partial: Path, out: Path, order: list[str]) -> None:
    """Write the checkpoint's records in plan order to `out` (atomically), then drop the checkpoint."""
    by_id: dict[str, str] = {}
    with open(partial, encoding="utf-8") as f:
        next(f)  # the fingerprint line
        for line in f:
            if line.strip():
                by_id.setdefault(json.loads(line)["meta"]["id"], line)
    missing = [i for i in order if i not in by_id]
    if missing:
        raise TeacherError(f"{partial}: {len(missing)} record(s) missing, e.g. {missing[0]}; rerun to resume")
    with atomic_open(out) as f:
        for record_id in order:
            f.write(by_id[record_id])
    partial.unlink()


def teacher_build(plans: Iterable[Plan], out: str | Path, cfg: TeacherConfig, plans_key: str = "",
                  progress: Callable[[int], None] | None = None) -> TeacherStats:
    """`run_teacher` from synchronous code."""
    return asyncio.run(run_teacher(plans, out, cfg, plans_key, progress))
