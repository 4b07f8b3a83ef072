"""Conversations in, tokenised training examples out: labels only on assistant tokens.

Reads the builder's JSONL, OpenAI-messages / ShareGPT / Alpaca JSONL, or a `datasets` dataset
saved on disk. Anything untrainable is counted with its reason, never a crash.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from bayling.chat_formats import ChatFormat, ChatFormatError, encode_chat, render_with_spans, validate_messages
from bayling.data.instructions import to_messages  # the one reader of chat layouts
from bayling.errors import BaylingError

__all__ = ["Example", "PairExample", "TrainDataError", "Stats", "read_conversations", "read_preferences", "to_messages",
           "tokenize_conversations", "tokenize_preferences"]

IGNORE = -100


class TrainDataError(BaylingError, ValueError):
    """The data yields nothing trainable (raised before any model is loaded)."""


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]
    # Per-token loss weights (term_weight; negative: unlikelihood with that coefficient); None: all 1.
    weights: list[float] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class Stats:
    read: int = 0
    kept: int = 0
    truncated: int = 0  # later turns dropped at a turn boundary to fit max_len
    dropped: Counter = field(default_factory=Counter)
    assistant_tokens: int = 0
    tokens: int = 0
    term_tokens: int = 0  # trained tokens weighted term_weight
    unlikelihood_tokens: int = 0  # draft tokens trained by unlikelihood (negative weight)

    def as_dict(self) -> dict:
        return {"read": self.read, "kept": self.kept, "truncated_at_turn_boundary": self.truncated,
                "dropped": dict(self.dropped), "tokens": self.tokens, "assistant_tokens": self.assistant_tokens,
                **({"term_tokens": self.term_tokens} if self.term_tokens else {}),
                **({"unlikelihood_tokens": self.unlikelihood_tokens} if self.unlikelihood_tokens else {})}


def read_conversations(path: str | Path) -> Iterator[tuple[str, list[dict] | Exception]]:
    """(origin, messages or the reason it cannot be read) for every record."""
    path = Path(path)
    if path.is_dir():
        from datasets import load_from_disk

        ds = load_from_disk(str(path))
        if hasattr(ds, "keys"):  # a DatasetDict: take the train split
            ds = ds["train"] if "train" in ds else ds[next(iter(ds.keys()))]
        for i, rec in enumerate(ds):
            try:
                yield f"{path}[{i}]", to_messages(rec)
            except ChatFormatError as err:
                yield f"{path}[{i}]", err
        return
    yield from _converted_lines(path, to_messages)


def _converted_lines(path: Path, convert) -> Iterator[tuple[str, object]]:
    """(origin "file:line", convert(record) or the reason it cannot be read) for each JSONL record."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such data file")
    from bayling.corpus.core import json_lines

    for origin, rec in json_lines(path):
        if isinstance(rec, str):
            yield origin, ChatFormatError(rec)
            continue
        try:
            yield origin, convert(rec)
        except (ChatFormatError, AttributeError, TypeError) as err:
            yield origin, ChatFormatError(f"{origin}: {err}")


def _reason(err: Exception) -> str:
    text = str(err)
    for key in ("unknown role", "empty content", "content must be a string", "must be a list", "weight",
                "no messages", "only come first", "needs 'role'", "JSON", "no 'messages'"):  # "invalid JSON" and "expected a JSON object" both count as JSON
        if key in text:
            return key.replace("'", "")
    return "unreadable"


