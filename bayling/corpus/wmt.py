"""WMT newstest-style test sets: one plain-text file per language, line-aligned.

Accepted layouts, languages inferred from names wherever possible:
  newstest/2019/en-zh/               a folder named <xx>-<yy> with newstest2019.en + newstest2019.zh
  newstest2019.en newstest2019.zh    two files whose suffixes are the languages
  newstest2019.en                    one file; its sibling with the same stem is the other side
  test.src test.ref                  source/reference files (languages from the folder name or arguments)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from bayling.corpus.core import CorpusError, Pair, PathLike, lang_code
from bayling.corpus.readers import pairs_from_files

__all__ = ["read_wmt"]

_PAIR_DIR = re.compile(r"^([a-z]{2,3})-([a-z]{2,3})$")
_PRIMARY = re.compile(r"^newstest\d{4}$")  # newstestB2020 etc. are second references
_NOT_LANGUAGES = {"src", "ref", "tgt", "hyp", "txt", "out", "sgm", "xml", "tsv", "csv", "json", "jsonl", "md"}


def read_wmt(
    path: PathLike,
    other: PathLike | None = None,
    *,
    src_lang: str | None = None,
    tgt_lang: str | None = None,
    stem: str | None = None,
    allow_blank: bool = False,
) -> Iterator[Pair]:
    """Pairs from a newstest-style folder or file pair (see the module docstring).

    The default direction is the folder name's (en-zh reads en->zh) or path -> other; naming
    src_lang or tgt_lang picks it (src_lang="zh" reads that folder zh->en). In a folder with
    several references (newstest2020.* and newstestB2020.*) the primary one is read unless
    `stem` names another, e.g. stem="newstestB2020".
    """
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"{path}: no such file or directory")
    if path.is_dir():
        a, b = _files_in_dir(path, stem)
    elif other is not None:
        a, b = path, Path(other)
        if not b.is_file():
            raise CorpusError(f"{b}: no such file")
    else:
        a, b = path, _sibling(path, tgt_lang)
    (a, ca), (b, cb) = _sides(a, b, src_lang, tgt_lang)
    return pairs_from_files(a, b, ca, cb, allow_blank)


def _split_name(p: Path) -> tuple[str, str]:
    """("newstest2019", "en") for newstest2019.en or newstest2019.en.gz."""
    name = p.name[:-3] if p.name.endswith(".gz") else p.name
    stem, _, suffix = name.rpartition(".")
    return stem, suffix


def _files_in_dir(folder: Path, stem: str | None) -> tuple[Path, Path]:
    groups: dict[str, dict[str, Path]] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file():
            s, suffix = _split_name(p)
            if s and suffix:
                groups.setdefault(s, {})[suffix] = p
    named = _PAIR_DIR.match(folder.name)
    candidates: dict[str, tuple[Path, Path]] = {}
    for s, files in groups.items():
        if named and named[1] in files and named[2] in files:
            candidates[s] = files[named[1]], files[named[2]]
        elif "src" in files and "ref" in files:
            candidates[s] = files["src"], files["ref"]
    if not candidates:  # any stem with exactly two language-like suffixes
        for s, files in groups.items():
            langs = [suffix for suffix in files if suffix not in _NOT_LANGUAGES]
            if len(langs) == 2 and len(files) == 2:
                candidates[s] = files[langs[0]], files[langs[1]]
    if stem is not None:
        if stem not in candidates:
            raise CorpusError(f"{folder}: no file pair with stem {stem!r}; found: {', '.join(candidates) or 'none'}")
        return candidates[stem]
    if len(candidates) == 1:
        return next(iter(candidates.values()))
    primary = [s for s in candidates if _PRIMARY.match(s)]
    if len(primary) == 1:
        return candidates[primary[0]]
    found = ", ".join(candidates) or "none"
    raise CorpusError(f"{folder}: expected one pair of parallel files (<stem>.<xx> + <stem>.<yy>, or .src + .ref); "
                      f"found stems: {found} (choose with stem=)")


def _sibling(path: Path, tgt_lang: str | None) -> Path:
    stem, suffix = _split_name(path)
    if suffix == "src":
        ref = path.with_name(path.name.replace(".src", ".ref", 1))
        if ref.is_file():
            return ref
        raise CorpusError(f"{path}: no reference file {ref.name} next to it")
    siblings = [p for p in sorted(path.parent.glob(f"{stem}.*")) if p != path and _split_name(p)[0] == stem]
    chosen = siblings
    if tgt_lang is not None:
        chosen = [p for p in siblings if _suffix_code(_split_name(p)[1]) == lang_code(tgt_lang)]
    if len(chosen) != 1:
        found = ", ".join(p.name for p in siblings) or "none"
        wanted = f" for tgt_lang={tgt_lang!r}" if tgt_lang is not None else ""
        raise CorpusError(f"{path}: cannot tell which file is the other side{wanted} (siblings: {found}); pass it")
    return chosen[0]


def _suffix_code(suffix: str) -> str | None:
    """Language code a file suffix stands for ("zh" -> "zho_Hans"), or None."""
    from bayling.languages import UnknownLanguage

    if suffix in _NOT_LANGUAGES:
        return None
    if re.fullmatch(r"[a-z]{2,3}", suffix):
        return lang_code(suffix, strict=False)  # WMT has languages outside FLORES-200 (iu)
    try:
        return lang_code(suffix)
    except UnknownLanguage:
        return None


def _sides(a: Path, b: Path, src_lang: str | None, tgt_lang: str | None) -> tuple[tuple[Path, str], tuple[Path, str]]:
    """Attach languages to the two files and order them source first."""
    ca, cb = _suffix_code(_split_name(a)[1]), _suffix_code(_split_name(b)[1])
    named = _PAIR_DIR.match(a.parent.name)
    if (ca is None or cb is None) and named and a.parent == b.parent:
        ca, cb = lang_code(named[1], strict=False), lang_code(named[2], strict=False)
    want_src = lang_code(src_lang) if src_lang else None
    want_tgt = lang_code(tgt_lang) if tgt_lang else None
    if ca is None or cb is None:
        if want_src is None or want_tgt is None:
            raise CorpusError(f"{a}, {b}: cannot tell the languages from the file names; pass src_lang and tgt_lang")
        return (a, want_src), (b, want_tgt)
    if want_src == cb or (want_src is None and want_tgt == ca):
        (a, ca), (b, cb) = (b, cb), (a, ca)
    for want, have in ((want_src, ca), (want_tgt, cb)):
        if want is not None and want != have:
            asked = f"{want_src or '?'} -> {want_tgt or '?'}"
            raise CorpusError(f"{a}, {b}: these files hold {ca} and {cb}; cannot read {asked}")
    return (a, ca), (b, cb)
