"""`open_corpus`: one entry point that picks the right reader from what a path looks like."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from bayling.corpus.core import CorpusError, Pair, PathLike
from bayling.corpus.flores import SPLITS, is_flores_dir, read_flores
from bayling.corpus.readers import read_jsonl, read_tsv
from bayling.corpus.wmt import read_wmt

__all__ = ["corpus_kind", "open_corpus"]


def corpus_kind(spec: PathLike) -> str:
    """Which reader `open_corpus` would use: "flores", "flores-file", "tsv", "jsonl", "pair" or "wmt"."""
    text = str(spec)
    path = Path(text)
    if "," in text and not path.exists():
        return "pair"
    if not path.exists():
        raise CorpusError(f"{spec}: no such file or directory")
    if path.is_dir():
        return "flores" if is_flores_dir(path) else "wmt"
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    suffix = name.rpartition(".")[2]
    if suffix in ("tsv", "jsonl"):
        return suffix
    if suffix in SPLITS and path.parent.name == suffix:
        return "flores-file"
    return "wmt"


def open_corpus(spec: PathLike, **kw: Any) -> Iterator[Pair]:
    """Pairs from any supported corpus, the kind detected from the path; keyword args go to its reader.

      flores200/ or flores200/dev/         read_flores (e.g. src_langs="en", tgt_langs="zh")
      flores200/dev/eng_Latn.dev           read_flores from that language (tgt_langs= picks targets)
      newstest/2019/en-zh/, x.en, x.src    read_wmt (src_lang="zh" flips the direction)
      a.en,a.zh                            read_wmt on the two comma-joined files
      data.tsv / data.jsonl (or .gz)       read_tsv / read_jsonl
    """
    kind = corpus_kind(spec)
    text = str(spec)
    if kind == "pair":
        a, b = (part.strip() for part in text.split(",", 1))
        return read_wmt(a, b, **kw)
    if kind == "flores":
        return read_flores(text, **kw)
    if kind == "flores-file":
        path = Path(text)
        return read_flores(path.parent, src_langs=path.name.rpartition(".")[0], **kw)
    if kind == "tsv":
        return read_tsv(text, **kw)
    if kind == "jsonl":
        return read_jsonl(text, **kw)
    return read_wmt(text, **kw)


def open_pairs(spec: PathLike, src_lang: str | None = None, tgt_lang: str | None = None,
               split: str | None = None, **kw: Any) -> Iterator[Pair]:
    """`open_corpus` with one set of options for every kind (what a CLI passes through)."""
    kind = corpus_kind(spec)
    if kind in ("flores", "flores-file"):
        def many(langs):  # FLORES is multi-way: "en,zh" means both
            return langs.split(",") if isinstance(langs, str) and "," in langs else langs

        if kind == "flores":
            kw["src_langs"] = many(src_lang)
        kw.update(tgt_langs=many(tgt_lang), split=split)
    else:
        kw.update(src_lang=src_lang, tgt_lang=tgt_lang)
    return open_corpus(spec, **kw)
