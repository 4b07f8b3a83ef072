"""A scripted engine: fixed replies at a fixed pace. For tests of the front ends and for
benchmarks that must measure the server, not the model."""

from __future__ import annotations

import time
from typing import Callable, Iterator, Sequence

from bayling.chat_formats import get_format
from bayling.infer.engine import Engine, GenerationConfig, Rewriter, StopScanner, Stream, cut_at_stop

__all__ = ["FakeEngine"]


def _echo(target: str | Sequence[dict]) -> str:
    if isinstance(target, str):
        return "echo: " + target.strip().splitlines()[-1] if target.strip() else "echo"
    return "You said: " + target[-1]["content"]


class FakeEngine(Engine):
    """Replies `reply(prompt_or_messages)` word by word, sleeping `token_latency` s per word (stop strings honoured).

    Counts what it was asked (`calls`) and how many generations were cancelled (`cancelled`);
    keeps the last `GenerationConfig` it was given (`last_config`).
    """

    def __init__(self, reply: Callable[[str | Sequence[dict]], str] = _echo, token_latency: float = 0.0,
                 chat_format: str = "chatml", name: str = "fake"):
        self.reply = reply
        self.token_latency = token_latency
        self.chat_format = get_format(chat_format)
        self.name = name
        self.calls = 0
        self.cancelled = 0
        self.last_config: GenerationConfig | None = None

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _words(self, target, config: GenerationConfig) -> list[str]:
        self.last_config = config
        words = self.reply(target).split(" ")
        return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)][: config.max_new_tokens]

    def complete(self, prompts: Sequence[str], config: GenerationConfig) -> list[str]:
        self.calls += len(prompts)
        outs = []
        for p in prompts:
            words = self._words(p, config)
            time.sleep(self.token_latency * len(words))
            outs.append(cut_at_stop("".join(words), config.stop))
        return outs

    def chat(self, conversations: Sequence[Sequence[dict]], config: GenerationConfig) -> list[str]:
        self.calls += len(conversations)
        return [Rewriter(self.replacements).apply("".join(self._words(list(c), config)).strip()) for c in conversations]

    def _pace(self, target, config: GenerationConfig, stream: Stream) -> Iterator[str]:
        self.calls += 1
        words = self._words(target, config)
        stream.prompt_tokens = self.count_tokens(target if isinstance(target, str) else " ".join(m["content"] for m in target))
        scanner = StopScanner(config.stop)
        for w in words:
            if stream.cancel.wait(self.token_latency) if self.token_latency else stream.cancel.is_set():
                self.cancelled += 1
                return
            stream.completion_tokens += 1
            text, stopped = scanner.feed(w)
            if text:
                yield text
            if stopped:
                stream.finish_reason = "stop"
                return
        tail = scanner.flush()
        if tail:
            yield tail
        stream.finish_reason = "length" if len(words) >= config.max_new_tokens else "stop"

    def _stream_prompt(self, prompt: str, config: GenerationConfig, stream: Stream) -> Iterator[str]:
        return self._pace(prompt, config, stream)

    def _stream_chat(self, messages, config: GenerationConfig, stream: Stream) -> Iterator[str]:
        return self._pace(list(messages), config, stream)
