"""FLORES-200: the same sentences in 204 languages, one file per language, line-aligned.

Layout: <root>/<split>/<code>.<split>, e.g. flores200/dev/zho_Hans.dev (997 lines) and
flores200/devtest/zho_Hans.devtest (1012 lines). Any direction between any two files is a
parallel corpus; `read_flores_multiway` gives all languages of a line at once.
"""

from __future__ import annotations

from itertools import product
from pathlib import Path
from typing import Iterable, Iterator

from bayling.corpus.core import CorpusError, LineFile, Pair, PathLike, lang_code, lockstep

__all__ = ["SPLITS", "flores_languages", "is_flores_dir", "read_flores", "read_flores_multiway"]

SPLITS = ("dev", "devtest")


def read_flores(
    root: PathLike,
    split: str | None = None,
    src_langs: str | Iterable[str] | None = None,
    tgt_langs: str | Iterable[str] | None = None,
    pairs: Iterable[str | tuple[str, str]] | None = None,
    *,
    allow_blank: bool = False,
) -> Iterator[Pair]:
    """Pairs for every direction src_langs x tgt_langs (same-language directions left out).

    root is the flores200 folder (holding dev/ and devtest/) or a split folder itself; split
    defaults to "dev", or to the split folder's name. Languages are any names `resolve` knows
    ("en", "zho_Hans", "Chinese"); None means every language in the folder. `pairs` instead
    lists directions explicitly, as ("en", "zh") tuples or "en-zh" strings. Directions are read
    one after another; origin is "flores200/<split>:<line>".
    """
    folder, split = _split_dir(root, split)
    available = flores_languages(folder, split)
    if pairs is not None:
        if src_langs is not None or tgt_langs is not None:
            raise CorpusError("read_flores: pass either pairs or src_langs/tgt_langs, not both")
        directions = [_direction(p, folder, split, available) for p in pairs]
    else:
        srcs = _codes(src_langs, folder, split, available)
        tgts = _codes(tgt_langs, folder, split, available)
        directions = [(s, t) for s, t in product(srcs, tgts) if s != t]
    return _pairs(folder, split, list(dict.fromkeys(directions)), allow_blank)


def _pairs(folder: Path, split: str, directions: list[tuple[str, str]], allow_blank: bool) -> Iterator[Pair]:
    prefix = f"flores200/{split}:"
    for s, t in directions:
        files = [LineFile(folder / f"{s}.{split}", allow_blank), LineFile(folder / f"{t}.{split}", allow_blank)]
        for no, (src, tgt) in enumerate(lockstep(files), 1):
            if allow_blank and (not src.strip() or not tgt.strip()):
                continue
            yield Pair(src, tgt, s, t, f"{prefix}{no}")


def read_flores_multiway(
    root: PathLike, split: str | None = None, langs: str | Iterable[str] | None = None, *, allow_blank: bool = False
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line_no, {code: sentence}) for each line, reading all language files in lockstep.

    With allow_blank=True a line blank in any language is skipped for all of them.
    """
    folder, split = _split_dir(root, split)
    codes = _codes(langs, folder, split, flores_languages(folder, split))
    return _multiway(folder, split, codes, allow_blank)


def _multiway(folder: Path, split: str, codes: list[str], allow_blank: bool) -> Iterator[tuple[int, dict[str, str]]]:
    files = [LineFile(folder / f"{c}.{split}", allow_blank) for c in codes]
    for no, row in enumerate(lockstep(files), 1):
        if allow_blank and any(not text.strip() for text in row):
            continue
        yield no, dict(zip(codes, row))


def flores_languages(root: PathLike, split: str | None = None) -> list[str]:
    """Sorted language codes that have a file in the split folder."""
    folder, split = _split_dir(root, split)
    return sorted(p.name[: -len(split) - 1] for p in folder.glob(f"*.{split}") if p.is_file())


def is_flores_dir(path: PathLike) -> bool:
    """True for a flores200 folder (with dev/ or devtest/) or one of its split folders."""
    path = Path(path)
    folders = [(path, path.name)] + [(path / s, s) for s in SPLITS]
    return any(s in SPLITS and f.is_dir() and any(f.glob(f"*_*.{s}")) for f, s in folders)


def _split_dir(root: PathLike, split: str | None) -> tuple[Path, str]:
    root = Path(root)
    if split is None:
        split = root.name if root.name in SPLITS and not (root / root.name).is_dir() else "dev"
    if (root / split).is_dir():
        folder = root / split
    elif root.name == split:
        folder = root
    elif root.name in SPLITS:
        raise CorpusError(f"{root}: this is the {root.name!r} split folder, but split={split!r} was asked")
    else:
        raise CorpusError(f"{root}: not a FLORES-200 folder (expected {root / split}/<code>.{split} files)")
    if not any(folder.glob(f"*.{split}")):
        raise CorpusError(f"{folder}: no <code>.{split} files in this FLORES-200 folder")
    return folder, split


def _code(name: str, folder: Path, split: str, available: list[str]) -> str:
    from bayling.languages import UnknownLanguage

    if name in available:  # a file name wins, so codes outside bayling.languages still work
        return name
    listing = f"available: {', '.join(available)}"
    try:
        code = lang_code(name)
    except UnknownLanguage as e:
        raise CorpusError(f"{folder}: {e}; {listing}") from None
    if code not in available:
        raise CorpusError(f"{folder}: no {code}.{split} for language {name!r}; {listing}")
    return code


def _codes(langs: str | Iterable[str] | None, folder: Path, split: str, available: list[str]) -> list[str]:
    if langs is None:
        return list(available)
    names = [langs] if isinstance(langs, str) else list(langs)
    return list(dict.fromkeys(_code(n, folder, split, available) for n in names))


def _direction(p: str | tuple[str, str], folder: Path, split: str, available: list[str]) -> tuple[str, str]:
    src, sep, tgt = p.partition("-") if isinstance(p, str) else (p[0], "-", p[1])
    if not sep or not src or not tgt:
        raise CorpusError(f"read_flores: direction {p!r} should be like 'en-zh' or ('en', 'zh')")
    s, t = _code(src, folder, split, available), _code(tgt, folder, split, available)
    if s == t:
        raise CorpusError(f"read_flores: direction {p!r} has the same language on both sides")
    return s, t
