"""The OpenAI-compatible server: routes over an `Engine`, speaking the models of protocol.py.

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
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from importlib import resources
from typing import Annotated, AsyncIterator, Sequence

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from bayling.chat_formats import ChatFormatError, validate_messages
from bayling.errors import ConfigError
from bayling.infer.engine import Engine, GenerationConfig
from bayling.serve.protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    ErrorResponse,
    Health,
    LanguageList,
    ModelCard,
    ModelList,
    OpenAIError,
    TranslateRequest,
    TranslateResponse,
    Usage,
    chat_chunk,
    chat_response,
    completion_chunk,
    completion_response,
    new_id,
)

__all__ = ["Gate", "Limits", "create_app"]

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


def _reply(e: OpenAIError) -> JSONResponse:
    return JSONResponse(e.body.model_dump(), status_code=e.status, headers=e.headers)


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
            resp = _reply(OpenAIError(415, "send the request body as JSON with 'Content-Type: application/json'",
                                      code="unsupported_media_type"))
            return await resp(scope, receive, send)

        def too_big():
            return _reply(OpenAIError(413, f"request body larger than {self.max_bytes} bytes",
                                      code="request_too_large"))

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


async def _disconnected(request: Request) -> None:
    while True:
        msg = await request.receive()
        if msg["type"] == "http.disconnect":
            return


def _sse(event: BaseModel) -> str:
    return f"data: {event.model_dump_json()}\n\n"


class _Server:
    """One engine as served: its name, limits, admission gate and worker pool; what the routes call."""

    def __init__(self, engine: Engine, name: str, limits: Limits, api_key: str | None, translate_mode: str):
        self.engine, self.name, self.limits, self.api_key = engine, name, limits, api_key
        self.translate_mode = translate_mode
        self.gate = Gate(limits.max_concurrent, limits.max_waiting)
        # One worker per generation slot, plus one for the quick jobs (prompt checks).
        self.pool = ThreadPoolExecutor(max_workers=limits.max_concurrent + 2, thread_name_prefix="bayling-serve")

    def check_model(self, requested: str | None) -> None:
        if requested is not None and requested not in (self.name, self.engine.name):
            raise OpenAIError(404, f"the model {requested!r} does not exist; this server serves {self.name!r}",
                              "invalid_request_error", "model", "model_not_found")

    def prepare(self, target: str | list[dict], config: GenerationConfig) -> GenerationConfig:
        """Check the prompt against the limits (in a worker: tokenizing may take a while)."""
        engine, limits = self.engine, self.limits
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

    async def in_pool(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def admit(self, request: Request) -> None:
        """Take a generation slot, waiting in line; a client that leaves meanwhile leaves the line (_Gone)."""
        gone = asyncio.ensure_future(_disconnected(request))
        entering = asyncio.ensure_future(self.gate.enter())
        try:
            await asyncio.wait({entering, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if entering.done():
            return entering.result()  # admitted, or 429
        entering.cancel()
        try:
            await entering
        except asyncio.CancelledError:
            raise _Gone from None
        self.gate.leave()  # admitted just as the client left
        raise _Gone

    async def held(self, request: Request, fn, cancel: threading.Event):
        """fn() in the pool, holding a slot; if the client leaves first, leave the line or set `cancel` (_Gone)."""
        await self.admit(request)
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            work = asyncio.ensure_future(self.in_pool(fn))
            await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                cancel.set()
                await asyncio.wait({work})  # fn stops soon after `cancel`
                raise _Gone
            return work.result()
        finally:
            gone.cancel()
            self.gate.leave()

    async def generate(self, request: Request, target: str | list[dict], config: GenerationConfig, kind: str,
                       stream: bool, include_usage: bool = False, echo: str = ""):
        """A chat ("chat") or text ("text") completion; streamed, its response holds the slot until it ends."""
        cancel = threading.Event()
        if not stream:
            def run():
                s = self.engine.stream(target, self.prepare(target, config), cancel)
                return s.text(), s

            try:
                text, s = await self.held(request, run, cancel)
            except ChatFormatError as e:
                raise OpenAIError(400, str(e), param="messages") from None
            build = chat_response if kind == "chat" else completion_response
            return build(self.name, echo + text, s.finish_reason or "stop", Usage.of(s))
        await self.admit(request)  # from here the streaming response watches the client
        try:
            # Short prompts are checked right here: a thread hop would cost more than tokenizing.
            small = sum(len(m["content"]) for m in target) if isinstance(target, list) else len(target)
            config = self.prepare(target, config) if small < 2048 else await self.in_pool(self.prepare, target, config)
        except BaseException:
            self.gate.leave()
            raise

        def closed() -> None:
            cancel.set()
            self.gate.leave()

        return _GatedStream(self._events(target, config, cancel, kind, include_usage, echo), closed,
                            media_type="text/event-stream",
                            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _events(self, target, config: GenerationConfig, cancel: threading.Event, kind: str,
                      include_usage: bool, echo: str) -> AsyncIterator[str]:
        """SSE events of one generation; the generation runs in the pool and feeds a queue."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        def post(item) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone (server shutting down)
                cancel.set()

        def produce() -> None:
            try:
                s = self.engine.stream(target, config, cancel)
                for piece in s:
                    post(("piece", piece))
                    if cancel.is_set():
                        s.close()
                        break
                post(("end", s))
            except BaseException as e:  # reported to the client as an error event
                post(("error", e))

        rid, created = new_id("chatcmpl" if kind == "chat" else "cmpl"), int(time.time())
        chunk = chat_chunk if kind == "chat" else completion_chunk
        work = loop.run_in_executor(self.pool, produce)
        try:
            if kind == "chat":
                yield _sse(chat_chunk(rid, self.name, created, "", role="assistant"))
            elif echo:
                yield _sse(completion_chunk(rid, self.name, created, echo))
            while True:
                what, value = await queue.get()
                if what == "piece":
                    yield _sse(chunk(rid, self.name, created, value))
                elif what == "error":
                    bad = isinstance(value, (ChatFormatError, ValueError))
                    log.warning("generation failed mid-stream: %r", value)
                    yield _sse(OpenAIError(400 if bad else 500, str(value) or type(value).__name__,
                                           "invalid_request_error" if bad else "server_error").body)
                    break
                else:
                    yield _sse(chunk(rid, self.name, created, None, value.finish_reason or "stop"))
                    if include_usage:
                        yield _sse(chunk(rid, self.name, created, None, usage=Usage.of(value)))
                    break
            yield "data: [DONE]\n\n"
        finally:
            cancel.set()
            if not work.done():
                work.add_done_callback(lambda f: f.exception())  # nobody awaits it now; keep it quiet

    async def translate(self, request: Request, req: TranslateRequest) -> TranslateResponse:
        from bayling.infer.translate import translate_text
        from bayling.languages import UnknownLanguage, resolve

        for field in ("src_lang", "tgt_lang"):
            try:
                resolve(getattr(req, field))
            except UnknownLanguage as e:
                raise OpenAIError(400, str(e), param=field) from None
        config = req.generation_config(self.limits.default_max_tokens, self.limits.max_tokens)
        config = await self.in_pool(self.prepare, req.text, config)
        cancel = threading.Event()
        done = await self.held(request, lambda: translate_text(self.engine, req.text, req.src_lang, req.tgt_lang,
                                                                mode=self.translate_mode, config=config,
                                                                constraints=req.constraints, cancel=cancel), cancel)
        return TranslateResponse.model_validate(done)


