"""Fuzz: random JSON, and requests generated from the OpenAPI schema, never get a 5xx (nor hang)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayling.serve.app import Limits, create_app

_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30))
_json = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                     max_leaves=12)
_role = st.one_of(st.sampled_from(["system", "developer", "user", "assistant", "tool", ""]), st.text(max_size=8))
_content = st.one_of(st.text(max_size=40), st.none(), st.integers(),
                     st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url"]), "text": st.text(max_size=10)}), max_size=2))
_message = st.one_of(st.fixed_dictionaries({"role": _role, "content": _content}), _json)
_common = {
    "model": st.one_of(st.none(), st.sampled_from(["tiny", "other"]), st.integers()),
    "max_tokens": st.one_of(st.none(), st.integers(min_value=-5, max_value=10), st.integers(), st.text(max_size=3)),
    "temperature": st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-3, 3)),
    "top_p": st.one_of(st.none(), st.floats(allow_nan=True)),
    "stop": st.one_of(st.none(), st.text(max_size=3), st.lists(st.text(max_size=3), max_size=6), _json),
    "stream": st.one_of(st.booleans(), _json),
    "n": st.one_of(st.just(1), st.integers(-2, 3)),
    "seed": st.one_of(st.none(), st.integers()),
    "stream_options": st.one_of(st.none(), st.fixed_dictionaries({"include_usage": st.booleans()}), _json),
}
_chat = st.fixed_dictionaries({"messages": st.one_of(st.lists(_message, max_size=4), _json)},
                              optional=_common)
_completion = st.fixed_dictionaries({"prompt": st.one_of(st.text(max_size=40), st.lists(st.text(max_size=10), max_size=3),
                                                         st.lists(st.integers(), max_size=3), _json)},
                                    optional={**_common, "echo": st.booleans(), "suffix": st.one_of(st.none(), st.text(max_size=3))})
_body = st.one_of(_json, _chat, _completion)


@pytest.fixture(scope="module")
def http(tiny_model_dir):
    from fastapi.testclient import TestClient

    from bayling.infer.engine import TransformersEngine

    engine = TransformersEngine.load(str(tiny_model_dir), chat_format="chatml")
    app = create_app(engine, limits=Limits(max_tokens=4, default_max_tokens=4, max_prompt_tokens=64), model_name="tiny")
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _check(http, path: str, body):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = http.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code < 500, (path, body, r.status_code, r.text)
    if r.status_code >= 400:
        err = r.json()["error"]
        assert isinstance(err["message"], str) and err["message"]
    return r


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(body=st.one_of(_chat, _body))
def test_fuzz_chat_completions(http, body):
    _check(http, "/v1/chat/completions", body)


@FUZZ
@given(body=st.one_of(_completion, _body))
def test_fuzz_completions(http, body):
    _check(http, "/v1/completions", body)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=60))
def test_fuzz_raw_bytes(http, raw):
    _check(http, "/v1/chat/completions", raw)


# Requests generated from the server's own OpenAPI schema (hypothesis-jsonschema): every documented
# body shape, valid and edge-valued, reaches the routes; none may get a 5xx or an undocumented status.


@pytest.fixture(scope="module")
def fake_http():
    from fastapi.testclient import TestClient

    from bayling.testing.fake_engine import FakeEngine

    app = create_app(FakeEngine(), limits=Limits(max_tokens=8, default_max_tokens=8, max_prompt_tokens=64))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _schema_posts() -> list[tuple[str, dict, set[str]]]:
    from bayling.testing.fake_engine import FakeEngine

    spec = create_app(FakeEngine()).openapi()
    posts = []
    for path, ops in spec["paths"].items():
        if "post" in ops:
            body = ops["post"]["requestBody"]["content"]["application/json"]["schema"]
            posts.append((path, {**body, "components": spec["components"]}, set(ops["post"]["responses"])))
    return posts


@pytest.mark.parametrize("path,schema,documented", _schema_posts(), ids=lambda x: x if isinstance(x, str) else "")
def test_fuzz_from_the_openapi_schema(fake_http, path, schema, documented):
    from_schema = pytest.importorskip("hypothesis_jsonschema").from_schema  # in the [test] extra

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=from_schema(schema))
    def check(body):
        r = _check(fake_http, path, body)
        assert str(r.status_code) in documented, (path, body, r.status_code, r.text)

    check()
