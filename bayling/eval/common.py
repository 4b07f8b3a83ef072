"""What every eval task shares: the error type, line and JSONL readers, small statistics.

Readers follow sacreBLEU's CLI exactly where scores depend on it: a file is split on "\\n" only
and each line loses its trailing whitespace, so `bayling eval translation` scores the same
strings `sacrebleu` does (one difference: a UTF-8 BOM opening a file is dropped, never scored).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence
from bayling.errors import BaylingError
from bayling.progress import progress_bar  # noqa: F401  (re-exported: the one progress bar)

__all__ = [
    "EvalError",
    "blank_lines_warning",
    "check_aligned",
    "mean",
    "progress_bar",
    "read_lines",
    "read_records",
    "script_of",
    "text_length",
    "write_json",
    "write_jsonl",
    "write_lines",
]


class EvalError(BaylingError, ValueError):
    """Bad eval input; the message is one line naming the file (and line) at fault."""


def read_lines(path: str | os.PathLike) -> list[str]:
    """Lines of a UTF-8 text file, trailing whitespace stripped as sacreBLEU's CLI does; blank lines kept."""
    from bayling.corpus.core import LineFile

    p = Path(path)
    if not p.is_file():
        raise EvalError(f"{p}: no such file")
    return [line.rstrip() for line in LineFile(p, allow_blank=True)]


def write_lines(path: str | os.PathLike, lines: Iterable[str]) -> None:
    """One segment a line; newlines inside a segment become spaces so alignment survives."""
    from bayling.io import atomic_open

    with atomic_open(path) as f:
        for line in lines:
            f.write(" ".join(line.splitlines()) + "\n")


def read_records(path: str | os.PathLike) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, record) for each JSON object line of a JSONL file; blank lines are skipped."""
    from bayling.corpus.core import json_lines

    p = Path(path)
    if not p.is_file():
        raise EvalError(f"{p}: no such file")
    for where, record in json_lines(p):
        if isinstance(record, str):
            raise EvalError(record)
        yield where, record


def write_json(path: str | os.PathLike, obj: Any) -> None:
    from bayling.io import atomic_write_json

    atomic_write_json(path, obj)


def write_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> None:
    from bayling.io import write_jsonl as _write

    _write(path, records)


def blank_lines_warning(path: str | os.PathLike, lines: Sequence[str], what: str = "reference") -> str | None:
    """One line naming the blank lines of a file read by `read_lines` (kept, so alignment holds), or None."""
    blank = [no for no, line in enumerate(lines, 1) if not line.strip()]
    if not blank:
        return None
    shown = ", ".join(map(str, blank[:10])) + (", ..." if len(blank) > 10 else "")
    return (f"{path}: {len(blank)} empty {what} line{'s' if len(blank) > 1 else ''} "
            f"(line{'s' if len(blank) > 1 else ''} {shown}), scored as they are")


def check_aligned(named: Sequence[tuple[str, Sequence[Any]]]) -> int:
    """Refuse streams of different lengths, naming every stream and its count; return the length."""
    counts = [(name, len(items)) for name, items in named]
    if len({n for _, n in counts}) > 1:
        listed = ", ".join(f"{name} has {n} lines" for name, n in counts)
        raise EvalError(f"misaligned inputs: {listed}")
    return counts[0][1] if counts else 0


def mean(values: Iterable[float | bool | None]) -> float | None:
    """Mean of the values that are not None; None when there are none."""
    vals = [float(v) for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


# Scripts written without spaces between words: lengths and terms are counted in characters there.
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\u0e00-\u0e7f\u0e80-\u0eff\u1000-\u109f\u1780-\u17ff\u0f00-\u0fff]")


def script_of(text: str) -> str:
    """"unspaced" for text mostly in CJK/Thai/Lao/Khmer/Myanmar/Tibetan script, else "spaced"."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "spaced"
    unspaced = sum(1 for c in letters if _UNSPACED.match(c))
    return "unspaced" if unspaced * 2 >= len(letters) else "spaced"


def text_length(text: str) -> int:
    """Length the way a reader counts it: characters for unspaced scripts, words otherwise."""
    if script_of(text) == "unspaced":
        return sum(1 for c in text if not c.isspace())
    return len(text.split())
