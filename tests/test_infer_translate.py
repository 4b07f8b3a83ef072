"""Batch translation: every input kind, resume without duplicates, constraints, refinement, CLI."""

from __future__ import annotations

import json

import pytest

from bayling.infer.engine import GenerationConfig
from bayling.testing.fake_engine import FakeEngine
from bayling.infer.translate import (
    TranslateError,
    default_prompt_mode,
    read_items,
    translate_batch,
    translate_file,
)
from bayling.resources import sample_dir


def _translator(target) -> str:
    """Scripted: "T(<source>)"; a refinement wraps it in "formal(...)"; a constraint reminder adds the terms."""
    if isinstance(target, str):  # few-shot prompt: the answer ends the prompt's last line
        return "T(" + target.split("\n")[-2].split(": ", 1)[1] + ")\nnext line"
    last = target[-1]["content"]
    if last.startswith("The translation must contain"):
        return target[-2]["content"] + " + " + last.split('"')[1]
    if len(target) > 1:
        return f"formal({target[-2]['content']})"
    return "T(" + last.split("\n\n")[1] + ")"


@pytest.fixture
def fake():
    return FakeEngine(_translator)


def _lines(tmp_path, n=5, blank_at=None):
    p = tmp_path / "in.txt"
    lines = [f"sentence {i}" for i in range(1, n + 1)]
    if blank_at is not None:
        lines[blank_at] = ""
    p.write_text("\n".join(lines) + "\n")
    return p


def test_read_every_input_kind(tmp_path):
    items = list(read_items(_lines(tmp_path, 3, blank_at=1), "en", "Deutsch"))
    assert [(i.id, i.src, i.src_lang, i.tgt_lang) for i in items] == [
        ("1", "sentence 1", "eng_Latn", "deu_Latn"), ("2", "", "eng_Latn", "deu_Latn"), ("3", "sentence 3", "eng_Latn", "deu_Latn")]
    tsv = tmp_path / "in.tsv"
    tsv.write_text("source\treference\nHello\tHallo\nBye\n")
    assert [(i.id, i.src, i.ref) for i in read_items(tsv, "en", "de")] == [("2", "Hello", "Hallo"), ("3", "Bye", None)]
    jl = tmp_path / "in.jsonl"
    jl.write_text(json.dumps({"id": "a", "src": "Hi", "tgt_lang": "fr", "constraints": ["Salut"]}) + "\n"
                  + json.dumps({"src": "Yo", "tgt_lang": "zh"}) + "\n")
    got = list(read_items(jl, "English", None, constraints=["X"]))
    assert [(i.id, i.tgt_lang, i.constraints) for i in got] == [("a", "fra_Latn", ("X", "Salut")), ("2", "zho_Hans", ("X",))]
    flores = list(read_items(sample_dir(), "zh", "en", split="dev"))
    assert len(flores) == 48 and flores[0].id == "dev:1" and flores[0].ref and flores[0].src_lang == "zho_Hans"


def test_bad_inputs_say_what_is_wrong(tmp_path):
    from bayling.languages import UnknownLanguage

    with pytest.raises(TranslateError, match="--src-lang"):
        list(read_items(_lines(tmp_path), None, "de"))
    with pytest.raises(UnknownLanguage):
        list(read_items(_lines(tmp_path), "en", "Elvish"))
    with pytest.raises(TranslateError, match="no such file"):
        list(read_items(tmp_path / "missing.txt", "en", "de"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"src": 1}\n')
    with pytest.raises(TranslateError, match="bad.jsonl:1"):
        list(read_items(bad, "en", "de"))


def test_translate_to_lines_and_jsonl(fake, tmp_path):
    items = list(read_items(_lines(tmp_path, 3, blank_at=1), "en", "de"))
    out = tmp_path / "out.txt"
    s = translate_file(fake, items, out)
    assert out.read_text() == "T(sentence 1)\n\nT(sentence 3)\n" and s.translated == 3 and fake.calls == 2
    out = tmp_path / "out.jsonl"
    translate_file(fake, items, out)
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in recs] == ["1", "2", "3"] and recs[0]["messages"][1]["content"] == "T(sentence 1)"
    assert not (tmp_path / "out.jsonl.partial.jsonl").exists()


