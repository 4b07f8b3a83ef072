"""The OpenAI-compatible server over a real uvicorn on 127.0.0.1, driven by the official openai client."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from bayling.testing.fake_engine import FakeEngine
from bayling.serve.app import Limits, create_app
from bayling.testing.background import BackgroundServer

KEY = "sk-test"


@pytest.fixture(scope="module")
def tiny_engine(tiny_model_dir):
    from bayling.infer.engine import TransformersEngine

    return TransformersEngine.load(str(tiny_model_dir), chat_format="chatml")


@pytest.fixture(scope="module")
def tiny_server(tiny_engine):
    limits = Limits(max_tokens=64, max_prompt_tokens=200, max_request_bytes=20_000)
    with BackgroundServer(create_app(tiny_engine, api_key=KEY, limits=limits, model_name="tiny")) as server:
        yield server


@pytest.fixture(scope="module")
def client(tiny_server):
    from openai import OpenAI

    return OpenAI(base_url=tiny_server.url + "/v1", api_key=KEY, max_retries=0)


def _post(server, path: str, body, key: str | None = KEY, **kw) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(server.url + path, content=data, headers={**headers, "Content-Type": "application/json"},
                      timeout=30, **kw)


HI = [{"role": "user", "content": "Translate the following English text into German.\n\nThe quick brown fox"}]


def test_chat_completion_with_the_openai_client(client):
    r = client.chat.completions.create(model="tiny", messages=HI, max_tokens=6, temperature=1.0, seed=1)
    assert r.object == "chat.completion" and r.model == "tiny"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.completion_tokens <= 6 and r.usage.prompt_tokens > 10


def test_streaming_chat_matches_the_plain_reply(client):
    plain = client.chat.completions.create(model="tiny", messages=HI, max_tokens=8)
    chunks = list(client.chat.completions.create(model="tiny", messages=HI, max_tokens=8, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [plain.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_completions_and_models(client):
    r = client.completions.create(model="tiny", prompt="The quick brown", max_tokens=5, temperature=1.0)
    assert r.object == "text_completion" and r.usage.completion_tokens <= 5
    streamed = list(client.completions.create(model="tiny", prompt="The quick brown", max_tokens=5, stream=True))
    assert streamed[-1].choices[0].finish_reason in ("stop", "length")
    assert [m.id for m in client.models.list()] == ["tiny"]
    assert client.models.retrieve("tiny").id == "tiny"


def test_health_and_languages_need_no_key(tiny_server):
    health = httpx.get(tiny_server.url + "/health").json()
    assert health["status"] == "ok" and health["model"] == "tiny"
    langs = httpx.get(tiny_server.url + "/v1/languages").json()["data"]
    assert len(langs) == 204 and {"code": "zho_Hans"}.items() <= next(x for x in langs if x["code"] == "zho_Hans").items()


def test_api_key_is_required(tiny_server, client):
    from openai import AuthenticationError, OpenAI

    for key in (None, "wrong"):
        r = _post(tiny_server, "/v1/chat/completions", {"messages": HI}, key=key)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = _post(tiny_server, "/v1/chat/completions", {"messages": []}, key=None)
    assert r.status_code == 401  # the key is checked before the request is validated
    with pytest.raises(AuthenticationError):
        OpenAI(base_url=tiny_server.url + "/v1", api_key="wrong", max_retries=0).models.list()


BAD = [
    (b"{not json", "JSON"),
    (b"[1, 2]", None),
    (b"", None),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages"),
    ({"messages": [{"role": "user", "content": "  "}]}, "empty"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "system", "content": "late"}]}, "system"),
    ({"messages": [{"role": "user"}]}, "empty"),
    ({"messages": "hello"}, "messages"),
    ({"messages": HI, "max_tokens": -5}, "max_tokens"),
    ({"messages": HI, "max_tokens": 0}, "max_tokens"),
    ({"messages": HI, "max_tokens": 10**30}, "max_tokens"),
    ({"messages": HI, "max_tokens": 65}, "at most 64"),
    ({"messages": HI, "temperature": -1}, "temperature"),
    ({"messages": HI, "n": 3}, "n"),
    ({"messages": HI, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"messages": HI, "logprobs": True}, "logprobs"),
    ({"model": "gpt-4o", "messages": HI}, "does not exist"),
    ({"messages": [{"role": "user", "content": "word " * 400}]}, "tokens"),
]


@pytest.mark.parametrize("body,hint", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_chat_requests_get_openai_style_4xx(tiny_server, body, hint):
    r = _post(tiny_server, "/v1/chat/completions", body)
    assert 400 <= r.status_code < 500, r.text
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"} and err["message"]
    if hint:
        assert hint.lower() in json.dumps(err).lower()


def test_bad_completion_requests(tiny_server):
    for body in ({"prompt": ""}, {"prompt": [1, 2, 3]}, {"prompt": ["a", "b"]}, {"prompt": "x", "suffix": "y"},
                 {"prompt": "x", "max_tokens": -1}, {"prompt": "x " * 400}, {}):
        r = _post(tiny_server, "/v1/completions", body)
        assert 400 <= r.status_code < 500 and "error" in r.json(), (body, r.text)


def test_huge_requests_are_refused_without_reading_them(tiny_server):
    r = _post(tiny_server, "/v1/chat/completions", {"messages": [{"role": "user", "content": "x" * 50_000}]})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_unknown_paths_and_methods(tiny_server):
    r = httpx.get(tiny_server.url + "/v1/nothing", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 404 and "error" in r.json()
    r = httpx.get(tiny_server.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 405 and "error" in r.json()


class Held:
    """A FakeEngine reply that starts generating and then waits until the test lets it go."""

    def __init__(self):
        self.started = threading.Semaphore(0)
        self.release = threading.Event()

    def __call__(self, target) -> str:
        self.started.release()
        assert self.release.wait(30), "never released"
        return "done"


def _health(server) -> dict:
    return httpx.get(server.url + "/health").json()


def _wait_for(predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_full_queue_gets_429_and_the_queue_stays_bounded():
    held = Held()
    limits = Limits(max_concurrent=1, max_waiting=1)
    with BackgroundServer(create_app(FakeEngine(held), limits=limits)) as server:
        body = {"messages": [{"role": "user", "content": "w"}], "max_tokens": 30}
        results: list[int] = []
        admitted = [threading.Thread(target=lambda: results.append(
            _post(server, "/v1/chat/completions", body, key=None).status_code)) for _ in range(2)]
        admitted[0].start()
        assert held.started.acquire(timeout=30)  # the first is generating
        admitted[1].start()
        _wait_for(lambda: _health(server)["waiting"] == 1, "the second request to queue")
        # Full: every further request is refused at once, and the line does not grow.
        for _ in range(20):
            r = _post(server, "/v1/chat/completions", body, key=None)
            assert r.status_code == 429 and r.json()["error"]["code"] == "queue_full"
        health = _health(server)
        assert (health["running"], health["waiting"]) == (1, 1)
        held.release.set()
        for t in admitted:
            t.join(30)
        assert results == [200, 200]
        assert _post(server, "/v1/chat/completions", body, key=None).status_code == 200  # drained
        assert _health(server)["running"] == 0 and _health(server)["waiting"] == 0


def test_429_body_is_openai_style_and_the_client_sees_it():
    from openai import OpenAI, RateLimitError

    held = Held()
    with BackgroundServer(create_app(FakeEngine(held), limits=Limits(max_concurrent=1, max_waiting=0))) as server:
        blocker = threading.Thread(target=_post, args=(server, "/v1/chat/completions",
                                                       {"messages": [{"role": "user", "content": "a"}]}))
        blocker.start()
        assert held.started.acquire(timeout=30)  # admitted and generating: the server is full
        try:
            with pytest.raises(RateLimitError) as err:
                OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0).chat.completions.create(
                    model="fake", messages=[{"role": "user", "content": "hi"}])
            assert err.value.body["code"] == "queue_full"
            assert err.value.response.headers["Retry-After"] == "1"
        finally:
            held.release.set()
            blocker.join(30)


@pytest.mark.parametrize("stream", [True, False])
def test_client_disconnect_cancels_generation(stream):
    slow = FakeEngine(token_latency=0.05)
    with BackgroundServer(create_app(slow)) as server:
        body = {"messages": [{"role": "user", "content": "w " * 200}], "max_tokens": 200, "stream": stream}
        with httpx.Client(timeout=0.5) as http:
            if stream:
                with http.stream("POST", server.url + "/v1/chat/completions", json=body) as r:
                    lines = r.iter_lines()
                    next(lines)  # the first event: generation has started
            else:
                with pytest.raises(httpx.ReadTimeout):
                    http.post(server.url + "/v1/chat/completions", json=body)
        deadline = time.monotonic() + 5
        while slow.cancelled == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert slow.cancelled == 1  # stopped long before its 10 s of words
        while httpx.get(server.url + "/health").json()["running"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert httpx.get(server.url + "/health").json()["running"] == 0  # the slot was given back


def test_tiny_model_generation_is_cancelled_mid_stream(tiny_engine):
    from bayling.infer.engine import GenerationConfig

    greedy = GenerationConfig(max_new_tokens=120, temperature=0.0)
    baseline = tiny_engine.stream("The quick brown fox", greedy)
    full = baseline.text()
    assert baseline.completion_tokens == 120  # uncancelled, this prompt runs to the cap
    cancel = threading.Event()
    stream = tiny_engine.stream("The quick brown fox", greedy, cancel)
    pieces = []
    for piece in stream:  # the consumer cancels on the first piece, from its own thread
        pieces.append(piece)
        cancel.set()
    assert stream.completion_tokens < 120 and stream.finish_reason == "stop"
    assert full.startswith("".join(pieces))


def test_translate_endpoint_and_page(tiny_server):
    r = _post(tiny_server, "/v1/translate", {"text": "Hello", "src_lang": "English", "tgt_lang": "de", "max_tokens": 8})
    assert r.status_code == 200
    res = r.json()
    assert res["src_lang"] == "eng_Latn" and res["tgt_lang"] == "deu_Latn"
    assert res["messages"][0]["content"].startswith("Translate the following English text into German.")
    r = _post(tiny_server, "/v1/translate", {"text": "Hello", "src_lang": "Klingon", "tgt_lang": "de"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "src_lang"
    page = httpx.get(tiny_server.url + "/")
    assert page.status_code == 200 and "<script>" in page.text and "http" not in page.text.split("<script>")[1].split("fetch")[0]


@pytest.mark.slow
def test_serve_the_embedded_model():
    from openai import OpenAI

    from bayling.infer.engine import TransformersEngine

    engine = TransformersEngine.load("gemma3-270m")
    with BackgroundServer(create_app(engine)) as server:
        client = OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)
        r = client.completions.create(model="gemma3-270m", prompt="<bos>The capital of France is Paris. "
                                      "The capital of Germany is", max_tokens=4)
        assert "Berlin" in r.choices[0].text
        chunks = list(client.chat.completions.create(model="gemma3-270m", max_tokens=8, stream=True,
                                                     messages=[{"role": "user", "content": "Say hello."}]))
        assert chunks[-1].choices[0].finish_reason in ("stop", "length")


# Reliability: defects found by probing (issue 13).


@pytest.fixture(scope="module")
def fake_server():
    with BackgroundServer(create_app(FakeEngine(), api_key=KEY, cors_origins=["https://ok.example"])) as server:
        yield server


SURROGATE = [
    ("/v1/chat/completions", '{"messages": [{"role": "user", "content": "x \\ud800"}]}'),
    ("/v1/chat/completions", '{"stream": true, "messages": [{"role": "user", "content": "x \\ud800"}]}'),
    ("/v1/chat/completions", '{"messages": [{"role": "user", "content": [{"type": "text", "text": "\\udfff"}]}]}'),
    ("/v1/completions", '{"prompt": "x \\ud800"}'),
    ("/v1/completions", '{"stream": true, "prompt": ["x \\ud800"]}'),
    ("/v1/translate", '{"text": "x \\ud800", "src_lang": "en", "tgt_lang": "de"}'),
]


@pytest.mark.parametrize("path,raw", SURROGATE, ids=[str(i) for i in range(len(SURROGATE))])
def test_a_lone_surrogate_is_a_400_not_a_crash(fake_server, path, raw):
    r = _post(fake_server, path, raw)
    assert r.status_code == 400, r.text
    assert "surrogate" in r.json()["error"]["message"]


@pytest.mark.parametrize("how", ["mount", "root_path"])
def test_the_api_key_holds_under_a_mount(how):
    from fastapi.testclient import TestClient
    from starlette.applications import Starlette
    from starlette.routing import Mount

    app = create_app(FakeEngine(), api_key=KEY)
    outer = Starlette(routes=[Mount("/api", app)]) if how == "mount" else app
    with TestClient(outer, root_path="/api" if how == "root_path" else "") as http:
        body = {"messages": [{"role": "user", "content": "hi"}]}
        r = http.post("/api/v1/chat/completions", json=body)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert r.headers["WWW-Authenticate"] == "Bearer"
        assert http.get("/api/v1/models").status_code == 401
        r = http.post("/api/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "You said: hi"


def _eventually(predicate, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


def test_translate_is_cancelled_when_its_client_leaves():
    slow = FakeEngine(token_latency=0.05)
    with BackgroundServer(create_app(slow)) as server:
        body = {"text": "w " * 200, "src_lang": "en", "tgt_lang": "de", "max_tokens": 200}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(server.url + "/v1/translate", json=body, timeout=0.5)
        assert _eventually(lambda: slow.cancelled == 1)  # stopped long before its 10 s of words
        assert _eventually(lambda: httpx.get(server.url + "/health").json()["running"] == 0)


def test_departed_clients_leave_the_queue_at_once():
    slow = FakeEngine(token_latency=0.05)
    with BackgroundServer(create_app(slow, limits=Limits(max_concurrent=1, max_waiting=4))) as server:
        body = {"messages": [{"role": "user", "content": "w " * 60}], "max_tokens": 60}  # 3 s each

        def leave_after(seconds: float) -> None:
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(server.url + "/v1/chat/completions", json=body, timeout=seconds)

        blocker = threading.Thread(target=leave_after, args=(1.5,))
        blocker.start()
        assert _eventually(lambda: httpx.get(server.url + "/health").json()["running"] == 1)
        queued = [threading.Thread(target=leave_after, args=(0.3,)) for _ in range(4)]
        for t in queued:
            t.start()
        for t in queued:
            t.join()
        # The four left while in line: their places are free while the first generation still runs.
        health = httpx.get(server.url + "/health").json()
        assert (health["running"], health["waiting"]) == (1, 0)
        blocker.join()
        assert _eventually(lambda: httpx.get(server.url + "/health").json()["running"] == 0)
        assert slow.calls == 1  # the departed four were never started


def test_http_details(fake_server):
    assert httpx.head(fake_server.url + "/health").status_code == 200
    # A JSON-only API: a text/plain "simple" POST (what any web page may send cross-origin) starts nothing.
    r = httpx.post(fake_server.url + "/v1/chat/completions", content=json.dumps({"messages": HI}),
                   headers={"Authorization": f"Bearer {KEY}", "Content-Type": "text/plain"})
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    r = httpx.post(fake_server.url + "/v1/chat/completions", json={"messages": HI},
                   headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200
    for body in ({"text": " \n ", "src_lang": "en", "tgt_lang": "de"},
                 {"text": "Hello", "src_lang": "en", "tgt_lang": "de", "constraints": ["Hallo", " "]},
                 {"text": "Hello", "src_lang": "en", "tgt_lang": "de", "constraints": [""]}):
        r = _post(fake_server, "/v1/translate", body)
        assert r.status_code == 400 and r.json()["error"]["param"] in ("text", "constraints"), r.text


def test_cors_allows_only_the_pages_named(fake_server):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    ok = httpx.options(fake_server.url + "/v1/chat/completions", headers={"Origin": "https://ok.example", **preflight})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://ok.example"
    other = httpx.options(fake_server.url + "/v1/chat/completions", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in other.headers


def test_every_reply_is_exactly_its_protocol_model(fake_server):
    """The wire is what the response models serialise: nulls where OpenAI sends them, unset fields left out."""
    from bayling.serve import protocol as p

    def same(model, body: dict) -> None:
        assert model.model_validate(body).model_dump(mode="json") == body, body

    auth = {"Authorization": f"Bearer {KEY}"}
    same(p.ChatCompletionResponse, _post(fake_server, "/v1/chat/completions", {"messages": HI}).json())
    same(p.CompletionResponse, _post(fake_server, "/v1/completions", {"prompt": "a b"}).json())
    for path, body, chunk in (("/v1/chat/completions", {"messages": HI}, p.ChatCompletionChunk),
                              ("/v1/completions", {"prompt": "a b", "echo": True}, p.CompletionChunk)):
        r = _post(fake_server, path, {**body, "stream": True, "stream_options": {"include_usage": True}})
        events = [json.loads(line[len("data: "):]) for line in r.text.splitlines() if line.startswith("data: {")]
        assert "usage" not in events[0] and events[-1]["choices"] == [] and events[-1]["usage"]["total_tokens"] > 0
        assert events[-2]["choices"][0]["finish_reason"] and events[0]["choices"][0]["finish_reason"] is None
        for event in events:
            same(chunk, event)
    assert events[-2]["choices"][0]["text"] == ""  # a completion stream ends with empty text, a chat one with {}
    same(p.ModelList, httpx.get(fake_server.url + "/v1/models", headers=auth).json())
    same(p.ModelCard, httpx.get(fake_server.url + "/v1/models/fake", headers=auth).json())
    same(p.Health, httpx.get(fake_server.url + "/health").json())
    same(p.LanguageList, httpx.get(fake_server.url + "/v1/languages").json())
    plain = _post(fake_server, "/v1/translate", {"text": "Hello", "src_lang": "en", "tgt_lang": "de"}).json()
    assert "constraints_met" not in plain
    same(p.TranslateResponse, plain)
    same(p.TranslateResponse, _post(fake_server, "/v1/translate", {"text": "Hello", "src_lang": "en", "tgt_lang": "de",
                                                                   "constraints": ["Hallo"]}).json())
    same(p.ErrorResponse, _post(fake_server, "/v1/chat/completions", {"messages": []}).json())


def test_a_request_is_its_generation_config():
    from bayling.infer.engine import GenerationConfig
    from bayling.serve.protocol import ChatCompletionRequest, CompletionRequest, OpenAIError, TranslateRequest

    chat = ChatCompletionRequest(messages=HI, max_tokens=9, max_completion_tokens=5, temperature=0.7, top_p=0.9,
                                 stop="END", seed=-1)
    assert chat.generation_config(512, 64) == GenerationConfig(5, 0.7, 0.9, ("END",), 2**63 - 1)
    assert CompletionRequest(prompt="x").generation_config(16, 8) == GenerationConfig(max_new_tokens=8)
    text = TranslateRequest(text="Hi", src_lang="en", tgt_lang="de", temperature=0.5)
    assert text.generation_config(512, 2048) == GenerationConfig(max_new_tokens=512, temperature=0.5)
    with pytest.raises(OpenAIError, match="at most 64") as err:
        ChatCompletionRequest(messages=HI, max_tokens=65).generation_config(512, 64)
    assert err.value.status == 400 and err.value.body.error.code == "max_tokens_too_large"


def test_chat_streams_open_with_the_role_and_close_with_an_empty_delta(fake_server):
    r = _post(fake_server, "/v1/chat/completions", {"messages": HI, "stream": True})
    deltas = [json.loads(line[len("data: "):])["choices"][0]["delta"] for line in r.text.splitlines()
              if line.startswith("data: {")]
    assert deltas[0] == {"role": "assistant", "content": ""} and deltas[-1] == {}
    assert all(set(d) == {"content"} for d in deltas[1:-1]) and r.text.endswith("data: [DONE]\n\n")


def test_openapi_documents_the_errors_the_server_gives(fake_server):
    schema = httpx.get(fake_server.url + "/openapi.json").json()
    posts = {path: ops["post"] for path, ops in schema["paths"].items() if "post" in ops}
    assert set(posts) == {"/v1/chat/completions", "/v1/completions", "/v1/translate"}
    for path, op in posts.items():
        assert "422" not in op["responses"] and {"400", "401", "413", "415", "429"} <= set(op["responses"]), path
    assert "HTTPValidationError" not in schema["components"]["schemas"]
