"""General instructions in the layouts people have, as conversation records: the one reader.

Layouts (a JSONL file, or a JSON file holding a list of records):
  OpenAI        {"messages": [{"role", "content"}, ...]}  (also "conversation"; roles such as
                `UTILISATEUR`/`ASSISTANT` or `prompter` are mapped by name, case-insensitively)
  ShareGPT      {"conversations": [{"from": "human"|"gpt"|..., "value"}, ...]}
  Alpaca        {"instruction", "input", "output"}; Dolly: {"instruction", "context", "response"}
  prompt/response  {"prompt", "response"|"completion"}: a known wrapper around the prompt (Alpaca's
                "Below is an instruction ... ### Instruction: ... ### Response:") is taken off
  self-instruct seeds  {"instruction", "instances": [{"input", "output"}, ...]} (the first instance)

Records out: {"messages": [...], "meta": {"task": "general", "kinds": ["general", ...] (one per
assistant turn), "source": "file:line", "lang": FLORES code of the first request}}. Every problem
is an error naming file:line (or file[index] in a JSON list) and the field; `skip_bad` counts them
instead. The last `holdout` usable records of a file are never trained on: they are returned apart
for evaluation.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from bayling.chat_formats import ChatFormatError
from bayling.errors import BaylingError

__all__ = ["InstructionError", "InstructionSet", "read_instruction_file", "read_instructions", "to_messages"]

ROLES = {
    "user": "user", "human": "user", "prompter": "user", "utilisateur": "user", "usuario": "user", "benutzer": "user",
    "käyttäjä": "user", "用户": "user", "question": "user",
    "assistant": "assistant", "gpt": "assistant", "bot": "assistant", "model": "assistant", "chatgpt": "assistant",
    "bing": "assistant", "bard": "assistant", "assistente": "assistant", "asistente": "assistant", "助手": "assistant",
    "answer": "assistant", "system": "system",
}
# Prompt wrappers of well-known instruction sets: the request is the group named `request`.
WRAPPERS = [
    re.compile(r"^\s*Below is an instruction.*?### Instruction:\s*(?P<request>.*?)\s*"
               r"(?:### Input:\s*(?P<input>.*?)\s*)?### Response:\s*$", re.S),
    re.compile(r"^\s*(?:Human|User):\s*(?P<request>.*?)\s*(?:Assistant|AI):\s*$", re.S),
]


class InstructionError(BaylingError, ValueError):
    """An instruction record that cannot be read: the message names file:line and the field."""


def _role(name: object) -> str | None:
    return ROLES.get(str(name).strip().lower()) if isinstance(name, str) else None


def _unwrap(prompt: str) -> str:
    for wrapper in WRAPPERS:
        m = wrapper.match(prompt)
        if m:
            extra = m.groupdict().get("input")
            return m["request"] + (f"\n\n{extra}" if extra else "")
    return prompt


def to_messages(record: dict) -> list[dict]:
    """One record in any supported layout -> OpenAI-style messages (roles mapped, not yet validated)."""
    if not isinstance(record, dict):
        raise ChatFormatError(f"a record is a JSON object, not {type(record).__name__}")
    for key in ("messages", "conversation", "conversations"):
        turns = record.get(key)
        if key in record and not (isinstance(turns, list) and all(isinstance(t, dict) for t in turns)):
            raise ChatFormatError(f"{key!r} must be a list of objects, not {type(turns).__name__}")
    for key in ("messages", "conversation"):
        if key in record:
            msgs = []
            for m in record[key]:
                msg = {"role": _role(m.get("role")) or m.get("role"), "content": m.get("content")}
                if "weight" in m:
                    msg["weight"] = m["weight"]
                msgs.append(msg)
            _attach_terms(msgs, record.get("meta"))
            return msgs
    if "conversations" in record:  # ShareGPT
        return [{"role": _role(t.get("from")) or t.get("from"), "content": t.get("value")} for t in record["conversations"]]
    if "instruction" in record and isinstance(record.get("instances"), list) and record["instances"]:  # self-instruct
        first = record["instances"][0]
        return _single(record["instruction"], first.get("input") if isinstance(first, dict) else None,
                       first.get("output") if isinstance(first, dict) else None)
    if "instruction" in record and ("output" in record or "response" in record):  # Alpaca, Dolly
        return _single(record["instruction"], record.get("input", record.get("context")),
                       record.get("output", record.get("response")))
    if "prompt" in record and ("response" in record or "completion" in record):
        prompt = record["prompt"]
        return _single(_unwrap(prompt) if isinstance(prompt, str) else prompt, None,
                       record.get("response", record.get("completion")))
    raise ChatFormatError("no 'messages'/'conversation', 'conversations' (ShareGPT), 'instruction'/'output' (Alpaca), "
                          "'instruction'/'response' (Dolly) or 'prompt'/'response' field")


def _single(instruction, extra, answer) -> list[dict]:
    prompt = instruction
    if isinstance(instruction, str) and isinstance(extra, str) and extra.strip():
        prompt = f"{instruction}\n\n{extra}"
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


def _attach_terms(messages: list[dict], meta) -> None:
    """The builder's records say which words each assistant turn must contain (meta.expect, one
    entry per assistant message); the trainer can weight those tokens (TrainConfig.term_weight)."""
    expect = meta.get("expect") if isinstance(meta, dict) else None
    assistant = [m for m in messages if m.get("role") == "assistant"]
    if not isinstance(expect, list) or len(expect) != len(assistant):
        return
    for m, e in zip(assistant, expect):
        terms = e.get("terms") if isinstance(e, dict) else None
        if terms and all(isinstance(t, str) for t in terms):
            m["terms"] = list(terms)


def _check(messages: list[dict]) -> None:
    """A conversation to train on: known roles, text in every turn, user and assistant in turn,
    ending with an answer."""
    body = messages[1:] if messages and messages[0].get("role") == "system" else messages
    if not body:
        raise ChatFormatError("no turns")
    for i, m in enumerate(messages):
        if m.get("role") not in ("system", "user", "assistant"):
            raise ChatFormatError(f"turn {i}: unknown role {m.get('role')!r} (known: {', '.join(sorted(set(ROLES)))})")
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            raise ChatFormatError(f"turn {i} ({m.get('role')}): content must be non-empty text, "
                                  f"not {m.get('content')!r:.40}")
    for i, m in enumerate(body):
        want = "user" if i % 2 == 0 else "assistant"
        if m["role"] != want:
            raise ChatFormatError(f"turn {i + len(messages) - len(body)}: expected a {want} turn, got {m['role']}")
    if body[-1]["role"] != "assistant":
        raise ChatFormatError("the last turn is not an answer")


def read_instruction_file(path: str | Path) -> Iterator[tuple[str, dict | Exception]]:
    """(origin, raw record or the reason it cannot be parsed) for every record of a JSONL file or of
    a JSON file that holds a list."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such instruction file")
    with open(path, encoding="utf-8") as f:
        head = f.read(4096).lstrip()
    if head.startswith("["):
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise InstructionError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
        for i, rec in enumerate(items):
            yield f"{path}[{i}]", rec
        return
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield f"{path}:{no}", json.loads(line)
            except json.JSONDecodeError as err:
                yield f"{path}:{no}", InstructionError(f"not valid JSON ({err.msg})")


