"""English retention and knowledge: a fixed battery scored by log-likelihood with `eval mc`'s scorer.

Tasks (TASKS): ARC-Easy, ARC-Challenge, PIQA, WinoGrande, BoolQ (and OpenBookQA, COPA, SIQA,
CommonsenseQA) from llm-foundry's copies in <data>/knowledge; XCOPA, one row per language, from
<data>/xcopa/data; CMMLU, one row pooling the chosen subjects, from <data>/cmmlu/data. Every row
scores the first `limit` items of its file (XCOPA: per language, CMMLU: per subject), the same for
every system; with shots, the examples are the file's last K items, which are then never scored.
Prompts are lm-evaluation-harness's zero-shot templates (multiple_choice.FOUNDRY_PROMPTS; XCOPA with
its connectors; CMMLU lettered, " A".." D" scored), examples joined by a blank line as lm-eval does.

Per row: accuracy (the option with the highest summed log-probability), accuracy_norm (lm-eval's
acc_norm: log-probability divided by the option's length in characters), n, chance (mean of
1/options) and shots. `compare` tests two systems on the same items (McNemar's exact test, both
metrics); `calibration` sets the base's numbers beside Google's published Gemma 3 270M figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayling.eval.common import EvalError, mean
from bayling.eval.multiple_choice import (MCQuestion, evaluate_mc, mcnemar, read_cmmlu, read_foundry, read_xcopa,
                                          with_shots)

__all__ = ["CARD_SHOTS", "CARD_URL", "DEFAULT_TASKS", "GEMMA3_270M", "KnowledgeConfig", "TASKS", "calibration",
           "compare", "report_markdown", "run", "table"]

# name -> (layout, English label). Foundry tasks read <data>/knowledge/<name>.jsonl.
TASKS = {
    "arc_easy": ("foundry", "ARC-Easy"),
    "arc_challenge": ("foundry", "ARC-Challenge"),
    "piqa": ("foundry", "PIQA"),
    "winogrande": ("foundry", "WinoGrande"),
    "boolq": ("foundry", "BoolQ"),
    "openbook_qa": ("foundry", "OpenBookQA"),
    "copa": ("foundry", "COPA"),
    "siqa": ("foundry", "SIQA"),
    "commonsense_qa": ("foundry", "CommonsenseQA"),
    "xcopa": ("xcopa", "XCOPA"),
    "cmmlu": ("cmmlu", "CMMLU"),
}
DEFAULT_TASKS = ["arc_easy", "arc_challenge", "piqa", "winogrande", "boolq", "xcopa", "cmmlu"]
ENGLISH = {name for name, (layout, _) in TASKS.items() if layout == "foundry"}

# Google's Gemma 3 model card, section "Gemma 3 270M": (score %, shots) per benchmark, for the
# pretrained (pt) and instruction-tuned (it) 270M. The card states no prompt templates, no acc vs
# acc_norm, and was measured on the released bf16 weights over the full sets.
CARD_URL = "https://ai.google.dev/gemma/docs/core/model_card_3"
GEMMA3_270M = {
    "pt": {"hellaswag": (40.9, 10), "boolq": (61.4, 0), "piqa": (67.7, 0), "triviaqa": (15.4, 5),
           "arc_challenge": (29.0, 25), "arc_easy": (57.7, 0), "winogrande": (52.0, 5)},
    "it": {"hellaswag": (37.7, 0), "piqa": (66.2, 0), "arc_challenge": (28.2, 0), "winogrande": (52.3, 0),
           "bbh": (26.7, None), "ifeval": (51.2, 0)},  # BIG-Bench Hard: "few-shot", count not given
}
CARD_SHOTS = {k: shots for k, (_, shots) in GEMMA3_270M["pt"].items() if k in TASKS}
# Names under which the Gemma 3 270M base is run here: the embedded GGUF and the hub's release.
BASE_NAMES = {"gemma3-270m": "Q4_K_M GGUF, dequantized", "google/gemma-3-270m": "bf16 release"}


@dataclass
class KnowledgeConfig:
    """The battery: which tasks, how many items of each and how many worked examples before each."""

    __pydantic_config__ = {"extra": "forbid"}  # bayling.config.parse_section: an unknown key is an error
    tasks: list[str] = field(default_factory=lambda: list(DEFAULT_TASKS))
    limit: int = 200  # first N items of each task (XCOPA: of each language; CMMLU: of each subject)
    xcopa_langs: list[str] = field(default_factory=lambda: ["zh", "id", "it", "sw"])
    cmmlu_subjects: list[str] = field(default_factory=lambda: ["chinese_history", "elementary_commonsense",
                                                               "high_school_geography", "world_history"])
    shots: int | dict[str, int] = 0  # examples before each item: one number, or per task ({arc_challenge: 25})
    data: str | None = None  # folder holding knowledge/, xcopa/, cmmlu/ (default: ../shared/data)
    batch_size: int = 16
    progress: bool = True


def _root(cfg: KnowledgeConfig) -> Path:
    from bayling.resources import shared_data_dir

    root = Path(cfg.data) if cfg.data else shared_data_dir()
    if root is None or not root.is_dir():
        raise EvalError(f"knowledge data folder {cfg.data or '../shared/data'}: not found (set data: to a folder "
                        "with knowledge/, xcopa/data, cmmlu/data)")
    return root


def _shots(cfg: KnowledgeConfig, task: str) -> int:
    n = cfg.shots.get(task, 0) if isinstance(cfg.shots, dict) else cfg.shots
    if n < 0:
        raise EvalError(f"shots for {task}: {n} (should be >= 0)")
    return n


def _slice(items: list[MCQuestion], limit: int, shots: int, where: str) -> list[MCQuestion]:
    """The first `limit` items, each after the file's last `shots` items (never scored themselves)."""
    if shots >= len(items):
        raise EvalError(f"{where}: {len(items)} items, too few for {shots} examples and any left to score")
    examples = items[len(items) - shots:] if shots else []
    return [with_shots(q, examples) for q in items[: min(limit, len(items) - shots)]]


