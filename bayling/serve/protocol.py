"""The OpenAI API subset we serve, written once as pydantic models (requests, responses, errors).

Unknown request fields are ignored (clients send many optional ones); fields we cannot honour
(n > 1, logprobs, token-id prompts) are refused with a 400 rather than silently dropped.
A request turns itself into the engine's `GenerationConfig`; a response is sent as OpenAI sends
it: a field in its `_omit_none` is left out when None, every other None is sent as null.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, ClassVar, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, computed_field, field_validator, model_serializer

from bayling.infer.engine import GenerationConfig, Stream

__all__ = [
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatCompletionResponse",
    "ChatMessage",
    "CompletionChunk",
    "CompletionRequest",
    "CompletionResponse",
    "ErrorBody",
    "ErrorResponse",
    "Health",
    "LanguageList",
    "ModelCard",
    "ModelList",
    "OpenAIError",
    "TranslateRequest",
    "TranslateResponse",
    "Usage",
    "chat_chunk",
    "chat_response",
    "completion_chunk",
    "completion_response",
    "new_id",
]


def _unicode(value: Any) -> Any:
    """Refuse a string (in lists and objects too) holding a lone UTF-16 surrogate, which JSON can carry
    ("\\ud800") but no tokenizer or UTF-8 encoder accepts; other values are left to the type."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"not valid Unicode: a lone UTF-16 surrogate at character {e.start}") from None
    elif isinstance(value, (list, dict)):
        for item in value.values() if isinstance(value, dict) else value:
            _unicode(item)
    return value


# Checked before the type, so unions and length limits report this error at the field itself.
Text = Annotated[str, BeforeValidator(_unicode)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(_Request):
    type: Literal["text"]
    text: Text


class ChatMessage(_Request):
    # "developer" is the newer name for "system" in OpenAI's API.
    role: Literal["system", "developer", "user", "assistant"]
    content: Annotated[Union[str, list[TextPart], None], BeforeValidator(_unicode)] = None
    name: Optional[Text] = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""

    def plain(self) -> dict[str, str]:
        return {"role": "system" if self.role == "developer" else self.role, "content": self.text()}


class StreamOptions(_Request):
    include_usage: bool = False


_Stop = Annotated[Union[str, list[str], None], BeforeValidator(_unicode)]


class _Sampling(_Request):
    model: Optional[Text] = None
    max_tokens: Optional[int] = Field(None, ge=1)
    temperature: Optional[float] = Field(None, ge=0, le=2, allow_inf_nan=False)
    top_p: Optional[float] = Field(None, gt=0, le=1, allow_inf_nan=False)
    stop: _Stop = None
    seed: Optional[int] = Field(None, ge=-(2**63), le=2**64 - 1)
    # Loop guards (bayling.infer.engine.GUARDS; not OpenAI's API, repetition_penalty is vLLM's too); unset: the server's --no-repeat-ngram-size etc.
    repetition_penalty: Optional[float] = Field(None, gt=0, le=10, allow_inf_nan=False)
    no_repeat_ngram_size: Optional[int] = Field(None, ge=0, le=64)
    reply_no_repeat_ngram_size: Optional[int] = Field(None, ge=0, le=64)
    n: int = Field(1, ge=1, le=1, description="only n=1 is supported")
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    user: Optional[str] = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, v: _Stop) -> _Stop:
        items = [v] if isinstance(v, str) else (v or [])
        if len(items) > 4:
            raise ValueError("at most 4 stop sequences")
        if any(not s for s in items):
            raise ValueError("stop sequences must not be empty")
        return v

    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def _asked_tokens(self) -> Optional[int]:
        return self.max_tokens

    def generation_config(self, default_max_tokens: int, max_tokens_allowed: int) -> GenerationConfig:
        """What this request asks the engine for; unset fields mean greedy, untruncated, seed 0."""
        return GenerationConfig(
            max_new_tokens=_max_new_tokens(self._asked_tokens(), default_max_tokens, max_tokens_allowed),
            temperature=self.temperature or 0.0,
            top_p=self.top_p or 1.0,
            stop=self.stop_list(),
            seed=(self.seed or 0) % (2**63),
            repetition_penalty=self.repetition_penalty,
            no_repeat_ngram_size=self.no_repeat_ngram_size,
            reply_no_repeat_ngram_size=self.reply_no_repeat_ngram_size,
        )


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_completion_tokens: Optional[int] = Field(None, ge=1)
    logprobs: Optional[bool] = None

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, v: Optional[bool]) -> Optional[bool]:
        if v:
            raise ValueError("logprobs are not supported")
        return v

    def _asked_tokens(self) -> Optional[int]:
        return self.max_completion_tokens or self.max_tokens  # the newer name wins


class CompletionRequest(_Sampling):
    prompt: Annotated[Union[str, list[str]], BeforeValidator(_unicode)]
    echo: bool = False
    suffix: Optional[str] = None
    logprobs: Optional[int] = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, v: Union[str, list[str]]) -> Union[str, list[str]]:
        if isinstance(v, list) and len(v) != 1:
            raise ValueError("exactly one prompt per request is supported")
        return v

    @field_validator("suffix", "logprobs")
    @classmethod
    def _unsupported(cls, v: Any, info) -> Any:
        if v is not None:
            raise ValueError(f"{info.field_name} is not supported")
        return v

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class TranslateRequest(_Request):
    text: Text = Field(..., min_length=1)
    src_lang: Text = Field(..., min_length=1, max_length=100)
    tgt_lang: Text = Field(..., min_length=1, max_length=100)
    constraints: Annotated[list[str], BeforeValidator(_unicode)] = Field(default_factory=list, max_length=20)
    max_tokens: Optional[int] = Field(None, ge=1)
    temperature: Optional[float] = Field(None, ge=0, le=2, allow_inf_nan=False)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the text to translate is blank")
        return v

    @field_validator("constraints")
    @classmethod
    def _terms(cls, v: list[str]) -> list[str]:
        if any(not t.strip() for t in v):
            raise ValueError("constraint terms must not be blank")
        return v

    def generation_config(self, default_max_tokens: int, max_tokens_allowed: int) -> GenerationConfig:
        return GenerationConfig(max_new_tokens=_max_new_tokens(self.max_tokens, default_max_tokens, max_tokens_allowed),
                                temperature=self.temperature or 0.0)


