"""The terminal chat behind `bayling chat`: multi-turn, streamed, with a few slash commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable

from bayling.infer.engine import Engine, GenerationConfig

__all__ = ["HELP", "run_chat"]

HELP = """commands:
  /reset         forget the conversation (keeps the system message)
  /system TEXT   set the system message (and start over); /system alone clears it
  /save FILE     write the conversation as JSON ({"messages": [...]})
  /help          this text
  /exit          leave (so does end of input)"""


def run_chat(
    engine: Engine,
    lines: Iterable[str],
    write: Callable[[str], None],
    *,
    config: GenerationConfig = GenerationConfig(max_new_tokens=256),
    system: str | None = None,
    prompt: Callable[[], None] | None = None,
) -> list[dict]:
    """Read user turns from `lines`, stream replies through `write`; returns the last conversation.

    `prompt` is called before each read (the interactive "you> " marker).
    """
    messages: list[dict] = []

    def head() -> list[dict]:
        return [{"role": "system", "content": system}] if system else []

    it = iter(lines)
    while True:
        if prompt:
            prompt()
        try:
            line = next(it)
        except StopIteration:
            break
        text = line.rstrip("\n")
        if not text.strip():
            continue
        cmd, _, arg = text.strip().partition(" ")
        if cmd in ("/exit", "/quit"):
            break
        if cmd == "/help":
            write(HELP + "\n")
            continue
        if cmd == "/reset":
            messages = []
            write("(conversation cleared)\n")
            continue
        if cmd == "/system":
            system = arg.strip() or None
            messages = []
            write(f"(system message {'set' if system else 'cleared'}; conversation cleared)\n")
            continue
        if cmd == "/save":
            if not arg.strip():
                write("usage: /save FILE\n")
                continue
            path = Path(arg.strip()).expanduser()
            path.write_text(json.dumps({"messages": head() + messages}, ensure_ascii=False, indent=2) + "\n",
                            encoding="utf-8")
            write(f"(saved {len(messages)} messages to {path})\n")
            continue
        if cmd.startswith("/") and " " not in cmd and len(cmd) > 1 and cmd[1:].isalpha():
            write(f"unknown command {cmd}; /help lists them\n")
            continue
        messages.append({"role": "user", "content": text})
        reply = []
        try:
            for piece in engine.stream(head() + messages, config):
                reply.append(piece)
                write(piece)
        except KeyboardInterrupt:
            write(" [interrupted]")
        answer = "".join(reply).strip()
        if answer:
            messages.append({"role": "assistant", "content": answer})
            write("\n")
        else:  # nothing to keep: a turn with an empty reply cannot be rendered again
            messages.pop()
            write("(no reply)\n")
    return head() + messages