def test_resume_after_a_crash_duplicates_nothing(tmp_path):
    items = list(read_items(_lines(tmp_path, 7), "en", "de"))
    out = tmp_path / "out.jsonl"

    class Crashing(FakeEngine):
        def chat(self, conversations, config):
            if self.calls >= 4:
                raise KeyboardInterrupt  # killed during the third batch
            return super().chat(conversations, config)

    with pytest.raises(KeyboardInterrupt):
        translate_file(Crashing(_translator), items, out, batch_size=2)
    partial = tmp_path / "out.jsonl.partial.jsonl"
    assert not out.exists() and len(partial.read_text().splitlines()) == 4
    with open(partial, "a") as f:
        f.write('{"id": "5", "src": "sentence 5", "hy')  # a record cut by the kill

    fresh = FakeEngine(_translator)
    s = translate_file(fresh, items, out, batch_size=2)
    assert (s.resumed, s.translated, fresh.calls) == (4, 3, 3)
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in recs] == [str(i) for i in range(1, 8)]
    assert [r["hyp"] for r in recs] == [f"T(sentence {i})" for i in range(1, 8)]
    assert not partial.exists()

    again = FakeEngine(_translator)
    assert translate_file(again, items, out).translated == 0 and again.calls == 0  # finished: nothing redone
    txt = tmp_path / "out.txt"
    translate_file(FakeEngine(_translator), items, txt)
    again = FakeEngine(_translator)
    translate_file(again, items, txt)
    assert again.calls == 0 and len(txt.read_text().splitlines()) == 7


def test_a_changed_source_line_is_translated_again(fake, tmp_path):
    items = list(read_items(_lines(tmp_path, 2), "en", "de"))
    out = tmp_path / "o.jsonl"
    translate_file(fake, items, out)
    (tmp_path / "in.txt").write_text("sentence 1\nsomething else\n")
    s = translate_file(fake, list(read_items(tmp_path / "in.txt", "en", "de")), out)
    assert s.translated == 1 and json.loads(out.read_text().splitlines()[1])["hyp"] == "T(something else)"


def test_resume_matches_by_content_not_position(fake, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("one\ntwo\nthree\nfour\n")
    for out in (tmp_path / "out.txt", tmp_path / "out.jsonl"):
        translate_file(fake, list(read_items(src, "en", "de")), out)
    src.write_text("one\nTWO edited\ninserted\nthree\nfour\n")  # line 2 edited, a new line 3
    items = list(read_items(src, "en", "de"))
    for out in (tmp_path / "out.txt", tmp_path / "out.jsonl"):
        again = FakeEngine(_translator)
        s = translate_file(again, items, out)
        assert (s.translated, s.resumed, again.calls) == (2, 3, 2)
        hyps = (out.read_text().splitlines() if out.suffix == ".txt"
                else [json.loads(x)["hyp"] for x in out.read_text().splitlines()])
        assert hyps == [f"T({it.src})" for it in items]  # aligned with the input as it is now
    recs = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in recs] == ["1", "2", "3", "4", "5"]


def test_other_settings_translate_again(fake, tmp_path):
    items = list(read_items(_lines(tmp_path, 2), "en", "de"))
    out = tmp_path / "out.txt"
    translate_file(fake, items, out)
    again = FakeEngine(_translator)
    assert translate_file(again, items, out, refine="shorter").translated == 2 and again.calls == 4
    assert out.read_text() == "formal(T(sentence 1))\nformal(T(sentence 2))\n"
    again = FakeEngine(_translator)
    assert translate_file(again, items, out, config=GenerationConfig(max_new_tokens=99)).translated == 2


