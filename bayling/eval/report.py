"""Reports from eval results: JSON as written by the tasks, a markdown table, an HTML page with plots.

Every task's result is a dict with headline numbers at the top level and, where it has groups,
`breakdown: {dimension: {group: {metric: value}}}` (per language, direction, subject, category,
turn kind...). That shared shape is all the report reads, so one renderer serves every task:
one run gives its tables and per-group bars; two or more runs give side-by-side columns and
bars, plus an after - before delta (the first run is "before").
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any, Sequence

from bayling.eval.common import EvalError
from bayling.io import atomic_path, atomic_write_json, atomic_write_text

__all__ = ["compare_systems", "load_results", "plot_recipe_results", "summary_of", "to_html", "to_markdown",
           "write_report"]

# Shown first, in this order; other numbers follow alphabetically.
PRIMARY = (
    "bleu", "chrf", "chrf++", "ter", "comet", "off_target_rate", "inclusion_rate", "term_inclusion_rate",
    "sentence_inclusion_rate", "accuracy", "accuracy_norm", "accuracy_generate", "macro_accuracy", "score",
    "win_rate", "win_rate_adjusted", "loss_rate", "tie_rate", "on_target_rate", "constraint_ok_rate", "constraints_kept_rate", "length_ok_rate", "changed_rate",
)
LOWER_IS_BETTER = {"ter", "off_target_rate", "loss_rate"}
_COUNTS = {"n", "nrefs", "judged", "unjudged", "off_target", "terms", "wins", "losses", "ties", "turns", "sessions",
           "unparsed", "failed", "retried", "inconsistent", "macro_average_over", "refinement_sessions"}

Run = tuple[str, dict[str, Any]]


def load_results(paths: Sequence[str], names: Sequence[str] | None = None) -> list[Run]:
    """(name, result) per JSON file; names default to the file stems."""
    if names and len(names) != len(paths):
        raise EvalError(f"{len(paths)} result files but {len(names)} names")
    runs = []
    for i, p in enumerate(paths):
        path = Path(p)
        if not path.is_file():
            raise EvalError(f"{path}: no such file")
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise EvalError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
        if not isinstance(result, dict):
            raise EvalError(f"{path}: expected a JSON object of results")
        runs.append((names[i] if names else path.stem, result))
    return runs


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _order(keys: Sequence[str]) -> list[str]:
    keys = list(dict.fromkeys(keys))
    return [k for k in PRIMARY if k in keys] + sorted(k for k in keys if k not in PRIMARY)


def summary_of(result: dict[str, Any], counts: bool = True) -> dict[str, float]:
    """The headline numbers of a result (top-level numbers), primary metrics first."""
    nums = {k: v for k, v in result.items() if _is_num(v) and (counts or k not in _COUNTS)}
    return {k: nums[k] for k in _order(list(nums))}


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.2f}" if abs(v) >= 10 else f"{v:.3f}"
    return str(v)


def _tables(runs: Sequence[Run]) -> list[tuple[str, list[str], list[list[Any]]]]:
    """(title, header, rows) for the summary and every breakdown, runs side by side."""
    names = [n for n, _ in runs]
    tables = []
    sums = [summary_of(r) for _, r in runs]
    metrics = _order([k for s in sums for k in s])
    if len(runs) == 1:
        tables.append(("Summary", ["metric", "value"], [[m, sums[0].get(m)] for m in metrics]))
    else:
        header = ["metric", *names, f"Δ ({names[-1]} − {names[0]})"]
        rows = [[m, *[s.get(m) for s in sums], _delta(sums[0].get(m), sums[-1].get(m))] for m in metrics]
        tables.append(("Summary", header, rows))
    dims = list(dict.fromkeys(d for _, r in runs for d in (r.get("breakdown") or {})))
    for dim in dims:
        parts = [(r.get("breakdown") or {}).get(dim, {}) for _, r in runs]
        groups = list(dict.fromkeys(g for p in parts for g in p))
        dmetrics = _order([m for p in parts for row in p.values() for m, v in row.items() if _is_num(v)])
        if len(runs) == 1:
            rows = [[g, *[parts[0].get(g, {}).get(m) for m in dmetrics]] for g in groups]
            tables.append((f"By {dim}", [dim, *dmetrics], rows))
            continue
        shown = [m for m in dmetrics if m not in _COUNTS][:3] or dmetrics[:1]
        for m in shown:
            rows = [[g, *[p.get(g, {}).get(m) for p in parts],
                     _delta(parts[0].get(g, {}).get(m), parts[-1].get(g, {}).get(m))] for g in groups]
            tables.append((f"{m} by {dim}", [dim, *names, "Δ"], rows))
    return tables


def _delta(a: Any, b: Any) -> float | None:
    return b - a if _is_num(a) and _is_num(b) else None


def to_markdown(runs: Sequence[Run], title: str = "BayLing eval") -> str:
    out = [f"# {title}", ""]
    for name, r in runs:
        task = r.get("task", "?")
        notes = r.get("notes") or []
        sig = r.get("signatures")
        out.append(f"- **{name}**: task {task}" + (f"; signatures: {', '.join(f'{k}: `{v}`' for k, v in sig.items())}" if sig else ""))
        out += [f"  - note: {n}" for n in notes]
    out.append("")
    for title_, header, rows in _tables(runs):
        out += [f"## {title_}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
        out.append("")
    return "\n".join(out)


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(runs: Sequence[Run], max_per_dim: int = 2) -> list[tuple[str, str]]:
    """(caption, base64 PNG): per-group bars for each breakdown, runs side by side, and the delta."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, _ in runs]
    figs = []
    dims = list(dict.fromkeys(d for _, r in runs for d in (r.get("breakdown") or {})))
    for dim in dims:
        parts = [(r.get("breakdown") or {}).get(dim, {}) for _, r in runs]
        groups = list(dict.fromkeys(g for p in parts for g in p))
        metrics = [m for m in _order([m for p in parts for row in p.values() for m, v in row.items() if _is_num(v)])
                   if m not in _COUNTS][:max_per_dim]
        for m in metrics:
            width = max(6.0, 0.5 * len(groups) * max(1, len(runs)) + 2)
            fig, ax = plt.subplots(figsize=(min(width, 24), 3.6))
            w = 0.8 / len(runs)
            for k, p in enumerate(parts):
                vals = [p.get(g, {}).get(m) for g in groups]
                xs = [i + k * w - 0.4 + w / 2 for i in range(len(groups))]
                ax.bar(xs, [v if _is_num(v) else 0 for v in vals], width=w, label=names[k])
            ax.set_xticks(range(len(groups)))
            ax.set_xticklabels(groups, rotation=45 if len(groups) > 6 else 0, ha="right" if len(groups) > 6 else "center")
            ax.set_ylabel(m)
            ax.set_title(f"{m} by {dim}" + (" (lower is better)" if m in LOWER_IS_BETTER else ""))
            if len(runs) > 1:
                ax.legend()
            figs.append((f"{m} by {dim}", _png(fig)))
            if len(runs) >= 2:
                before, after = parts[0], parts[-1]
                deltas = [_delta(before.get(g, {}).get(m), after.get(g, {}).get(m)) for g in groups]
                fig, ax = plt.subplots(figsize=(min(width, 24), 3.0))
                good = [(d or 0) * (-1 if m in LOWER_IS_BETTER else 1) >= 0 for d in deltas]
                ax.bar(range(len(groups)), [d or 0 for d in deltas], color=["tab:green" if g else "tab:red" for g in good])
                ax.axhline(0, color="black", linewidth=0.8)
                ax.set_xticks(range(len(groups)))
                ax.set_xticklabels(groups, rotation=45 if len(groups) > 6 else 0, ha="right" if len(groups) > 6 else "center")
                ax.set_title(f"{m} by {dim}: {names[0]} → {names[-1]} (green = better)")
                figs.append((f"{m} by {dim}: before → after", _png(fig)))
    return figs


