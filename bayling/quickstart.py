"""`bayling quickstart`: the whole BayLing recipe, offline, on this CPU, in well under 30 minutes.

data (draft-then-refine translation conversations from the shipped sample, plus FLORES-200 dev
when ../shared/data is beside the checkout; its last lines held out to select the checkpoint)
-> LoRA on the embedded Gemma 3 270M base (bf16 on CPUs that have it) -> base (few-shot) vs
tuned on the shipped sample's held-out devtest -> results.json (with a paired bootstrap),
report.md/.html and a plot.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bayling.eval.suite import SuiteConfig
from bayling.recipe import DataSection, DataSource, Recipe, SelectSection, run_recipe

__all__ = ["quickstart_recipe", "run_quickstart"]

LANGS = ["eng_Latn", "zho_Hans", "deu_Latn", "fra_Latn", "spa_Latn", "jpn_Jpan", "rus_Cyrl", "por_Latn"]


STEPS = 120
EVAL_SENTENCES = 24  # the whole shipped devtest: 4 directions x 24 = 96 sentences
# WMT newstest pairs in the eval's directions (en-zh, en-de), when ../shared has them.
NEWSTEST = ("newstest:2017/zh-en", "newstest:2019/en-zh", "newstest:2018/en-de", "newstest:2019/en-de")
NEWS_LINES = 150  # per newstest source
SELECT_LINES = 12  # FLORES dev lines x 4 eval directions = 48 held-out pairs score each checkpoint


def quickstart_recipe(out: Path, model: str = "gemma3-270m", steps: int = STEPS, eval_sentences: int = EVAL_SENTENCES,
                      flores_lines: int | None = None, max_new_tokens: int = 96, news_lines: int = NEWS_LINES) -> Recipe:
    """`flores_lines` None: every FLORES dev line but the held-out selection lines (more distinct
    lines, not more steps: with 400 lines the dev score peaked after one epoch and then fell)."""
    news = [DataSource(name, limit=news_lines) for name in NEWSTEST] if news_lines else []
    return Recipe(
        name="quickstart",
        out=str(out),
        model=model,
        data=DataSection(sources=[DataSource("sample", "dev", LANGS),
                                  DataSource("flores", "dev", LANGS, limit=flores_lines), *news], seed=7),
        train={"method": "lora", "max_steps": steps, "batch_size": 4, "max_len": 384, "lr": 5e-4,
               "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "save_steps": max(steps // 4, 1), "save_total_limit": 2,
               "warmup_ratio": 0.05},
        select=SelectSection(lines=SELECT_LINES, max_new_tokens=64),
        eval=SuiteConfig(corpus="sample", split="devtest", limit=eval_sentences, max_new_tokens=max_new_tokens,
                         sessions_per_direction=6),
    )


def run_quickstart(out: Path, model: str = "gemma3-270m", steps: int = STEPS, eval_sentences: int = EVAL_SENTENCES,
                   flores_lines: int | None = None, force: bool = False, max_new_tokens: int = 96,
                   news_lines: int = NEWS_LINES) -> dict:
    console = Console()
    recipe = quickstart_recipe(out, model, steps, eval_sentences, flores_lines, max_new_tokens, news_lines)
    run = run_recipe(recipe, force=force)
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))

    table = Table(title=f"BayLing quickstart: {model}, base (few-shot) vs tuned (LoRA, {steps} steps)")
    table.add_column("metric")
    systems = [s for s in ("base", "tuned") if s in results]
    for s in systems:
        table.add_column(s, justify="right")
    for key, label in (("chrf", "chrF"), ("bleu", "BLEU"), ("off_target_rate", "off-target rate"),
                       ("constraint_inclusion", "constraint inclusion (2nd turn)"),
                       ("refinement_on_target", "2nd turn in target language")):
        table.add_row(label, *[_fmt(results[s].get(key)) for s in systems])
    console.print(table)
    paired = results.get("paired_chrf")
    if paired and "tuned" in paired["systems"]:
        t = paired["systems"]["tuned"]
        console.print(f"chrF pooled over {paired['sentences']} held-out sentences: base {paired['baseline']:.1f}, "
                      f"tuned {t['system']:.1f} ({t['delta']:+.1f}; paired bootstrap p = {t['p_value']:.3f}"
                      f"{', significant' if t['significant'] else ', not significant'})")
    ex = results.get("tuned", results[systems[0]])["examples"][:3]
    for e in ex:
        console.print(f"[dim]{e['direction']}[/] {e['src']}\n  → {e['hyp']}\n  [dim]ref: {e['ref']}[/]")
    timings = run["timings"]
    console.print("time per stage: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    console.print(f"results: {out / 'results.json'}, report: {out / 'report.html'} and {out / 'report.md'}, "
                  f"plot: {out / 'results.png'}")
    console.print(
        f"\nChat with the tuned model:   bayling chat --model {out / 'model'}\n"
        f"Translate a file:            bayling translate input.txt -s en -t zh --model {out / 'model'} -o out.txt\n"
        f"Serve it (API + web page):   bayling serve --model {out / 'model'} --port 8765\n"
        "Gemma is provided under and subject to the Gemma Terms of Use (ai.google.dev/gemma/terms)."
    )
    return results


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if abs(v) <= 1 else f"{v:.1f}"