@pytest.mark.parametrize("suffix", [".txt", ".jsonl"])
def test_sigkill_mid_run_then_resume_is_complete_and_aligned(tmp_path, suffix):
    import os
    import signal
    import subprocess
    import sys
    import time

    from bayling.serve.app import create_app
    from bayling.testing.background import BackgroundServer

    src, out = tmp_path / "in.txt", tmp_path / f"out{suffix}"
    src.write_text("".join(f"sentence {i}\n" for i in range(1, 21)))
    partial = tmp_path / f"out{suffix}.partial.jsonl"
    with BackgroundServer(create_app(FakeEngine(_translator, token_latency=0.05), model_name="fake")) as server:
        cmd = [sys.executable, "-m", "bayling.cli", "translate", str(src), "-s", "en", "-t", "de", "--backend", "openai",
               "--base-url", server.url + "/v1", "--model", "fake", "--out", str(out), "--batch-size", "1",
               "--no-progress"]
        env = {**os.environ, "OPENAI_API_KEY": "none"}
        run = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while (not partial.exists() or len(partial.read_bytes().splitlines()) < 3) and time.monotonic() < deadline:
            time.sleep(0.01)
        run.send_signal(signal.SIGKILL)
        run.communicate()
        assert run.returncode == -signal.SIGKILL and not out.exists()  # killed mid-run, before the end
        done_before = partial.read_bytes().count(b"\n")  # whole records only
        assert 3 <= done_before < 20
        with open(partial, "ab") as f:
            f.write(b'{"id": "9", "src": "sentence 9", "hy')  # a record cut by the kill
        lines = src.read_text().splitlines()
        src.write_text("\n".join(lines[:1] + ["new line"] + lines[1:]) + "\n")  # the input changed meanwhile
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"{21 - done_before} translated, {done_before} already done" in r.stderr
    want = [f"T({x})" for x in src.read_text().splitlines()]
    if suffix == ".txt":
        assert out.read_text().splitlines() == want
    else:
        recs = [json.loads(x) for x in out.read_text().splitlines()]
        assert [r["id"] for r in recs] == [str(i) for i in range(1, 22)] and [r["hyp"] for r in recs] == want
    assert not partial.exists()


def test_constraints_get_a_second_turn_and_are_scored(fake, tmp_path):
    items = list(read_items(_lines(tmp_path, 2), "en", "de", constraints=["Satz"]))
    [rec, _] = translate_batch(fake, items)
    assert rec["hyp"] == "T(sentence 1) + Satz" and rec["constraints_met"] is True
    assert 'must contain these terms: "Satz"' in rec["messages"][0]["content"]
    assert rec["messages"][2]["content"].startswith("The translation must contain")


def test_refine_is_a_second_turn_on_each_result(fake, tmp_path):
    items = list(read_items(_lines(tmp_path, 2), "en", "de"))
    recs = translate_batch(fake, items, refine="Make it more formal.")
    assert recs[0]["draft"] == "T(sentence 1)" and recs[0]["hyp"] == "formal(T(sentence 1))"
    assert [m["role"] for m in recs[0]["messages"]] == ["user", "assistant", "user", "assistant"]


def test_few_shot_mode_for_base_models(fake, tmp_path):
    items = list(read_items(_lines(tmp_path, 1), "en", "zh"))
    [rec] = translate_batch(fake, items, mode="few-shot")
    assert rec["hyp"] == "T(sentence 1)"  # cut at the newline that ends a few-shot answer
    assert default_prompt_mode("gemma3-270m") == "few-shot"
    assert default_prompt_mode(None) == "few-shot"
    assert default_prompt_mode("gemma3-270m", adapter="run") == "chat"
    assert default_prompt_mode("smollm2-135m") == "chat"


def test_duplicate_ids_are_refused(fake, tmp_path):
    jl = tmp_path / "d.jsonl"
    jl.write_text('{"id": 1, "src": "a"}\n{"id": 1, "src": "b"}\n')
    with pytest.raises(TranslateError, match="unique"):
        translate_file(fake, read_items(jl, "en", "de"), tmp_path / "o.txt")


