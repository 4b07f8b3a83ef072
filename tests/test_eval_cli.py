import pytest
from typer.testing import CliRunner

from bayling.eval.cli import app

COMMANDS = ["translation", "offtarget", "constrained", "interactive", "mt-bench", "mc", "report"]


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
