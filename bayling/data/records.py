"""The records the builders pass around: a corpus `Unit` in, a conversation `Plan` out.

A Plan is a conversation before it is written down: its user turns, and for each the grounded
answer (reference mode) or None (a teacher model writes it). `to_record` turns a complete plan
into the on-disk record:

  {"messages": [{"role": ..., "content": ..., "weight": 0 (only on untrained assistant drafts)}, ...],
   "meta": {"id", "source", "task", "mode", "src_lang", "tgt_lang", "instruction_lang",
            "kinds": [kind per user turn], "expect": [check per assistant turn]}}

Each `expect` entry tells the filters what its assistant turn must satisfy: "lang" (FLORES code
of the language it must be in, or None), and optionally "terms" (strings it must contain),
"src_len" (length of the sentence it translates, in English-equivalent UTF-8 bytes: see
length_factors.py; for the length-ratio check) and
"skip" (characters of fixed preface to ignore before checking the rest).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bayling.data.length_factors import english_equivalent_length

__all__ = ["Plan", "Turn", "Unit", "expect", "length_of", "to_record"]


@dataclass(frozen=True, slots=True)
class Unit:
    """One corpus line to build a conversation from: the same sentence in one or more languages."""

    id: str  # unique record id: "<source>#<k>"
    source: str  # corpus id + line, e.g. "flores200/dev:12"
    texts: dict[str, str]  # FLORES code -> sentence
    direction: tuple[str, str] | None = None  # fixed (src, tgt) for a bilingual corpus
    prev: dict[str, str] | None = None  # the previous line's texts, for "same meaning?" negatives


@dataclass(slots=True)
class Turn:
    kind: str
    user: str | None  # None: a teacher writes it from `brief`
    answer: str | None  # None: a teacher writes it
    expect: dict
    brief: str = ""  # what the user asks for, in English, when a teacher writes the user turn
    weight: int = 1  # 0: the answer is context (a flawed draft), not trained: OpenAI's "weight" field


@dataclass(slots=True)
class Plan:
    id: str
    source: str
    task: str  # "session" (interactive translation) or "crosslingual"
    src_lang: str
    tgt_lang: str
    instruction_lang: str
    turns: list[Turn] = field(default_factory=list)
    system: str = ""
    mode: str = "reference"

    def messages(self, upto: int | None = None) -> list[dict[str, str]]:
        """Messages of the first `upto` turns (all by default); a missing answer ends the list."""
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        for turn in self.turns[:upto]:
            msgs.append({"role": "user", "content": turn.user or ""})
            if turn.answer is None:
                break
            msgs.append({"role": "assistant", "content": turn.answer, **({"weight": 0} if turn.weight == 0 else {})})
        return msgs


def expect(lang: str | None, terms: tuple[str, ...] | list[str] = (), src_len: int = 0, skip: int = 0) -> dict:
    """An `expect` entry with the optional keys left out when unused (keeps records small)."""
    entry: dict = {"lang": lang}
    if terms:
        entry["terms"] = list(terms)
    if src_len:
        entry["src_len"] = src_len
    if skip:
        entry["skip"] = skip
    return entry


def length_of(text: str, lang: str) -> int:
    """The `src_len` of a sentence: its English-equivalent UTF-8 length, rounded."""
    return round(english_equivalent_length(text, lang))


def to_record(plan: Plan, **extra_meta) -> dict:
    """The JSON-ready record of a plan whose user turns and answers are all written."""
    return {
        "messages": plan.messages(),
        "meta": {
            "id": plan.id,
            "source": plan.source,
            "task": plan.task,
            "mode": plan.mode,
            "src_lang": plan.src_lang,
            "tgt_lang": plan.tgt_lang,
            "instruction_lang": plan.instruction_lang,
            "kinds": [t.kind for t in plan.turns],
            "expect": [t.expect for t in plan.turns],
            **extra_meta,
        },
    }
