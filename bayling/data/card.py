"""Data card: what a conversations file holds, as markdown plus a PNG of the same counts.

Counts (streamed, so any size fits): tasks, language pairs, turn kinds, instruction languages,
user turns per conversation, and, when a filter report is given (or found beside the file as
`<file>.filters.json`), what each filter dropped.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bayling.data.io import atomic_open, read_records

__all__ = ["CardStats", "collect_stats", "render_markdown", "plot_card", "write_card"]

TOP = 25  # rows per table (and bars per plot) before "others"


@dataclass
class CardStats:
    conversations: int = 0
    tasks: Counter = field(default_factory=Counter)
    pairs: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    instruction_langs: Counter = field(default_factory=Counter)
    turns: Counter = field(default_factory=Counter)
    modes: Counter = field(default_factory=Counter)
    filters: dict | None = None  # a FilterReport.as_dict()


def collect_stats(path: str | Path, filter_report: str | Path | None = None) -> CardStats:
    stats = CardStats()
    for _, record in read_records(path):
        meta = record.get("meta") or {}
        stats.conversations += 1
        stats.tasks[meta.get("task", "unknown")] += 1
        stats.modes[meta.get("mode", "-")] += 1
        if meta.get("src_lang"):
            stats.pairs[f"{meta['src_lang']}→{meta.get('tgt_lang')}"] += 1
        stats.kinds.update(meta.get("kinds") or ())
        if meta.get("instruction_lang"):
            stats.instruction_langs[meta["instruction_lang"]] += 1
        stats.turns[sum(1 for m in record.get("messages") or () if m.get("role") == "user")] += 1
    report = Path(filter_report) if filter_report else Path(f"{path}.filters.json")
    if report.is_file():
        stats.filters = json.loads(report.read_text(encoding="utf-8"))
    elif filter_report:
        raise FileNotFoundError(f"{filter_report}: no such filter report")
    return stats


def _table(title: str, counts: Counter, total: int, key: str) -> list[str]:
    rows = [f"### {title}", "", f"| {key} | count | share |", "|---|---:|---:|"]
    top = counts.most_common(TOP)
    for name, n in top:
        rows.append(f"| {name} | {n} | {n / max(total, 1):.1%} |")
    rest = sum(counts.values()) - sum(n for _, n in top)
    if rest:
        rows.append(f"| ({len(counts) - len(top)} others) | {rest} | {rest / max(total, 1):.1%} |")
    return rows + [""]


def render_markdown(stats: CardStats, source: str, png_name: str | None = None) -> str:
    n = stats.conversations
    n_turns = sum(stats.kinds.values())
    lines = [f"# Data card: {source}", "",
             f"{n} conversations, {sum(k * v for k, v in stats.turns.items())} user turns, "
             f"{len(stats.pairs)} language pairs, {len(stats.instruction_langs)} instruction languages.", ""]
    if png_name:
        lines += [f"![counts]({png_name})", ""]
    lines += _table("Tasks", stats.tasks, n, "task")
    lines += _table("Assistant turns written by", stats.modes, n, "mode")
    lines += _table("Language pairs (source→target)", stats.pairs, n, "pair")
    lines += _table("Turn kinds (per user turn)", stats.kinds, n_turns, "kind")
    lines += _table("Instruction languages", stats.instruction_langs, n, "language")
    turns = Counter({f"{k} turn{'s' if k != 1 else ''}": v for k, v in sorted(stats.turns.items())})
    lines += _table("User turns per conversation", turns, n, "turns")
    if stats.filters:
        f = stats.filters
        lines += ["### Filter drops", "", f"{f.get('read', 0)} read, {f.get('kept', 0)} kept.", "",
                  "| filter | dropped |", "|---|---:|"]
        lines += [f"| {name} | {count} |" for name, count in (f.get("dropped") or {}).items()] + [""]
    return "\n".join(lines)


def plot_card(stats: CardStats, png: str | Path) -> None:
    """Bar charts of the card's counts, written atomically as a PNG (Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("Language pairs", stats.pairs), ("Turn kinds", stats.kinds),
              ("Instruction languages", stats.instruction_langs),
              ("User turns per conversation", Counter({str(k): v for k, v in sorted(stats.turns.items())}))]
    if stats.filters:
        panels.append(("Filter drops", Counter(stats.filters.get("dropped") or {})))
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 3.2 * len(panels)))
    for ax, (title, counts) in zip(axes, panels):
        items = counts.most_common(TOP) if "turns" not in title else list(counts.items())
        names = [str(k) for k, _ in items]
        ax.barh(names[::-1], [v for _, v in items][::-1], color="#4c72b0")
        ax.set_title(title, loc="left", fontsize=11)
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    png = Path(png)
    tmp = png.with_name(f".{png.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(png)


def write_card(path: str | Path, out: str | Path, filter_report: str | Path | None = None) -> tuple[Path, Path]:
    """Write `out` (markdown) and the PNG beside it (same name, .png); return both paths."""
    out = Path(out)
    png = out.with_suffix(".png")
    stats = collect_stats(path, filter_report)
    plot_card(stats, png)
    with atomic_open(out) as f:
        f.write(render_markdown(stats, Path(path).name, png.name))
    return out, png
