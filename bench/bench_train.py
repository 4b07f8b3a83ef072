"""Training throughput: packed rows (ours) vs a plain padded, unpacked HF Trainer baseline.

Same model, same LoRA, same conversations, same Trainer; only the batching differs. Each run is
its own process so peak RSS is its own. Prints trained (non-pad) tokens/s, packing efficiency
(non-pad / all tokens processed) and peak memory, and the ratio between the two.

    python bench/bench_train.py                      # embedded Gemma 3 270M, 6 steps each
    python bench/bench_train.py --model tiny --steps 20
    python bench/bench_train.py --json               # precision: fp32 LoRA (the old path) vs the default
                                                     # (bf16 autocast where the CPU has it) and full FT,
                                                     # 20 steps each, packed; one JSON object last
    python bench/bench_train.py --selection          # checkpoint selection's decoding: autocast static
                                                     # batches (the old path) vs a merged bf16 copy with
                                                     # continuous batching; one JSON object last

Trained tokens/s counts assistant (loss-bearing) tokens; loss_delta compares the mean loss of the
last 5 of the 20 steps (same data, same seed) between the default and fp32.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_conversations(path: Path, n: int, seed: int = 0) -> None:
    """FLORES-style interactive translation: translate, then (sometimes) a second steering turn."""
    from bayling.corpus import read_flores_multiway
    from bayling.languages import resolve
    from bayling.resources import sample_dir, shared_data_dir

    shared = shared_data_dir()
    root = shared / "flores200" if shared else sample_dir()
    langs = ["eng_Latn", "zho_Hans", "deu_Latn", "fra_Latn"]
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for _, row in itertools.islice(read_flores_multiway(root, "dev", langs), n):
            src, tgt, third = rng.sample(langs, 3)
            msgs = [{"role": "user", "content": f"Translate the following {resolve(src).name} text into "
                                                f"{resolve(tgt).name}.\n\n{row[src]}"},
                    {"role": "assistant", "content": row[tgt]}]
            if rng.random() < 0.5:
                msgs += [{"role": "user", "content": f"Now translate it into {resolve(third).name}."},
                         {"role": "assistant", "content": row[third]}]
            f.write(json.dumps({"messages": msgs}, ensure_ascii=False) + "\n")


def run_one(args) -> None:
    """Child process: one training run, prints a JSON line."""
    from bayling.train import TrainConfig, train

    s = train(TrainConfig(data=args.data, out=args.out, model=args.model, chat_format=args.chat_format,
                          max_steps=args.steps, method=args.method, bf16=args.bf16, lora_dropout=args.lora_dropout,
                          batch_size=args.batch_size, max_len=args.max_len, packing=args.packing == "1",
                          save_steps=10_000, logging_steps=1 if args.losses else 1000))
    hist = [h for h in s["log_history"] if "train_runtime" in h][-1]
    losses = [h["loss"] for h in s["log_history"] if "loss" in h]
    # Real tokens trained per step, measured by the collator's own statistics.
    print("RESULT " + json.dumps({
        "losses": losses, "trained_tokens": s["data"]["assistant_tokens"], "method": args.method,
        "packing": args.packing == "1", "seconds": hist["train_runtime"], "steps": s["global_step"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "data_tokens": s["data"]["tokens"], "kept": s["data"]["kept"],
    }))


def efficiency_and_tokens(data: str, model: str, fmt_name: str | None, max_len: int, batch_size: int,
                          packing: bool, steps: int):
    """Non-pad tokens / all tokens, and non-pad tokens over the rows `steps` batches cover."""
    from transformers import AutoTokenizer

    from bayling.chat_formats import get_format
    from bayling.models import default_chat_format, resolve_model_path
    from bayling.train.dataset import read_conversations, tokenize_conversations
    from bayling.train.packing import PackedRow, pack, packing_efficiency

    tok = AutoTokenizer.from_pretrained(resolve_model_path(model))
    fmt = get_format(fmt_name or default_chat_format(model), tok)
    examples, _ = tokenize_conversations(read_conversations(data), tok, fmt, max_len)
    rows = pack(examples, max_len) if packing else [PackedRow([e]) for e in examples]
    eff = packing_efficiency(rows, batch_size)
    avg_row = sum(len(r) for r in rows) / len(rows)
    return eff, avg_row * batch_size * steps, len(rows)


def _setup(args) -> tuple[Path, str, Path]:
    """A temp folder, the model to train (the tiny one built there for --model tiny) and the data."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
    model = args.model
    if model == "tiny":
        from bayling.testing.tiny import build_tiny_model

        model = str(build_tiny_model(tmp / "tiny"))
        args.chat_format = args.chat_format or "gemma"
    data = tmp / "convs.jsonl"
    make_conversations(data, args.n)
    return tmp, model, data


