"""The LLM judge against a fake OpenAI-compatible server (real HTTP on 127.0.0.1, ephemeral port)
that returns scripted verdicts, malformed ones included."""

import json
import re
import socket
import threading
import time
from collections import Counter

import pytest
from typer.testing import CliRunner

from bayling.eval.cli import app
from bayling.eval.engines import ChatClient, OpenAIEngine
from bayling.eval.judge import (Judge, Question, load_answers, load_judge_prompts, load_questions, parse_rating,
                                parse_verdict, summarize_pairwise, summarize_single)
from bayling.infer.engine import GenerationConfig

_A = re.compile(r"Start of Assistant A's (?:Answer|Conversation with User)(.*?)End of Assistant A's", re.S)
_B = re.compile(r"Start of Assistant B's (?:Answer|Conversation with User)(.*?)End of Assistant B's", re.S)
_ANSWER = re.compile(r"\[The Start of Assistant's Answer\](.*?)\[The End of Assistant's Answer\]|"
                     r"Start of Assistant A's Conversation with User(.*?)End of Assistant A's", re.S)


def _verdict(messages, seen: Counter) -> str:
    """The scripted judge: answers carry tokens that decide its reply."""
    user = messages[-1]["content"]
    seen[user] += 1
    a, b = _A.search(user), _B.search(user)
    if a and b:  # pairwise
        a, b = a.group(1), b.group(1)
        if "MALFORMED" in a + b:
            return "Both have merits: [[A]] or perhaps [[B]]."
        if "POSBIAS" in a + b:
            return "The first one. [[A]]"
        if "GOOD" in a and "GOOD" not in b:
            return "A is better. [[A]]"
        if "GOOD" in b and "GOOD" not in a:
            return "B is better. [[B]]"
        return "Equal. [[C]]"
    m = _ANSWER.search(user)
    answer = next(g for g in m.groups() if g is not None) if m else ""
    if "NEVER" in answer:
        return "I will not give a number."
    if "OUTOFRANGE" in answer:
        return "Rating: [[11]]"
    if "FLAKY" in answer and seen[user] == 1:
        return "Let me think about it..."
    if "GOOD" in answer:
        return "Well done. Rating: [[9]]"
    if "FLAKY" in answer:
        return "Rating: [[6]]"
    return "Weak. Rating: [[2]]"


