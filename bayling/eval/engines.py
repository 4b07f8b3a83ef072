"""Models to evaluate and judges to ask: a local engine, or any OpenAI-compatible endpoint.

Engines come from bayling.infer.backends.load_engine (the one factory), so every task generates the
same way for this project's models, llama.cpp, a vLLM server or a hosted API; `chat_turns` plays
scripted conversations through any of them.
`ChatClient` is the small synchronous client the LLM judge uses (its client from
bayling.infer.remote.openai_client).
"""

from __future__ import annotations

from typing import Sequence

from bayling.infer.engine import Engine, GenerationConfig
from bayling.infer.remote import OpenAIEngine  # noqa: F401  (the one remote engine, re-exported)

__all__ = ["EMPTY_REPLY", "ChatClient", "OpenAIEngine", "chat_turns"]

EMPTY_REPLY = "(no reply)"


class ChatClient:
    """One chat completion at a time against an OpenAI-compatible `base_url`."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *, timeout: float = 120.0,
                 max_retries: int = 2) -> None:
        self.base_url = base_url
        self.model = model
        from bayling.infer.remote import openai_client

        self._client = openai_client(base_url, api_key, timeout=timeout, max_retries=max_retries)

    def chat(self, messages: Sequence[dict], *, temperature: float = 0.0, max_tokens: int = 1024,
             stop: Sequence[str] = (), top_p: float = 1.0, seed: int | None = None) -> str:
        kw = {"stop": list(stop)} if stop else {}
        if seed is not None:
            kw["seed"] = seed
        resp = self._client.chat.completions.create(
            model=self.model, messages=list(messages), temperature=temperature, max_tokens=max_tokens,
            top_p=top_p, **kw,
        )
        return resp.choices[0].message.content or ""

    def complete(self, prompt: str, *, temperature: float = 0.0, max_tokens: int = 256,
                 stop: Sequence[str] = (), top_p: float = 1.0) -> str:
        kw = {"stop": list(stop)} if stop else {}
        resp = self._client.completions.create(
            model=self.model, prompt=prompt, temperature=temperature, max_tokens=max_tokens, top_p=top_p, **kw,
        )
        return resp.choices[0].text or ""


def chat_turns(engine: Engine, user_turns: Sequence[Sequence[str]], config: GenerationConfig, *,
               progress: bool = True, label: str = "generating",
               history: Sequence[Sequence[dict]] | None = None) -> list[list[str]]:
    """Play scripted conversations: each inner list is one conversation's user turns, each answered
    with the history so far (`history`: messages already played, default none). Conversations are
    batched turn by turn, the engine's `requests_per_call` at a time."""
    from bayling.eval.common import progress_bar

    history = [list(h) for h in history] if history is not None else [[] for _ in user_turns]
    replies: list[list[str]] = [[] for _ in user_turns]
    total = sum(len(t) for t in user_turns)
    chunk = max(1, int(getattr(engine, "requests_per_call", 32)))
    with progress_bar(progress, total, label) as advance:
        for t in range(max((len(u) for u in user_turns), default=0)):
            active = [i for i, u in enumerate(user_turns) if t < len(u)]
            for start in range(0, len(active), chunk):  # the engine's batch at a time: the bar moves
                idx = active[start : start + chunk]
                convs = [history[i] + [{"role": "user", "content": user_turns[i][t]}] for i in idx]
                outs = engine.chat(convs, config)
                for i, conv, out in zip(idx, convs, outs):
                    # chat formats refuse empty turns: the history shows a placeholder, the reply stays empty
                    history[i] = conv + [{"role": "assistant", "content": out if out.strip() else EMPTY_REPLY}]
                    replies[i].append(out)
                advance(len(idx))
    return replies
