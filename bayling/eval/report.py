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

__all__ = ["load_results", "summary_of", "to_html", "to_markdown", "write_report"]

# Shown first, in this order; other numbers follow alphabetically.
PRIMARY = (
    "bleu", "chrf", "chrf++", "ter", "comet", "off_target_rate", "inclusion_rate", "term_inclusion_rate",
    "sentence_inclusion_rate", "accuracy", "accuracy_norm", "accuracy_generate", "macro_accuracy", "score",
    "win_rate", "win_rate_adjusted", "loss_rate", "tie_rate", "on_target_rate", "constraint_ok_rate", "constraints_kept_rate", "length_ok_rate", "changed_rate",
)
LOWER_IS_BETTER = {"ter", "off_target_rate", "loss_rate"}
_COUNTS = {"n", "nrefs", "judged", "unjudged", "off_target", "terms", "wins", "losses", "ties", "turns", "sessions",
           "unparsed", "failed", "retried", "inconsistent", "macro_average_over"}

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
        Path(markdown_path).write_text(md + "\n", encoding="utf-8")
    if html_path:
        Path(html_path).parent.mkdir(parents=True, exist_ok=True)
        Path(html_path).write_text(to_html(runs, title), encoding="utf-8")
    return md
