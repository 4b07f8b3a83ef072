"""The OpenAI-compatible server: a thin FastAPI layer over an `Engine`.

Generation is blocking CPU/GPU work: it runs in a thread pool sized to the concurrency limit and
reaches the event loop through a queue, so the loop never blocks. A `Gate` admits at most
`max_concurrent` generations and lets `max_waiting` more queue; beyond that a request gets 429
at once (memory stays bounded). A client that disconnects leaves the queue at once, or cancels its
generation. The API key is a dependency of the /v1 routes, so it holds under any mount or root path.
Every error is an OpenAI-style body: {"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from importlib import resources
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Sequence

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bayling.errors import ConfigError
from bayling.chat_formats import ChatFormatError, validate_messages
from bayling.infer.engine import Engine, GenerationConfig
from bayling.serve.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    ErrorResponse,
    TranslateRequest,
    chat_chunk,
    chat_response,
    completion_chunk,
    completion_response,
    new_id,
)

__all__ = ["Gate", "Limits", "OpenAIError", "create_app"]

log = logging.getLogger("bayling.serve")


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int = 1_000_000
    max_prompt_tokens: int = 8192
    max_tokens: int = 2048  # the largest max_tokens a request may ask for
    default_max_tokens: int = 512  # chat completions without max_tokens
    default_completion_tokens: int = 16  # /v1/completions without max_tokens (OpenAI's default)
    max_concurrent: int = 1  # generations at once (one saturates a small CPU)
    max_waiting: int = 16  # queued beyond that; more gets 429


class OpenAIError(Exception):
    def __init__(self, status: int, message: str, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, self.type, self.param, self.code, self.headers)


def error_response(status: int, message: str, type: str = "invalid_request_error",
                   param: str | None = None, code: str | None = None, headers: dict | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


class Gate:
    """At most `running` holders at once and `waiting` in line (FIFO); the rest are refused."""

    def __init__(self, running: int, waiting: int):
        if running < 1 or waiting < 0:
            raise ConfigError("max_concurrent must be >= 1 and max_waiting >= 0")
        self.max_running, self.max_waiting = running, waiting
        self.running = 0
        self._line: collections.deque[asyncio.Future] = collections.deque()

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._line if not f.done())

    async def enter(self) -> None:
        if self.running < self.max_running and not self.waiting:
            self.running += 1
            return
        if self.waiting >= self.max_waiting:
            raise OpenAIError(429, f"the server is busy ({self.running} running, {self.waiting} waiting); retry later",
                              "rate_limit_error", code="queue_full", headers={"Retry-After": "1"})
        fut = asyncio.get_running_loop().create_future()
        self._line.append(fut)
        try:
            await fut  # `leave` hands its slot over
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.leave()  # got the slot just as we were cancelled: pass it on
            else:
                self._line.remove(fut)
            raise

    def leave(self) -> None:
        while self._line:
            fut = self._line.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.running -= 1


def _is_json(content_type: bytes) -> bool:
    kind = content_type.split(b";")[0].strip().lower()
    return kind == b"application/json" or (kind.startswith(b"application/") and kind.endswith(b"+json"))


class _Guard:
    """ASGI middleware on bodies, before any parsing: JSON only (415), then the size (413).

    JSON only, so that a web page's cross-origin "simple" POST (text/plain, forms) cannot start a generation.
    """

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if not _is_json(headers.get(b"content-type", b"")):
            resp = error_response(415, "send the request body as JSON with 'Content-Type: application/json'",
                                  code="unsupported_media_type")
            return await resp(scope, receive, send)

        def too_big():
            return error_response(413, f"request body larger than {self.max_bytes} bytes", code="request_too_large")

        try:
            declared = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            declared = 0
        if declared > self.max_bytes:
            return await too_big()(scope, receive, send)
        chunks, size = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunks.append(msg.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await too_big()(scope, receive, send)
            if not msg.get("more_body"):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        return await self.app(scope, replay, send)


class _GatedStream(StreamingResponse):
    """A streaming response that frees its gate slot and cancels generation however it ends."""

    def __init__(self, content, on_close, **kw):
        super().__init__(content, **kw)
        self._on_close = on_close

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


class _Gone(Exception):
    """The client disconnected: whatever it asked for is abandoned."""


_ERRORS: dict = {status: {"model": ErrorResponse, "description": what} for status, what in (
    (400, "Invalid request (bad JSON, a field out of range, a prompt too long)"),
    (401, "Missing or wrong API key"),
    (404, "No such model"),
    (413, "Request body too large"),
    (415, "The body is not application/json"),
    (429, "Queue full; retry after Retry-After seconds"),
)}


def _sse(obj: Any) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def _message_of(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    e = errors[0]
    loc = [str(x) for x in e.get("loc", ()) if x != "body"]
    if e.get("type") == "json_invalid":
        return "the request body is not valid JSON", None
    where = ".".join(loc)
    msg = str(e.get("msg", "invalid value"))
    return (f"{where}: {msg}" if where else msg), (where or None)


def create_app(
    engine: Engine,
    api_key: str | None = None,
    limits: Limits = Limits(),
    model_name: str | None = None,
    translate_mode: str = "chat",
    cors_origins: Sequence[str] = (),
) -> FastAPI:
    """The server for one engine. `model_name` is what /v1/models lists and requests must name.

    `cors_origins`: web pages (e.g. "https://example.org") whose scripts may call the API.
    """
    name = model_name or engine.name
    gate = Gate(limits.max_concurrent, limits.max_waiting)
    # One worker per generation slot, plus one for the quick jobs (prompt checks).
    pool = ThreadPoolExecutor(max_workers=limits.max_concurrent + 2, thread_name_prefix="bayling-serve")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="BayLing", version="1", description="OpenAI-compatible API over a BayLing engine",
                  lifespan=lifespan)
    app.state.engine, app.state.gate, app.state.limits, app.state.model_name = engine, gate, limits, name
    app.add_middleware(_Guard, max_bytes=limits.max_request_bytes)
    if cors_origins:  # outermost, so that errors from the guard carry the CORS headers too
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    default_openapi = app.openapi

    def openapi() -> dict:
        """The schema as the server answers: errors are 400 (never FastAPI's 422) in the OpenAI body."""
        schema = default_openapi()
        for ops in schema["paths"].values():
            for op in ops.values():
                op.get("responses", {}).pop("422", None)
        for unused in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(unused, None)
        return schema

    app.openapi = openapi

    async def require_key(request: Request) -> None:
        if not api_key:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            raise OpenAIError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                              code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    # On the routes themselves, so the key holds whatever prefix the app is mounted under.
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_key)], responses=_ERRORS)

    @app.exception_handler(OpenAIError)
    async def _openai_error(request: Request, exc: OpenAIError):
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        message, param = _message_of(exc)
        return error_response(400, message, param=param)

    @app.exception_handler(_Gone)
    async def _gone(request: Request, exc: _Gone):
        return Response(status_code=499)  # nginx's "client closed request"; nobody reads it

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error_response(exc.status_code, str(exc.detail), kind)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        log.exception("unhandled error on %s", request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}", "server_error")

    def check_model(requested: str | None) -> None:
        if requested is not None and requested not in (name, engine.name):
            raise OpenAIError(404, f"the model {requested!r} does not exist; this server serves {name!r}",
                              "invalid_request_error", "model", "model_not_found")

    def sampling(req, max_tokens: int | None, default: int) -> GenerationConfig:
        if max_tokens is not None and max_tokens > limits.max_tokens:
            raise OpenAIError(400, f"max_tokens is {max_tokens}; this server allows at most {limits.max_tokens}",
                              param="max_tokens", code="max_tokens_too_large")
        top_p, seed = getattr(req, "top_p", None), getattr(req, "seed", None)
        return GenerationConfig(
            max_new_tokens=max_tokens or min(default, limits.max_tokens),
            temperature=req.temperature if req.temperature is not None else 0.0,
            top_p=top_p if top_p is not None else 1.0,
            stop=req.stop_list() if hasattr(req, "stop_list") else (),
            seed=(seed or 0) % (2**63),
        )

    def prepare(target: str | list[dict], config: GenerationConfig) -> GenerationConfig:
        """Check the prompt against the limits (in a worker: tokenizing may take a while)."""
        if isinstance(target, list):
            try:
                validate_messages(target)
            except ChatFormatError as e:
                raise OpenAIError(400, str(e), param="messages") from None
            try:
                prompt = engine.render(target)
            except NotImplementedError:  # a remote engine templates on its side
                prompt = "\n".join(m["content"] for m in target)
            except Exception as e:  # a template that refuses this chat (e.g. strict role order)
                raise OpenAIError(400, f"the chat template cannot render these messages: {e}", param="messages") from None
        else:
            prompt = target
            if not prompt:
                raise OpenAIError(400, "the prompt is empty", param="prompt")
        n = engine.count_tokens(prompt)
        if n > limits.max_prompt_tokens:
            raise OpenAIError(400, f"the prompt has {n} tokens; this server accepts at most {limits.max_prompt_tokens}",
                              param="messages" if isinstance(target, list) else "prompt",
                              code="context_length_exceeded")
        if engine.max_context:
            room = engine.max_context - n
            if room < 1:
                raise OpenAIError(400, f"the prompt has {n} tokens; the model's context is {engine.max_context}",
                                  code="context_length_exceeded")
            config = replace(config, max_new_tokens=min(config.max_new_tokens, room))
        return config

    async def in_pool(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def admit(gone: asyncio.Future) -> None:
        """Take a generation slot, waiting in line; a client that leaves meanwhile leaves the line (_Gone)."""
        entering = asyncio.ensure_future(gate.enter())
        await asyncio.wait({entering, gone}, return_when=asyncio.FIRST_COMPLETED)
        if entering.done():
            return entering.result()  # admitted, or 429
        entering.cancel()
        try:
            await entering
        except asyncio.CancelledError:
            raise _Gone from None
        gate.leave()  # admitted just as the client left
        raise _Gone

    async def until_gone(fn, gone: asyncio.Future, cancel: threading.Event):
        """fn() in the pool; if the client leaves first, set `cancel`, wait for fn to stop and raise _Gone."""
        work = asyncio.ensure_future(in_pool(fn))
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            cancel.set()
            await asyncio.wait({work})
            raise _Gone
        return work.result()

    async def generate(request: Request, target, config: GenerationConfig, kind: str, stream: bool,
                       include_usage: bool = False, echo: str = ""):
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await admit(gone)
            try:
                # Short prompts are checked right here: a thread hop would cost more than tokenizing.
                small = sum(len(m["content"]) for m in target) if isinstance(target, list) else len(target)
                config = prepare(target, config) if small < 2048 else await in_pool(prepare, target, config)
            except BaseException:
                gate.leave()
                raise
            cancel = threading.Event()
            if stream:
                gone.cancel()  # from here the streaming response watches the client

                def closed() -> None:
                    cancel.set()
                    gate.leave()

                body = _events(engine, target, config, cancel, kind, name, include_usage, echo, pool)
                return _GatedStream(body, closed, media_type="text/event-stream",
                                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

            def run():
                s = engine.stream(target, config, cancel)
                return s.text(), s

            try:
                text, s = await until_gone(run, gone, cancel)
            except ChatFormatError as e:
                raise OpenAIError(400, str(e), param="messages") from None
            finally:
                gate.leave()
        finally:
            gone.cancel()
        build = chat_response if kind == "chat" else completion_response
        return JSONResponse(build(name, echo + text, s.finish_reason or "stop", s.prompt_tokens, s.completion_tokens))

    @app.get("/health")
    @app.head("/health", include_in_schema=False)  # load balancers probe with HEAD
    async def health():
        return {"status": "ok", "model": name, "running": gate.running, "waiting": gate.waiting}

    @v1.get("/models")
    async def models():
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "bayling"}]}

    @v1.get("/models/{model_id:path}")
    async def model(model_id: str):
        check_model(model_id)
        return {"id": name, "object": "model", "created": 0, "owned_by": "bayling"}

    @v1.post("/chat/completions")
    async def chat_completions(req: ChatCompletionRequest, request: Request):
        check_model(req.model)
        config = sampling(req, req.max_completion_tokens or req.max_tokens, limits.default_max_tokens)
        messages = [m.plain() for m in req.messages]
        usage = bool(req.stream_options and req.stream_options.include_usage)
        return await generate(request, messages, config, "chat", req.stream, usage)

    @v1.post("/completions")
    async def completions(req: CompletionRequest, request: Request):
        check_model(req.model)
        config = sampling(req, req.max_tokens, limits.default_completion_tokens)
        prompt = req.prompt_text()
        usage = bool(req.stream_options and req.stream_options.include_usage)
        return await generate(request, prompt, config, "text", req.stream, usage, prompt if req.echo else "")

    @app.get("/v1/languages")  # public: the web page lists languages before any key is typed
    async def languages():
        from bayling.languages import language_table

        return {"data": [{"code": r[0], "name": r[1], "native": r[2]} for r in language_table()]}

    @v1.post("/translate")
    async def translate(req: TranslateRequest, request: Request):
        """One translation plus the chat it took, which the web page then refines."""
        from bayling.infer.translate import translate_text
        from bayling.languages import UnknownLanguage, resolve

        for field in ("src_lang", "tgt_lang"):
            try:
                resolve(getattr(req, field))
            except UnknownLanguage as e:
                raise OpenAIError(400, str(e), param=field) from None
        config = sampling(req, req.max_tokens, limits.default_max_tokens)
        config = await in_pool(prepare, req.text, config)
        cancel = threading.Event()
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await admit(gone)
            try:
                return await until_gone(lambda: translate_text(engine, req.text, req.src_lang, req.tgt_lang,
                                                               mode=translate_mode, config=config,
                                                               constraints=req.constraints, cancel=cancel),
                                        gone, cancel)
            finally:
                gate.leave()
        finally:
            gone.cancel()

    @app.get("/", response_class=HTMLResponse)
    async def index():
        return HTMLResponse(resources.files("bayling.serve").joinpath("static/index.html").read_text(encoding="utf-8"))

    app.include_router(v1)
    return app


