"""Serving benchmarks: decode speed per backend, server overhead, memory under load.

    python bench/bench_serve.py                 # about 1.5 minutes on 2 CPU cores
    python bench/bench_serve.py --minutes 10    # the full 10-minute memory soak
    python bench/bench_serve.py --skip-decode   # server figures only (no model load)

1. Decode tokens/s of the embedded model (gemma3-270m): transformers `generate` (raw, and
   through Engine.stream), and llama.cpp on the same GGUF when llama-cpp-python is installed —
   both our LlamaCppEngine and llama.cpp's own timing of the same run.
2. Server overhead: p50/p99 latency of POST /v1/chat/completions (real uvicorn on 127.0.0.1 in a
   child process, httpx clients in threads here) against calling the engine directly, at 1, 4
   and 16 concurrent clients. The engine is FakeEngine with a fixed latency (16 words x 5 ms),
   so the figure is the server's cost (HTTP included), not the model's: a strict test, since a
   real request takes seconds. `--real-overhead` adds the same over the embedded model
   (24 new tokens, 1, 4 and 16 clients; direct calls serialised like the server's queue).
3. Memory: RSS of this process (server + clients) sampled under continuous load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPT = "<bos>The history of the city begins in the twelfth century, when"


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def decode_transformers(new_tokens: int) -> dict:
    import torch

    from bayling.infer.engine import GenerationConfig, TransformersEngine

    engine = TransformersEngine.load("gemma3-270m")
    enc = engine.tokenizer(PROMPT, return_tensors="pt", add_special_tokens=False)

    def run(n: int) -> float:
        t = time.perf_counter()
        with torch.inference_mode():
            engine.model.generate(**enc, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                  top_p=None, top_k=None, temperature=None, pad_token_id=engine.tokenizer.pad_token_id)
        return time.perf_counter() - t

    run(4)  # warm-up
    prefill = min(run(1) for _ in range(3))
    full = min(run(new_tokens) for _ in range(2))
    raw = (new_tokens - 1) / (full - prefill)

    # The same through Engine.stream (TextIteratorStreamer in a thread): what the server uses.
    t = time.perf_counter()
    s = engine.stream(PROMPT, GenerationConfig(max_new_tokens=new_tokens))
    s.text()
    streamed_secs = time.perf_counter() - t
    streamed = max(s.completion_tokens - 1, 1) / max(streamed_secs - prefill, 1e-9)
    return {"backend": "transformers", "threads": torch.get_num_threads(), "dtype": str(engine.model.dtype),
            "decode_tok_s": round(raw, 1), "engine_stream_tok_s": round(streamed, 1),
            "stream_tokens": s.completion_tokens, "prefill_s": round(prefill, 3)}


def decode_llamacpp(new_tokens: int) -> dict:
    from bayling.infer.llamacpp import llama_cpp_available

    if not llama_cpp_available():
        return {"backend": "llama.cpp", "status": "not installed (pip install 'bayling[llamacpp]')"}
    from bayling.infer.engine import GenerationConfig
    from bayling.infer.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine.load("gemma3-270m", n_ctx=512)
    llama = engine.llama
    tokens = engine._tokens(PROMPT)
    engine.complete([PROMPT], GenerationConfig(max_new_tokens=4))  # warm-up

    def after_first(pieces) -> tuple[float, int]:
        """(seconds from the first piece to the last, pieces): decode time with prefill excluded."""
        first = last = None
        n = 0
        for _ in pieces:
            last = time.perf_counter()
            first = first or last
            n += 1
        return last - first, n

    def ours() -> tuple[float, int]:
        s = engine.stream(PROMPT, GenerationConfig(max_new_tokens=new_tokens))
        secs, _ = after_first(s)
        return (s.completion_tokens - 1) / max(secs, 1e-9), s.completion_tokens

    def own() -> tuple[float, int]:
        # llama.cpp's own generation loop on the same model and prompt: greedy, no stop strings.
        llama.reset()

        def tokens_out():
            for i, tok in enumerate(llama.generate(tokens, temp=0.0, reset=True)):
                yield tok
                if i + 1 >= new_tokens:
                    return
        secs, n = after_first(tokens_out())
        return (n - 1) / max(secs, 1e-9), n

    rows = [(ours(), own()) for _ in range(3)]  # interleaved, best of 3 each
    ours_rate, n_ours = max(r[0] for r in rows)
    own_rate, n_own = max(r[1] for r in rows)
    return {"backend": "llama.cpp", "engine_stream_tok_s": round(ours_rate, 1), "llama_cpp_own_tok_s": round(own_rate, 1),
            "ratio": round(ours_rate / own_rate, 3), "tokens": n_ours, "own_tokens": n_own,
            "threads": getattr(llama, "n_threads", None)}


WORDS = " ".join(f"w{i}" for i in range(16))
FAKE_LATENCY = 0.005  # per word: 16 words = 80 ms a request


def _engine(kind: str):
    if kind == "fake":
        from bayling.testing.fake_engine import FakeEngine

        return FakeEngine(lambda m: WORDS, token_latency=FAKE_LATENCY)
    from bayling.infer.engine import TransformersEngine

    return TransformersEngine.load("gemma3-270m")


def _serve(kind: str, port: int) -> None:
    """Child process: the server over the engine, so clients and server do not share a GIL."""
    import uvicorn

    from bayling.serve.app import Limits, create_app

    # The fake engine sleeps, so 16 can run at once; the real one computes: one at a time, as served.
    limits = Limits(max_concurrent=16 if kind == "fake" else 1, max_waiting=32)
    uvicorn.run(create_app(_engine(kind), limits=limits), host="127.0.0.1", port=port, log_level="warning")


def server_overhead(concurrency: tuple[int, ...], per_client: int, kind: str = "fake", max_tokens: int = 64) -> list[dict]:
    import socket
    import subprocess

    import httpx

    from bayling.infer.engine import GenerationConfig

    engine = _engine(kind)
    # A real engine computes: direct calls share one lock, as the server's queue serialises them.
    serial = threading.Lock() if kind != "fake" else None
    messages = [{"role": "user", "content": "Translate the following English text into German.\n\nHello"}]
    cfg = GenerationConfig(max_new_tokens=max_tokens)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    child = subprocess.Popen([sys.executable, __file__, "--serve", kind, str(port)])
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                httpx.get(url + "/health", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or child.poll() is not None:
                    raise RuntimeError("the benchmark server did not start")
                time.sleep(0.2)
        http = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=20))
        body = {"messages": messages, "max_tokens": max_tokens}

        def direct() -> float:
            t = time.perf_counter()
            if serial is None:
                engine.stream(messages, cfg).text()
            else:
                with serial:
                    engine.stream(messages, cfg).text()
            return time.perf_counter() - t

        def over_http() -> float:
            t = time.perf_counter()
            http.post(url + "/v1/chat/completions", json=body).raise_for_status()
            return time.perf_counter() - t

        for _ in range(5 if kind == "fake" else 1):  # warm-up
            direct(), over_http()
        for c in concurrency:
            # Rounds alternate direct and server, so a slow spell on a shared machine hits both.
            rounds = max(1, min(5, per_client))
            lat: dict[str, list[float]] = {"direct": [], "server": []}
            wall = {"direct": 0.0, "server": 0.0}
            for r in range(rounds):
                n = per_client // rounds + (r < per_client % rounds)
                for label, fn in (("direct", direct), ("server", over_http)):
                    lock = threading.Lock()

                    def client():
                        for _ in range(n):
                            x = fn()
                            with lock:
                                lat[label].append(x)

                    ts = [threading.Thread(target=client) for _ in range(c)]
                    t0 = time.perf_counter()
                    for t in ts:
                        t.start()
                    for t in ts:
                        t.join()
                    wall[label] += time.perf_counter() - t0
            result = {label: {"p50_ms": round(1000 * statistics.median(xs), 2), "p99_ms": round(1000 * _pct(xs, 0.99), 2),
                              "mean_ms": round(1000 * statistics.mean(xs), 2), "req_s": round(len(xs) / wall[label], 3)}
                      for label, xs in lat.items()}
            d, v = result["direct"], result["server"]
            rows.append({"engine": kind, "clients": c, **{f"{k}_{m}": x for k, r in result.items() for m, x in r.items()},
                         "overhead_p50": round(v["p50_ms"] / d["p50_ms"] - 1, 4),
                         "overhead_p99": round(v["p99_ms"] / d["p99_ms"] - 1, 4),
                         "overhead_mean": round(v["mean_ms"] / d["mean_ms"] - 1, 4),
                         "throughput_ratio": round(v["req_s"] / d["req_s"], 4)})
        http.close()
    finally:
        child.terminate()
        child.wait(timeout=10)
    return rows


def memory_soak(seconds: float, clients: int = 4) -> dict:
    import httpx
    import psutil

    from bayling.testing.fake_engine import FakeEngine
    from bayling.serve.app import Limits, create_app
    from bayling.testing.background import BackgroundServer

    proc = psutil.Process(os.getpid())
    engine = FakeEngine(lambda m: "a b c d e f g h", token_latency=0.001)
    samples: list[tuple[float, float]] = []
    done = threading.Event()
    count = [0]
    with BackgroundServer(create_app(engine, limits=Limits(max_concurrent=2, max_waiting=8))) as server:
        def client(i: int):
            with httpx.Client(timeout=30) as http:
                n = 0
                while not done.is_set():
                    n += 1
                    body = {"messages": [{"role": "user", "content": f"request {i}-{n} " + "x" * (n % 50)}],
                            "max_tokens": 16, "stream": n % 2 == 0}
                    r = http.post(server.url + "/v1/chat/completions", json=body)
                    r.read()
                    count[0] += 1

        ts = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
        for t in ts:
            t.start()
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            samples.append((time.perf_counter() - t0, proc.memory_info().rss / 2**20))
            time.sleep(min(2.0, seconds / 20))
        done.set()
        for t in ts:
            t.join()
    warm = [s for s in samples if s[0] >= seconds * 0.2] or samples
    xs, ys = [s[0] for s in warm], [s[1] for s in warm]
    mx = statistics.mean(xs)
    slope = sum((x - mx) * (y - statistics.mean(ys)) for x, y in zip(xs, ys)) / max(sum((x - mx) ** 2 for x in xs), 1e-9)
    return {"seconds": round(seconds), "requests": count[0], "rss_start_mb": round(samples[0][1], 1),
            "rss_after_warmup_mb": round(ys[0], 1), "rss_end_mb": round(ys[-1], 1), "rss_max_mb": round(max(ys), 1),
            "slope_mb_per_min": round(slope * 60, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=0.5, help="memory soak length [default: 0.5]")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--per-client", type=int, default=25, help="requests per client in the overhead runs")
    ap.add_argument("--skip-decode", action="store_true")
    ap.add_argument("--real-overhead", action="store_true",
                    help="also measure the server's overhead over the embedded model (1, 4 and 16 clients, ~8 min)")
    ap.add_argument("--serve", nargs=2, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None, help="also write the report as JSON here")
    args = ap.parse_args()
    if args.serve is not None:
        return _serve(args.serve[0], int(args.serve[1]))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    report: dict = {"machine": {"cpus": os.cpu_count()}}
    if not args.skip_decode:
        report["decode"] = [decode_transformers(args.new_tokens), decode_llamacpp(args.new_tokens)]
        for row in report["decode"]:
            print(json.dumps(row))
    report["server_overhead"] = server_overhead((1, 4, 16), args.per_client)
    if args.real_overhead:
        report["server_overhead"] += server_overhead((1,), 10, kind="real", max_tokens=24)
        report["server_overhead"] += server_overhead((4,), 3, kind="real", max_tokens=24)
        report["server_overhead"] += server_overhead((16,), 2, kind="real", max_tokens=24)
    print(f"{'engine':>6} {'clients':>7} {'direct p50':>10} {'server p50':>10} {'direct p99':>10} {'server p99':>10} "
          f"{'+p50':>7} {'+p99':>7} {'+mean':>7} {'req/s':>7}")
    for r in report["server_overhead"]:
        print(f"{r['engine']:>6} {r['clients']:>7} {r['direct_p50_ms']:>10} {r['server_p50_ms']:>10} {r['direct_p99_ms']:>10} "
              f"{r['server_p99_ms']:>10} {r['overhead_p50']:>7.1%} {r['overhead_p99']:>7.1%} {r['overhead_mean']:>7.1%} "
              f"{r['throughput_ratio']:>7.3f}")
    report["memory"] = memory_soak(args.minutes * 60)
    print(json.dumps(report["memory"]))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