def _max_token_chars(tokenizer) -> int | None:
    """The most characters of normalised text one token can stand for: the longest string in the
    vocabulary (a byte-level token's string has one character per byte, at least one per character
    it covers; a byte-fallback token covers at most one character). None where a token can stand
    for more (an unknown-token run, an added token that swallows the spaces beside it, or no fast
    tokenizer to tell): then no bound."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    added = getattr(tokenizer, "added_tokens_decoder", {}).values()
    if backend is None or any(t.lstrip or t.rstrip for t in added):
        return None
    vocab = tokenizer.get_vocab()
    if not getattr(backend.model, "byte_fallback", False):
        from tokenizers.pre_tokenizers import ByteLevel

        # Byte-level: every text is spelled by the 256 byte symbols, so no unknown token, if all are in the vocab.
        if "ByteLevel(" not in repr(backend.pre_tokenizer) or not set(ByteLevel.alphabet()) <= vocab.keys():
            return None
    return max(map(len, vocab), default=0) or None


def _certainly_longer(tokenizer, messages: list[dict], fmt: ChatFormat, max_len: int, per_token: int | None) -> bool:
    """True only when `messages` must encode to more than `max_len` tokens, told without tokenising
    (a 50 MB line took minutes and 14 GB to tokenise): tokens >= normalised characters / `per_token`.
    The factor 2 covers normalisers acting per segment (between special tokens, or per chunk here)."""
    if per_token is None:
        return False
    limit = 2 * max_len * per_token
    if sum(len(m["content"]) for m in messages) <= limit:  # the usual record: tokenise and count exactly
        return False
    text, _ = render_with_spans(fmt, messages, tokenizer=tokenizer)
    normalizer, length = tokenizer.backend_tokenizer.normalizer, 0
    for start in range(0, len(text), 1 << 16):  # only as much of the text as it takes to pass the limit
        chunk = text[start:start + (1 << 16)]
        length += len(normalizer.normalize_str(chunk) if normalizer is not None else chunk)
        if length > limit:
            return True
    return False


def _fit(tokenizer, messages: list[dict], fmt: ChatFormat, max_len: int, term_weight: float = 1.0,
         unlikelihood: float = 0.0, per_token: int | None = None) -> tuple[list[int], list, bool] | None:
    """Encode; if too long, drop whole trailing turns until it fits (never cut an assistant turn).
    `per_token`: _max_token_chars, to pass over without tokenising what is certainly too long."""
    ends = [i + 1 for i, m in enumerate(messages) if m["role"] == "assistant" and m.get("weight", 1)]
    for end in [len(messages), *reversed(ends[:-1])]:
        if _certainly_longer(tokenizer, messages[:end], fmt, max_len, per_token):
            continue
        ids, mask = encode_chat(tokenizer, messages[:end], fmt, term_weight, unlikelihood)
        if len(ids) <= max_len:
            return ids, mask, end < len(messages)
    return None


def tokenize_conversations(
    records: Iterable[tuple[str, list[dict] | Exception]], tokenizer, fmt: ChatFormat, max_len: int,
    on_error=None, term_weight: float = 1.0, unlikelihood: float = 0.0,
) -> tuple[list[Example], Stats]:
    """Trainable examples and what was dropped. `term_weight`: the loss weight of the tokens that
    spell a word the user asked an answer to contain (1: every trained token counts the same).
    `unlikelihood`: the coefficient on a draft's repeated 4-grams (TrainConfig.unlikelihood)."""
    stats = Stats()
    examples = []
    per_token = _max_token_chars(tokenizer)
    for origin, messages in records:
        stats.read += 1
        if isinstance(messages, Exception):
            stats.dropped[_reason(messages)] += 1
            if on_error:
                on_error(origin, messages)
            continue
        try:
            validate_messages(messages)
        except ChatFormatError as err:
            err = ChatFormatError(f"{origin}: {err}")
            stats.dropped[_reason(err)] += 1
            if on_error:
                on_error(origin, err)
            continue
        if not any(m["role"] == "assistant" for m in messages):
            stats.dropped["no assistant turn"] += 1
            continue
        if not any(m["role"] == "assistant" and m.get("weight", 1) for m in messages):
            stats.dropped["no trained assistant turn"] += 1
            continue
        fitted = _fit(tokenizer, messages, fmt, max_len, term_weight, unlikelihood, per_token)
        if fitted is None:
            stats.dropped["longer than max_len"] += 1
            continue
        ids, mask, truncated = fitted
        stats.truncated += truncated
        labels = [t if m else IGNORE for t, m in zip(ids, mask)]
        weighted = any(m not in (0, 1) for m in mask)
        examples.append(Example(ids, labels, [float(m) for m in mask] if weighted else None))
        stats.kept += 1
        stats.tokens += len(ids)
        stats.assistant_tokens += sum(1 for m in mask if m > 0)
        stats.term_tokens += sum(1 for m in mask if m > 0 and m != 1)
        stats.unlikelihood_tokens += sum(1 for m in mask if m < 0)
    return examples, stats


