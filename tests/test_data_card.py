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
