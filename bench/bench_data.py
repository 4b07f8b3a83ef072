"""`bayling data` performance: reference-mode build rate, memory vs corpus size, filter cost, teacher rate.

Run:  cd /work/main && PYTHONPATH=. python bench/bench_data.py  [--quick]

1. Reference mode: conversations per second building from FLORES-200 (../shared/data if present,
   else a generated multi-way corpus of FLORES-sized lines), writing JSONL. "per CPU s" is the
   rate per second of this process's CPU time (one core, whatever else the machine runs);
   "wall" is the plain rate.
2. Memory: peak RSS above the post-import baseline while building from generated multi-way
   corpora of two sizes (10x apart), each in a fresh subprocess. Streaming should stay flat.
3. Filters: seconds per 1,000 conversations for each filter, run alone over the same records.
4. Teacher mode: requests per second against the fake OpenAI-compatible server (its own
   process) with fixed latency L at concurrency C, as a share of the ideal C / L; next to it,
   the same share for bare httpx POSTs, which is what the machine allows at that moment.
Takes under a minute.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
FLORES = ROOT.parent / "shared" / "data" / "flores200"
SAMPLE = ROOT / "bayling" / "assets" / "sample"
LANGS = ["eng_Latn", "zho_Hans", "deu_Latn"]


def make_corpus(folder: Path, lines: int) -> Path:
    """A multi-way FLORES-layout corpus: base sentences cycled, each line made unique by a number."""
    from bayling.corpus import read_flores_multiway

    base_root = FLORES if (FLORES / "dev").is_dir() else SAMPLE
    base = [texts for _, texts in read_flores_multiway(base_root, "dev", LANGS)]
    (folder / "dev").mkdir(parents=True, exist_ok=True)
    for code in LANGS:
        with open(folder / "dev" / f"{code}.dev", "w", encoding="utf-8") as f:
            for i in range(lines):
                f.write(f"{i} {base[i % len(base)][code]}\n")
    return folder


def build_rate(corpus: Path, out: Path, **kw) -> dict:
    from bayling.data.build import BuildConfig, build_conversations
    from bayling.data.io import write_jsonl

    cfg = BuildConfig(str(corpus), seed=7, **kw)
    wall, cpu = time.perf_counter(), time.process_time()
    n = write_jsonl(out, build_conversations(cfg))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"conversations": n, "per_cpu_s": n / cpu, "wall": n / wall}


def rss_worker(corpus: str, out: str) -> None:
    """In a subprocess: build everything from `corpus`, print JSON with peak RSS growth."""
    from bayling.data.build import BuildConfig, build_conversations
    from bayling.data.io import write_jsonl

    cfg = BuildConfig(corpus, seed=7)
    records = build_conversations(cfg)
    first = next(records)  # imports, language tables and file handles are in place now
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n = write_jsonl(out, itertools.chain([first], records))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"conversations": n, "peak_rss_growth_mib": (peak - base) / 1024, "peak_rss_mib": peak / 1024}))


def rss(corpus: Path, out: Path) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--rss-worker", str(corpus), str(out)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def filter_costs(path: Path) -> dict[str, float]:
    from bayling.data.filters import default_filters
    from bayling.data.io import read_records

    records = [r for _, r in read_records(path)]
    from bayling.languages import detect_label

    detect_label("warm up the language-id model")
    costs = {}
    for f in default_filters():
        start = time.perf_counter()
        for r in records:
            f(r)
        costs[f.name] = (time.perf_counter() - start) / len(records) * 1000
    return costs


def plain_httpx_rate(url: str, concurrency: int, latency: float, requests: int) -> float:
    """The transport's ceiling on this machine now: bare httpx POSTs at the same concurrency."""
    import asyncio

    import httpx

    async def run() -> float:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url + "/", limits=limits) as client:
            async def worker(k: int) -> None:
                for i in range(k, requests, concurrency):
                    await client.post("chat/completions", json={"model": "m", "messages": [
                        {"role": "user", "content": f"ceiling {i}"}]})

            start = time.perf_counter()
            await asyncio.gather(*(worker(k) for k in range(concurrency)))
            return requests / (time.perf_counter() - start)

    return asyncio.run(run()) / (concurrency / latency)


