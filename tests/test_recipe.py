"""The whole recipe on the tiny model: data -> train -> eval -> report, resumable by stage."""

import json

import pytest

from bayling.recipe import DataSection, DataSource, EvalSection, Recipe, load_recipe_file, run_recipe


def tiny_recipe(out, model, **train):
    return Recipe(
        name="t", out=str(out), model=str(model),
        data=DataSection(sources=[DataSource("sample", "dev", ["eng_Latn", "deu_Latn", "fra_Latn"], limit=16)],
                         max_turns=3, filter=False),
        train={"chat_format": "chatml", "max_steps": 2, "batch_size": 2, "max_len": 256, "save_steps": 1, **train},
        eval=EvalSection(corpus="sample", directions=["eng_Latn-deu_Latn", "fra_Latn-eng_Latn"], limit=2,
                         max_new_tokens=8, n_shots=1),
    )


def test_recipe_runs_end_to_end_and_skips_finished_stages(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    run = run_recipe(tiny_recipe(out, tiny_model_dir))
    assert set(run["timings"]) == {"data", "train", "eval"}
    results = json.loads((out / "results.json").read_text())
    for system in ("base", "tuned"):
        r = results[system]
        assert 0 <= r["chrf"] <= 100 and r["off_target_rate"] is None or 0 <= r["off_target_rate"] <= 1
        assert set(r["breakdown"]["direction"]) == {"eng_Latn-deu_Latn", "fra_Latn-eng_Latn"}
    assert results["base"]["prompt"] == "few-shot" and results["tuned"]["prompt"] == "chat"
    assert (out / "report.html").read_text().count("<img") >= 1
    assert (out / "results.png").stat().st_size > 1000
    assert "base" in (out / "report.md").read_text()
    convs = (out / "convs.jsonl").read_text().splitlines()
    assert len(convs) == 16

    again = run_recipe(tiny_recipe(out, tiny_model_dir))
    assert again["timings"] == run["timings"]  # nothing redone
    assert again["outputs"]["train"]["global_step"] == 2


def test_interrupted_training_resumes_from_its_checkpoint(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    run_recipe(tiny_recipe(out, tiny_model_dir), stop_after="train")
    assert not (out / "eval.done.json").exists()
    first = json.loads((out / "model" / "train_summary.json").read_text())["log_history"]
    # Simulate a run killed after its checkpoints: drop the train marker, ask for more steps.
    (out / "train.done.json").unlink()
    run = run_recipe(tiny_recipe(out, tiny_model_dir, max_steps=3), stop_after="train")
    assert run["outputs"]["train"]["global_step"] == 3
    summary = json.loads((out / "model" / "train_summary.json").read_text())
    losses = [(h["step"], h["loss"]) for h in summary["log_history"] if "loss" in h]
    assert [s for s, _ in losses] == [1, 2, 3]  # the curve continues from the checkpoint
    assert losses[:2] == [(h["step"], h["loss"]) for h in first if "loss" in h]


def test_single_turn_ablation_keeps_only_the_translation_turn(tiny_model_dir, tmp_path):
    r = tiny_recipe(tmp_path / "st", tiny_model_dir)
    r.data.single_turn = True
    run_recipe(r, stop_after="data")
    for line in (tmp_path / "st" / "convs.jsonl").read_text().splitlines():
        rec = json.loads(line)
        assert [m["role"] for m in rec["messages"] if m["role"] != "system"] == ["user", "assistant"]
        assert rec["meta"]["kinds"] == ["translate"]


def test_bad_recipe_is_named(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("name: x\ndatta: {}\n")
    with pytest.raises(ValueError, match="datta"):
        load_recipe_file(bad)