def to_html(runs: Sequence[Run], title: str = "BayLing eval") -> str:
    """A self-contained page: the markdown's tables as HTML and the plots embedded as PNG data."""
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>"
             "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
             "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;"
             "text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f4f4f4}"
             "img{max-width:100%;display:block;margin:0.5em 0 1.5em}code{font-size:85%}</style></head><body>",
             f"<h1>{e(title)}</h1><ul>"]
    for name, r in runs:
        sig = r.get("signatures") or {}
        parts.append(f"<li><b>{e(name)}</b>: task {e(str(r.get('task', '?')))}"
                     + "".join(f"<br><code>{e(k)}: {e(v)}</code>" for k, v in sig.items())
                     + "".join(f"<br><i>note: {e(n)}</i>" for n in r.get("notes") or []) + "</li>")
    parts.append("</ul>")
    for title_, header, rows in _tables(runs):
        parts.append(f"<h2>{e(title_)}</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows]
        parts.append("</table>")
    plots = _plots(runs)
    if plots:
        parts.append("<h2>Plots</h2>")
        parts += [f"<h3>{e(cap)}</h3><img alt='{e(cap)}' src='data:image/png;base64,{data}'>" for cap, data in plots]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(runs: Sequence[Run], *, html_path: str | None = None, markdown_path: str | None = None,
                 title: str = "BayLing eval") -> str:
    """Write the requested files; return the markdown."""
    md = to_markdown(runs, title)
    if markdown_path:
        Path(markdown_path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(markdown_path, md + "\n")
    if html_path:
        Path(html_path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(html_path, to_html(runs, title))
    return md


# --- recipe runs ------------------------------------------------------------------------------

def plot_recipe_results(results: dict, path: Path, model: str, model_dir: Path) -> None:
    """A recipe run's picture: chrF per direction, the rates, and the checkpoint-selection curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayling.train.select import read_curve

    systems = list(results)
    dirs = list(next(iter(results.values()))["breakdown"]["direction"])
    curve = read_curve(model_dir)
    fig, axes = plt.subplots(1, 3 if curve else 2, figsize=(16 if curve else 11, 3.8))
    if curve:  # checkpoint selection on held-out dev: which step became the model
        steps, chrf = [p["step"] for p in curve], [p["chrf"] for p in curve]
        best = max(curve, key=lambda p: (p["chrf"], -p["step"]))
        axes[2].plot(steps, chrf, marker="o")
        axes[2].scatter([best["step"]], [best["chrf"]], s=120, facecolors="none", edgecolors="red", label="kept")
        axes[2].set_xlabel("training step")
        axes[2].set_ylabel("chrF (held-out dev slice)")
        axes[2].set_title(f"checkpoint selection ({best['n']} dev pairs)")
        axes[2].legend()
    width = 0.8 / len(systems)
    for i, s in enumerate(systems):
        vals = [results[s]["breakdown"]["direction"][d]["chrf"] for d in dirs]
        axes[0].bar([x + i * width for x in range(len(dirs))], vals, width, label=s)
    axes[0].set_xticks([x + width * (len(systems) - 1) / 2 for x in range(len(dirs))])
    axes[0].set_xticklabels([d.replace("_Latn", "").replace("_Hans", "") for d in dirs], rotation=20)
    axes[0].set_ylabel("chrF")
    axes[0].set_title("chrF per direction (held-out)")
    axes[0].legend()
    metrics = ["off_target_rate", "constraint_inclusion", "refinement_on_target"]
    for i, s in enumerate(systems):
        axes[1].bar([x + i * width for x in range(len(metrics))], [results[s].get(m) or 0 for m in metrics],
                    width, label=s)
    axes[1].set_xticks([x + width * (len(systems) - 1) / 2 for x in range(len(metrics))])
    axes[1].set_xticklabels(["off-target", "constraint incl.", "refine on-target"])
    axes[1].set_ylim(0, 1)
    axes[1].set_title("rates")
    fig.suptitle(f"{model}: " + " vs ".join(systems))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _eval_set_name(eval_set: dict | None) -> str | None:
    """How a plot names the sentences a run was scored on (a recipe's results.json `eval_set`)."""
    if not eval_set or not eval_set.get("corpus"):
        return None
    corpus = {"flores": "FLORES-200"}.get(str(eval_set["corpus"]), str(eval_set["corpus"]))
    return f"{corpus} {eval_set['split']}" if eval_set.get("split") else corpus


def compare_systems(systems: list[tuple[str, str, str]], out: str | Path) -> str:
    """Side-by-side table and plot of systems from several recipe runs: (label, run dir, system name).

    Writes OUT.md, OUT.png and OUT.json; returns the markdown.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayling.eval.suite import paired_chrf, summary

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    loaded, sets = {}, set()
    for label, run, system in systems:
        path = Path(run) / "results.json"
        if not path.is_file():
            raise EvalError(f"{path}: no results (run the recipe first)")
        res = json.loads(path.read_text(encoding="utf-8"))
        if system not in res:
            raise EvalError(f"{path}: no system {system!r} (has: {', '.join(k for k in res if isinstance(res[k], dict) and 'chrf' in res[k])})")
        loaded[label] = res[system]
        sets.add(_eval_set_name(res.get("eval_set")))
    labels = list(loaded)
    dirs = list(next(iter(loaded.values()))["breakdown"]["direction"])
    lines = ["| direction | " + " | ".join(f"{l} chrF / BLEU / off-target" for l in labels) + " |",
             "|---|" + "---|" * len(labels)]

    def cell(d: dict) -> str:
        ot = d.get("off_target_rate")
        return f"{d['chrf']:.1f} / {d['bleu']:.1f} / {'-' if ot is None else f'{ot:.2f}'}"

    for d in dirs:
        lines.append(f"| {d} | " + " | ".join(cell(loaded[l]["breakdown"]["direction"].get(d, {})) for l in labels) + " |")
    lines.append("| **mean** | " + " | ".join(cell(loaded[l]) for l in labels) + " |")
    lines += ["", "| | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for key, name in (("off_target_rate", "off-target (mean over directions)"),
                      ("max_new_tokens_rate", "ran to max_new_tokens"),
                      ("source_copy_rate", "copied the source"),
                      ("constraint_inclusion", "constraint inclusion (2nd turn)"),
                      ("refinement_on_target", "2nd turn in the target language"),
                      ("refinement_changed", "2nd turn changed the translation")):
        vals = [loaded[l].get(key) for l in labels]
        lines.append(f"| {name} | " + " | ".join("-" if v is None else f"{v:.2f}" for v in vals) + " |")
    if any("constraint_inclusion" in d for r in loaded.values() for d in r["breakdown"]["direction"].values()):
        lines += ["", "Refinement per direction (2nd turn: term included / in the target language / changed; "
                  "sessions whose first answer already had every reference word have no 2nd turn):", "",
                  "| direction | " + " | ".join(f"{l} incl. / on-target / changed" for l in labels) + " |",
                  "|---|" + "---|" * len(labels)]

        def rcell(d: dict) -> str:
            vals = [d.get(k) for k in ("constraint_inclusion", "refinement_on_target", "refinement_changed")]
            return "-" if vals[0] is None else " / ".join("-" if v is None else f"{v:.2f}" for v in vals)

        for d in dirs:
            lines.append(f"| {d} | " + " | ".join(rcell(loaded[l]["breakdown"]["direction"].get(d, {})) for l in labels) + " |")
    paired = paired_chrf(loaded)
    if paired:
        base = labels[0]
        lines += ["", f"Paired bootstrap against {base} (sacreBLEU, 1,000 resamples) on chrF pooled over all "
                  f"{paired['sentences']} sentences:", "",
                  "| system | pooled chrF | Δ vs " + base + " | p |", "|---|---|---|---|",
                  f"| {base} | {paired['baseline']:.1f} | | |"]
        for l, t in paired["systems"].items():
            lines.append(f"| {l} | {t['system']:.1f} | {t['delta']:+.1f} | {t['p_value']:.3f}"
                         + (" (significant)" if t["significant"] else "") + " |")
    elif len(labels) > 1:
        lines += ["", "(No paired test: the runs did not keep hypotheses for the same sentences — "
                  "re-run their eval stage.)"]
    md = "\n".join(lines)
    atomic_write_text(out.with_suffix(".md"), md + "\n")
    atomic_write_json(out.with_suffix(".json"), {"systems": {l: summary(r) for l, r in loaded.items()}, "paired_chrf": paired})

    fig, ax = plt.subplots(figsize=(max(8, len(dirs) * 0.9), 4))
    width = 0.8 / len(labels)
    for i, l in enumerate(labels):
        ax.bar([x + i * width for x in range(len(dirs))],
               [loaded[l]["breakdown"]["direction"].get(d, {}).get("chrf", 0) for d in dirs], width, label=l)
    ax.set_xticks([x + width * (len(labels) - 1) / 2 for x in range(len(dirs))])
    ax.set_xticklabels([d.replace("_", " ").replace("-", "→\n") for d in dirs], fontsize=7)
    ax.set_ylabel(f"chrF ({sets.pop()})" if len(sets) == 1 and None not in sets else "chrF")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(out.with_suffix(".png")) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return md