def _child(args, data: Path, out: Path, model: str, packing: str = "1", losses: bool = True, **over) -> dict:
    """One training run in its own process (its own peak RSS); its RESULT line."""
    cmd = [sys.executable, __file__, "--child", "--data", str(data), "--out", str(out), "--model", model,
           "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--max-len", str(args.max_len),
           "--packing", packing] + (["--losses"] if losses else [])
    for k, v in over.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    if args.chat_format:
        cmd += ["--chat-format", args.chat_format]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if not line:
        sys.exit(proc.stderr[-3000:])
    return json.loads(line[-1][7:])


def precision_bench(args) -> None:
    """fp32 LoRA (the trainer's old CPU path) vs the default (bf16: auto) and full FT, same data and seed."""
    from bayling.hardware import fast_bf16

    args.steps = 20 if args.steps == 6 else args.steps
    tmp, model, data = _setup(args)
    runs = {"fp32 LoRA (old path)": _child(args, data, tmp / "fp32", model, bf16="false", lora_dropout=0.05),
            "default LoRA": _child(args, data, tmp / "auto", model, bf16="auto"),
            "default full (embedding frozen)": _child(args, data, tmp / "full", model, bf16="auto", method="full")}
    rows = {}
    for label, r in runs.items():
        _, tokens, _ = efficiency_and_tokens(str(data), model, args.chat_format, args.max_len, args.batch_size, True,
                                             r["steps"])
        trained = tokens * r["trained_tokens"] / r["data_tokens"]  # the assistant share of the rows trained
        rows[label] = {"tokens_per_s": tokens / r["seconds"], "trained_tokens_per_s": trained / r["seconds"],
                       "peak_rss_mb": r["peak_rss_mb"], "loss_last5": sum(r["losses"][-5:]) / len(r["losses"][-5:])}
    print(f"model {args.model}, {args.steps} steps each, batch {args.batch_size} packed rows of <= {args.max_len}; "
          f"this CPU {'has' if fast_bf16() else 'lacks'} fast bf16")
    print(f"{'':34}{'tokens/s':>10}{'trained tok/s':>15}{'peak RSS MB':>13}{'loss (last 5)':>15}")
    for label, r in rows.items():
        print(f"{label:34}{r['tokens_per_s']:>10.0f}{r['trained_tokens_per_s']:>15.0f}{r['peak_rss_mb']:>13.0f}"
              f"{r['loss_last5']:>15.3f}")
    base, new, full = rows.values()
    print(json.dumps({
        "baseline_tokens_per_s": round(base["trained_tokens_per_s"], 1),
        "tokens_per_s": round(new["trained_tokens_per_s"], 1),
        "speedup": round(new["trained_tokens_per_s"] / base["trained_tokens_per_s"], 2),
        "loss_delta": round((new["loss_last5"] - base["loss_last5"]) / base["loss_last5"], 4),
        "full_tokens_per_s": round(full["trained_tokens_per_s"], 1),
        "full_peak_rss_mb": round(full["peak_rss_mb"]), "lora_peak_rss_mb": round(new["peak_rss_mb"]),
        "steps": args.steps, "model": args.model,
    }))


