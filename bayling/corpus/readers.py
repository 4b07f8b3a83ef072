"""Generic parallel formats: Moses-style file pairs, two-column TSV, and JSON lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from bayling.corpus.core import CorpusError, LineFile, Pair, PathLike, lang_code, lockstep, require_files

__all__ = ["read_jsonl", "read_parallel", "read_tsv"]

# First-row cells that mark a TSV header (besides language names such as "en" or "zho_Hans").
_HEADER_WORDS = {"src", "tgt", "source", "target", "ref", "reference", "hyp", "translation", "text", "sentence"}


def read_parallel(
    src_path: PathLike, tgt_path: PathLike, src_lang: str, tgt_lang: str, *, allow_blank: bool = False
) -> Iterator[Pair]:
    """Pairs from two line-aligned files (Moses style); origin is "<src_path>:<line>"."""
    src_code, tgt_code = lang_code(src_lang), lang_code(tgt_lang)
    require_files(src_path, tgt_path)
    return pairs_from_files(Path(src_path), Path(tgt_path), src_code, tgt_code, allow_blank)


def pairs_from_files(src: Path, tgt: Path, src_lang: str, tgt_lang: str, allow_blank: bool) -> Iterator[Pair]:
    """read_parallel without checks: languages already resolved, files known to exist."""
    prefix = f"{src}:"
    for no, (s, t) in enumerate(lockstep([LineFile(src, allow_blank), LineFile(tgt, allow_blank)]), 1):
        if allow_blank and (not s.strip() or not t.strip()):
            continue
        yield Pair(s, t, src_lang, tgt_lang, f"{prefix}{no}")


def read_tsv(
    path: PathLike,
    src_lang: str | None = None,
    tgt_lang: str | None = None,
    header: bool | None = None,
    *,
    allow_blank: bool = False,
) -> Iterator[Pair]:
    """Pairs from a two-column tab-separated file (no quoting: a tab inside a sentence is an error).

    header=None detects a first row like "src<TAB>tgt" or "en<TAB>zh"; True/False force it.
    Languages default to the header's when it names two languages.
    """
    path = Path(path)
    require_files(path)
    first = _first_row(path)
    if header is None:
        header = first is not None and _looks_like_header(first)
    if src_lang is None or tgt_lang is None:
        named = _header_languages(first) if header and first else None
        if named is None:
            raise CorpusError(f"{path}: pass src_lang and tgt_lang (the file has no header naming its languages)")
        src_lang, tgt_lang = src_lang or named[0], tgt_lang or named[1]
    return _tsv(path, lang_code(src_lang), lang_code(tgt_lang), header, allow_blank)


def _tsv(path: Path, src_lang: str, tgt_lang: str, header: bool, allow_blank: bool) -> Iterator[Pair]:
    lines = LineFile(path, allow_blank)
    for line in lines:
        if header and lines.n == 1:
            continue
        if allow_blank and (not line or line.isspace()):
            continue
        cells = line.split("\t")
        if len(cells) != 2:
            raise CorpusError(f"{path}:{lines.n}: expected 2 tab-separated columns, found {len(cells)}")
        s, t = cells
        if not s.strip() or not t.strip():
            if allow_blank:
                continue
            side = "source" if not s.strip() else "target"
            raise CorpusError(f"{path}:{lines.n}: empty {side} column (pass allow_blank=True to skip such rows)")
        yield Pair(s, t, src_lang, tgt_lang, f"{path}:{lines.n}")


def _first_row(path: Path) -> list[str] | None:
    for line in LineFile(path, allow_blank=True):
        return line.split("\t")
    return None


def _looks_like_header(cells: list[str]) -> bool:
    if len(cells) != 2:
        return False
    words = [c.strip().lower() for c in cells]
    if all(w in _HEADER_WORDS or w.endswith(("_text", "_lang")) for w in words):
        return True
    return _header_languages(cells) is not None


def _header_languages(cells: list[str]) -> tuple[str, str] | None:
    """The two language codes a header row names, or None."""
    from bayling.languages import UnknownLanguage

    if len(cells) != 2 or any(not c.strip() or len(c) > 40 for c in cells):
        return None
    try:
        a, b = (lang_code(c.strip()) for c in cells)
    except UnknownLanguage:
        return None
    return (a, b) if a != b else None


def read_jsonl(
    path: PathLike,
    src_lang: str | None = None,
    tgt_lang: str | None = None,
    src_field: str = "src",
    tgt_field: str = "tgt",
    src_lang_field: str | None = None,
    tgt_lang_field: str | None = None,
    *,
    allow_blank: bool = False,
) -> Iterator[Pair]:
    """Pairs from JSON lines, one object per line.

    Field names are configurable and may be dotted paths into nested objects, e.g.
    src_field="translation.en" for Hugging Face style records. Each language comes either fixed
    (src_lang) or per record (src_lang_field); a fixed language wins over the field.
    """
    path = Path(path)
    require_files(path)
    for side, fixed, field in (("src", src_lang, src_lang_field), ("tgt", tgt_lang, tgt_lang_field)):
        if fixed is None and field is None:
            raise CorpusError(f"read_jsonl({path}): pass {side}_lang or {side}_lang_field")
    fixed_src = lang_code(src_lang) if src_lang else None
    fixed_tgt = lang_code(tgt_lang) if tgt_lang else None
    return _jsonl(path, fixed_src, fixed_tgt, src_field, tgt_field, src_lang_field, tgt_lang_field, allow_blank)


def _jsonl(
    path: Path,
    src_lang: str | None,
    tgt_lang: str | None,
    src_field: str,
    tgt_field: str,
    src_lang_field: str | None,
    tgt_lang_field: str | None,
    allow_blank: bool,
) -> Iterator[Pair]:
    lines = LineFile(path, allow_blank)
    for line in lines:
        if allow_blank and (not line or line.isspace()):
            continue
        where = f"{path}:{lines.n}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise CorpusError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(record, dict):
            raise CorpusError(f"{where}: expected a JSON object, found {type(record).__name__}")
        s, t = _field(record, src_field, where), _field(record, tgt_field, where)
        if not s.strip() or not t.strip():
            if allow_blank:
                continue
            raise CorpusError(f"{where}: field {src_field if not s.strip() else tgt_field!r} is blank")
        s_lang = src_lang or _record_lang(record, src_lang_field, where)
        t_lang = tgt_lang or _record_lang(record, tgt_lang_field, where)
        yield Pair(s, t, s_lang, t_lang, where)


def _field(record: dict[str, Any], name: str, where: str) -> str:
    value: Any = record
    if name in record:
        value = record[name]
    else:
        for part in name.split("."):
            if not isinstance(value, dict) or part not in value:
                have = ", ".join(map(str, record)) or "nothing"
                raise CorpusError(f"{where}: missing field {name!r} (record has: {have})")
            value = value[part]
    if not isinstance(value, str):
        raise CorpusError(f"{where}: field {name!r} should be a string, found {type(value).__name__}")
    return value


def _record_lang(record: dict[str, Any], field: str | None, where: str) -> str:
    from bayling.languages import UnknownLanguage

    name = _field(record, field or "", where)
    try:
        return lang_code(name)
    except UnknownLanguage as e:
        raise CorpusError(f"{where}: field {field!r}: {e}") from None
