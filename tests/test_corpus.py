"""bayling.corpus: readers on the real FLORES-200 / newstest files and hygiene on tiny synthetic ones."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from itertools import islice
from pathlib import Path
from typing import Iterable

import pytest

from bayling.corpus import (
    CorpusError,
    Pair,
    corpus_kind,
    open_corpus,
    read_flores,
    read_flores_multiway,
    read_jsonl,
    read_parallel,
    read_tsv,
    read_wmt,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FLORES = DATA / "flores200"
NEWSTEST = DATA / "newstest"
needs_flores = pytest.mark.skipif(not (FLORES / "dev").is_dir(), reason=f"FLORES-200 not found at {FLORES}")
needs_newstest = pytest.mark.skipif(not NEWSTEST.is_dir(), reason=f"newstest not found at {NEWSTEST}")


def first_line(path: Path) -> str:
    with open(path, encoding="utf-8") as f:
        return f.readline().rstrip("\n")


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def fails(match: str, pairs: Iterable[Pair]) -> None:
    """Reading `pairs` to the end raises CorpusError matching `match`."""
    with pytest.raises(CorpusError, match=match):
        list(pairs)


def two_files(tmp_path: Path, src: str | bytes, tgt: str | bytes, names=("c.en", "c.zh")) -> tuple[Path, Path]:
    return write(tmp_path / names[0], src), write(tmp_path / names[1], tgt)


@pytest.fixture
def mini_flores(tmp_path: Path) -> Path:
    """A 3-language, 3-line FLORES layout."""
    for split in ("dev", "devtest"):
        (tmp_path / "flores200" / split).mkdir(parents=True)
        for code, word in (("eng_Latn", "one"), ("zho_Hans", "一"), ("fra_Latn", "un")):
            write(tmp_path / "flores200" / split / f"{code}.{split}", "".join(f"{word} {i}\n" for i in range(3)))
    return tmp_path / "flores200"


# --- FLORES-200 (real data) ---


@needs_flores
def test_every_flores_dev_language_pairs_with_english():
    codes = sorted(p.stem for p in (FLORES / "dev").glob("*.dev"))
    assert len(codes) == 204
    counts: Counter[str] = Counter()
    eng = first_line(FLORES / "dev" / "eng_Latn.dev")
    for pair in read_flores(FLORES, "dev", src_langs="en"):
        counts[pair.tgt_lang] += 1
        if pair.origin == "flores200/dev:1":
            assert pair.src == eng and pair.src_lang == "eng_Latn"
            assert pair.tgt == first_line(FLORES / "dev" / f"{pair.tgt_lang}.dev"), pair.tgt_lang
    assert set(counts) == set(codes) - {"eng_Latn"}
    assert set(counts.values()) == {997}


@needs_flores
def test_flores_names_split_folder_and_explicit_pairs():
    pairs = list(read_flores(FLORES / "devtest", src_langs=["zh"], tgt_langs=["English", "zho_Hans"]))
    assert len(pairs) == 1012 and {(p.src_lang, p.tgt_lang) for p in pairs} == {("zho_Hans", "eng_Latn")}
    assert pairs[-1].origin == "flores200/devtest:1012"
    both = list(read_flores(FLORES, pairs=["en-zh", ("zh", "en")]))
    assert len(both) == 2 * 997
    assert both[0].src == both[997].tgt and both[0].tgt == both[997].src


@needs_flores
def test_flores_multiway_all_languages():
    rows = read_flores_multiway(FLORES, "dev")
    no, first = next(rows)
    assert no == 1 and len(first) == 204
    assert first["zho_Hans"] == first_line(FLORES / "dev" / "zho_Hans.dev")
    assert sum(1 for _ in rows) == 996


# --- FLORES-200 (synthetic) ---


def test_flores_multiway_subset(mini_flores: Path):
    rows = list(read_flores_multiway(mini_flores, "devtest", langs=["en", "fr"]))
    assert rows[0] == (1, {"eng_Latn": "one 0", "fra_Latn": "un 0"}) and len(rows) == 3


def test_flores_all_directions_skip_identical(mini_flores: Path):
    directions = Counter((p.src_lang, p.tgt_lang) for p in read_flores(mini_flores))
    assert len(directions) == 6 and set(directions.values()) == {3}


def test_flores_unknown_language_lists_available(mini_flores: Path):
    with pytest.raises(CorpusError, match=r"deu_Latn.*available: eng_Latn, fra_Latn, zho_Hans"):
        read_flores(mini_flores, src_langs="en", tgt_langs="de")
    with pytest.raises(CorpusError, match="available: eng_Latn"):
        read_flores(mini_flores, src_langs="no-such-language-xyz")


def test_flores_wrong_split_and_not_flores(mini_flores: Path, tmp_path: Path):
    with pytest.raises(CorpusError, match="'dev' split folder"):
        read_flores(mini_flores / "dev", split="devtest")
    with pytest.raises(CorpusError, match="not a FLORES-200 folder"):
        read_flores(tmp_path / "nowhere")


def test_flores_misaligned_language_file(mini_flores: Path):
    write(mini_flores / "dev" / "fra_Latn.dev", "un\ndeux\n")
    fails(r"eng_Latn.dev has 3 lines.*fra_Latn.dev has 2 lines", read_flores_multiway(mini_flores))


# --- newstest (real data) ---


@needs_newstest
def test_newstest_dir_both_directions():
    folder = NEWSTEST / "2019" / "en-zh"
    en, zh = first_line(folder / "newstest2019.en"), first_line(folder / "newstest2019.zh")
    forward = list(read_wmt(folder))
    assert len(forward) == 1997
    assert forward[0] == Pair(en, zh, "eng_Latn", "zho_Hans", f"{folder / 'newstest2019.en'}:1")
    backward = list(read_wmt(folder, src_lang="zh"))
    assert len(backward) == 1997 and (backward[0].src, backward[0].tgt_lang) == (zh, "eng_Latn")
    assert backward[0].origin.endswith("newstest2019.zh:1")
    files = list(read_wmt(folder / "newstest2019.zh", folder / "newstest2019.en"))
    assert files == backward


@needs_newstest
def test_newstest_second_reference_and_sibling():
    folder = NEWSTEST / "2020" / "en-zh"
    primary = next(read_wmt(folder))
    second = next(read_wmt(folder, stem="newstestB2020"))
    assert primary.origin.endswith("newstest2020.en:1") and second.origin.endswith("newstestB2020.en:1")
    assert next(read_wmt(folder / "newstest2020.zh")).src_lang == "zho_Hans"


@needs_newstest
def test_every_newstest_folder_reads():
    for folder in sorted(NEWSTEST.glob("*/*-*")):
        src, tgt = folder.name.split("-")
        pairs = list(read_wmt(folder))
        assert pairs and pairs[0].origin.endswith(f".{src}:1"), folder


# --- hygiene (synthetic) ---


def test_misaligned_names_both_files_and_counts(tmp_path: Path):
    src, tgt = two_files(tmp_path, "a\nb\nc\nd\n", "x\ny\nz")
    with pytest.raises(CorpusError) as err:
        list(read_parallel(src, tgt, "en", "zh"))
    assert all(s in str(err.value) for s in (str(src), str(tgt), "4 lines", "3 lines"))
    src, tgt = two_files(tmp_path, "a\n", "x\ny\nz\n")
    got = []
    with pytest.raises(CorpusError, match=r"c.en has 1 lines, .*c.zh has 3 lines"):
        got.extend(read_parallel(src, tgt, "en", "zh"))
    assert len(got) == 1  # pairs before the end are yielded; the mismatch is never silent
    src, tgt = two_files(tmp_path, "a\n", "x\ny\nz")  # the longer file's last line has no newline
    fails("c.zh has 3 lines", read_parallel(src, tgt, "en", "zh"))


def test_bom_crlf_and_final_newline(tmp_path: Path):
    src, tgt = two_files(tmp_path, b"\xef\xbb\xbfHello\r\nWorld\r\n", "你好\n世界")
    pairs = list(read_parallel(src, tgt, "en", "zh"))
    assert [(p.src, p.tgt) for p in pairs] == [("Hello", "你好"), ("World", "世界")]
    assert pairs[1].origin == f"{src}:2" and pairs[0].src_lang == "eng_Latn"


def test_blank_line_is_an_error_unless_allowed(tmp_path: Path):
    src, tgt = two_files(tmp_path, "a\n\nc\n", "x\ny\nz\n")
    fails(rf"{src}:2: blank line", read_parallel(src, tgt, "en", "zh"))
    pairs = list(read_parallel(src, tgt, "en", "zh", allow_blank=True))
    assert [(p.src, p.origin) for p in pairs] == [("a", f"{src}:1"), ("c", f"{src}:3")]


def test_invalid_utf8_names_file_and_line(tmp_path: Path):
    src, tgt = two_files(tmp_path, "a\nb\n", b"x\ny\xff\xfe\n")
    fails(rf"{tgt}:2: invalid UTF-8", read_parallel(src, tgt, "en", "zh"))


def test_missing_file_fails_before_reading(tmp_path: Path):
    with pytest.raises(CorpusError, match="no such file"):
        read_parallel(tmp_path / "a.en", tmp_path / "a.zh", "en", "zh")


def test_gzip_input(tmp_path: Path):
    src = tmp_path / "c.en.gz"
    with gzip.open(src, "wb") as f:
        f.write(b"a\nb\n")
    tgt = write(tmp_path / "c.zh", "x\ny\n")
    assert [p.tgt for p in read_wmt(src, tgt)] == ["x", "y"]


def test_empty_file_is_an_error_naming_it(tmp_path: Path):
    src, tgt = two_files(tmp_path, "", "")
    fails(rf"{src}: empty file", read_parallel(src, tgt, "en", "zh"))
    src, tgt = two_files(tmp_path, "a\n", b"\xef\xbb\xbf")  # a BOM alone is no line either
    fails(rf"{tgt}: empty file", read_parallel(src, tgt, "en", "zh"))
    fails(r"empty file", read_jsonl(write(tmp_path / "e.jsonl", ""), "en", "zh"))


def test_broken_gzip_names_the_file(tmp_path: Path):
    tgt = write(tmp_path / "c.zh", "x\ny\n")
    src = write(tmp_path / "c.en.gz", b"no")
    fails(rf"{src}: cannot read this gzip file: Not a gzipped file", read_wmt(src, tgt))
    whole = gzip.compress(b"a\nb\n" * 1000)
    src = write(tmp_path / "t.en.gz", whole[: len(whole) // 2])  # truncated by an interrupted download
    fails(rf"{src}(:\d+)?: cannot read this gzip file: Compressed file ended", read_wmt(src, tgt))


# --- TSV / JSONL ---


def test_tsv_header_detection(tmp_path: Path):
    plain = write(tmp_path / "plain.tsv", "Hello\t你好\nWorld\t世界\n")
    assert len(list(read_tsv(plain, "en", "zh"))) == 2
    named = write(tmp_path / "named.tsv", "src\ttgt\nHello\t你好\n")
    assert [p.origin for p in read_tsv(named, "en", "zh")] == [f"{named}:2"]
    langs = write(tmp_path / "langs.tsv", "en\tzh\nHello\t你好\n")
    assert next(read_tsv(langs)) == Pair("Hello", "你好", "eng_Latn", "zho_Hans", f"{langs}:2")
    assert next(read_tsv(plain, "en", "zh", header=True)).src == "World"
    assert next(read_tsv(named, "en", "zh", header=False)).src == "src"
    with pytest.raises(CorpusError, match="pass src_lang and tgt_lang"):
        read_tsv(plain)


def test_tsv_bad_column_count(tmp_path: Path):
    bad = write(tmp_path / "bad.tsv", "a\tb\nc\td\te\n")
    fails(rf"{bad}:2: expected 2 tab-separated columns, found 3", read_tsv(bad, "en", "zh"))
    empty = write(tmp_path / "empty.tsv", "a\t\n")
    fails(rf"{empty}:1: empty target column", read_tsv(empty, "en", "zh"))


def test_jsonl_custom_fields(tmp_path: Path):
    rows = [{"en": "Hi", "zh": "嗨", "l": "en"}, {"en": "Bye", "zh": "再见", "l": "English"}]
    path = write(tmp_path / "d.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    pairs = list(read_jsonl(path, src_field="en", tgt_field="zh", src_lang_field="l", tgt_lang="zh"))
    assert [(p.src, p.src_lang) for p in pairs] == [("Hi", "eng_Latn"), ("Bye", "eng_Latn")]
    assert {p.tgt_lang for p in pairs} == {"zho_Hans"}
    hf = write(tmp_path / "hf.jsonl", json.dumps({"translation": {"de": "Hallo", "en": "Hello"}}) + "\n")
    pair = next(read_jsonl(hf, "de", "en", src_field="translation.de", tgt_field="translation.en"))
    assert (pair.src, pair.tgt, pair.origin) == ("Hallo", "Hello", f"{hf}:1")


def test_jsonl_errors(tmp_path: Path):
    path = write(tmp_path / "d.jsonl", '{"src": "a", "tgt": "b"}\n{"src": "c"}\n')
    fails(rf"{path}:2: missing field 'tgt'", read_jsonl(path, "en", "zh"))
    broken = write(tmp_path / "broken.jsonl", '{"src": "a",\n')
    fails(rf"{broken}:1: invalid JSON", read_jsonl(broken, "en", "zh"))
    with pytest.raises(ValueError, match="src_lang"):
        read_jsonl(path)


# --- open_corpus ---


def test_open_corpus_detects_kinds(tmp_path: Path, mini_flores: Path):
    assert len(list(open_corpus(mini_flores, src_langs="en", tgt_langs="zh"))) == 3
    assert len(list(open_corpus(mini_flores / "devtest", src_langs="en", tgt_langs="zh"))) == 3
    assert {p.tgt_lang for p in open_corpus(mini_flores / "dev" / "fra_Latn.dev")} == {"eng_Latn", "zho_Hans"}
    news = tmp_path / "news" / "de-en"
    news.mkdir(parents=True)
    write(news / "newstest2019.de", "Hallo\n")
    write(news / "newstest2019.en", "Hello\n")
    assert next(open_corpus(news)).src_lang == "deu_Latn"
    assert next(open_corpus(news, src_lang="en")).src == "Hello"
    assert next(open_corpus(f"{news / 'newstest2019.en'},{news / 'newstest2019.de'}")).tgt == "Hallo"
    write(news / "test.src", "Hallo\n")
    write(news / "test.ref", "Hello\n")
    assert next(open_corpus(news / "test.src")).tgt_lang == "eng_Latn"  # languages from the folder name
    tsv = write(tmp_path / "d.tsv", "en\tzh\nHi\t嗨\n")
    assert next(open_corpus(tsv)).tgt == "嗨"
    jsonl = write(tmp_path / "d.jsonl", '{"src": "Hi", "tgt": "嗨"}\n')
    assert next(open_corpus(jsonl, src_lang="en", tgt_lang="zh")).tgt == "嗨"
    kinds = [corpus_kind(p) for p in (mini_flores, news, tsv, jsonl, f"{tsv},{jsonl}")]
    assert kinds == ["flores", "wmt", "tsv", "jsonl", "pair"]
    with pytest.raises(CorpusError, match="no such file"):
        open_corpus(tmp_path / "missing.tsv")


@needs_newstest
def test_open_corpus_on_real_newstest():
    assert len(list(islice(open_corpus(NEWSTEST / "2019" / "zh-en"), 5))) == 5