@dataclass
class InstructionSet:
    """A file's usable records, split: `train` (up to `limit`) and `heldout` (its last `holdout`)."""

    train: list[dict] = field(default_factory=list)
    heldout: list[dict] = field(default_factory=list)
    bad: int = 0


def read_instructions(path: str | Path, *, limit: int | None = None, holdout: int = 0, lang: str | None = None,
                      skip_bad: bool = False) -> InstructionSet:
    """The records of an instruction file (see the module docstring); `lang` overrides detection."""
    from bayling.languages import detect_language

    if holdout < 0 or (limit is not None and limit < 0):
        raise InstructionError(f"{path}: holdout and limit must be >= 0")
    records, bad = [], 0
    for origin, rec in read_instruction_file(path):
        try:
            if isinstance(rec, Exception):
                raise rec
            messages = to_messages(rec)
            _check(messages)
        except (ChatFormatError, InstructionError) as err:
            if not skip_bad:
                raise InstructionError(f"{origin}: {err}") from None
            bad += 1
            continue
        # The request and its answer together: a short request alone misleads the lite detector.
        first = " ".join(m["content"] for m in messages if m["role"] != "system")[:1000]
        code = lang or (detect_language(first)[0] or "und")
        n_answers = sum(m["role"] == "assistant" for m in messages)
        records.append({"messages": messages, "meta": {"task": "general", "kinds": ["general"] * n_answers,
                                                       "source": origin, "lang": code}})
    cut = max(len(records) - holdout, 0)
    train = records[:cut] if limit is None else records[:min(cut, limit)]
    return InstructionSet(train=train, heldout=records[cut:], bad=bad)