@pytest.fixture(scope="module")
def server():
    import uvicorn
    from fastapi import FastAPI, Request

    api = FastAPI()
    seen: Counter = Counter()
    log: list = []

    def reply(model, content):
        return {"id": "x", "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    @api.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        log.append(body)
        msgs = body["messages"]
        if msgs[0]["role"] == "system":  # a judge request
            return reply(body["model"], _verdict(msgs, seen))
        turn = sum(m["role"] == "user" for m in msgs)
        return reply(body["model"], f"GOOD answer to turn {turn}")  # the model under test

    @api.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        return {"id": "y", "object": "text_completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "text": " echo:" + body["prompt"][-5:], "finish_reason": "stop"}]}

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(api, log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.02)
    assert srv.started, "fake judge server did not start"
    yield {"url": f"http://127.0.0.1:{port}/v1", "log": log}
    srv.should_exit = True
    thread.join(timeout=5)
    sock.close()


PROMPTS = [
    {"name": "single-v1", "type": "single", "system_prompt": "You are a helpful assistant.",
     "prompt_template": "[Question]\n{question}\n\n[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]",
     "output_format": "[[rating]]"},
    {"name": "single-math-v1", "type": "single", "system_prompt": "You are a helpful assistant.",
     "prompt_template": "[Question]\n{question}\n\n[The Start of Reference Answer]\n{ref_answer_1}\n[The End of Reference Answer]\n\n"
                        "[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]",
     "output_format": "[[rating]]"},
    {"name": "pair-v2", "type": "pairwise", "system_prompt": "Judge two assistants.",
     "prompt_template": "[User Question]\n{question}\n\n[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's Answer]\n\n"
                        "[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]",
     "output_format": "[[A]]"},
]


@pytest.fixture
def prompts(tmp_path):
    p = tmp_path / "judge_prompts.jsonl"
    p.write_text("\n".join(json.dumps(x) for x in PROMPTS) + "\n")
    return load_judge_prompts(str(p))


def test_parsers_never_guess():
    assert parse_rating("Rating: [[7]]") == 7.0
    assert parse_rating("Rating: [8.5]") == 8.5  # MT-bench's backup pattern
    assert parse_rating("Rating: [[11]]") is None
    assert parse_rating("no rating") is None
    assert parse_verdict("so [[B]]") == "B"
    assert parse_verdict("[[C]]") == "tie"
    assert parse_verdict("[[A]] or [[B]]") is None
    assert parse_verdict("A is better") is None


def test_single_grading_retries_then_counts_unparsed(server, prompts):
    qs = [Question(i, cat, [f"question {i}"], language="eng_Latn") for i, cat in
          enumerate(["writing", "writing", "writing", "writing", "math"], 1)]
    answers = {"1": ["GOOD"], "2": ["FLAKY"], "3": ["NEVER"], "4": ["OUTOFRANGE"], "5": ["meh"]}
    judge = Judge(ChatClient(server["url"], "judge"), prompts, retries=2, concurrency=2)
    recs = judge.grade_single(qs, answers, "m", references={"5": ["the reference"]})
    by_q = {r["question_id"]: r for r in recs}
    assert by_q[1]["score"] == 9 and by_q[1]["attempts"] == 1
    assert by_q[2]["score"] == 6 and by_q[2]["attempts"] == 2  # retried once, then parsed
    assert by_q[3]["score"] is None and by_q[3]["attempts"] == 3  # counted, never guessed
    assert by_q[4]["score"] is None
    assert by_q[5]["judge"] == "single-math-v1" and by_q[5]["score"] == 2
    math_req = [b for b in server["log"] if "the reference" in b["messages"][-1]["content"]]
    assert math_req and math_req[0]["messages"][0]["content"] == "You are a helpful assistant."
    summary = summarize_single(recs)
    assert summary["unparsed"] == 2 and summary["judged"] == 3 and summary["retried"] >= 2
    assert summary["score"] == pytest.approx((9 + 6 + 2) / 3)
    assert summary["breakdown"]["category"]["math"]["score"] == 2


def test_pairwise_needs_agreement_in_both_orders(server, prompts):
    qs = [Question(i, "writing", [f"q{i}"], language="zho_Hans") for i in range(1, 5)]
    mine = {"1": ["GOOD"], "2": ["plain"], "3": ["POSBIAS"], "4": ["MALFORMED"]}
    base = {"1": ["plain"], "2": ["GOOD"], "3": ["POSBIAS too"], "4": ["x"]}
    judge = Judge(ChatClient(server["url"], "judge"), prompts, retries=1, concurrency=1)
    recs = {r["question_id"]: r for r in judge.grade_pairwise(qs, mine, base, "m", "base")}
    assert recs[1]["result"] == "win" and recs[1]["consistent"]
    assert recs[2]["result"] == "loss"
    assert recs[3]["result"] == "tie" and recs[3]["consistent"] is False  # position bias is not a win
    assert recs[4]["result"] is None and recs[4]["games"][0]["attempts"] == 2
    s = summarize_pairwise(list(recs.values()))
    assert (s["wins"], s["losses"], s["ties"], s["unparsed"], s["inconsistent"]) == (1, 1, 1, 1, 1)
    assert s["win_rate_adjusted"] == pytest.approx(0.5)
    assert s["breakdown"]["language"]["zho_Hans"]["n"] == 3


def test_bayling80_layout_and_answers(tmp_path):
    q = tmp_path / "BayLing-80.multiturn.zh.jsonl"
    q.write_text(json.dumps({"question_id": 1, "text": ["我该如何提高我的时间管理技能？", "推荐一些资源或书籍。"],
                             "category": "generic"}, ensure_ascii=False) + "\n")
    (qs,) = load_questions(str(q))
    assert qs.turns[1] == "推荐一些资源或书籍。" and qs.language == "zho_Hans"
    a = tmp_path / "a.jsonl"
    a.write_text(json.dumps({"question_id": 1, "choices": [{"index": 0, "turns": ["x", "y"]}]}) + "\n")
    assert load_answers(str(a)) == {"1": ["x", "y"]}


def test_openai_engine_over_http(server):
    eng = OpenAIEngine(server["url"], "m", concurrency=2)
    out = eng.chat([[{"role": "user", "content": "hi"}], [{"role": "user", "content": "a"},
                   {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]], GenerationConfig())
    assert out == ["GOOD answer to turn 1", "GOOD answer to turn 2"]
    assert eng.complete(["hello world"], GenerationConfig()) == [" echo:world"]


def test_mt_bench_cli_end_to_end(server, shared_data, tmp_path):
    mt = shared_data / "mt_bench"
    out = tmp_path / "res.json"
    res = CliRunner().invoke(app, [
        "mt-bench", "--questions", str(mt / "question.jsonl"), "--limit", "3", "--model", "m",
        "--base-url", server["url"], "--judge-base-url", server["url"], "--judge-model", "judge",
        "--answers-out", str(tmp_path / "answers.jsonl"), "--out", str(out), "--quiet", "--language", "en",
    ])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["mode"] == "single" and data["judged"] == 6  # 3 questions x 2 turns
    assert data["score"] == 9
    assert set(data["breakdown"]["turn"]) == {"1", "2"}
    assert data["breakdown"]["language"]["eng_Latn"]["n"] == 6
    judged = {r["judge"] for r in data["judgments"]}
    assert judged == {"single-v1", "single-v1-multi-turn"}  # MT-bench's own prompts, read from its file
    assert len(load_answers(str(tmp_path / "answers.jsonl"))) == 3
