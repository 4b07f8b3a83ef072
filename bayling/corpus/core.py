"""The pieces every reader shares: the `Pair` record, `CorpusError`, and line hygiene.

Files are read in binary mode one line at a time and decoded line by line, so memory stays
flat, an invalid byte is reported with its line number, and only b"\\n" ends a line (text mode
would also split on a lone "\\r", silently breaking the alignment of parallel files).
Hygiene rules, applied by every reader:
  - a UTF-8 BOM at the start of a file is dropped (editors on Windows add it; it is never text);
  - CRLF line endings become plain line ends;
  - a blank (empty or whitespace-only) line is an error naming file:line, because it usually
    means a sentence was lost or split; with `allow_blank=True` such pairs are skipped instead;
  - parallel files must have the same number of lines; the error names every file and count;
  - an empty file (no lines) and an unreadable one (a broken .gz) are errors naming the file.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Iterable, Iterator, Union
from bayling.errors import BaylingError

__all__ = ["CorpusError", "LineFile", "Pair", "PathLike", "lang_code", "lockstep", "require_files"]

PathLike = Union[str, Path]

_BOM = b"\xef\xbb\xbf"
_FLORES_CODE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")


@dataclass(frozen=True, slots=True)
class Pair:
    """One sentence pair; languages are FLORES-200 codes, origin is "file:line" (1-based)."""

    src: str
    tgt: str
    src_lang: str
    tgt_lang: str
    origin: str


class CorpusError(BaylingError, ValueError):
    """Unreadable or inconsistent corpus input; the message names the file(s) and line."""


@lru_cache(maxsize=1024)
def lang_code(name: str, strict: bool = True) -> str:
    """FLORES-200 code for a language name or code ("en" -> "eng_Latn").

    A well-formed FLORES code unknown to `bayling.languages` is kept as is. With strict=False
    (languages guessed from file names) any unknown name is kept as written instead of raising.
    """
    from bayling.languages import UnknownLanguage, resolve

    try:
        return resolve(name).code
    except UnknownLanguage:
        if not strict or _FLORES_CODE.match(name):
            return name
        raise


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


class LineFile:
    """Stream the decoded lines of one file, remembering how many were read.

    Iterating yields each line's text without its line end; `n` is the number of lines read so
    far (the current line number). `count_rest()` counts the lines not read yet without decoding
    them, which is how misalignment errors report both totals without loading anything.
    """

    def __init__(self, path: PathLike, allow_blank: bool = False) -> None:
        self.path = Path(path)
        self.allow_blank = allow_blank
        self.n = 0
        self._f: IO[bytes] | None = None
        self._eof = False

    def __iter__(self) -> Iterator[str]:
        try:
            f = self._f = _open_binary(self.path)
        except OSError as e:
            raise CorpusError(f"{self.path}: cannot open: {e.strerror or e}") from None
        with f:
            try:
                yield from self._lines(f)
            except (OSError, EOFError, zlib.error) as e:  # a broken or truncated .gz, a failing disk
                where = f"{self.path}:{self.n + 1}" if self.n else str(self.path)
                kind = "gzip file" if self.path.suffix == ".gz" else "file"
                raise CorpusError(f"{where}: cannot read this {kind}: {e}") from None
        if self.n == 0:
            raise CorpusError(f"{self.path}: empty file (no lines); nothing to read")

    def _lines(self, f: IO[bytes]) -> Iterator[str]:
        if f.peek(3)[:3] == _BOM:
            f.read(3)
        check_blank = not self.allow_blank
        for raw in f:
            self.n += 1
            try:
                text = raw.rstrip(b"\r\n").decode("utf-8")
            except UnicodeDecodeError as e:
                bad = raw[max(0, e.start - 12) : e.end + 12]
                raise CorpusError(
                    f"{self.path}:{self.n}: invalid UTF-8 ({e.reason} at byte {e.start} of the line, near {bad!r})"
                ) from None
            if check_blank and (not text or text.isspace()):
                raise CorpusError(
                    f"{self.path}:{self.n}: blank line (breaks sentence alignment; "
                    "fix the file or pass allow_blank=True to skip such pairs)"
                )
            yield text
        self._eof = True

    def count_rest(self) -> int:
        """Number of lines after the current one, counted in 1 MiB chunks."""
        if self._eof or self._f is None or self._f.closed:
            return 0
        count, last = 0, b"\n"
        for chunk in iter(lambda: self._f.read(1 << 20), b""):
            count += chunk.count(b"\n")
            last = chunk[-1:]
        return count + (last != b"\n")  # a last line without a final newline still counts


def lockstep(files: Iterable[LineFile]) -> Iterator[tuple[str, ...]]:
    """Zip line-aligned files; raise CorpusError naming every file and its count if they differ."""
    files = list(files)
    lines = [iter(f) for f in files]  # held here: freeing them would close the files before count_rest()
    yield from zip(*lines)
    totals = [f.n + f.count_rest() for f in files]
    if len(set(totals)) > 1:
        raise CorpusError(_misaligned(files, totals))


def _misaligned(files: list[LineFile], totals: list[int]) -> str:
    ref = totals[0]
    shown = [(f, t) for i, (f, t) in enumerate(zip(files, totals)) if i == 0 or t != ref]
    more = len(shown) - 6
    listed = ", ".join(f"{f.path} has {t} lines" for f, t in shown[:6])
    tail = f" and {more} more differ" if more > 0 else ""
    return f"parallel files are misaligned (different line counts): {listed}{tail}"


def require_files(*paths: PathLike) -> None:
    """Fail early, before any reading, when an input file is missing."""
    for p in paths:
        if not Path(p).is_file():
            raise CorpusError(f"{p}: no such file")


def json_lines(path: PathLike) -> Iterator[tuple[str, dict | str]]:
    """("file:line", record) for each non-blank line of a JSONL file, or ("file:line", problem)
    when the line is not a JSON object, so each caller decides: raise, skip or count.

    The one home for reading JSONL records (corpus, data, train, infer and eval all use it).
    """
    lines = LineFile(path, allow_blank=True)
    for line in lines:
        if not line.strip():
            continue
        where = f"{lines.path}:{lines.n}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            yield where, f"{where}: invalid JSON ({e.msg} at column {e.colno})"
            continue
        if not isinstance(record, dict):
            yield where, f"{where}: expected a JSON object, found {type(record).__name__}"
            continue
        yield where, record
