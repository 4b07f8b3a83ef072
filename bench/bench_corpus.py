"""Streaming corpus readers vs the naive `f.readlines()`: throughput and peak memory.

Run:  cd /work/main && PYTHONPATH=. python bench/bench_corpus.py  [--sizes 100000 1000000]

Writes synthetic parallel corpora (~60 characters a line; English-like source, Chinese target)
to a temporary folder, then reads each size with read_parallel, read_tsv and a readlines()
baseline. Every measurement runs in a fresh subprocess so its peak RSS (ru_maxrss) is its own;
"peak RSS +" is that peak minus the RSS after imports. Streaming should stay flat as the corpus
grows tenfold; readlines() grows with it (it only holds raw lines; our readers also build and
check a `Pair` per line, so they are slower per line). Takes about 15 seconds.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = "the of and to in is that for on with as by at from this new was are be has it an said".split()
HANZI = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可也你"


def write_corpus(folder: Path, n: int) -> dict[str, str]:
    """src/tgt Moses files and the same pairs as TSV; lines are distinct and ~60 characters."""
    english = [" ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(12))[:52] for i in range(997)]
    chinese = ["".join(HANZI[(i * 5 + k) % len(HANZI)] for k in range(52)) for i in range(997)]
    bases = list(zip(english, chinese))
    paths = {kind: str(folder / f"c{n}.{kind}") for kind in ("en", "zh", "tsv")}
    with open(paths["en"], "w", encoding="utf-8") as en, open(paths["zh"], "w", encoding="utf-8") as zh, \
            open(paths["tsv"], "w", encoding="utf-8") as tsv:
        for i in range(n):
            s, t = bases[i % len(bases)]
            s, t = f"{i:07d} {s}", f"{i:07d} {t}"
            en.write(s + "\n")
            zh.write(t + "\n")
            tsv.write(f"{s}\t{t}\n")
    return paths


def _rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def worker(method: str, paths: dict[str, str]) -> dict[str, float]:
    """One measurement, in its own process."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
    from bayling.corpus import read_parallel, read_tsv

    next(read_parallel(paths["en"], paths["zh"], "en", "zh"))  # warm up imports and language lookups
    base = _rss_kib()
    start = time.perf_counter()
    if method == "read_parallel":
        n = sum(1 for _ in read_parallel(paths["en"], paths["zh"], "en", "zh"))
    elif method == "read_tsv":
        n = sum(1 for _ in read_tsv(paths["tsv"], "en", "zh"))
    else:  # the naive way: whole files in memory first
        with open(paths["en"], encoding="utf-8") as a, open(paths["zh"], encoding="utf-8") as b:
            src, tgt = a.readlines(), b.readlines()
        n = sum(1 for _ in zip(src, tgt))
    seconds = time.perf_counter() - start
    return {"lines": n, "seconds": seconds, "rss_mib": (_rss_kib() - base) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], json.loads(args.worker[1]))))
        return
    methods = ["read_parallel", "read_tsv", "readlines (naive)"]
    print(f"{'method':<20}{'lines':>10}{'lines/s':>12}{'seconds':>9}{'peak RSS +':>13}")
    with tempfile.TemporaryDirectory(prefix="bench_corpus_") as tmp:
        for size in args.sizes:
            paths = write_corpus(Path(tmp), size)
            for method in methods:
                out = subprocess.run([sys.executable, __file__, "--worker", method, json.dumps(paths)],
                                     check=True, capture_output=True, text=True).stdout
                r = json.loads(out)
                print(f"{method:<20}{r['lines']:>10,}{r['lines'] / r['seconds']:>12,.0f}"
                      f"{r['seconds']:>9.2f}{r['rss_mib']:>9.1f} MiB")


if __name__ == "__main__":
    main()
