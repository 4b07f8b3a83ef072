"""`bayling chat`: streaming replies and the slash commands, through stdin."""

from __future__ import annotations

import json

from bayling.infer.chat import run_chat
from bayling.infer.engine import GenerationConfig
from bayling.testing.fake_engine import FakeEngine


def _reply(messages) -> str:
    system = messages[0]["content"] if messages[0]["role"] == "system" else "-"
    users = sum(m["role"] == "user" for m in messages)
    return f"[{system}] turn {users}: {messages[-1]['content']}"


def test_commands_and_multi_turn(tmp_path):
    out: list[str] = []
    save = tmp_path / "chat.json"
    lines = ["hello", "again", "/system Be formal.", "hi", "/save " + str(save), "/reset", "fresh", "/bogus", "/help", "/exit", "never"]
    final = run_chat(FakeEngine(_reply), lines, out.append)
    text = "".join(out)
    assert "[-] turn 1: hello" in text and "[-] turn 2: again" in text
    assert "[Be formal.] turn 1: hi" in text  # /system starts over with the new system message
    assert "[Be formal.] turn 1: fresh" in text  # /reset keeps the system message
    assert "unknown command /bogus" in text and "/save FILE" in text and "never" not in text
    saved = json.loads(save.read_text())["messages"]
    assert [m["role"] for m in saved] == ["system", "user", "assistant"] and saved[2]["content"] == "[Be formal.] turn 1: hi"
    assert final[-1]["content"] == "[Be formal.] turn 1: fresh"


def test_replies_are_streamed_piece_by_piece():
    pieces: list[str] = []
    run_chat(FakeEngine(lambda m: "one two three"), ["go"], pieces.append, config=GenerationConfig())
    assert pieces[:3] == ["one ", "two ", "three"]


def test_chat_cli_through_stdin(tiny_model_dir, tmp_path):
    import typer
    from typer.testing import CliRunner

    from bayling.infer.cli import chat_command

    app = typer.Typer()
    app.command("chat")(chat_command)
    app.command("noop")(lambda: None)
    save = tmp_path / "c.json"
    r = CliRunner().invoke(app, ["chat", "--model", str(tiny_model_dir), "--chat-format", "chatml",
                                 "--max-new-tokens", "3", "--temperature", "1"],
                           input=f"/system Short answers.\nhello\n/save {save}\n/reset\n")
    assert r.exit_code == 0, r.output
    assert "system message set" in r.output and "conversation cleared" in r.output
    msgs = json.loads(save.read_text())["messages"]
    assert msgs[0] == {"role": "system", "content": "Short answers."} and msgs[1]["content"] == "hello"