def _server(request: Request) -> _Server:
    return request.app.state.server


_ServerDep = Annotated[_Server, Depends(_server)]


async def _require_key(server: _ServerDep, request: Request) -> None:
    if not server.api_key:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), server.api_key.encode()):
        raise OpenAIError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                          code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


_ERRORS: dict = {status: {"model": ErrorResponse, "description": what} for status, what in (
    (400, "Invalid request (bad JSON, a field out of range, a prompt too long)"),
    (401, "Missing or wrong API key"),
    (404, "No such model"),
    (413, "Request body too large"),
    (415, "The body is not application/json"),
    (429, "Queue full; retry after Retry-After seconds"),
)}

_public = APIRouter()
# On the routes themselves, so the key holds whatever prefix the app is mounted under.
_v1 = APIRouter(prefix="/v1", dependencies=[Depends(_require_key)], responses=_ERRORS)


@_public.get("/health")
@_public.head("/health", include_in_schema=False)  # load balancers probe with HEAD
async def health(server: _ServerDep) -> Health:
    return Health(model=server.name, running=server.gate.running, waiting=server.gate.waiting)


@_public.get("/v1/languages")  # public: the web page lists languages before any key is typed
async def languages() -> LanguageList:
    from bayling.languages import language_table

    return LanguageList(data=[{"code": r[0], "name": r[1], "native": r[2]} for r in language_table()])


