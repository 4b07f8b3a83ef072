"""The OpenAI API subset we serve, written once as pydantic models (requests, responses, errors).

Unknown request fields are ignored (clients send many optional ones); fields we cannot honour
(n > 1, logprobs, token-id prompts) are refused with a 400 rather than silently dropped.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

__all__ = [
    "ChatCompletionRequest",
    "ChatMessage",
    "CompletionRequest",
    "ErrorBody",
    "ErrorResponse",
    "TranslateRequest",
    "chat_chunk",
    "chat_response",
    "completion_chunk",
    "completion_response",
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


class ErrorBody(BaseModel):
    message: str
    type: str
    param: Optional[str] = None
    code: Optional[str] = None


class ErrorResponse(BaseModel):
    error: ErrorBody


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def chat_response(model: str, text: str, finish_reason: str, prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "id": _id("chatcmpl"), "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "logprobs": None, "finish_reason": finish_reason}],
        "usage": _usage(prompt_tokens, completion_tokens),
    }


def chat_chunk(rid: str, model: str, created: int, delta: dict | None, finish_reason: str | None = None,
               usage: tuple[int, int] | None = None) -> dict:
    chunk = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
             "choices": [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None,
                                                  "finish_reason": finish_reason}]}
    if usage is not None:
        chunk["usage"] = _usage(*usage)
    return chunk


def completion_response(model: str, text: str, finish_reason: str, prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "id": _id("cmpl"), "object": "text_completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}],
        "usage": _usage(prompt_tokens, completion_tokens),
    }


def completion_chunk(rid: str, model: str, created: int, text: str | None, finish_reason: str | None = None,
                     usage: tuple[int, int] | None = None) -> dict:
    chunk = {"id": rid, "object": "text_completion", "created": created, "model": model,
             "choices": [] if text is None else [{"index": 0, "text": text, "logprobs": None,
                                                 "finish_reason": finish_reason}]}
    if usage is not None:
        chunk["usage"] = _usage(*usage)
    return chunk


def new_id(prefix: str) -> str:
    return _id(prefix)
