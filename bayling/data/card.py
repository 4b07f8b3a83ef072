"""Data card: what a conversations file holds, as markdown plus a PNG of the same counts.

Counts (streamed, so any size fits): what each conversation teaches (translation, refinement,
cross-lingual, general), languages (every one, with the share of trained characters by script),
tasks, language pairs, turn kinds, instruction languages, user turns per conversation, and, when a filter report is given (or found beside the file as
`<file>.filters.json`), what each filter dropped.

And what the model is trained to say, over trained assistant turns (weight 1), in characters:
  copy share          text already verbatim earlier in its conversation (a copy shortcut)
  reused share        text in stretches of 20+ characters also found in one earlier message (partial
                      copies: an answer that keeps most of a draft, a name or number carried over)
  repeated follow-ups trained follow-up answers identical to the previous assistant answer
  into / out of English  answers in English to a non-English source vs the other way round
  translation share   answers that are translations (first or refined)
"""

from __future__ import annotations

import json
import difflib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bayling.data.io import atomic_open, read_records

__all__ = ["CardStats", "TrainedText", "collect_stats", "render_markdown", "plot_card", "write_card"]

TOP = 25  # rows per table (and bars per plot) before "others"
# Turn kinds whose answer is a translation of the conversation's sentence.
TRANSLATION_KINDS = frozenset({"translate", "terminology", "format", "wrong_language", "error_report", "error_feedback",
                               "third_language", "xl_translate", "answer_in"})
ENGLISH = "eng_Latn"


@dataclass
class TrainedText:
    """Characters of trained assistant turns, by what they are (see the module docstring)."""

    chars: int = 0
    copied: int = 0
    reused: int = 0
    followups: int = 0
    repeated_followups: int = 0
    into_english: int = 0
    out_of_english: int = 0
    translation: int = 0
    multi_turn: int = 0  # conversations with two or more user turns
    by_script: Counter = field(default_factory=Counter)  # trained characters by the answer language's script

    def add(self, record: dict) -> None:
        msgs = record.get("messages") or []
        meta = record.get("meta") or {}
        kinds, checks = meta.get("kinds") or [], meta.get("expect") or []
        src = meta.get("src_lang")
        self.multi_turn += sum(m.get("role") == "user" for m in msgs) >= 2
        earlier: list[str] = []
        previous = None
        k = -1  # index of the assistant turn
        for m in msgs:
            text = m.get("content") if isinstance(m.get("content"), str) else ""
            if m.get("role") == "assistant":
                k += 1
                if m.get("weight", 1):
                    n = len(text)
                    self.chars += n
                    if any(text.strip() in e for e in earlier):
                        self.copied += n
                    self.reused += _reused_chars(text, earlier)
                    if previous is not None:
                        self.followups += 1
                        self.repeated_followups += text.strip() == previous.strip()
                    kind = kinds[k] if k < len(kinds) else None
                    lang = (checks[k] if k < len(checks) else {}).get("lang")
                    said = lang or meta.get("lang") or meta.get("tgt_lang")
                    self.by_script[said.partition("_")[2] or "unknown" if isinstance(said, str) else "unknown"] += n
                    if kind in TRANSLATION_KINDS:
                        self.translation += n
                        if lang == ENGLISH and src != ENGLISH:
                            self.into_english += n
                        elif src == ENGLISH and lang not in (None, ENGLISH):
                            self.out_of_english += n
                previous = text
            earlier.append(text)

    def as_dict(self) -> dict:
        c = max(self.chars, 1)
        return {"trained_chars": self.chars, "copy_share": round(self.copied / c, 4),
                "reused_share": round(self.reused / c, 4),
                "repeated_followup_share": round(self.repeated_followups / max(self.followups, 1), 4),
                "into_out_of_english_ratio": round(self.into_english / max(self.out_of_english, 1), 3),
                "translation_share": round(self.translation / c, 4), "multi_turn_conversations": self.multi_turn,
                "script_shares": {k: round(v / c, 4) for k, v in self.by_script.most_common()}}


REUSED_MIN = 20  # characters: shorter shared stretches are names, numbers and common phrases


def _reused_chars(text: str, earlier: list[str]) -> int:
    """Characters of `text` inside stretches of REUSED_MIN or more that also appear in one earlier message."""
    covered = [False] * len(text)
    for e in earlier:
        for _, b, size in difflib.SequenceMatcher(None, e, text, autojunk=False).get_matching_blocks():
            if size >= REUSED_MIN:
                covered[b:b + size] = [True] * size
    return sum(covered)


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
    trained: TrainedText = field(default_factory=TrainedText)
    categories: Counter = field(default_factory=Counter)  # translation, refinement, cross-lingual, general
    languages: Counter = field(default_factory=Counter)  # conversations each language takes part in


def category(meta: dict, user_turns: int) -> str:
    """What a conversation teaches: general instructions, a cross-lingual task, a refinement
    (a translation session with a follow-up) or a single translation."""
    task = meta.get("task")
    if task == "general":
        return "general"
    if task == "crosslingual":
        return "cross-lingual"
    return "refinement" if user_turns >= 2 else "translation"


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
        users = sum(1 for m in record.get("messages") or () if isinstance(m, dict) and m.get("role") == "user")
        stats.turns[users] += 1
        stats.categories[category(meta, users)] += 1
        stats.languages.update({c for c in (meta.get("src_lang"), meta.get("tgt_lang"), meta.get("lang"))
                                if isinstance(c, str) and c})
        stats.trained.add(record)
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
    t = stats.trained.as_dict()
    lines += ["### What the model is trained to say (trained assistant turns, characters)", "",
              "| measure | value |", "|---|---:|",
              f"| copy share (already verbatim earlier in the conversation) | {t['copy_share']:.1%} |",
              f"| reused share (in stretches of {REUSED_MIN}+ characters found in one earlier message) | {t['reused_share']:.1%} |",
              f"| follow-up answers identical to the previous answer | {t['repeated_followup_share']:.1%} |",
              f"| into-English / out-of-English characters | {t['into_out_of_english_ratio']:.2f} |",
              f"| translation answers (first or refined) | {t['translation_share']:.1%} |",
              f"| multi-turn conversations | {t['multi_turn_conversations'] / max(n, 1):.1%} |", ""]
    lines += [f"{len(stats.languages)} languages; trained characters by script: "
              + ", ".join(f"{k} {v:.1%}" for k, v in t["script_shares"].items()), ""]
    if png_name:
        lines += [f"![counts]({png_name})", ""]
    lines += _table("What each conversation teaches", stats.categories, n, "kind")
    lines += _table("Languages (conversations each takes part in)", stats.languages, n, "language")
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

    panels = [("What each conversation teaches", stats.categories), ("Languages", stats.languages),
              ("Trained characters by script", stats.trained.by_script), ("Language pairs", stats.pairs),
              ("Turn kinds", stats.kinds),
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
    from bayling.io import atomic_path

    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def write_card(path: str | Path, out: str | Path, filter_report: str | Path | None = None) -> tuple[Path, Path, CardStats]:
    """Write `out` (markdown) and the PNG beside it (same name, .png); return both paths and the counts."""
    out = Path(out)
    png = out.with_suffix(".png")
    stats = collect_stats(path, filter_report)
    plot_card(stats, png)
    with atomic_open(out) as f:
        f.write(render_markdown(stats, Path(path).name, png.name))
    return out, png, stats
