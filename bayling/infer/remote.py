"""Any OpenAI-compatible endpoint (vLLM, llama.cpp's server, another `bayling serve`) as an Engine.

The one home of OpenAI clients: `openai_client` is the only place one is constructed, sync for
this engine and eval, async for the data teacher (the SDK retries 408/409/429/5xx, timeouts and
dropped connections with backoff itself, honouring Retry-After). Chats go out as messages, so
the server applies its own template; raw prompts use /v1/completions; batches run `concurrency`
requests at a time.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Sequence

from bayling.infer.engine import Engine, GenerationConfig, Rewriter, Stream
from bayling.errors import ConfigError

__all__ = ["OpenAIEngine", "openai_client"]


def openai_client(base_url: str, api_key: str | None = None, *, timeout: float = 600.0, max_retries: int = 2,
                  asynchronous: bool = False, http_client=None):
    """An `openai` client for `base_url` (the key defaults to $OPENAI_API_KEY; local servers ignore it).

    `http_client`: an httpx client of the matching kind (sync/async) to send through instead of the SDK's own.
    """
    from openai import AsyncOpenAI, OpenAI

    key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
    settings = dict(base_url=base_url, api_key=key, timeout=timeout, max_retries=max_retries, http_client=http_client)
    return AsyncOpenAI(**settings) if asynchronous else OpenAI(**settings)


class OpenAIEngine(Engine):
    tokenizer = None  # the server tokenizes

    def __init__(self, base_url: str, model: str | None = None, api_key: str | None = None, *,
                 timeout: float = 600.0, max_retries: int = 2, concurrency: int = 1):
        self.client = openai_client(base_url, api_key, timeout=timeout, max_retries=max_retries)
        self.base_url = base_url
        self.concurrency = max(1, concurrency)
        self.name = model or self._first_model()

    def _first_model(self) -> str:
        models = list(self.client.models.list())
        if not models:
            raise ConfigError(f"{self.base_url} serves no models; pass --model")
        return models[0].id

    def _sampling(self, config: GenerationConfig) -> dict:
        kw = dict(max_tokens=config.max_new_tokens, temperature=config.temperature, top_p=config.top_p, seed=config.seed)
        if config.stop:
            kw["stop"] = list(config.stop)[:4]  # the OpenAI API takes at most four
        guards = self.guards(config)
        if guards:  # not OpenAI's API: vLLM's and `bayling serve`'s extra request fields
            kw["extra_body"] = guards
        return kw

    def render(self, messages):
        raise NotImplementedError("a remote engine sends messages; the server applies its own template")

    def chat_config(self, config: GenerationConfig) -> GenerationConfig:
        return config

    def _map(self, fn, items: list) -> list:
        if self.concurrency == 1 or len(items) <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(fn, items))

    def complete(self, prompts: Sequence[str], config: GenerationConfig) -> list[str]:
        def one(prompt: str) -> str:
            r = self.client.completions.create(model=self.name, prompt=prompt, **self._sampling(config))
            return r.choices[0].text or ""

        return self._map(one, list(prompts))

    def chat(self, conversations: Sequence[Sequence[dict]], config: GenerationConfig) -> list[str]:
        def one(messages: Sequence[dict]) -> str:
            r = self.client.chat.completions.create(model=self.name, messages=list(messages), **self._sampling(config))
            return Rewriter(self.replacements).apply((r.choices[0].message.content or "").strip())

        return self._map(one, list(conversations))

    def _consume(self, chunks, stream: Stream, delta) -> Iterator[str]:
        try:
            for chunk in chunks:
                if stream.cancel.is_set():
                    break
                if chunk.usage is not None:
                    stream.prompt_tokens = chunk.usage.prompt_tokens
                    stream.completion_tokens = chunk.usage.completion_tokens
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                text = delta(choice)
                if text:
                    yield text
                if choice.finish_reason:
                    stream.finish_reason = choice.finish_reason
        finally:
            chunks.close()  # drops the connection: the server cancels generation
        if stream.finish_reason is None and not stream.cancel.is_set():
            stream.finish_reason = "stop"

    def _stream_prompt(self, prompt: str, config: GenerationConfig, stream: Stream) -> Iterator[str]:
        chunks = self.client.completions.create(model=self.name, prompt=prompt, stream=True,
                                                stream_options={"include_usage": True}, **self._sampling(config))
        return self._consume(chunks, stream, lambda c: c.text)

    def _stream_chat(self, messages, config: GenerationConfig, stream: Stream) -> Iterator[str]:
        chunks = self.client.chat.completions.create(model=self.name, messages=list(messages), stream=True,
                                                     stream_options={"include_usage": True}, **self._sampling(config))
        return self._consume(chunks, stream, lambda c: c.delta.content if c.delta else None)
