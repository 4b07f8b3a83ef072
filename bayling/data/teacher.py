"""Teacher mode: an OpenAI-compatible chat endpoint writes the assistant turns (and optionally
the user's follow-ups) of planned conversations.

Works with anything that serves POST <base_url>/chat/completions: vLLM, llama.cpp server,
OpenAI, this project's own server. Reliability, in layers:
  - bounded concurrency (`concurrency` conversations in flight; turns of one conversation are sequential);
  - retries with exponential backoff and full jitter (seeded rng) on 429, 5xx, timeouts and dropped
    connections, honouring Retry-After; other HTTP errors stop the run with the server's message;
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
import random
import sqlite3
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from bayling.data.io import atomic_open, dumps
from bayling.data.records import Plan, to_record
from bayling.errors import BaylingError

__all__ = ["ResponseCache", "RetriesExhausted", "TeacherClient", "TeacherConfig", "TeacherError", "TeacherStats",
           "run_teacher", "teacher_build"]

_RETRY_STATUS = {408, 409, 425, 429}  # plus every 5xx

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
    max_retries: int = 8
    timeout: float = 120.0
    backoff: float = 0.5  # first retry waits up to this many seconds; doubles each retry
    backoff_max: float = 30.0
    temperature: float = 0.7
    max_tokens: int = 512
    write_users: bool = False  # the teacher also writes the user's style/length/... follow-ups
    cache: str | None = None  # SQLite path; default: <out>.cache.sqlite
    seed: int = 0  # for the backoff jitter


@dataclass
class TeacherStats:
    conversations: int = 0
    resumed: int = 0  # already in the checkpoint
    written: int = 0
    failed: int = 0
    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    errors: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["errors"] = dict(self.errors)
        return d


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


class TeacherClient:
    """Chat completions with cache and retries over one shared httpx connection pool."""

    def __init__(self, cfg: TeacherConfig, cache: ResponseCache, stats: TeacherStats) -> None:
        import httpx

        self.cfg, self.cache, self.stats = cfg, cache, stats
        self.rng = random.Random(cfg.seed)
        key = cfg.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.http = httpx.AsyncClient(
            base_url=cfg.base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {key}"},
            timeout=cfg.timeout,
            limits=httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency),
        )
        self._httpx = httpx

    async def complete(self, messages: list[dict]) -> tuple[str, str]:
        """(content, finish_reason) for a chat, from the cache or the endpoint."""
        payload = {"model": self.cfg.model, "messages": messages,
                   "temperature": self.cfg.temperature, "max_tokens": self.cfg.max_tokens}
        key = request_key(payload)
        hit = self.cache.get(key)
        if hit is not None:
            self.stats.cache_hits += 1
            return hit
        data = await self._post(payload)
        try:
            choice = data["choices"][0]
            content, finish = choice["message"]["content"] or "", choice.get("finish_reason") or "stop"
        except (KeyError, IndexError, TypeError):
            raise TeacherError(f"{self.cfg.base_url}: response has no choices[0].message.content: {str(data)[:200]}")
        self.cache.put(key, content, finish)
        return content, finish

    async def _post(self, payload: dict) -> dict:
        httpx = self._httpx
        for attempt in range(self.cfg.max_retries + 1):
            self.stats.requests += 1
            wait_at_least = 0.0
            try:
                r = await self.http.post("chat/completions", json=payload)
            except (httpx.TimeoutException, httpx.TransportError) as e:  # incl. dropped connections
                reason = type(e).__name__
            else:
                if r.status_code == 200:
                    try:
                        return r.json()
                    except ValueError:
                        reason = "invalid JSON"
                elif r.status_code in _RETRY_STATUS or r.status_code >= 500:
                    reason = f"HTTP {r.status_code}"
                    wait_at_least = _retry_after(r.headers.get("retry-after"))
                else:
                    raise TeacherError(f"{self.cfg.base_url}: HTTP {r.status_code}: {r.text[:300]}")
            self.stats.errors[reason] += 1
            if attempt == self.cfg.max_retries:
                raise RetriesExhausted(f"{self.cfg.base_url}: gave up after {attempt + 1} attempts (last: {reason})")
            self.stats.retries += 1
            cap = min(self.cfg.backoff_max, self.cfg.backoff * 2 ** attempt)
            await asyncio.sleep(max(wait_at_least, cap * self.rng.random()))
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self.http.aclose()


def _retry_after(value: str | None) -> float:
    try:
        return min(float(value), 60.0) if value else 0.0
    except ValueError:
        return 0.0  # an HTTP date: fall back to our own backoff


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
