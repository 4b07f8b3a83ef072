"""Mix built conversations with general instruction data (Alpaca, ShareGPT, OpenAI messages).

`mix_records` streams the built records and interleaves them at random with a seeded sample of
the general data: `ratio` general records per built record (0.5: one for every two), split
across the general files by weight. Only the general sample is held in memory. Each general
record becomes {"messages": [...], "meta": {"id", "source": "file:line", "task": "general"}}.
A malformed general line is reported as file:line and skipped, or is fatal with on_error="fail".
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from bayling.data.io import DataError, check_on_error, read_records, skip_or_raise
from bayling.errors import ConfigError

__all__ = ["GeneralSource", "MixReport", "mix_records", "parse_general", "read_general"]

_MESSAGE_N = re.compile(r"^message (\d+):")


@dataclass(frozen=True)
class GeneralSource:
    path: str
    weight: float = 1.0


@dataclass
class MixReport:
    built: int = 0
    general: dict[str, int] = field(default_factory=dict)  # path -> records taken
    available: dict[str, int] = field(default_factory=dict)  # path -> valid records in the file
    skipped: dict[str, int] = field(default_factory=dict)  # path -> malformed records skipped
    problems: list[str] = field(default_factory=list)  # the first few skip messages

    def as_dict(self) -> dict:
        return {"built": self.built, "general": self.general, "available": self.available,
                "skipped": self.skipped, "problems": self.problems}


def parse_general(spec: str) -> GeneralSource:
    """ "data.jsonl" or "data.jsonl:2.5" (weight after the last colon)."""
    path, sep, weight = spec.rpartition(":")
    if sep and path:
        try:
            return GeneralSource(path, float(weight))
        except ValueError:
            pass
    return GeneralSource(spec)


def read_general(path: str | Path, on_error: str = "skip",
                 report: Callable[[str], None] | None = None) -> Iterator[dict]:
    """Normalised records from an Alpaca / ShareGPT / OpenAI-messages JSONL file (or a JSON array)."""
    from bayling.chat_formats import ChatFormatError, validate_messages
    from bayling.data.instructions import to_messages

    check_on_error(on_error)
    for origin, record in _raw_records(Path(path), on_error, report):
        try:
            messages = to_messages(record)
            validate_messages(messages)
            if not any(m["role"] == "assistant" for m in messages):
                raise ChatFormatError("messages: no assistant turn")
        except (ChatFormatError, AttributeError, TypeError) as e:
            skip_or_raise(DataError(f"{origin}: {_field_hint(record, e)}"), on_error, report)
            continue
        yield {"messages": messages, "meta": {"id": origin, "source": origin, "task": "general"}}


def _field_hint(record: dict, err: Exception) -> str:
    """chat_formats says "message 2: empty content"; name the field as it is in the file."""
    text = str(err)
    m = _MESSAGE_N.match(text)
    if not m:
        return text
    i = int(m.group(1))
    if "conversations" in record:
        where = f"conversations[{i}]"
    elif "messages" in record:
        where = f"messages[{i}]"
    else:  # Alpaca: message 0 is instruction (+ input), message 1 is output
        where = "instruction" if i == 0 else "output"
    return f"{where}:{text[m.end():]}"


def _raw_records(path: Path, on_error: str, report) -> Iterator[tuple[str, dict]]:
    if path.suffix == ".json":  # Alpaca ships as one JSON array
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: cannot read JSON array ({e})") from None
        if not isinstance(items, list):
            raise DataError(f"{path}: expected a JSON array of records")
        for i, item in enumerate(items):
            if isinstance(item, dict):
                yield f"{path}[{i}]", item
            else:
                skip_or_raise(DataError(f"{path}[{i}]: a record must be a JSON object"), on_error, report)
        return
    yield from read_records(path, on_error, report)


def _sample(records: Iterator[dict], k: int | None, rng: random.Random) -> tuple[list[dict], int]:
    """A uniform sample of k records (all when k is None) by reservoir sampling, and the total seen."""
    sample: list[dict] = []
    n = 0
    for n, record in enumerate(records, 1):
        if k is None or len(sample) < k:
            sample.append(record)
        else:
            j = rng.randrange(n)
            if j < k:
                sample[j] = record
    return sample, n


def mix_records(built: list[str | Path], general: list[GeneralSource], ratio: float | None = None,
                seed: int = 0, on_error: str = "skip", report: MixReport | None = None) -> Iterator[dict]:
    """Built records and a seeded sample of general records, randomly interleaved."""
    report = report if report is not None else MixReport()
    if ratio is not None and ratio < 0:
        raise ConfigError(f"ratio must be >= 0, got {ratio}")
    rng = random.Random(seed)
    n_built = sum(1 for path in built for _ in read_records(path))  # counts and validates up front
    report.built = n_built
    total_weight = sum(g.weight for g in general) or 1.0
    pool: list[dict] = []
    for g in general:
        want = None if ratio is None else round(ratio * n_built * g.weight / total_weight)

        def note(msg: str, path: str = g.path) -> None:
            report.skipped[path] = report.skipped.get(path, 0) + 1
            if len(report.problems) < 20:
                report.problems.append(msg)

        report.skipped.setdefault(g.path, 0)
        taken, seen = _sample(read_general(g.path, on_error, note), want, rng)
        report.available[g.path], report.general[g.path] = seen, len(taken)
        pool.extend(taken)
    rng.shuffle(pool)
    return _interleave((r for path in built for _, r in read_records(path)), n_built, pool, rng)


def _interleave(built: Iterator[dict], n_built: int, pool: list[dict], rng: random.Random) -> Iterator[dict]:
    """A uniformly random interleaving of two streams of known length (the built one stays in order)."""
    left, i = n_built, 0
    while left or i < len(pool):
        if rng.randrange(left + len(pool) - i) < left:
            left -= 1
            yield next(built)
        else:
            yield pool[i]
            i += 1
