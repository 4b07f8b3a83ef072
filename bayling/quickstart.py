"""`bayling quickstart`: the whole BayLing recipe, offline, on this CPU, in well under 30 minutes.

The recipe is recipes/quickstart.yaml (bayling/assets/quickstart.yaml, so an installed package has it
too); the command's options override its values. data (draft-then-refine translation conversations
from the shipped sample, plus FLORES-200 dev when ../shared/data is beside the checkout; its last
lines held out to select the checkpoint) -> LoRA on the embedded Gemma 3 270M base (bf16 on CPUs
that have it) -> base (few-shot), tuned and the shipped bayling-mini on the shipped sample's
held-out devtest -> results.json (with a paired bootstrap against the base), report.md/.html, a plot,
and a table on screen.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bayling.recipe import Recipe, run_recipe

__all__ = ["quickstart_lines", "quickstart_recipe", "quickstart_table", "run_quickstart"]

RECIPE = ("assets", "quickstart.yaml")  # in the package; recipes/quickstart.yaml links to it
SHIPPED = "bayling-mini"  # the shipped model, scored beside the base and the user's own tuned model
METRICS = (("chrf", "chrF"), ("bleu", "BLEU"), ("off_target_rate", "off-target rate"),
           ("constraint_inclusion", "constraint inclusion (2nd turn)"),
           ("refinement_on_target", "2nd turn in target language"))


def quickstart_recipe(out: Path | None = None, model: str | None = None, steps: int | None = None,
                      eval_sentences: int | None = None, flores_lines: int | None = None,
                      max_new_tokens: int | None = None, news_lines: int | None = None) -> Recipe:
    """recipes/quickstart.yaml with the given options in place of its values (None: the recipe's).
    `steps` also sets the save interval (4 checkpoints to select from); `news_lines` 0 drops newstest."""
    from importlib.resources import files

    from bayling.train.trainer import read_recipe_yaml

    doc = read_recipe_yaml(Path(str(files("bayling").joinpath(*RECIPE))))
    if out is not None:
        doc["out"] = str(out)
    if model is not None:
        doc["model"] = model
    if steps is not None:
        doc["train"] = {**doc["train"], "max_steps": steps, "save_steps": max(steps // 4, 1)}
    doc["eval"] = {**doc["eval"], **({"limit": eval_sentences} if eval_sentences is not None else {}),
                   **({"max_new_tokens": max_new_tokens} if max_new_tokens is not None else {})}
    sources = []
    for src in doc["data"]["sources"]:
        src = {"corpus": src} if isinstance(src, str) else src
        if src["corpus"] == "flores" and flores_lines is not None:
            src = {**src, "limit": flores_lines}
        if src["corpus"].startswith("newstest") and news_lines is not None:
            if news_lines == 0:
                continue
            src = {**src, "limit": news_lines}
        sources.append(src)
    doc["data"] = {**doc["data"], "sources": sources}
    return Recipe.from_dict(doc)


def _label(system: str, steps: int) -> str:
    return {"base": "base (3-shot)", "tuned": f"tuned ({steps} LoRA steps)", SHIPPED: f"{SHIPPED} (shipped)"}.get(system, system)


def quickstart_table(results: dict, model: str, steps: int) -> Table:
    """The quickstart's table: the base, the user's tuned model and the shipped bayling-mini, same sentences."""
    systems = [s for s in ("base", "tuned", SHIPPED) if s in results]
    table = Table(title=f"BayLing quickstart on {model}: every column scored on the same held-out sentences")
    table.add_column("metric")
    for s in systems:
        table.add_column(_label(s, steps), justify="right")
    for key, label in METRICS:
        table.add_row(label, *[_fmt(results[s].get(key)) for s in systems])
    return table


def quickstart_lines(results: dict, steps: int) -> list[str]:
    """What the table means: pooled chrF against the base (paired bootstrap) for each system."""
    paired = results.get("paired_chrf")
    if not paired or not paired.get("systems"):
        return []
    parts = [f"base {paired['baseline']:.1f}"]
    for name, t in paired["systems"].items():
        parts.append(f"{_label(name, steps)} {t['system']:.1f} ({t['delta']:+.1f}, p = {t['p_value']:.3f}"
                     f"{', significant' if t['significant'] else ', not significant'})")
    lines = [f"chrF pooled over {paired['sentences']} held-out sentences (paired bootstrap against the base): "
             + "; ".join(parts)]
    if SHIPPED in paired["systems"]:
        lines.append(f"Your tuned model is what {steps} CPU training steps buy; {SHIPPED} is what the full recipe "
                     "reaches (recipes/bayling-mini.yaml: `bayling recipe run recipes/bayling-mini.yaml --dry-run`).")
    return lines


def run_quickstart(out: Path | None = None, model: str | None = None, steps: int | None = None,
                   eval_sentences: int | None = None, flores_lines: int | None = None, force: bool = False,
                   max_new_tokens: int | None = None, news_lines: int | None = None) -> dict:
    console = Console()
    recipe = quickstart_recipe(out, model, steps, eval_sentences, flores_lines, max_new_tokens, news_lines)
    out = Path(recipe.out)
    run = run_recipe(recipe, force=force)
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    steps = recipe.train.max_steps
    console.print(quickstart_table(results, recipe.model, steps))
    for line in quickstart_lines(results, steps):
        console.print(line)
    shown = [s for s in ("tuned", SHIPPED) if s in results]
    for i, e in enumerate(results[shown[0]]["examples"][:3] if shown else []):
        console.print(f"[dim]{e['direction']}[/] {e['src']}")
        for s in shown:
            console.print(f"  {s}: {results[s]['examples'][i]['hyp']}")
        console.print(f"  [dim]ref: {e['ref']}[/]")
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