def teacher_rate(latency: float, concurrency: int, conversations: int, tmp: Path) -> dict:
    import httpx  # noqa: F401  (imported before the clock starts: it takes a few hundred ms)

    from bayling.data.build import BuildConfig, plan_conversations
    from bayling.data.teacher import TeacherConfig, teacher_build

    server = subprocess.Popen([sys.executable, "-m", "bayling.testing.fake_teacher", "--latency", str(latency)],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        url = server.stdout.readline().strip()
        corpus = FLORES if (FLORES / "dev").is_dir() else SAMPLE
        cfg = BuildConfig(str(corpus), langs=LANGS, mode="teacher", limit=conversations, crosslingual=0.0,
                          per_line=max(1, conversations // 40 if corpus == SAMPLE else 1))
        tcfg = TeacherConfig(url, concurrency=concurrency, cache=str(tmp / "teacher-cache.sqlite"))
        start = time.perf_counter()
        stats = teacher_build(plan_conversations(cfg), tmp / "teacher.jsonl", tcfg)
        seconds = time.perf_counter() - start
        ceiling = plain_httpx_rate(url, concurrency, latency, 800)
    finally:
        server.kill()
        server.wait()
    rate = stats.requests / seconds
    ideal = concurrency / latency
    return {"requests": stats.requests, "seconds": seconds, "rate": rate, "ideal": ideal, "ratio": rate / ideal,
            "ceiling": ceiling}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="smaller sizes (for a smoke run)")
    p.add_argument("--rss-worker", nargs=2, metavar=("CORPUS", "OUT"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.rss_worker:
        rss_worker(*a.rss_worker)
        return
    scale = 10 if a.quick else 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        real = (FLORES / "dev").is_dir()
        corpus = FLORES if real else make_corpus(tmp / "gen1k", 997)
        print(f"corpus: {'FLORES-200 dev (../shared/data)' if real else 'generated multi-way, 997 lines'}; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

        print("\n1. reference mode (build + write JSONL)")
        r = build_rate(corpus, tmp / "ref.jsonl", langs=LANGS, per_line=20 // scale)
        print(f"   3 languages : {r['conversations']:>6} conversations  {r['per_cpu_s']:>7,.0f}/CPU s  {r['wall']:>7,.0f}/s wall")
        if real:
            for per_line in (1, 4):
                r = build_rate(corpus, tmp / "all.jsonl", per_line=per_line)
                print(f"   204 languages, {per_line}/line: {r['conversations']:>5} conversations  "
                      f"{r['per_cpu_s']:>7,.0f}/CPU s  {r['wall']:>7,.0f}/s wall (reading 204 files per line)")

        print("\n2. peak memory vs corpus size (generated multi-way corpora, 3 languages)")
        for lines in (5_000 // scale, 50_000 // scale):
            m = rss(make_corpus(tmp / f"gen{lines}", lines), tmp / "rss.jsonl")
            print(f"   {lines:>6} lines -> {m['conversations']:>6} conversations: peak RSS {m['peak_rss_mib']:.0f} MiB, "
                  f"+{m['peak_rss_growth_mib']:.1f} MiB while building")

        print("\n3. filters (ms per conversation, each alone, on 3-language reference data)")
        build_rate(corpus, tmp / "f.jsonl", langs=LANGS, limit=5_000 // scale, per_line=6)
        for name, ms in filter_costs(tmp / "f.jsonl").items():
            print(f"   {name:<20} {ms:.3f} ms")

        print("\n4. teacher mode vs the fake server (own process)")
        t = teacher_rate(0.1, 16, 600 // scale, tmp)
        print(f"   C=16, L=0.1 s: {t['requests']} requests in {t['seconds']:.1f}s = {t['rate']:.1f} req/s; "
              f"ideal C/L = {t['ideal']:.0f} req/s; ratio {t['ratio']:.2f}")
        print(f"   (bare httpx POSTs at C=16 on this machine right now: ratio {t['ceiling']:.2f})")


if __name__ == "__main__":
    main()