def selection_bench(args) -> None:
    """Scoring one checkpoint on a recipe's dev slice: the old path (the training model, fp32 weights
    under bf16 autocast, static batches of 8) vs `score_model` (a merged copy, bf16, continuous)."""
    import time

    import torch

    from bayling.eval.translation import score_directions, translate
    from bayling.infer.engine import TransformersEngine
    from bayling.models import load_model
    from bayling.recipe import load_recipe_file, select_pairs
    from bayling.train.select import score_model

    recipe = load_recipe_file(ROOT / "recipes" / "mini-self-sel.yaml")
    recipe.select.lines = args.lines
    pairs = select_pairs(recipe)
    if not pairs:
        raise SystemExit("--selection needs FLORES-200 dev in ../shared/data")
    bf16 = torch.autocast("cpu", dtype=torch.bfloat16)
    model, tok = load_model("bayling-mini", merge=False, dtype="float32")  # as the trainer holds it
    model.train()

    def old(some: list, max_new_tokens: int) -> float:
        model.eval()
        engine = TransformersEngine(model, tok, "gemma", batch_size=8, name="old", batching="static")
        with torch.no_grad(), bf16:
            hyps = translate(engine, some, prompt="chat", max_new_tokens=max_new_tokens, chunk=8, progress=False)
        return score_directions(some, hyps)["chrf"]

    def new(some: list, max_new_tokens: int) -> float:
        return score_model(model, tok, "gemma", some, True, max_new_tokens)["chrf"]

    runs = {}
    for label, fn in (("baseline", old), ("bayling", new)):
        fn(pairs[:8], 8)  # warm-up
        t = time.perf_counter()
        chrf = fn(pairs, 64)
        runs[label] = {"seconds": time.perf_counter() - t, "chrf": chrf}
        print(f"  {label:9}: {len(pairs) / runs[label]['seconds']:.2f} pairs/s, chrF {chrf:.2f}", flush=True)
    base, fast = runs["baseline"], runs["bayling"]
    print(json.dumps({"pairs": len(pairs), "baseline_pairs_per_s": round(len(pairs) / base["seconds"], 3),
                      "pairs_per_s": round(len(pairs) / fast["seconds"], 3),
                      "speedup": round(base["seconds"] / fast["seconds"], 2), "chrf_baseline": round(base["chrf"], 2),
                      "chrf": round(fast["chrf"], 2), "model": "bayling-mini"}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-len", type=int, default=512)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--data")
    ap.add_argument("--out")
    ap.add_argument("--packing")
    ap.add_argument("--chat-format")
    ap.add_argument("--method", default="lora")
    ap.add_argument("--lora-dropout", type=float, default=0.0)
    ap.add_argument("--bf16", default="false")
    ap.add_argument("--losses", action="store_true")
    ap.add_argument("--json", action="store_true", help="fp32 LoRA vs the default precision, and full FT")
    ap.add_argument("--selection", action="store_true", help="checkpoint scoring: old decoding path vs the default")
    ap.add_argument("--lines", type=int, default=4, help="with --selection: dev lines per direction")
    args = ap.parse_args()
    if args.child:
        return run_one(args)
    if args.json:
        return precision_bench(args)
    if args.selection:
        return selection_bench(args)

    tmp, model, data = _setup(args)
    results = {}
    for packing in ("0", "1"):
        r = _child(args, data, tmp / f"run{packing}", model, packing=packing, losses=False)
        eff, tokens, n_rows = efficiency_and_tokens(str(data), model, args.chat_format, args.max_len, args.batch_size,
                                                    packing == "1", r["steps"])
        r.update(efficiency=eff, tokens_per_s=tokens / r["seconds"], rows=n_rows)
        results[packing] = r
    base, ours = results["0"], results["1"]
    print(f"model {args.model}, LoRA, {args.n} FLORES-style conversations, batch {args.batch_size}, "
          f"max_len {args.max_len}, {args.steps} steps each")
    print(f"{'':28}{'padded (HF baseline)':>22}{'packed (bayling)':>20}")
    print(f"{'rows to train':28}{base['rows']:>22}{ours['rows']:>20}")
    print(f"{'packing efficiency':28}{base['efficiency']:>22.1%}{ours['efficiency']:>20.1%}")
    print(f"{'trained tokens/s':28}{base['tokens_per_s']:>22.0f}{ours['tokens_per_s']:>20.0f}")
    print(f"{'peak RSS (MB)':28}{base['peak_rss_mb']:>22.0f}{ours['peak_rss_mb']:>20.0f}")
    print(f"speed-up (tokens/s, same run): {ours['tokens_per_s'] / base['tokens_per_s']:.2f}x  (goal >= 1.5x); "
          f"packing efficiency goal >= 95%")


if __name__ == "__main__":
    main()