@dataclass
class PairExample:
    """A preference pair: the same prompt with the chosen and with the rejected answer, labels on
    the answer only; `ref_logps` are the starting model's log-probabilities of the two answers."""

    chosen: Example
    rejected: Example
    ref_logps: tuple[float, float] | None = None

    def __len__(self) -> int:
        return max(len(self.chosen), len(self.rejected))


def read_preferences(path: str | Path) -> Iterator[tuple[str, tuple[list[dict], list[dict]] | Exception]]:
    """(origin, (prompt + chosen, prompt + rejected) messages, or why not) for each record of a
    preference JSONL in TRL's conversational layout: "prompt" (messages), "chosen" and "rejected"
    (one assistant message each, or its text). The prompt's assistant turns are context (weight 0)."""
    return _converted_lines(Path(path), _preference_sides)


def _preference_sides(rec: dict) -> tuple[list[dict], list[dict]]:
    prompt = rec.get("prompt")
    if not isinstance(prompt, list) or not prompt or not all(isinstance(m, dict) for m in prompt):
        raise ChatFormatError("'prompt' must be a non-empty list of messages")
    context = [{"role": m.get("role"), "content": m.get("content"),
                **({"weight": 0} if m.get("role") == "assistant" else {})} for m in prompt]
    sides = []
    for key in ("chosen", "rejected"):
        answer = rec.get(key)
        if isinstance(answer, str):
            answer = [{"role": "assistant", "content": answer}]
        if not (isinstance(answer, list) and len(answer) == 1 and isinstance(answer[0], dict)
                and answer[0].get("role") == "assistant"):
            raise ChatFormatError(f"{key!r} must be one assistant message (or its text)")
        sides.append(context + [{"role": "assistant", "content": answer[0].get("content")}])
    return sides[0], sides[1]


def tokenize_preferences(
    records: Iterable[tuple[str, tuple[list[dict], list[dict]] | Exception]], tokenizer, fmt: ChatFormat, max_len: int,
    on_error=None,
) -> tuple[list[PairExample], Stats]:
    """Trainable pairs and what was dropped (a pair longer than `max_len` on either side is dropped whole)."""
    stats = Stats()
    pairs = []
    per_token = _max_token_chars(tokenizer)
    for origin, sides in records:
        stats.read += 1
        try:
            if isinstance(sides, Exception):
                raise sides
            for messages in sides:
                validate_messages(messages)
            if sides[0][-1]["content"].strip() == sides[1][-1]["content"].strip():
                raise ChatFormatError(f"{origin}: chosen and rejected answers are the same")
        except ChatFormatError as err:
            err = err if str(err).startswith(origin) else ChatFormatError(f"{origin}: {err}")
            stats.dropped[_reason(err) if "the same" not in str(err) else "chosen = rejected"] += 1
            if on_error:
                on_error(origin, err)
            continue
        if any(_certainly_longer(tokenizer, messages, fmt, max_len, per_token) for messages in sides):
            stats.dropped["longer than max_len"] += 1
            continue
        encoded = [encode_chat(tokenizer, messages, fmt) for messages in sides]
        if any(len(ids) > max_len for ids, _ in encoded):
            stats.dropped["longer than max_len"] += 1
            continue
        chosen, rejected = (Example(ids, [t if m else IGNORE for t, m in zip(ids, mask)]) for ids, mask in encoded)
        pairs.append(PairExample(chosen, rejected))
        stats.kept += 1
        stats.tokens += len(chosen) + len(rejected)
        stats.assistant_tokens += sum(1 for m in encoded[0][1] if m > 0) + sum(1 for m in encoded[1][1] if m > 0)
    return pairs, stats
