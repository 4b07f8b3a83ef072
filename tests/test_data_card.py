"""bayling.data.card: markdown tables and a PNG of the counts, with filter drops when known."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

import bayling
from bayling.data.build import BuildConfig, build_conversations
from bayling.data.card import collect_stats
from bayling.data.cli import app
from bayling.data.io import write_jsonl

SAMPLE = Path(bayling.__file__).parent / "assets" / "sample"


def test_card_counts_and_plot(tmp_path):
    data = tmp_path / "convs.jsonl"
    n = write_jsonl(data, build_conversations(BuildConfig(str(SAMPLE), per_line=2, seed=4)))
    (tmp_path / "convs.jsonl.filters.json").write_text(json.dumps(
        {"read": n, "kept": n - 3, "dropped": {"language_id": 2, "near_duplicate": 1}}))
    result = CliRunner().invoke(app, ["card", str(data)])
    assert result.exit_code == 0, result.output
    md = (tmp_path / "convs.card.md").read_text(encoding="utf-8")
    png = tmp_path / "convs.card.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for heading in ("Language pairs", "Turn kinds", "Instruction languages", "User turns per conversation",
                    "Filter drops"):
        assert f"### {heading}" in md
    assert f"{n} conversations" in md and "| language_id | 2 |" in md and "![counts](convs.card.png)" in md
    stats = collect_stats(data)
    assert stats.conversations == n == 96
    assert sum(stats.turns.values()) == n and set(stats.turns) <= {1, 2, 3, 4, 5}
    assert stats.kinds["translate"] + stats.tasks["crosslingual"] == n


def test_trained_text_counts_copies_partial_copies_and_repeats():
    from bayling.data.card import TrainedText

    draft = "The committee met on Monday in Stockholm to discuss the prize."
    edited = "The committee met on Monday in Stockholm to announce the prize."
    fresh = "On Monday the Nobel committee gathered and announced the award."
    t = TrainedText()
    for answer in (draft, edited, fresh):
        t.add({"messages": [{"role": "user", "content": "Translate: ..."},
                            {"role": "assistant", "content": draft, "weight": 0},
                            {"role": "user", "content": "Make sure it uses 'announce'."},
                            {"role": "assistant", "content": answer}]})
    d = t.as_dict()
    assert t.chars == len(draft) + len(edited) + len(fresh)  # weight-0 drafts are not trained text
    assert t.copied == len(draft) and t.repeated_followups == 1 and t.followups == 3
    # The whole repeated draft, plus the stretch the edit keeps ("The committee ... Stockholm to "); no
    # stretch of the fresh answer shares 20 characters with the draft (" the prize." is too short).
    assert t.reused == len(draft) + len("The committee met on Monday in Stockholm to ")
    assert d["reused_share"] == round(t.reused / t.chars, 4) and d["copy_share"] == round(t.copied / t.chars, 4)


def test_card_shares_by_kind_language_and_script(tmp_path):
    """Translation, refinement, cross-lingual and general conversations counted apart; every
    language counted; trained characters by the script of the answer's language."""
    from bayling.data.instructions import read_instructions

    data = tmp_path / "mixed.jsonl"
    general = tmp_path / "g.jsonl"
    general.write_text("".join(json.dumps({"instruction": f"Say {w}.", "output": w * 3}) + "\n"
                               for w in ("hi", "yo", "ok")))
    built = list(build_conversations(BuildConfig(str(SAMPLE), seed=4, crosslingual=0.3)))
    write_jsonl(data, built + read_instructions(general, lang="eng_Latn").train)
    stats = collect_stats(data)
    assert stats.categories["general"] == 3
    assert stats.categories["cross-lingual"] > 0 and stats.categories["translation"] > 0
    assert sum(stats.categories.values()) == stats.conversations
    langs = {c for r in built for c in (r["meta"].get("src_lang"), r["meta"].get("tgt_lang")) if c}
    assert set(stats.languages) == langs | {"eng_Latn"}
    shares = stats.trained.as_dict()["script_shares"]
    assert abs(sum(shares.values()) - 1) < 0.01 and shares["Latn"] > 0 and shares.get("Hans", 0) > 0
    md = (tmp_path / "c.md")
    from bayling.data.card import render_markdown

    md.write_text(render_markdown(stats, "mixed"))
    text = md.read_text()
    assert "What each conversation teaches" in text and "trained characters by script" in text


def test_chinese_is_the_second_hub(tmp_path):
    """BayLing 2's hubs: a share of lines pair a drawn language with Chinese instead of English."""
    def pairs(hub):
        cfg = BuildConfig(str(SAMPLE), seed=1, per_line=8, crosslingual=0.0, multi_turn=0.0, chinese_hub=hub)
        return [(r["meta"]["src_lang"], r["meta"]["tgt_lang"]) for r in build_conversations(cfg)]

    def with_chinese(ps):
        return sum("zho_Hans" in p and "eng_Latn" not in p for p in ps) / len(ps)

    none, some = pairs(0.0), pairs(0.3)
    assert len(none) > 100
    assert with_chinese(some) > with_chinese(none) + 0.15  # ~0.3 of the hub pairs, less the lines without Chinese
