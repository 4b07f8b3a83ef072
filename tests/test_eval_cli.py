import pytest
from typer.testing import CliRunner

from bayling.eval.cli import app

COMMANDS = ["translation", "offtarget", "constrained", "interactive", "mt-bench", "mc", "report", "ifeval", "breadth",
            "breadth-compare", "answer-language", "knowledge"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    res = CliRunner().invoke(app, [command, "--help"])
    assert res.exit_code == 0 and "Usage" in res.output


def test_missing_inputs_are_one_line_value_errors(tmp_path):
    res = CliRunner().invoke(app, ["translation", "--ref", str(tmp_path / "r.txt")])
    assert isinstance(res.exception, ValueError) and "--hyp" in str(res.exception)
    res = CliRunner().invoke(app, ["translation", "--hyp", str(tmp_path / "nope.txt"), "--ref", str(tmp_path / "r.txt")])
    assert isinstance(res.exception, ValueError) and "nope.txt: no such file" in str(res.exception)
    res = CliRunner().invoke(app, ["mc", str(tmp_path)])
    assert isinstance(res.exception, ValueError)


def test_empty_reference_lines_are_scored_with_a_one_line_warning(tmp_path):
    hyp, ref = tmp_path / "h.txt", tmp_path / "r.txt"
    hyp.write_text("Der Hund schläft.\nDie Katze.\nJa.\nNein.\n", encoding="utf-8")
    ref.write_text("Der Hund schläft.\n\nJa.\n  \n", encoding="utf-8")
    args = ["translation", "--hyp", str(hyp), "--ref", str(ref), "--metrics", "chrf", "--bootstrap", "0", "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    warnings = [line for line in res.output.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {ref}: 2 empty reference lines (lines 2, 4), scored as they are"]
    ref.write_text("Der Hund schläft.\nDie Katze.\nJa.\nNein.\n", encoding="utf-8")
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0 and "warning" not in res.output, res.output