def load_battery(cfg: KnowledgeConfig) -> dict[str, list[MCQuestion]]:
    """Row name -> its questions (with their examples), in the config's task order."""
    unknown = [t for t in cfg.tasks if t not in TASKS]
    if unknown:
        raise EvalError(f"unknown knowledge task(s) {', '.join(unknown)}: choose from {', '.join(TASKS)}")
    if cfg.limit < 1:
        raise EvalError(f"limit {cfg.limit}: score at least one item per task")
    root = _root(cfg)
    rows: dict[str, list[MCQuestion]] = {}
    for task in cfg.tasks:
        layout = TASKS[task][0]
        k = _shots(cfg, task)
        if layout == "foundry":
            path = root / "knowledge" / f"{task}.jsonl"
            rows[task] = _slice(read_foundry(_exists(path)), cfg.limit, k, str(path))
        elif layout == "xcopa":
            for lang in cfg.xcopa_langs:
                path = root / "xcopa" / "data" / lang / f"test.{lang}.jsonl"
                rows[f"xcopa-{lang}"] = _slice(read_xcopa(_exists(path)), cfg.limit, k, str(path))
        else:
            items = []
            for subject in cfg.cmmlu_subjects:
                path = root / "cmmlu" / "data" / "test" / f"{subject}.csv"
                items += _slice(read_cmmlu(_exists(path)), cfg.limit, k, str(path))
            rows["cmmlu"] = items
    return rows


def _exists(path: Path) -> Path:
    if not path.is_file():
        raise EvalError(f"{path}: no such file")
    return path


