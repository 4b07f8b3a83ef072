"""Parallel corpora in, `Pair` records out: FLORES-200, WMT newstest, Moses file pairs, TSV, JSONL.

Every reader is a generator that reads line by line (memory stays flat on any size) and refuses
bad input loudly with file:line: misaligned files, blank lines, invalid UTF-8. See core.py for
the hygiene rules and `open_corpus` for picking a reader from a path.
"""

from bayling.corpus.core import CorpusError, Pair
from bayling.corpus.detect import corpus_kind, open_corpus, open_pairs
from bayling.corpus.flores import flores_languages, read_flores, read_flores_multiway
from bayling.corpus.readers import read_jsonl, read_parallel, read_tsv
from bayling.corpus.wmt import read_wmt

__all__ = [
    "open_pairs",
    "CorpusError",
    "Pair",
    "corpus_kind",
    "flores_languages",
    "open_corpus",
    "read_flores",
    "read_flores_multiway",
    "read_jsonl",
    "read_parallel",
    "read_tsv",
    "read_wmt",
]