async def _disconnected(request: Request) -> None:
    while True:
        msg = await request.receive()
        if msg["type"] == "http.disconnect":
            return


async def _events(engine: Engine, target, config: GenerationConfig, cancel: threading.Event, kind: str,
                  model: str, include_usage: bool, echo: str, pool) -> AsyncIterator[str]:
    """SSE events of one generation; the generation runs in `pool` and feeds a queue."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    def post(item) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is gone (server shutting down)
            cancel.set()

    def produce() -> None:
        try:
            s = engine.stream(target, config, cancel)
            for piece in s:
                post(("piece", piece))
                if cancel.is_set():
                    s.close()
                    break
            post(("end", s))
        except BaseException as e:  # reported to the client as an error event
            post(("error", e))

    rid, created = new_id("chatcmpl" if kind == "chat" else "cmpl"), int(time.time())
    work = loop.run_in_executor(pool, produce)
    try:
        if kind == "chat":
            yield _sse(chat_chunk(rid, model, created, {"role": "assistant", "content": ""}))
        elif echo:
            yield _sse(completion_chunk(rid, model, created, echo))
        while True:
            what, value = await queue.get()
            if what == "piece":
                yield _sse(chat_chunk(rid, model, created, {"content": value}) if kind == "chat"
                           else completion_chunk(rid, model, created, value))
            elif what == "error":
                status = 400 if isinstance(value, (ChatFormatError, ValueError)) else 500
                log.warning("generation failed mid-stream: %r", value)
                yield _sse({"error": {"message": str(value) or type(value).__name__,
                                      "type": "invalid_request_error" if status == 400 else "server_error",
                                      "param": None, "code": None}})
                break
            else:
                s = value
                reason = s.finish_reason or "stop"
                yield _sse(chat_chunk(rid, model, created, {}, reason) if kind == "chat"
                           else completion_chunk(rid, model, created, "", reason))
                if include_usage:
                    usage = (s.prompt_tokens, s.completion_tokens)
                    yield _sse(chat_chunk(rid, model, created, None, usage=usage) if kind == "chat"
                               else completion_chunk(rid, model, created, None, usage=usage))
                break
        yield "data: [DONE]\n\n"
    finally:
        cancel.set()
        if not work.done():
            work.add_done_callback(lambda f: f.exception())  # nobody awaits it now; keep it quiet