def run(engine: Any, config: KnowledgeConfig) -> dict[str, Any]:
    """Accuracy and length-normalised accuracy per row of the battery; every item's outcome is kept
    (`items`) so two systems can be compared item by item."""
    rows = load_battery(config)
    questions = [q for qs in rows.values() for q in qs]
    scored = evaluate_mc(questions, engine, method="loglik", batch_size=config.batch_size,
                         progress=config.progress)["predictions"]
    breakdown: dict[str, dict[str, Any]] = {}
    items: dict[str, dict[str, list]] = {}
    start = 0
    for name, qs in rows.items():
        preds = scored[start : start + len(qs)]
        start += len(qs)
        task = name.partition("-")[0]
        breakdown[name] = {"accuracy": mean(p["correct"] for p in preds),
                           "accuracy_norm": mean(p["correct_norm"] for p in preds),
                           "n": len(qs), "chance": mean(1 / len(q.options) for q in qs),
                           "shots": _shots(config, task), "language": qs[0].language if qs else None}
        items[name] = {"ids": [q.id for q in qs], "correct": [p["correct"] for p in preds],
                       "correct_norm": [p["correct_norm"] for p in preds]}
    english = [r for name, r in breakdown.items() if name in ENGLISH]
    shots = config.shots if isinstance(config.shots, int) else dict(sorted(config.shots.items()))
    return {
        "task": "knowledge",
        "english_accuracy": mean(r["accuracy"] for r in english),
        "english_accuracy_norm": mean(r["accuracy_norm"] for r in english),
        "macro_accuracy": mean(r["accuracy"] for r in breakdown.values()),
        "macro_accuracy_norm": mean(r["accuracy_norm"] for r in breakdown.values()),
        "n": len(questions),
        "breakdown": {"task": breakdown},
        "signature": _signature(config, shots),
        "items": items,
    }


def _signature(cfg: KnowledgeConfig, shots: Any) -> str:
    from bayling import __version__

    shot = shots if isinstance(shots, int) else ",".join(f"{k}={v}" for k, v in shots.items())
    return (f"knowledge|tasks:{','.join(cfg.tasks)}|first:{cfg.limit}|shots:{shot}|prompt:lm-eval-templates"
            f"|norm:chars|xcopa:{','.join(cfg.xcopa_langs)}|cmmlu:{len(cfg.cmmlu_subjects)}|version:{__version__}")


def compare(base: dict[str, Any], system: dict[str, Any]) -> dict[str, Any]:
    """McNemar's exact test per row, for accuracy and accuracy_norm, on the items both scored; rows
    whose items differ are refused. `regressions`: English rows significantly below the base."""
    rows: dict[str, Any] = {}
    for name, a in base.get("items", {}).items():
        b = system.get("items", {}).get(name)
        if b is None:
            continue
        if a["ids"] != b["ids"]:
            raise EvalError(f"knowledge row {name}: the two results scored different items "
                            f"({len(a['ids'])} and {len(b['ids'])}); run both with the same settings")
        rows[name] = {m: mcnemar(a[key], b[key]) for m, key in (("accuracy", "correct"), ("accuracy_norm", "correct_norm"))}
    if not rows:
        raise EvalError("the two knowledge results share no rows to compare")
    regressions = [name for name, r in rows.items() if name in ENGLISH
                   and any(t["significant"] and t["delta"] < 0 for t in r.values())]
    return {"test": "McNemar exact (two-sided), per row", "rows": rows, "regressions": regressions}


def calibration(result: dict[str, Any], model: str | None = None, variant: str = "pt") -> list[dict[str, Any]]:
    """The measured rows beside the Gemma 3 270M model card's, with what differs (shots, items,
    normalisation, weights) and whether the card's figure lies in the 95% (Wilson) interval of
    the measured accuracy or length-normalised accuracy."""
    card = GEMMA3_270M[variant]
    rows = []
    for name, r in result.get("breakdown", {}).get("task", {}).items():
        if name not in card:
            continue
        published, card_shots = card[name]
        n, acc, norm = r["n"], r["accuracy"], r["accuracy_norm"]
        intervals = [_wilson(x, n) for x in (acc, norm)]
        differs = []
        if r["shots"] != card_shots:
            differs.append(f"{card_shots}-shot on the card, {r['shots']}-shot here")
        differs.append(f"first {n} items here, the full set on the card")
        differs.append("card: acc or acc_norm not stated")
        if model in BASE_NAMES:
            differs.append(f"weights: {BASE_NAMES[model]}")
        rows.append({"task": name, "published": published, "published_shots": card_shots, "accuracy": 100 * acc,
                     "accuracy_norm": 100 * norm, "ci95": [round(100 * x, 1) for x in intervals[0]], "n": n,
                     "shots": r["shots"], "within_ci": any(lo <= published / 100 <= hi for lo, hi in intervals),
                     "differs": "; ".join(differs)})
    return rows