def _max_new_tokens(asked: Optional[int], default: int, allowed: int) -> int:
    if asked is not None and asked > allowed:
        raise OpenAIError(400, f"max_tokens is {asked}; this server allows at most {allowed}",
                          param="max_tokens", code="max_tokens_too_large")
    return asked or min(default, allowed)


class _Response(BaseModel):
    _omit_none: ClassVar[tuple[str, ...]] = ()  # fields OpenAI leaves out, rather than sends as null, when unset

    @model_serializer(mode="wrap")
    def _omit(self, handler):
        data = handler(self)
        return {k: v for k, v in data.items() if v is not None or k not in self._omit_none}


class ErrorBody(_Response):
    message: str
    type: str
    param: Optional[str] = None
    code: Optional[str] = None


class ErrorResponse(_Response):
    error: ErrorBody


class OpenAIError(Exception):
    """An error the client is told about: this HTTP status, with an `ErrorResponse` body."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers
        self.body = ErrorResponse(error=ErrorBody(message=message, type=type, param=param, code=code))


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def _now() -> int:
    return int(time.time())


class Usage(_Response):
    prompt_tokens: int
    completion_tokens: int

    @classmethod
    def of(cls, stream: Stream) -> Usage:
        return cls(prompt_tokens=stream.prompt_tokens, completion_tokens=stream.completion_tokens)

    @computed_field
    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Message(_Response):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatCompletionChoice(_Response):
    index: int = 0
    message: Message
    logprobs: None = None
    finish_reason: str


class _Head(_Response):
    """What every completion and chunk opens with; subclasses fix `object` (and the id's prefix)."""

    id: str
    object: str
    created: int = Field(default_factory=_now)
    model: str


class ChatCompletionResponse(_Head):
    id: str = Field(default_factory=lambda: new_id("chatcmpl"))
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[ChatCompletionChoice]
    usage: Usage


class DeltaMessage(_Response):
    _omit_none = ("role", "content")
    role: Optional[Literal["assistant"]] = None
    content: Optional[str] = None


class ChatCompletionChunkChoice(_Response):
    index: int = 0
    delta: DeltaMessage
    logprobs: None = None
    finish_reason: Optional[str] = None


class ChatCompletionChunk(_Head):
    """One server-sent event of a streamed chat completion; the last, with `include_usage`, has no choices."""

    _omit_none = ("usage",)
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChatCompletionChunkChoice]
    usage: Optional[Usage] = None


class CompletionChoice(_Response):
    index: int = 0
    text: str
    logprobs: None = None
    finish_reason: Optional[str] = None  # None until the last chunk of a stream


class CompletionResponse(_Head):
    id: str = Field(default_factory=lambda: new_id("cmpl"))
    object: Literal["text_completion"] = "text_completion"
    choices: list[CompletionChoice]
    usage: Usage


class CompletionChunk(CompletionResponse):
    """One server-sent event of a streamed completion (OpenAI streams the completion's own shape)."""

    _omit_none = ("usage",)
    usage: Optional[Usage] = None


class ModelCard(_Response):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "bayling"


class ModelList(_Response):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class TranslateResponse(_Response):
    """One translation and the chat it took, which the web page then refines."""

    _omit_none = ("constraints_met",)
    hyp: str
    src_lang: str
    tgt_lang: str
    messages: list[Message]
    constraints_met: Optional[bool] = None  # only when constraints were asked for


class Language(_Response):
    code: str
    name: str
    native: str


class LanguageList(_Response):
    data: list[Language]


class Health(_Response):
    status: Literal["ok"] = "ok"
    model: str
    running: int
    waiting: int


def chat_response(model: str, text: str, finish_reason: str, usage: Usage) -> ChatCompletionResponse:
    choice = ChatCompletionChoice(message=Message(role="assistant", content=text), finish_reason=finish_reason)
    return ChatCompletionResponse(model=model, choices=[choice], usage=usage)


def completion_response(model: str, text: str, finish_reason: str, usage: Usage) -> CompletionResponse:
    choice = CompletionChoice(text=text, finish_reason=finish_reason)
    return CompletionResponse(model=model, choices=[choice], usage=usage)


def chat_chunk(rid: str, model: str, created: int, text: str | None, finish_reason: str | None = None,
               usage: Usage | None = None, role: Literal["assistant"] | None = None) -> ChatCompletionChunk:
    """A piece of the reply (`text` None: the closing empty delta), or with `usage` the choiceless last event."""
    choices = [] if usage is not None else [ChatCompletionChunkChoice(delta=DeltaMessage(role=role, content=text),
                                                          finish_reason=finish_reason)]
    return ChatCompletionChunk(id=rid, created=created, model=model, choices=choices, usage=usage)


def completion_chunk(rid: str, model: str, created: int, text: str | None, finish_reason: str | None = None,
                     usage: Usage | None = None) -> CompletionChunk:
    """A piece of the completion (`text` None: the closing empty text), or with `usage` the choiceless last event."""
    choices = [] if usage is not None else [CompletionChoice(text=text or "", finish_reason=finish_reason)]
    return CompletionChunk(id=rid, created=created, model=model, choices=choices, usage=usage)
