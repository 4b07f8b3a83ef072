"""The `bayling` command as a user meets it: help everywhere, one-line errors, exit codes."""

import subprocess
import sys
from pathlib import Path

import pytest

from bayling.cli import app

ROOT = Path(__file__).resolve().parents[1]


def bayling(*args, **kw):
    return subprocess.run([sys.executable, "-m", "bayling.cli", *args], capture_output=True, text=True,
                          timeout=120, **kw)


def _commands(typer_app, prefix=()):
    from typer.main import get_command

    cmd = get_command(typer_app)
    stack = [(prefix, cmd)]
    while stack:
        path, c = stack.pop()
        yield path
        for name, sub in getattr(c, "commands", {}).items():
            stack.append((path + (name,), sub))


def test_every_command_has_help():
    paths = list(_commands(app))
    assert ("train",) in paths and ("languages",) in paths and ("quickstart",) in paths
    for path in paths:
        r = bayling(*path, "--help")
        assert r.returncode == 0, (path, r.stderr)
        assert "Usage" in r.stdout


def test_languages_lists_204_flores_codes():
    r = bayling("languages")
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 204
    assert all("_" in line.split("\t")[0] for line in lines)
    assert bayling("languages", "中文").stdout.startswith("zho_Hans\t")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["languages", "Klingonese"], "unknown language 'Klingonese'"),
        (["corpus", "count", "/nonexistent/file.tsv"], "/nonexistent/file.tsv"),
        (["train", "--data", "/nonexistent.jsonl", "--model", str(ROOT)], "nonexistent.jsonl"),
        (["chat", "--model", "gemma3-270m", "--repetition-penalty", "0"], "repetition_penalty must be"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args, fragment):
    r = bayling(*args)
    assert r.returncode != 0
    err = r.stderr.strip()
    assert "\n" not in err and "Traceback" not in err
    assert fragment in err


def test_empty_broken_and_out_of_range_inputs_fail_cleanly(tmp_path):
    (tmp_path / "e.en").write_bytes(b"")
    (tmp_path / "e.de").write_bytes(b"")
    (tmp_path / "b.en.gz").write_bytes(b"no")
    (tmp_path / "b.de").write_text("hallo\n")
    out, e, b = tmp_path / "o.jsonl", f"{tmp_path}/e.en,{tmp_path}/e.de", f"{tmp_path}/b.en.gz,{tmp_path}/b.de"
    for args, fragment in [
        (["corpus", "count", e, "-s", "en", "-t", "de"], "e.en: empty file"),
        (["data", "build", "--corpus", e, "--langs", "en,de", "--out", str(out)], "e.en: empty file"),
        (["corpus", "count", b, "-s", "en", "-t", "de"], "b.en.gz: cannot read this gzip file"),
    ]:
        r = bayling(*args)
        err = r.stderr.strip()
        assert r.returncode != 0 and "\n" not in err and fragment in err, (args, r.stdout, err)
    assert not out.exists()
    r = bayling("data", "build", "--corpus", f"{tmp_path}/b.de,{tmp_path}/b.de", "--langs", "en,de", "--out", str(out), "--limit", "-5")
    assert r.returncode == 2 and "--limit" in r.stderr and "islice" not in r.stderr and "Traceback" not in r.stderr


def test_debug_shows_the_traceback():
    r = bayling("languages", "Klingonese", "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_a_bug_is_not_dressed_as_a_user_error(monkeypatch, capsys):
    # What the user can fix is a BaylingError (one line, exit 2); a KeyError from a bug keeps its traceback.
    import bayling.models
    from bayling.cli import main
    from bayling.errors import BaylingError

    class Broken(dict):
        def values(self):
            raise KeyError("internal")

    monkeypatch.setattr(bayling.models, "EMBEDDED", Broken())
    with pytest.raises(KeyError):
        main(["models", "list"])
    monkeypatch.setattr(bayling.models, "EMBEDDED", type("Gone", (dict,), {"values": lambda self: (_ for _ in ()).throw(
        bayling.models.ModelError("gemma3-270m: the package is not installed"))})())
    with pytest.raises(SystemExit) as exit_:
        main(["models", "list"])
    assert exit_.value.code == 2 and capsys.readouterr().err == "error: gemma3-270m: the package is not installed\n"
    assert issubclass(bayling.models.ModelError, BaylingError)


def test_recipes_parse():
    """Every recipe's sections are well-typed (test_recipe checks paths and data with ../shared)."""
    from bayling.recipe import load_recipe_file
    from bayling.train import TrainConfig

    recipes = sorted((ROOT / "recipes").glob("*.yaml"))
    assert {r.name for r in recipes} >= {"mini.yaml", "8b-lora.yaml", "8b-full-deepspeed.yaml"}
    for path in recipes:
        loaded = load_recipe_file(path, check=False)
        for r in getattr(loaded, "steps", [loaded]):  # a multi-step recipe (bayling-mini.yaml): each step
            cfg = r.train  # the train section is checked as a TrainConfig when the recipe loads
            assert isinstance(cfg, TrainConfig) and cfg.model == r.model and r.eval.directions and r.data.sources, path


def test_unknown_recipe_key_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  learning_rat: 0.1\n")
    r = bayling("train", str(bad))
    assert r.returncode == 2 and "learning_rat" in r.stderr
