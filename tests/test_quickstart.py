"""`bayling quickstart` with the real embedded model, cut down to a few minutes."""

import json
import re
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_quickstart_runs_the_whole_recipe_offline(tmp_path):
    out = tmp_path / "qs"
    cmd = [sys.executable, "-m", "bayling.cli", "quickstart", "--out", str(out), "--steps", "1",
           "--eval-sentences", "1", "--flores-lines", "8", "--news-lines", "0", "--max-new-tokens", "12"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1200,
                       env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    for system in ("base", "tuned"):
        for key in ("chrf", "bleu", "off_target_rate", "constraint_inclusion"):
            assert key in results[system]
    assert set(results["timings_seconds"]) == {"data", "train", "eval"}
    assert (out / "report.html").is_file() and (out / "results.png").is_file()
    assert "bayling chat --model" in r.stdout and "bayling serve" in r.stdout
    assert (out / "model" / "adapter_model.safetensors").is_file()
    # A second run resumes: every stage is skipped.
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stderr.count("done earlier") == 3


def test_the_quickstart_is_recipes_quickstart_yaml_with_the_options_on_top():
    """One definition: `bayling quickstart` runs recipes/quickstart.yaml (the package's copy is the
    same file), and scores the shipped bayling-mini beside the base and the tuned model."""
    from dataclasses import asdict
    from pathlib import Path

    from bayling.quickstart import quickstart_recipe
    from bayling.recipe import load_recipe_file

    root = Path(__file__).resolve().parents[1]
    assert (root / "recipes" / "quickstart.yaml").resolve() == (root / "bayling" / "assets" / "quickstart.yaml").resolve()
    r = quickstart_recipe()
    assert asdict(r) == asdict(load_recipe_file(root / "recipes" / "quickstart.yaml", check=False))
    assert r.eval.systems == ["base", "tuned", "bayling-mini"]  # the base first: the paired test is against it
    assert (r.out, r.model, r.train.max_steps, r.eval.limit) == ("bayling-quickstart", "gemma3-270m", 120, 24)
    small = quickstart_recipe(Path("qs"), steps=8, eval_sentences=2, flores_lines=10, news_lines=0, max_new_tokens=12)
    assert (small.out, small.train.max_steps, small.train.save_steps, small.eval.limit, small.eval.max_new_tokens) == \
        ("qs", 8, 2, 2, 12)
    assert [s.corpus for s in small.data.sources] == ["sample", "flores"] and small.data.sources[1].limit == 10
    assert {s.limit for s in quickstart_recipe(news_lines=20).data.sources if s.corpus.startswith("newstest")} == {20}


def _fake(chrf: float, incl: float) -> dict:
    return {"chrf": chrf, "bleu": chrf / 2, "off_target_rate": 0.05, "constraint_inclusion": incl,
            "refinement_on_target": 0.9, "examples": []}


def test_the_table_shows_the_shipped_model_beside_the_base_and_the_tuned_one():
    from rich.console import Console

    from bayling.quickstart import quickstart_lines, quickstart_table

    results = {"base": _fake(47.8, 0.21), "tuned": _fake(48.3, 0.09), "bayling-mini": _fake(55.2, 0.75),
               "paired_chrf": {"sentences": 96, "baseline": 47.8, "systems": {
                   "tuned": {"system": 48.3, "delta": 0.5, "p_value": 0.25, "significant": False},
                   "bayling-mini": {"system": 55.2, "delta": 7.4, "p_value": 0.001, "significant": True}}}}
    console = Console(record=True, width=240)
    console.print(quickstart_table(results, "gemma3-270m", 120))
    text = console.export_text()
    header = next(line for line in text.splitlines() if "metric" in line)
    assert header.index("base (3-shot)") < header.index("tuned (120 LoRA steps)") < header.index("bayling-mini (shipped)")
    row = lambda label: re.findall(r"\d+\.\d+", next(line for line in text.splitlines() if label in line))  # noqa: E731
    assert row("chrF") == ["47.8", "48.3", "55.2"] and row("constraint inclusion") == ["0.210", "0.090", "0.750"]
    lines = quickstart_lines(results, 120)
    assert "base 47.8" in lines[0] and "tuned (120 LoRA steps) 48.3 (+0.5, p = 0.250, not significant)" in lines[0]
    assert "bayling-mini (shipped) 55.2 (+7.4, p = 0.001, significant)" in lines[0]
    assert "recipes/bayling-mini.yaml" in lines[1]
    # An older run without the shipped model still prints its two columns.
    del results["bayling-mini"], results["paired_chrf"]["systems"]["bayling-mini"]
    console = Console(record=True, width=240)
    console.print(quickstart_table(results, "gemma3-270m", 120))
    assert "bayling-mini" not in console.export_text() and len(quickstart_lines(results, 120)) == 1


def test_the_quickstart_prints_the_table_and_both_models_answers(tmp_path, monkeypatch, capsys):
    """run_quickstart's screen, with the recipe run faked: the table, then each example as the tuned
    model and the shipped bayling-mini answered it."""
    from pathlib import Path

    import bayling.quickstart as qs

    def fake_run(recipe, force=False):
        results = {s: {**_fake(50.0, 0.5), "examples": [{"direction": "eng_Latn-deu_Latn", "src": "Hello.",
                                                          "ref": "Hallo.", "hyp": f"{s} says hallo"}]}
                   for s in recipe.eval.systems}
        Path(recipe.out).mkdir(parents=True)
        (Path(recipe.out) / "results.json").write_text(json.dumps({**results, "paired_chrf": None}))
        return {"timings": {"data": 1.0, "train": 2.0, "eval": 3.0}}

    monkeypatch.setattr(qs, "run_recipe", fake_run)
    monkeypatch.setenv("COLUMNS", "400")  # rich wraps at 80 columns without a terminal
    qs.run_quickstart(out=tmp_path / "qs", steps=4)
    out = capsys.readouterr().out
    assert "bayling-mini" in out and "tuned: tuned says hallo" in out and "bayling-mini: bayling-mini says hallo" in out
    assert "time per stage: data 1 s, train 2 s, eval 3 s" in out and f"bayling chat --model {tmp_path / 'qs' / 'model'}" in out
