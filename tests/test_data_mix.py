"""bayling.data.mix: Alpaca / ShareGPT / OpenAI readers, file:line errors, ratios, datasets export."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bayling.data.cli import app
from bayling.data.io import DataError
from bayling.data.mix import GeneralSource, MixReport, mix_records, parse_general, read_general


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def built(path: Path, n: int) -> Path:
    return write_jsonl(path, [{"messages": [{"role": "user", "content": f"translate {i}"},
                                            {"role": "assistant", "content": f"übersetzt {i}"}],
                               "meta": {"id": f"b#{i}", "task": "session"}} for i in range(n)])


def alpaca(path: Path, n: int) -> Path:
    return write_jsonl(path, [{"instruction": f"用中文回答问题 {i}", "input": "", "output": f"好的 {i}"} for i in range(n)])


def test_three_layouts_become_openai_messages(tmp_path):
    rows = [
        {"instruction": "Summarise", "input": "Long text", "output": "Short"},
        {"conversations": [{"from": "human", "value": "你好"}, {"from": "gpt", "value": "你好！"}]},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello"}]},
    ]
    got = list(read_general(write_jsonl(tmp_path / "g.jsonl", rows)))
    assert [r["messages"][-1]["content"] for r in got] == ["Short", "你好！", "Hello"]
    assert got[0]["messages"][0] == {"role": "user", "content": "Summarise\n\nLong text"}
    assert got[1]["meta"] == {"id": f"{tmp_path}/g.jsonl:2", "source": f"{tmp_path}/g.jsonl:2", "task": "general"}
    array = tmp_path / "alpaca.json"
    array.write_text(json.dumps(rows[:1]), encoding="utf-8")
    assert list(read_general(array))[0]["meta"]["source"] == f"{array}[0]"


def test_malformed_lines_are_reported_with_file_line_and_field(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [
        {"instruction": "ok", "output": "fine"},
        "{not json",
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": ""}]},
        {"messages": [{"role": "user", "content": "only a question"}]},
        {"instruction": "", "output": "x"},
        {"text": "unknown layout"},
    ])
    problems: list[str] = []
    assert len(list(read_general(path, "skip", problems.append))) == 1
    assert problems == [
        f"{path}:2: invalid JSON (Expecting property name enclosed in double quotes at column 2)",
        f"{path}:3: conversations[1]: empty content",
        f"{path}:4: messages: no assistant turn",
        f"{path}:5: instruction: empty content",
        f"{path}:6: no 'messages'/'conversation', 'conversations' (ShareGPT), 'instruction'/'output' (Alpaca), "
        "'instruction'/'response' (Dolly) or 'prompt'/'response' field",
    ]
    with pytest.raises(DataError, match=r"bad.jsonl:2: invalid JSON"):
        list(read_general(path, "fail"))


def test_ratio_and_weights(tmp_path):
    b = built(tmp_path / "b.jsonl", 40)
    zh, en = alpaca(tmp_path / "zh.jsonl", 100), alpaca(tmp_path / "en.jsonl", 5)
    report = MixReport()
    out = list(mix_records([b], [GeneralSource(str(zh), 3), GeneralSource(str(en), 1)], ratio=0.5, seed=1,
                           report=report))
    assert report.general == {str(zh): 15, str(en): 5}  # 20 wanted, 3:1, but en has only 5
    assert report.available == {str(zh): 100, str(en): 5}
    assert Counter(r["meta"]["task"] for r in out) == {"session": 40, "general": 20}
    assert [r["meta"]["id"] for r in out if r["meta"]["task"] == "session"] == [f"b#{i}" for i in range(40)]
    again = list(mix_records([b], [GeneralSource(str(zh), 3), GeneralSource(str(en), 1)], ratio=0.5, seed=1))
    assert again == out
    assert parse_general("data/x.jsonl:2.5") == GeneralSource("data/x.jsonl", 2.5)
    assert parse_general("x.jsonl") == GeneralSource("x.jsonl", 1.0)


def test_cli_mix_on_error_and_datasets_export(tmp_path):
    from datasets import load_from_disk

    from bayling.train.dataset import read_conversations

    b = built(tmp_path / "b.jsonl", 10)
    g = write_jsonl(tmp_path / "g.jsonl", [{"instruction": "a", "output": "b"}, "[1, 2]", {"instruction": "c", "output": "d"}])
    runner = CliRunner()
    out = tmp_path / "mixed.jsonl"
    result = runner.invoke(app, ["mix", str(b), "--general", str(g), "--out", str(out), "--on-error", "fail"])
    assert result.exit_code != 0 and isinstance(result.exception, DataError)
    assert "g.jsonl:2: a line must be a JSON object" in str(result.exception)
    assert not out.exists()
    result = runner.invoke(app, ["mix", str(b), "--general", str(g), "--out", str(out), "--hf-dataset",
                                 str(tmp_path / "hf")])
    assert result.exit_code == 0, result.output
    assert "g.jsonl:2: a line must be a JSON object" in result.output
    assert len(out.read_text().splitlines()) == 12
    ds = load_from_disk(str(tmp_path / "hf"))
    assert len(ds) == 12 and set(ds.column_names) == {"messages", "meta"}
    assert sum(1 for _, msgs in read_conversations(tmp_path / "hf") if isinstance(msgs, list)) == 12
