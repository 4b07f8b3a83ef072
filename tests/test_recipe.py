"""The whole recipe on the tiny model: data -> train -> eval -> report, resumable by stage."""

import json
import re

import pytest

from bayling.eval.suite import SuiteConfig
from bayling.recipe import DataSection, DataSource, Recipe, load_recipe_file, run_recipe


def tiny_recipe(out, model, **train):
    return Recipe(
        name="t", out=str(out), model=str(model),
        data=DataSection(sources=[DataSource("sample", "dev", ["eng_Latn", "deu_Latn", "fra_Latn"], limit=16)],
                         max_turns=3, filter=False),
        train={"chat_format": "chatml", "max_steps": 2, "batch_size": 2, "max_len": 256, "save_steps": 1, **train},
        eval=SuiteConfig(corpus="sample", directions=["eng_Latn-deu_Latn", "fra_Latn-eng_Latn"], limit=2,
                         max_new_tokens=8, n_shots=1),
    )


def test_recipe_runs_end_to_end_and_skips_finished_stages(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    run = run_recipe(tiny_recipe(out, tiny_model_dir))
    assert set(run["timings"]) == {"data", "train", "eval"}
    results = json.loads((out / "results.json").read_text())
    for system in ("base", "tuned"):
        r = results[system]
        assert 0 <= r["chrf"] <= 100
        assert r["off_target_rate"] is None or 0 <= r["off_target_rate"] <= 1
        assert set(r["breakdown"]["direction"]) == {"eng_Latn-deu_Latn", "fra_Latn-eng_Latn"}
    assert results["base"]["prompt"] == "few-shot" and results["tuned"]["prompt"] == "chat"
    assert results["base"]["backend"] == results["tuned"]["backend"] == "transformers"
    assert (out / "report.html").read_text().count("<img") >= 1
    assert (out / "results.png").stat().st_size > 1000
    assert "base" in (out / "report.md").read_text()
    convs = (out / "convs.jsonl").read_text().splitlines()
    assert len(convs) == 16

    again = run_recipe(tiny_recipe(out, tiny_model_dir))
    assert again["timings"] == run["timings"]  # nothing redone
    assert again["outputs"]["train"]["global_step"] == 2

    # Killed during eval (no marker): systems already scored with the same weights and settings
    # are reused, not decoded again; a changed setting scores again.
    (out / "eval.done.json").unlink()
    import bayling.recipe as recipe

    scored = []
    real = recipe.evaluate_system
    recipe_eval = lambda *a, **k: scored.append(a[1]) or real(*a, **k)  # noqa: E731
    try:
        recipe.evaluate_system = recipe_eval
        resumed = run_recipe(tiny_recipe(out, tiny_model_dir))
        assert scored == [] and resumed["outputs"]["eval"]["base"]["chrf"] == results["base"]["chrf"]
        (out / "eval.done.json").unlink()
        changed = tiny_recipe(out, tiny_model_dir)
        changed.eval.max_new_tokens = 6
        run_recipe(changed)
        assert scored == ["few-shot", "chat"]
        # Another system in the list (the shipped model next to an ablation) decodes only itself.
        (out / "eval.done.json").unlink()
        scored.clear()
        more = tiny_recipe(out, tiny_model_dir)
        more.eval.max_new_tokens, more.eval.systems = 6, ["base", "tuned", str(out / "model")]
        assert set(run_recipe(more)["outputs"]["eval"]) == {"base", "tuned", str(out / "model")}
        assert scored == ["chat"]
        # A loop guard decodes every system again and says so in its result.
        (out / "eval.done.json").unlink()
        scored.clear()
        guarded = tiny_recipe(out, tiny_model_dir)
        guarded.eval.max_new_tokens, guarded.eval.decoding = 6, {"no_repeat_ngram_size": 3}
        res = run_recipe(guarded)["outputs"]["eval"]
        assert scored == ["few-shot", "chat"] and res["tuned"]["decoding"] == {"no_repeat_ngram_size": 3}
        assert "decoding" not in results["tuned"]
    finally:
        recipe.evaluate_system = real


def test_train_stage_without_its_marker_continues_from_the_checkpoint(tiny_model_dir, tmp_path):
    """The recipe's wiring only: a real SIGKILL and resume is test_train's
    test_killed_training_resumes_to_the_uninterrupted_result."""
    out = tmp_path / "run"
    run_recipe(tiny_recipe(out, tiny_model_dir), stop_after="train")
    assert not (out / "eval.done.json").exists()
    first = json.loads((out / "model" / "train_summary.json").read_text())["log_history"]
    # As after a kill: no train marker, checkpoints on disk; ask for one step more.
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


def test_single_turn_of_a_refine_session_answers_with_the_reference(tiny_model_dir, tmp_path):
    from bayling.corpus import read_flores_multiway
    from bayling.resources import sample_dir

    r = tiny_recipe(tmp_path / "st", tiny_model_dir)
    r.data.multi_turn, r.data.single_turn = 1.0, True
    run_recipe(r, stop_after="data")
    lines = dict(read_flores_multiway(sample_dir(), "dev"))
    for line in (tmp_path / "st" / "convs.jsonl").read_text().splitlines():
        rec = json.loads(line)
        texts = lines[int(rec["meta"]["source"].rsplit(":", 1)[1])]
        (answer,) = [m for m in rec["messages"] if m["role"] == "assistant"]
        assert answer["content"] == texts[rec["meta"]["tgt_lang"]] and answer.get("weight", 1) == 1


def test_selection_lines_are_held_out_of_the_training_data(tmp_path):
    from bayling.recipe import SelectSection, select_pairs
    from bayling.resources import shared_data_dir

    if shared_data_dir() is None or not (shared_data_dir() / "flores200" / "dev").is_dir():
        pytest.skip("FLORES-200 dev is not in ../shared/data")
    langs = ["eng_Latn", "deu_Latn", "zho_Hans"]
    r = Recipe(name="s", out=str(tmp_path / "s"), data=DataSection(sources=[DataSource("flores", "dev", langs)],
                                                                    filter=False),
               eval=SuiteConfig(directions=["eng_Latn-deu_Latn", "zho_Hans-eng_Latn"]), select=SelectSection(lines=4))
    run_recipe(r, stop_after="data")
    used = {int(json.loads(x)["meta"]["source"].rsplit(":", 1)[1])
            for x in (tmp_path / "s" / "convs.jsonl").read_text().splitlines()}
    pairs = select_pairs(r)
    held = {int(p.origin.rsplit(":", 1)[1]) for p in pairs}
    assert len(pairs) == 8 and held == {994, 995, 996, 997} and max(used) == 993 and not used & held
    assert {(p.src_lang, p.tgt_lang) for p in pairs} == {("eng_Latn", "deu_Latn"), ("zho_Hans", "eng_Latn")}
    # Two conversations per line: every line but the held-out ones is still used.
    r.data.per_line, r.out = 2, str(tmp_path / "s2")
    run_recipe(r, stop_after="data")
    used = [int(json.loads(x)["meta"]["source"].rsplit(":", 1)[1])
            for x in (tmp_path / "s2" / "convs.jsonl").read_text().splitlines()]
    assert max(used) == 993 and len(set(used)) == 993 and not set(used) & held


def test_a_source_can_set_its_own_share_into_english(tmp_path):
    langs = ["eng_Latn", "deu_Latn", "fra_Latn"]
    r = Recipe.from_dict({"name": "s", "out": str(tmp_path / "s"), "data": {
        "filter": False, "crosslingual": 0, "into_english": 1.0,
        "sources": [{"corpus": "sample", "langs": langs, "limit": 30},
                    {"corpus": "sample", "langs": langs, "limit": 30, "into_english": 0}]}})
    run_recipe(r, stop_after="data")
    metas = [json.loads(x)["meta"] for x in (tmp_path / "s" / "convs.jsonl").read_text().splitlines()]
    first, second = ([m for m in part if "eng_Latn" in (m["src_lang"], m["tgt_lang"])] for part in (metas[:30], metas[30:]))
    assert len(metas) == 60 and len(first) >= 20 and len(second) >= 20

    def into(part):  # a tenth of multi-way lines pair two drawn languages, either way
        return sum(m["tgt_lang"] == "eng_Latn" for m in part) / len(part)

    assert into(first) >= 0.8 and into(second) <= 0.2  # the section's share (1.0), then the source's own (0)


def test_bad_recipe_is_named(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("name: x\ndatta: {}\n")
    with pytest.raises(ValueError, match="datta"):
        load_recipe_file(bad)
    bad.write_text("name: x\ndata: {sources: [{corpus: sample, into_englsh: 0}]}\n")
    with pytest.raises(ValueError, match="data.sources.0.into_englsh: unknown option.*known: corpus"):
        load_recipe_file(bad)
    bad.write_text("name: x\neval: {decoding: {no_repeat_ngram: 3}}\n")  # refused at load, not after training
    with pytest.raises(ValueError, match="unknown decoding setting.*no_repeat_ngram"):
        load_recipe_file(bad)


def test_under_a_multi_process_launch_only_the_main_rank_builds_data_and_evaluates(tmp_path, monkeypatch):
    import bayling.recipe as rec

    calls: list[str] = []
    for name in rec.STAGES:
        monkeypatch.setattr(rec, f"stage_{name}", lambda r, out, console, name=name, **kw: calls.append(name) or {"ran": name})
    monkeypatch.setattr(rec, "write_results", lambda *a: calls.append("results"))

    def barrier() -> None:  # meanwhile the main rank finished its stages and marked them
        for stage in rec.MAIN_ONLY:
            rec._mark(tmp_path, stage, {"ran": stage, "by": "main"})

    monkeypatch.setattr(rec, "_ranks", lambda: (False, barrier))
    run = rec.run_recipe(Recipe(out=str(tmp_path)), force=True)
    assert calls == ["train"]  # this rank trains with the others, but neither builds data nor scores
    assert run["outputs"]["data"] == {"ran": "data", "by": "main"}
    assert not (tmp_path / "train.done.json").exists() and not (tmp_path / "timings.json").exists()

    calls.clear()
    monkeypatch.setattr(rec, "_ranks", lambda: (True, lambda: None))
    rec.run_recipe(Recipe(out=str(tmp_path / "main")))
    assert calls == ["data", "train", "eval", "results"]
    assert json.loads((tmp_path / "main" / "train.done.json").read_text()) == {"ran": "train"}


class _Steerable:
    """Answers like a model that half follows term requests (the tiny random model answers nothing:
    a pair needs a first answer). Turn 1: the last word of the source; turn 2: the reference's words
    for even sessions, the first answer again for odd ones (when sampled: the reference's words)."""

    def __init__(self, refs):
        self.refs, self.decoding, self.batching = refs, {}, None

    def chat(self, convs, config):
        outs = []
        for conv in convs:
            src = conv[0]["content"].rsplit("\n", 1)[-1]
            if len(conv) == 1:
                outs.append(src.split()[-1])
            else:
                k = sorted(self.refs).index(src)
                sampled = config.temperature > 0  # a drawn answer uses the word where the greedy one did not
                outs.append(self.refs[src] if k % 2 == 0 or sampled else conv[1]["content"])
        return outs


def test_dpo_recipe_plays_sessions_makes_pairs_and_trains_from_an_adapter(tiny_model_dir, tmp_path, monkeypatch):
    """data.preferences: the model's own term-request sessions become pairs; train.objective dpo from an adapter."""
    from bayling.corpus import read_flores
    from bayling.resources import named_corpus

    refs = {p.src: p.tgt for p in read_flores(named_corpus("sample"), "dev",
                                              pairs=[("eng_Latn", "deu_Latn"), ("fra_Latn", "eng_Latn")])}
    played = []
    monkeypatch.setattr("bayling.infer.backends.load_engine", lambda model, **kw: played.append(model) or _Steerable(refs))
    first = tmp_path / "sft"
    run_recipe(tiny_recipe(first, tiny_model_dir), stop_after="train")
    r = Recipe(
        name="d", out=str(tmp_path / "dpo"), model=str(tiny_model_dir),
        data=DataSection(preferences={"model": str(first / "model"), "corpus": "sample", "split": "dev", "lines": 3,
                                      "max_new_tokens": 8}),
        train={"chat_format": "chatml", "objective": "dpo", "init_adapter": str(first / "model"), "max_steps": 2,
               "batch_size": 2, "max_len": 256, "save_steps": 100},
        eval=SuiteConfig(corpus="sample", directions=["eng_Latn-deu_Latn", "fra_Latn-eng_Latn"], limit=2,
                         max_new_tokens=8, n_shots=1),
    )
    run = run_recipe(r, stop_after="train")
    data = run["outputs"]["data"]
    out = tmp_path / "dpo"
    transcripts = [json.loads(x) for x in (out / "sessions.jsonl").read_text().splitlines()]
    pairs = [json.loads(x) for x in (out / "prefs.jsonl").read_text().splitlines()]
    assert played == [str(first / "model")] and len(transcripts) == 6 and data["preference_pairs"] == len(pairs)
    assert {p["meta"]["rejected"] for p in pairs} == {"first_answer", "unchanged"} and len(pairs) >= 4
    for p in pairs:
        terms = p["meta"]["terms"]
        assert all(t in p["chosen"][0]["content"] for t in terms)
        assert not all(t in p["rejected"][0]["content"] for t in terms)
    summary = json.loads((out / "model" / "train_summary.json").read_text())
    assert summary["objective"] == "dpo" and summary["global_step"] == 2
    assert summary["config"]["init_adapter"] == str(first / "model")
    with pytest.raises(Exception, match="go together"):
        Recipe(name="x", train={"objective": "dpo"})
    with pytest.raises(Exception, match="data.preferences .sample devtest. contains a sentence of the eval"):
        run_recipe(Recipe(name="y", out=str(tmp_path / "y"), model=str(tiny_model_dir),
                          data=DataSection(preferences={"corpus": "sample", "split": "devtest"}),
                          train={"objective": "dpo"}, eval=SuiteConfig(corpus="sample")), stop_after="data")


def test_on_policy_preferences_sample_the_models_answers_and_choose_its_own(tiny_model_dir, tmp_path, monkeypatch):
    """samples + chosen: own: answers drawn per request (out/samples.jsonl); chosen = the model's own answer."""
    from bayling.corpus import read_flores
    from bayling.resources import named_corpus

    refs = {p.src: p.tgt for p in read_flores(named_corpus("sample"), "dev",
                                              pairs=[("eng_Latn", "deu_Latn"), ("fra_Latn", "eng_Latn")])}
    monkeypatch.setattr("bayling.infer.backends.load_engine", lambda model, **kw: _Steerable(refs))
    def recipe(name, **prefs):
        return Recipe(name=name, out=str(tmp_path / name), model=str(tiny_model_dir),
                      data=DataSection(preferences={"model": "m", "corpus": "sample", "split": "dev", "lines": 3,
                                                    "max_new_tokens": 8, **prefs}),
                      train={"objective": "dpo"},
                      eval=SuiteConfig(corpus="sample", directions=["eng_Latn-deu_Latn", "fra_Latn-eng_Latn"], limit=2))
    data = run_recipe(recipe("own", samples=2, temperature=0.5, chosen="own"), stop_after="data")["outputs"]["data"]
    out = tmp_path / "own"
    sampled = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    pairs = [json.loads(x) for x in (out / "prefs.jsonl").read_text().splitlines()]
    assert all(len(t["samples"]) == 2 for t in sampled if len(t["turns"]) == 2)
    # odd sessions: greedy handed the first answer back, a drawn answer used the word -> a pair; even
    # sessions always used the word -> nothing to reject
    assert pairs and data["preference_pairs"] == len(pairs) and data["counts"]["no own answer without the word"] >= 1
    for p in pairs:
        assert p["meta"]["chosen"] == "own" and p["meta"]["rejected"] == "unchanged"
        assert p["rejected"][0]["content"] == p["prompt"][1]["content"]
        assert all(w in p["chosen"][0]["content"] for w in p["meta"]["terms"])
    with pytest.raises(Exception, match="go together"):
        run_recipe(recipe("bad", chosen="own"), stop_after="data")


@pytest.mark.parametrize("text, named", [
    ("train: {max_steps: two}", "train.max_steps: input should be a valid integer"),
    ("train: {lr: fast}", "train.lr: input should be a valid number"),
    ("train: {batch_size: 2.5}", "train.batch_size: input should be a valid integer"),
    ("select: {lines: four}", "select.lines: input should be a valid integer"),
    ("eval: {limit: x}", "eval.limit: input should be a valid integer"),
    ("eval: {limit: 0}", "eval.limit: at least 1"),
    ("data: [sample]", "recipe data: a mapping"),
    ("eval: flores", "recipe eval: a mapping"),
    ("data: {sources: sample}", "data.sources: input should be a valid list"),
    ("data: {sources: [{corpus: sample, langs: eng_Latn}]}", "data.sources.0.langs: input should be a valid list"),
    ("data: {sources: [{corpus: /tmp/my-corpus-typo.tsv}]}", "data.sources.0.corpus: /tmp/my-corpus-typo.tsv: no such"),
    ("eval: {directions: [eng_Latn-xx]}", "eval.directions: .*xx"),
    ("eval: {directions: [eng_Latn]}", "eval.directions: 'eng_Latn' is not SRC-TGT"),
    ("eval: {systems: [base, tunde]}", "eval.systems: unknown model 'tunde'"),
    ("eval: {corpus: /tmp/no-such-eval-set}", "eval.corpus: .*no-such-eval-set"),
    ("model: /tmp/nonexistent-model", "recipe model: /tmp/nonexistent-model: no such model folder"),
    ("", "an empty recipe"),
])
def test_a_recipe_is_checked_whole_when_it_is_loaded(tmp_path, text, named):
    """Types, paths, language codes, systems and models: refused at load, each problem naming its
    field, never a traceback after the data stage (issue 44, defect 5)."""
    bad = tmp_path / "r.yaml"
    bad.write_text(text + "\n")
    with pytest.raises(ValueError, match=named) as err:
        load_recipe_file(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_every_problem_is_named_in_one_line_and_the_cli_exits_2(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "r.yaml"
    bad.write_text("train: {max_steps: two, lr: fast}\neval: {systems: [base, tunde]}\n")
    r = subprocess.run([sys.executable, "-m", "bayling.cli", "recipe", "run", str(bad)], capture_output=True, text=True,
                       timeout=120, env={**__import__("os").environ, "BAYLING_HOME": str(tmp_path / "home")})
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    for field in ("train.max_steps", "train.lr"):
        assert field in line
    assert not (tmp_path / "runs").exists()


def test_training_on_the_eval_sentences_is_refused_at_load(tmp_path):
    """The sample's devtest as a training source with the sample devtest eval, or the eval's
    sentences under another file name: refused before any stage, naming both (defect 4)."""
    bad = tmp_path / "r.yaml"
    bad.write_text("data: {sources: [{corpus: sample, split: devtest}]}\neval: {corpus: sample}\n")
    with pytest.raises(ValueError, match=r"data.sources.0 \(sample devtest\) contains a sentence of the eval \(sample devtest\)"):
        load_recipe_file(bad)
    from bayling.eval.suite import pick_sentences

    test = pick_sentences(SuiteConfig(corpus="sample"))[0]
    copy = tmp_path / "mine.en-de.tsv"
    copy.write_text("".join(f"{p.src}\t{p.tgt}\n" for p in test[:3] if p.src_lang == "eng_Latn") + "Hello there, friend.\tHallo, Freund.\n")
    bad.write_text(f"data: {{sources: [{{corpus: {copy}, langs: [eng_Latn, deu_Latn]}}]}}\neval: {{corpus: sample}}\n")
    with pytest.raises(ValueError, match="mine.en-de.tsv.*contains a sentence of the eval"):
        load_recipe_file(bad)
    with pytest.raises(ValueError, match="contains a sentence of the eval"):  # a recipe built in code, too
        run_recipe(Recipe(out=str(tmp_path / "run"), data=DataSection(sources=[DataSource("sample", "devtest")])))
    assert not (tmp_path / "run" / "convs.jsonl").exists()
    # The shipped layout (dev to train on, devtest to test on) passes.
    bad.write_text("data: {sources: [{corpus: sample, split: dev}]}\neval: {corpus: sample}\n")
    assert load_recipe_file(bad).data.sources[0].split == "dev"


def test_flores_devtest_as_training_data_is_refused(shared_data, tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("data: {sources: [{corpus: flores, split: devtest, langs: [eng_Latn, deu_Latn]}]}\n"
                   "eval: {corpus: flores, directions: [eng_Latn-deu_Latn], limit: 50}\n")
    with pytest.raises(ValueError, match=r"flores devtest\) contains a sentence of the eval \(flores devtest\)"):
        load_recipe_file(bad)


def test_shipped_recipes_load_and_pass_the_checks(shared_data):
    from pathlib import Path

    for path in sorted(Path(__file__).resolve().parents[1].glob("recipes/*.yaml")):
        # An experiment that starts from, or compares with, another run's output needs that run first.
        text = "\n".join(line.partition("#")[0] for line in path.read_text().splitlines())
        needs = re.findall(r"(?:init_adapter|systems):.*?(runs/[\w./-]+)", text)
        if needs:
            with pytest.raises(ValueError, match=re.escape(needs[0])):
                load_recipe_file(path)
        else:
            loaded = load_recipe_file(path)
            for r in getattr(loaded, "steps", [loaded]):  # a multi-step recipe: every step
                assert r.eval.limit >= 1, (path, r.name)


def _killed_at(cmd, env, ready, timeout=300) -> bool:
    """Start `cmd`, SIGKILL it once `ready()` holds; False if it ended first."""
    import signal
    import subprocess
    import time

    victim = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if victim.poll() is not None:
                return False
            assert time.monotonic() < deadline, "the kill point never came"
            time.sleep(0.002)
        victim.send_signal(signal.SIGKILL)
        return victim.wait() == -signal.SIGKILL
    finally:
        victim.kill()


def test_a_recipe_killed_at_any_stage_resumes_to_the_uninterrupted_result(tiny_model_dir, tmp_path):
    """SIGKILL `bayling recipe run` in the data stage, while a checkpoint is written, mid-training,
    during the final save and during the eval; each rerun goes on, and the last one ends with the
    results, curve and weights of a run never interrupted (issue 44)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import torch
    from safetensors.torch import load_file

    def recipe(out):
        path = tmp_path / f"{out.name}.yaml"
        path.write_text(
            f"name: k\nout: {out}\nmodel: {tiny_model_dir}\n"
            "data: {sources: [{corpus: sample, split: dev, langs: [eng_Latn, deu_Latn, fra_Latn], limit: 16}], "
            "max_turns: 3, filter: false}\n"
            "train: {chat_format: chatml, max_steps: 12, batch_size: 2, max_len: 256, save_steps: 3, "
            "save_total_limit: 2, lr: 5.0e-3}\n"
            "eval: {corpus: sample, directions: [eng_Latn-deu_Latn, fra_Latn-eng_Latn], limit: 2, max_new_tokens: 8, "
            "n_shots: 1}\n")
        return [sys.executable, "-m", "bayling.cli", "recipe", "run", str(path)]

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    baseline = subprocess.Popen(recipe(whole), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ckpt = killed / "model" / "checkpoints"
    points = {
        "data": lambda: killed.is_dir(),
        "mid-checkpoint": lambda: (ckpt / "checkpoint-6").is_dir(),
        "training": lambda: (ckpt / "checkpoint-9" / "bayling-checkpoint.json").is_file(),
        "final save": lambda: (killed / "model" / "adapter_config.json").is_file(),
        "eval": lambda: (killed / "eval-base.json").is_file(),
    }
    for where, ready in points.items():
        assert _killed_at(recipe(killed), env, ready), f"the run ended before the {where} kill"
    assert not (killed / "eval.done.json").exists()
    r = subprocess.run(recipe(killed), env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert baseline.wait(timeout=600) == 0, baseline.stderr.read()[-3000:]

    a, b = (json.loads((d / "results.json").read_text()) for d in (killed, whole))
    for system in ("base", "tuned"):
        assert [e["hyp"] for e in a[system]["examples"]] == [e["hyp"] for e in b[system]["examples"]]
        assert a[system]["chrf"] == b[system]["chrf"]
    sa, sb = (json.loads((d / "model" / "train_summary.json").read_text()) for d in (killed, whole))
    assert sa["global_step"] == sb["global_step"] == 12
    la, lb = ([(h["step"], h["loss"]) for h in s["log_history"] if "loss" in h] for s in (sa, sb))
    assert [s for s, _ in la] == [s for s, _ in lb] == list(range(1, 13))
    torch.testing.assert_close(torch.tensor([x for _, x in la]), torch.tensor([x for _, x in lb]), atol=0, rtol=1e-4)
    wa, wb = (load_file(str(d / "model" / "adapter_model.safetensors")) for d in (killed, whole))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=1e-5, rtol=1e-3, msg=k)
    assert json.loads((killed / "train.done.json").read_text())["global_step"] == 12


# -- multi-step recipes (recipes/bayling-mini.yaml) --------------------------------------------------

def _tiny_steps(tmp_path, model, second_init="step:first", extra_system="step:first"):
    step = ("    data: {sources: [{corpus: sample, split: dev, langs: [eng_Latn, deu_Latn, fra_Latn], limit: 16}], "
            "max_turns: 3, filter: false}\n"
            "    eval: {corpus: sample, directions: [eng_Latn-deu_Latn, fra_Latn-eng_Latn], limit: 2, max_new_tokens: 8, "
            "n_shots: 1, systems: [tuned%s]}\n")
    path = tmp_path / "two.yaml"
    path.write_text(
        f"name: two\nout: {tmp_path / 'two'}\nmodel: {model}\nsteps:\n"
        "  - name: first\n    hours: {data: 0.01, train: 0.25, eval: 0.5}\n" + step % ""
        + "    train: {chat_format: chatml, max_steps: 2, batch_size: 2, max_len: 256, save_steps: 1}\n"
        "  - name: second\n" + step % f", '{extra_system}'"
        + f"    train: {{chat_format: chatml, max_steps: 2, batch_size: 2, max_len: 256, save_steps: 1, "
          f"init_adapter: '{second_init}'}}\n")
    return path


LOG_DICT = re.compile(r"\{'[a-z_]+': ")  # transformers' ProgressCallback/PrinterCallback: {'loss': '1.581', ...}


def test_a_step_trains_from_an_earlier_steps_adapter_and_a_rerun_skips_both(tiny_model_dir, tmp_path):
    """Two steps through the CLI: the second trains further from the first's adapter (`step:first`)
    and scores it beside itself; the screen shows progress bars, never the Trainer's log dicts; a
    rerun skips both steps."""
    import os
    import subprocess
    import sys

    from bayling.recipe import RecipeSteps

    path = _tiny_steps(tmp_path, tiny_model_dir)
    first_model = tmp_path / "two" / "first" / "model"
    loaded = load_recipe_file(path)  # step:first is not trained yet: not refused
    assert isinstance(loaded, RecipeSteps) and [r.name for r in loaded.steps] == ["first", "second"]
    assert loaded.steps[1].train.init_adapter == str(first_model) and loaded.steps[1].out == str(tmp_path / "two" / "second")

    cmd = [sys.executable, "-m", "bayling.cli", "recipe", "run", str(path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    screen = r.stdout + r.stderr
    assert not [line for line in re.split(r"[\r\n]", screen) if LOG_DICT.search(line)], screen[-3000:]
    assert "tokens/s" in r.stderr  # the bar's postfix: loss, trained tokens/s (and tqdm's ETA)
    second = tmp_path / "two" / "second"
    summary = json.loads((second / "model" / "train_summary.json").read_text())
    assert summary["config"]["init_adapter"] == str(first_model) and summary["global_step"] == 2
    assert [h["step"] for h in summary["log_history"] if "loss" in h] == [1, 2]  # the log stays on disk
    results = json.loads((second / "results.json").read_text())
    earlier = json.loads((tmp_path / "two" / "first" / "results.json").read_text())
    # step:first scored in step two: the first step's model, same sentences, same greedy answers
    assert [e["hyp"] for e in results[str(first_model)]["examples"]] == [e["hyp"] for e in earlier["tuned"]["examples"]]

    stamp = (second / "model" / "adapter_model.safetensors").stat().st_mtime_ns
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "step first: done earlier" in again.stderr and "step second: done earlier" in again.stderr
    assert (second / "model" / "adapter_model.safetensors").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("ref, named", [
    ("step:frist", r"steps.1 \(second\) train.init_adapter: step:frist names no step \(steps before this one: first\)"),
    ("step:second", r"steps.1 \(second\) train.init_adapter: step:second is this step or a later one"),
])
def test_a_reference_to_an_unknown_or_later_step_is_refused_at_load(tmp_path, ref, named):
    path = _tiny_steps(tmp_path, "gemma3-270m", second_init=ref)
    with pytest.raises(ValueError, match=named) as err:
        load_recipe_file(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    path = _tiny_steps(tmp_path, "gemma3-270m", extra_system="step:third")
    with pytest.raises(ValueError, match=r"eval.systems.1: step:third names no step"):
        load_recipe_file(path)
    path.write_text(path.read_text().replace("  - name: second\n", "  - name: second\n    out: elsewhere\n"))
    with pytest.raises(ValueError, match=r"steps.1 \(second\).out: a step runs in .*/two/second"):
        load_recipe_file(path)


def test_dry_run_lists_every_step_its_stages_and_the_hours_each_took(tmp_path, monkeypatch):
    """`bayling recipe run recipes/bayling-mini.yaml --dry-run`: v2 -> v6 -> v7 from the base, each
    stage with its measured hours and the total; nothing is run or written."""
    from pathlib import Path

    from typer.testing import CliRunner

    from bayling.cli import app
    from bayling.train.trainer import read_recipe_yaml

    shipped = Path(__file__).resolve().parents[1] / "recipes" / "bayling-mini.yaml"
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["recipe", "run", str(shipped), "--dry-run"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert [line for line in lines if line.startswith("step ")] == ["step v2", "step v6", "step v7"]
    stages = [re.match(r"  (data|train|eval) +(-|\d+\.\d\d h)  (.+)", line) for line in lines if line.startswith("  ")]
    assert all(stages) and [m.group(1) for m in stages] == ["data", "train", "eval"] * 3
    doc = read_recipe_yaml(shipped)
    hours = [step.get("hours", {}).get(stage) for step in doc["steps"] for stage in ("data", "train", "eval")]
    assert [m.group(2) for m in stages] == ["-" if h is None else f"{h:.2f} h" for h in hours]
    assert sum(h for h in hours if h) > 5 and f"total {sum(h for h in hours if h):.2f} h" in r.output
    text = "\n".join(m.group(3) for m in stages)
    assert "refine drafts by step:v2" in text and "DPO (lora) from step:v6" in text and "SFT (lora) from gemma3-270m" in text
    assert not (tmp_path / "runs").exists()

    # A recipe's own run: stages done in this checkout are marked
    tiny = _tiny_steps(tmp_path, "gemma3-270m")
    (tmp_path / "two" / "first").mkdir(parents=True)
    (tmp_path / "two" / "first" / "data.done.json").write_text("{}")
    r = CliRunner().invoke(app, ["recipe", "run", str(tiny), "--dry-run"])
    assert r.exit_code == 0, r.output
    assert r.output.count("[done here]") == 1 and "total 0.76 h  (-: not measured on its own)" in r.output


def test_a_recipe_without_a_train_section_trains_its_own_model(tiny_model_dir, tmp_path):
    """The recipe's model is the trainer's too when the file has no train section (a review found
    it fell back to the trainer's default base)."""
    bad = tmp_path / "r.yaml"
    bad.write_text(f"model: {tiny_model_dir}\ndata: {{sources: [{{corpus: sample, split: dev}}]}}\neval: {{corpus: sample}}\n")
    assert load_recipe_file(bad).train.model == str(tiny_model_dir)
