"""OpenAIEngine: any OpenAI-compatible server as an engine (here: our own, on 127.0.0.1)."""

from __future__ import annotations

import pytest

from bayling.infer.engine import GenerationConfig
from bayling.testing.fake_engine import FakeEngine
from bayling.serve.app import create_app
from bayling.testing.background import BackgroundServer


@pytest.fixture(scope="module")
def remote():
    from bayling.infer.remote import OpenAIEngine

    with BackgroundServer(create_app(FakeEngine(), api_key="k", model_name="served")) as server:
        yield OpenAIEngine(server.url + "/v1", api_key="k")


def test_discovers_the_model_and_chats(remote):
    assert remote.name == "served"
    msgs = [{"role": "user", "content": "hello there"}]
    assert remote.chat([msgs], GenerationConfig(max_new_tokens=20)) == ["You said: hello there"]
    s = remote.stream(msgs, GenerationConfig(max_new_tokens=2))
    assert s.text() == "You said: " and s.finish_reason == "length" and s.completion_tokens == 2


def test_completions(remote):
    assert remote.complete(["a\nlast line"], GenerationConfig()) == ["echo: last line"]
    s = remote.stream("x y", GenerationConfig())
    assert s.text() == "echo: x y" and s.finish_reason == "stop"


def test_translate_through_a_remote_engine(remote):
    from bayling.infer.translate import Item, translate_batch

    [rec] = translate_batch(remote, [Item("1", "Hi", "eng_Latn", "deu_Latn")])
    assert rec["hyp"].startswith("You said: Translate the following English text into German.")


def test_loop_guards_travel_to_the_server_and_bad_ones_get_a_400():
    """An OpenAIEngine's loop guards go out as vLLM's extra request fields; `bayling serve` reads
    them into the engine's GenerationConfig, and a bad value is the client's error."""
    import httpx

    from bayling.infer.backends import load_engine

    fake = FakeEngine()
    with BackgroundServer(create_app(fake, model_name="served")) as server:
        remote = load_engine("served", backend="openai", base_url=server.url + "/v1",
                             decoding={"no_repeat_ngram_size": 3, "repetition_penalty": 1.2})
        remote.chat([[{"role": "user", "content": "hi"}]], GenerationConfig(max_new_tokens=5))
        assert (fake.last_config.no_repeat_ngram_size, fake.last_config.repetition_penalty) == (3, 1.2)
        remote.decoding = {}
        remote.complete(["x"], GenerationConfig())
        assert (fake.last_config.no_repeat_ngram_size, fake.last_config.repetition_penalty) == (None, None)
        r = httpx.post(server.url + "/v1/chat/completions",
                       json={"messages": [{"role": "user", "content": "hi"}], "repetition_penalty": 0})
        assert r.status_code == 400 and "repetition_penalty" in r.text
