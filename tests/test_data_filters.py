"""bayling.data.filters: each filter drops what it should and counts it; built data passes."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

import bayling
from bayling.data.build import BuildConfig, build_conversations
from bayling.data.cli import app
from bayling.data.filters import (
    Constraints, EmptyOrTruncated, ExactDuplicate, FilterReport, LanguageId, LengthRatio, NearDuplicate,
    apply_filters, default_filters, simhash,
)
from bayling.data.records import expect, length_of

SAMPLE = Path(bayling.__file__).parent / "assets" / "sample"
EN = "The train to Munich leaves from platform 7 at 8:45 in the morning, so please arrive early."
DE = "Der Zug nach München fährt um 8:45 Uhr von Gleis 7 ab, seien Sie also bitte frühzeitig am Bahnhof."


def conv(answer: str = DE, user: str = f"Translate into German: {EN}", **check) -> dict:
    entry = expect("deu_Latn", src_len=length_of(EN, "eng_Latn"), **check)
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
            "meta": {"expect": [entry]}}


def test_empty_or_truncated():
    f = EmptyOrTruncated()
    assert f(conv())
    assert not f(conv(answer="  "))
    assert not f({"messages": [{"role": "user", "content": "hi"}]})
    truncated = conv()
    truncated["meta"]["finish"] = ["length"]
    assert not f(truncated)
    assert not f(conv(answer="```python\nprint("))
    assert f.dropped == 4


def test_constraints_need_every_term():
    f = Constraints()
    assert f(conv(terms=["München", "Gleis"]))
    assert f(conv(terms=["gleis"]))  # case differences are forgiven
    assert not f(conv(terms=["Bahnsteig"]))
    assert f.dropped == 1


def test_constraints_and_langid_skip_the_fixed_preface():
    preface = "不太对。正确的译文是："
    record = conv(answer=f"{preface}\n{DE}", skip=len(preface) + 1, terms=["Gleis"])
    assert Constraints()(record) and LengthRatio()(record) and LanguageId()(record)


def test_length_ratio():
    f = LengthRatio()
    assert f(conv())
    assert not f(conv(answer="Zug."))
    assert not f(conv(answer=" ".join([DE] * 4)))
    assert f.dropped == 2
    # Scripts with more bytes per character are compared fairly: Chinese is short in characters.
    zh = {"messages": [{"role": "user", "content": EN}, {"role": "assistant", "content": "开往慕尼黑的火车上午8:45从7号站台发车，所以请提前到达火车站。"}],
          "meta": {"expect": [expect("zho_Hans", src_len=length_of(EN, "eng_Latn"))]}}
    assert f(zh)


def test_exact_and_near_duplicates():
    exact, near = ExactDuplicate(), NearDuplicate()
    assert exact(conv()) and not exact(conv()) and exact(conv(answer=DE + " "))
    a = "Translate into German: On Monday, scientists from the Stanford University School of Medicine announced " \
        "the invention of a new diagnostic tool that can sort cells by type."
    assert near(conv(user=a))
    assert not near(conv(user=a.replace("type.", "type!")))  # a one-character edit
    assert not near(conv(user=a.upper()))  # case is normalised away
    assert near(conv(user="Translate into German: The weather will be sunny and warm all weekend long."))
    assert (exact.dropped, near.dropped) == (1, 2)


def test_simhash_is_the_same_in_every_process():
    # Near-duplicate decisions must not depend on the interpreter's salted hash().
    import os
    import subprocess
    import sys

    text = "Translate into German: The weather will be sunny and warm all weekend long."
    code = f"from bayling.data.filters import simhash; print(simhash({text!r}))"
    root = str(Path(__file__).resolve().parents[1])
    seen = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONPATH": root, "PYTHONHASHSEED": seed}).stdout.strip()
            for seed in ("1", "2")}
    assert seen == {str(simhash(text))}


def test_language_id_checks_each_assistant_turn():
    f = LanguageId()
    assert f(conv())
    assert not f(conv(answer=EN))  # English where German was expected
    assert f(conv(answer="Ja."))  # too short to judge
    unjudged = conv(answer=EN)
    unjudged["meta"]["expect"][0]["lang"] = None
    assert f(unjudged)
    assert f({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": EN}]})  # no meta
    assert f.dropped == 1


def test_apply_filters_reports_one_reason_per_drop():
    other_user = "Ich brauche das bitte auf Deutsch, danke!"
    records = [conv(), conv(), conv(answer=""), conv(terms=["Bahnsteig"]), conv(answer=EN, user=other_user)]
    report = FilterReport()
    kept = list(apply_filters(records, default_filters(), report))
    assert len(kept) == 1
    assert report.as_dict() == {"read": 5, "kept": 1, "dropped": {
        "empty_or_truncated": 1, "constraints": 1, "length_ratio": 0, "exact_duplicate": 1,
        "near_duplicate": 0, "language_id": 1}}


def test_reference_data_passes_the_filters_and_cli_writes_a_report(tmp_path):
    data = tmp_path / "convs.jsonl"
    with open(data, "w", encoding="utf-8") as f:
        for r in build_conversations(BuildConfig(str(SAMPLE), seed=2, crosslingual=0.3)):
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
        f.write("{broken\n")
    runner = CliRunner()
    result = runner.invoke(app, ["filter", str(data), "--out", str(tmp_path / "clean.jsonl")])
    assert result.exit_code != 0 and "convs.jsonl:49: invalid JSON" in str(result.exception)
    result = runner.invoke(app, ["filter", str(data), "--out", str(tmp_path / "clean.jsonl"), "--on-error", "skip"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "clean.jsonl.filters.json").read_text())
    assert report["read"] == 48 and report["malformed_skipped"] == 1
    assert report["kept"] >= 45  # FLORES-style references are grounded; only detector noise may drop a few
    assert report["dropped"]["constraints"] == report["dropped"]["length_ratio"] == 0
