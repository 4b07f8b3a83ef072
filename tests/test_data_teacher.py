"""Teacher mode against a fake OpenAI-compatible server on loopback: faults, cache, kill -9 and resume."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import bayling
from bayling.data.build import BuildConfig, plan_conversations
from bayling.testing.fake_teacher import FakeTeacher, FakeTeacherConfig
from bayling.data.teacher import TeacherConfig, TeacherError, teacher_build

SAMPLE = Path(bayling.__file__).parent / "assets" / "sample"
ROOT = Path(__file__).resolve().parents[1]


def plans(limit: int, seed: int = 5, **kw):
    return plan_conversations(BuildConfig(str(SAMPLE), mode="teacher", limit=limit, seed=seed, **kw))


def ids(path: Path) -> list[str]:
    return [json.loads(line)["meta"]["id"] for line in path.read_text(encoding="utf-8").splitlines()]


def test_fake_server_speaks_openai_and_injects_faults():
    with FakeTeacher(FakeTeacherConfig(pdrop=1.0)) as srv:
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(f"{srv.url}/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    with FakeTeacher() as srv:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        a = httpx.post(f"{srv.url}/chat/completions", json=body).json()
        b = httpx.post(f"{srv.url}/chat/completions", json=body).json()
        assert a["choices"][0]["message"]["content"] == b["choices"][0]["message"]["content"]
        assert httpx.get(f"{srv.url}/stats").json()["duplicates"] == 1


def test_retries_through_429_500_and_dropped_connections(tmp_path):
    faults = FakeTeacherConfig(latency=0.005, p429=0.15, p500=0.1, pdrop=0.05, seed=1, retry_after=0.005)
    with FakeTeacher(faults) as srv:
        cfg = TeacherConfig(srv.url, concurrency=6, max_retries=20)
        stats = teacher_build(plans(30), tmp_path / "out.jsonl", cfg)
        assert {"429", "500", "drop"} <= set(srv.status)
        served = srv.stats()
    assert stats.written == 30 and stats.failed == 0 and stats.retries > 0
    # The client's wire counts agree with the server's log: every failed attempt was retried, nothing else.
    assert stats.requests == served["requests"] and stats.asked == srv.status["200"]
    assert stats.errors["HTTP 429"] == srv.status["429"] and stats.errors["HTTP 500"] == srv.status["500"]
    assert stats.retries == sum(stats.errors.values()) == served["requests"] - srv.status["200"]
    assert sorted(ids(tmp_path / "out.jsonl")) == sorted(p.id for p in plans(30))
    assert served["duplicates"] == 0  # every successful answer was cached, never asked again
    assert not (tmp_path / "out.jsonl.partial").exists()
    record = json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert [m["role"] for m in record["messages"]][:2] == ["user", "assistant"]


def test_rerun_is_served_from_the_cache_and_output_is_deterministic(tmp_path):
    with FakeTeacher(FakeTeacherConfig(latency=0.002)) as srv:
        cfg = TeacherConfig(srv.url, concurrency=8, write_users=True, cache=str(tmp_path / "cache.sqlite"))
        first = teacher_build(plans(20), tmp_path / "a.jsonl", cfg)
        asked = srv.requests
        again = teacher_build(plans(20), tmp_path / "b.jsonl", cfg)
        assert srv.requests == asked and again.cache_hits == first.requests
        fresh = TeacherConfig(srv.url, concurrency=3, write_users=True, cache=str(tmp_path / "other.sqlite"))
        teacher_build(plans(20), tmp_path / "c.jsonl", fresh)
    a = (tmp_path / "a.jsonl").read_bytes()
    assert a == (tmp_path / "b.jsonl").read_bytes() == (tmp_path / "c.jsonl").read_bytes()
    recs = [json.loads(x) for x in a.decode().splitlines()]
    written_by_teacher = [m["content"] for r in recs for i, m in enumerate(r["messages"])
                          if m["role"] == "user" and i > 0 and r["meta"]["task"] == "session"]
    assert any(u.startswith("reply ") for u in written_by_teacher)  # --teacher-writes-users


def test_gives_up_after_max_retries_waiting_retry_after_and_leaves_the_run_resumable(tmp_path):
    # 0.6 s is more than the SDK's own first backoff (at most 0.5 s), so the gaps show the header was obeyed.
    with FakeTeacher(FakeTeacherConfig(p429=1.0, retry_after=0.6)) as srv:
        with pytest.raises(TeacherError, match="1 conversation.*failed after 2 retries"):
            teacher_build(plans(1), tmp_path / "out.jsonl", TeacherConfig(srv.url, concurrency=1, max_retries=2))
        arrivals = srv.arrivals
    assert len(arrivals) == 3 and all(b - a >= 0.6 for a, b in zip(arrivals, arrivals[1:]))
    assert (tmp_path / "out.jsonl.partial").exists() and not (tmp_path / "out.jsonl").exists()


def test_a_slow_teacher_times_out_per_attempt_and_is_retried(tmp_path):
    # a 1 s timeout against a 30 s answer: wide enough that a loaded CI machine still gets each
    # attempt to the server before the client gives up on it
    with FakeTeacher(FakeTeacherConfig(latency=30.0)) as srv:
        with pytest.raises(TeacherError, match="failed after 1 retries"):
            teacher_build(plans(1), tmp_path / "out.jsonl", TeacherConfig(srv.url, concurrency=1, max_retries=1,
                                                                          timeout=1.0))
        assert srv.requests == 2


def test_a_refusing_endpoint_stops_the_run_and_leaves_no_output(tmp_path):
    with FakeTeacher() as srv:
        cfg = TeacherConfig(srv.url + "/wrong", concurrency=2)
        with pytest.raises(TeacherError, match="HTTP 404"):
            teacher_build(plans(5), tmp_path / "out.jsonl", cfg)
        assert len(srv.arrivals) <= 2  # a refusal is not retried: one request per worker, then the run stops
    assert not (tmp_path / "out.jsonl").exists()


def test_checkpoint_from_other_settings_is_refused(tmp_path):
    with FakeTeacher() as srv:
        teacher_build(plans(3), tmp_path / "out.jsonl", TeacherConfig(srv.url), plans_key="a")
        (tmp_path / "out.jsonl.partial").write_text('{"fingerprint": "elsewhere"}\n')
        with pytest.raises(TeacherError, match="other settings"):
            teacher_build(plans(3), tmp_path / "out.jsonl", TeacherConfig(srv.url), plans_key="a")


def test_kill_9_then_resume_loses_and_duplicates_nothing(tmp_path):
    out = tmp_path / "out.jsonl"
    partial = tmp_path / "out.jsonl.partial"
    concurrency = 4
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with FakeTeacher(FakeTeacherConfig(latency=0.03)) as srv:
        cmd = [sys.executable, "-m", "bayling.data.cli", "build", "--mode", "teacher", "--corpus", str(SAMPLE),
               "--limit", "48", "--seed", "5", "--out", str(out), "--teacher-url", srv.url,
               "--concurrency", str(concurrency), "--no-progress"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while time.time() < deadline:
            if partial.exists() and len(partial.read_bytes().splitlines()) > 8:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not out.exists(), "a killed run must not leave a final-looking file"
        done_before = partial.read_bytes().count(b"\n") - 1  # complete lines, minus the fingerprint
        assert 8 <= done_before < 48
        rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        served = srv.stats()
    assert f"{done_before} resumed" in rerun.stderr
    got = ids(out)
    assert len(got) == len(set(got)) == 48
    assert got == [p.id for p in plans(48)]  # plan order, whatever order they finished in
    assert not partial.exists()
    # Only answers in flight at the kill (at most one per worker) could be paid for twice.
    assert served["duplicates"] <= concurrency


class Gathering(FakeTeacher):
    """Holds answers until `n` requests are in flight at once (or 10 s pass), and records the peak."""

    def __init__(self, n: int):
        super().__init__()
        self.n, self.in_flight, self.peak = n, 0, 0
        self._gathered: asyncio.Event | None = None

    async def _answer(self, method, path, body):
        if path.startswith("/v1/chat"):
            self._gathered = self._gathered or asyncio.Event()
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            if self.in_flight >= self.n:
                self._gathered.set()
            try:
                await asyncio.wait_for(self._gathered.wait(), 10)
            except asyncio.TimeoutError:
                self._gathered.set()  # they never came: let the run finish, the peak tells
            finally:
                self.in_flight -= 1
        return await super()._answer(method, path, body)


def test_requests_really_overlap_up_to_the_concurrency(tmp_path):
    # Counted, not timed: a client that sent one request at a time would leave the peak at 1.
    # How close the rate comes to C / latency is bench/bench_data.py's to measure.
    concurrency = 8
    with Gathering(concurrency) as srv:
        teacher_build(plans(24, crosslingual=0.0), tmp_path / "out.jsonl", TeacherConfig(srv.url, concurrency=concurrency))
    assert srv.peak == concurrency


def test_a_torn_checkpoint_line_is_cut_and_the_rest_kept(tmp_path):
    from bayling.data.teacher import _load_checkpoint

    partial = tmp_path / "out.jsonl.partial"
    rec = lambda i: json.dumps({"messages": [], "meta": {"id": f"x#{i}"}})  # noqa: E731
    partial.write_text(json.dumps({"fingerprint": "f"}) + "\n" + rec(0) + "\n" + rec(1) + "\n" + rec(2)[:15])
    assert _load_checkpoint(partial, "f") == {"x#0", "x#1"}
    assert partial.read_text().endswith(rec(1) + "\n")