@_public.get("/", response_class=HTMLResponse)
async def index():
    return HTMLResponse(resources.files("bayling.serve").joinpath("static/index.html").read_text(encoding="utf-8"))


@_v1.get("/models")
async def models(server: _ServerDep) -> ModelList:
    return ModelList(data=[ModelCard(id=server.name)])


@_v1.get("/models/{model_id:path}")
async def model(model_id: str, server: _ServerDep) -> ModelCard:
    server.check_model(model_id)
    return ModelCard(id=server.name)


@_v1.post("/chat/completions", response_model=ChatCompletionResponse)
async def chat_completions(req: ChatCompletionRequest, request: Request, server: _ServerDep):
    server.check_model(req.model)
    config = req.generation_config(server.limits.default_max_tokens, server.limits.max_tokens)
    messages = [m.plain() for m in req.messages]
    return await server.generate(request, messages, config, "chat", req.stream, req.include_usage())


@_v1.post("/completions", response_model=CompletionResponse)
async def completions(req: CompletionRequest, request: Request, server: _ServerDep):
    server.check_model(req.model)
    config = req.generation_config(server.limits.default_completion_tokens, server.limits.max_tokens)
    prompt = req.prompt_text()
    return await server.generate(request, prompt, config, "text", req.stream, req.include_usage(),
                                 prompt if req.echo else "")


@_v1.post("/translate")
async def translate(req: TranslateRequest, request: Request, server: _ServerDep) -> TranslateResponse:
    """One translation plus the chat it took, which the web page then refines."""
    return await server.translate(request, req)


def _invalid(exc: RequestValidationError) -> OpenAIError:
    """FastAPI's 422 as OpenAI's 400, naming the first bad field."""
    errors = exc.errors()
    if not errors:
        return OpenAIError(400, "invalid request")
    e = errors[0]
    if e.get("type") == "json_invalid":
        return OpenAIError(400, "the request body is not valid JSON")
    where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
    msg = str(e.get("msg", "invalid value"))
    return OpenAIError(400, f"{where}: {msg}" if where else msg, param=where or None)


async def _on_error(request: Request, exc: Exception) -> Response:
    """Every error as OpenAI's body; anything unforeseen is a 500 with its traceback in the log."""
    if isinstance(exc, _Gone):
        return Response(status_code=499)  # nginx's "client closed request"; nobody reads it
    if isinstance(exc, RequestValidationError):
        exc = _invalid(exc)
    elif isinstance(exc, StarletteHTTPException):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        exc = OpenAIError(exc.status_code, str(exc.detail), kind)
    elif not isinstance(exc, OpenAIError):
        log.exception("unhandled error on %s", request.url.path)
        exc = OpenAIError(500, f"internal error: {type(exc).__name__}", "server_error")
    return _reply(exc)


_HANDLED = (OpenAIError, RequestValidationError, _Gone, StarletteHTTPException, Exception)


class _App(FastAPI):
    def openapi(self) -> dict:
        """The schema as the server answers: errors are 400 (never FastAPI's 422) in the OpenAI body."""
        schema = super().openapi()
        for ops in schema["paths"].values():
            for op in ops.values():
                op.get("responses", {}).pop("422", None)
        for unused in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(unused, None)
        return schema


@asynccontextmanager
async def _lifespan(app: FastAPI):
    yield
    app.state.server.pool.shutdown(wait=False, cancel_futures=True)


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
    server = _Server(engine, model_name or engine.name, limits, api_key, translate_mode)
    app = _App(title="BayLing", version="1", description="OpenAI-compatible API over a BayLing engine",
               lifespan=_lifespan, exception_handlers=dict.fromkeys(_HANDLED, _on_error))
    app.state.server = server
    app.add_middleware(_Guard, max_bytes=limits.max_request_bytes)
    if cors_origins:  # outermost, so that errors from the guard carry the CORS headers too
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.include_router(_public)
    app.include_router(_v1)
    return app
