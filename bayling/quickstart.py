"""`bayling quickstart`: the embedded base model translating shipped sentences, offline.

Today it shows the starting point of the recipe — a foundation model that only continues text,
translating through a few-shot prompt — and scores it. The later stages (data → train → eval)
plug in here as they land.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

__all__ = ["run_quickstart", "RECIPE_STEPS"]

DIRECTIONS = (("eng_Latn", "zho_Hans"), ("eng_Latn", "deu_Latn"), ("fra_Latn", "eng_Latn"))
N_SHOTS = 3
N_TEST = 3

RECIPE_STEPS = """\
The full BayLing recipe on this model:
  1. data   build interactive-translation conversations from parallel text (translate, then
            steer: terminology, style, back-translation, third language...) plus cross-lingual
            instructions: `bayling data build`
  2. train  LoRA instruction-tuning with the loss on every assistant turn: `bayling train`
  3. eval   chrF/BLEU, off-target rate, constraint inclusion, multi-turn refinement, base vs
            tuned: `bayling eval`
  4. use    `bayling chat`, `bayling translate`, `bayling serve` (OpenAI-compatible API + web page)
"""


def run_quickstart(out: Path, model: str = "gemma3-270m", max_new_tokens: int = 48) -> dict:
    import sacrebleu

    from bayling.corpus import read_flores
    from bayling.infer.engine import GenerationConfig, TransformersEngine
    from bayling.infer.prompts import FEW_SHOT_STOP, few_shot_prompt
    from bayling.languages import resolve
    from bayling.models import EMBEDDED
    from bayling.resources import sample_dir

    console = Console(stderr=True)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with console.status(f"loading {model} (the first run converts the GGUF once, about a minute)"):
        engine = TransformersEngine.load(model, batch_size=N_TEST)
    console.print(f"[bold]model[/] {model}: {EMBEDDED[model].description if model in EMBEDDED else model}"
                  f"  (loaded in {time.perf_counter() - t0:.0f} s)")
    if model in EMBEDDED:
        console.print(f"[dim]{EMBEDDED[model].licence_note}[/]")

    results = []
    for src, tgt in DIRECTIONS:
        shots = [(p.src, p.tgt) for p in itertools.islice(read_flores(sample_dir(), "dev", pairs=[(src, tgt)]), N_SHOTS)]
        tests = list(itertools.islice(read_flores(sample_dir(), "devtest", pairs=[(src, tgt)]), N_TEST))
        src_name, tgt_name = resolve(src).name, resolve(tgt).name
        prompts = [few_shot_prompt(p.src, src_name, tgt_name, shots, engine.tokenizer.bos_token or "") for p in tests]
        t = time.perf_counter()
        hyps = [h.strip() for h in engine.complete(prompts, GenerationConfig(max_new_tokens=max_new_tokens, stop=FEW_SHOT_STOP))]
        secs = time.perf_counter() - t
        refs = [p.tgt for p in tests]
        chrf = sacrebleu.corpus_chrf(hyps, [refs]).score
        table = Table(title=f"{src_name} → {tgt_name}  ({N_SHOTS}-shot, chrF {chrf:.1f}, {secs:.1f} s)")
        table.add_column("source", overflow="fold")
        table.add_column("base model (few-shot)", overflow="fold")
        table.add_column("reference", overflow="fold")
        for p, h in zip(tests, hyps):
            table.add_row(p.src, h, p.tgt)
        Console().print(table)
        results.append({"src_lang": src, "tgt_lang": tgt, "chrf": round(chrf, 2), "hyps": hyps, "refs": refs})

    report = {"model": model, "mode": "few-shot base", "directions": results}
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(out / "results.json")
    Console(soft_wrap=True).print(RECIPE_STEPS)
    Console().print(f"results written to {out / 'results.json'}")
    return report