def test_translate_cli_on_the_tiny_model(tiny_model_dir, tmp_path):
    import typer
    from typer.testing import CliRunner

    from bayling.infer.cli import translate_command

    app = typer.Typer()
    app.command("translate")(translate_command)
    app.command("noop")(lambda: None)
    src = _lines(tmp_path, 3)
    out = tmp_path / "o.jsonl"
    args = ["translate", str(src), "-s", "en", "-t", "zh", "--model", str(tiny_model_dir), "--chat-format", "chatml",
            "--out", str(out), "--max-new-tokens", "4", "--no-progress", "--refine", "shorter", "-c", "狐;犬"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["id"] for x in recs] == ["1", "2", "3"] and recs[0]["constraints"] == ["狐", "犬"]
    r = CliRunner().invoke(app, args)
    assert "0 translated, 3 already done" in r.output


@pytest.mark.slow
def test_translate_with_the_embedded_base_model(tmp_path):
    from bayling.infer.engine import TransformersEngine

    engine = TransformersEngine.load("gemma3-270m")
    items = list(read_items(sample_dir(), "en", "fr", split="devtest"))[:1]
    s = translate_file(engine, items, tmp_path / "o.txt", mode="few-shot", config=GenerationConfig(max_new_tokens=16))
    assert s.translated == 1 and (tmp_path / "o.txt").read_text().strip()


@pytest.mark.parametrize("mode", ["chat", "few-shot"])
def test_language_guard_redraws_answers_in_the_wrong_language(mode):
    """An answer the detector puts in another language than asked is drawn again (sampled) and
    replaced by a draw in the target language; on-target answers are never redrawn (issue 45)."""
    from bayling.infer.translate import Item, translate_batch
    from bayling.testing.fake_engine import FakeEngine

    german = "Der Hund schläft den ganzen Tag im Garten unter dem alten Baum."
    russian = "Собака спит весь день в саду под старым деревом."
    draws = []

    def reply(target):
        text = target if isinstance(target, str) else target[-1]["content"]
        if "cat" in text:  # this request is answered in German from the start
            return german
        draws.append(engine.last_config.temperature)
        return german if engine.last_config.temperature > 0 and len(draws) > 2 else russian

    engine = FakeEngine(reply)
    items = [Item("1", "The dog sleeps all day in the garden under the old tree.", "eng_Latn", "deu_Latn"),
             Item("2", "The cat sleeps all day in the garden under the old tree.", "eng_Latn", "deu_Latn")]
    plain = translate_batch(engine, items, mode=mode)
    assert [r["hyp"] for r in plain] == [russian, german] and "guard" not in plain[0]
    draws.clear()
    recs = translate_batch(engine, items, mode=mode, language_guard=3)
    assert [r["hyp"] for r in recs] == [german, german]
    assert recs[0]["guard"] == "replaced" and "guard" not in recs[1]
    assert draws == [0.0, 0.7, 0.7]  # greedy, a first draw still in Russian, a second in German: then it stops
    draws.clear()
    kept = translate_batch(engine, items, mode=mode, language_guard=1)
    assert kept[0]["hyp"] == russian and kept[0]["guard"] == "kept"


def test_the_language_guard_keeps_the_few_shot_newline_stop():
    """A few-shot redraw stops at the newline like the first answer (not one invented example later)."""
    from bayling.infer.translate import Item, translate_batch
    from bayling.testing.fake_engine import FakeEngine

    engine = FakeEngine(lambda target: "Собака спит весь день в саду под старым деревом.")
    seen = []
    real = engine.complete
    engine.complete = lambda prompts, config: seen.append(config) or real(prompts, config)
    item = Item("1", "The dog sleeps all day in the garden under the old tree.", "eng_Latn", "deu_Latn")
    translate_batch(engine, [item], mode="few-shot", language_guard=1)
    assert len(seen) == 2 and seen[1].temperature > 0 and "\n" in seen[1].stop