def _wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's 95% interval for a proportion p of n (sensible at 0, 1 and small n, unlike p ± 1.96 SE)."""
    if not n:
        return 0.0, 1.0
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def table(result: dict[str, Any], comparison: dict[str, Any] | None = None, calibrate: list[dict] | None = None):
    """A rich table of the rows (with the paired test when given) and one of the calibration."""
    from rich.table import Table

    t = Table(title=f"knowledge ({result['n']} items)")
    cols = ["task", "n", "shots", "chance", "acc", "acc_norm"]
    if comparison:
        cols += ["base acc", "Δ acc", "p", "base norm", "Δ norm", "p norm"]
    for c in cols:
        t.add_column(c, justify="left" if c == "task" else "right")
    for name, r in result["breakdown"]["task"].items():
        row = [name, str(r["n"]), str(r["shots"]), _pct(r["chance"]), _pct(r["accuracy"]), _pct(r["accuracy_norm"])]
        if comparison:
            c = comparison["rows"].get(name)
            row += [x for m in ("accuracy", "accuracy_norm") for x in _paired(c[m] if c else None)]
        t.add_row(*row)
    tables = [t]
    if calibrate:
        c = Table(title=f"beside Google's Gemma 3 270M (pt) model card ({CARD_URL})")
        for col in ("task", "card", "card shots", "acc", "acc_norm", "acc 95% CI", "shots", "in a CI", "what differs"):
            c.add_column(col, justify="left" if col in ("task", "what differs") else "right")
        for r in calibrate:
            c.add_row(r["task"], f"{r['published']:.1f}", str(r["published_shots"]), f"{r['accuracy']:.1f}",
                      f"{r['accuracy_norm']:.1f}", "{:.1f}–{:.1f}".format(*r["ci95"]), str(r["shots"]),
                      "yes" if r["within_ci"] else "no",
                      r["differs"])
        tables.append(c)
    return tables


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _paired(t: dict | None) -> list[str]:
    if t is None:
        return ["–", "–", "–"]
    mark = "*" if t["significant"] else ""
    return [_pct(t["baseline"]), f"{100 * t['delta']:+.1f}{mark}", f"{t['p_value']:.3f}"]


def report_markdown(systems: dict[str, dict[str, Any]], base_model: str | None = None) -> str:
    """Markdown for a recipe report: every system's rows side by side, McNemar p against the first
    system, and (when the first is the Gemma 3 270M base) the model card's figures."""
    names = list(systems)
    base = systems[names[0]]
    tests = {n: compare(base, systems[n]) for n in names[1:]}
    header = ["task", "n", "chance", *[f"{n} acc / norm" for n in names], *[f"p ({n})" for n in names[1:]]]
    lines = ["## Knowledge (log-likelihood)", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row, r in base["breakdown"]["task"].items():
        cells = [row, str(r["n"]), _pct(r["chance"])]
        for n in names:
            s = systems[n]["breakdown"]["task"].get(row, {})
            cells.append(f"{_pct(s.get('accuracy'))} / {_pct(s.get('accuracy_norm'))}")
        for n in names[1:]:
            c = tests[n]["rows"].get(row)
            cells.append("–" if c is None else f"{c['accuracy']['p_value']:.3f} / {c['accuracy_norm']['p_value']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"McNemar's exact test against {names[0]} on the same items (acc / acc_norm). `{base['signature']}`"]
    for n in names[1:]:
        if tests[n]["regressions"]:
            lines.append(f"**{n} is significantly below {names[0]} (p < 0.05) on: {', '.join(tests[n]['regressions'])}.**")
    cal = calibration(base, base_model) if base_model in BASE_NAMES else []
    if cal:
        lines += ["", f"Beside Google's published Gemma 3 270M (pt) figures ({CARD_URL}):", "",
                  "| task | card | measured acc / norm (acc 95% CI) | in a CI | what differs |", "|---|---|---|---|---|"]
        for c in cal:
            lines.append(f"| {c['task']} | {c['published']:.1f} ({c['published_shots']}-shot) | "
                         f"{c['accuracy']:.1f} / {c['accuracy_norm']:.1f} ({c['ci95'][0]:.1f}–{c['ci95'][1]:.1f}) | "
                         f"{'yes' if c['within_ci'] else 'no'} | {c['differs']} |")
    return "\n".join(lines) + "\n"
