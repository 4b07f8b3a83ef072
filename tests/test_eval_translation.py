import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from bayling.eval.cli import app
from bayling.eval.common import EvalError, read_lines
from bayling.eval.translation import choose_tokenizer, paired_significance, score_translation

runner = CliRunner()


def _perturb(lines):
    out = []
    for i, line in enumerate(lines):
        words = line.split()
        if i % 5 == 0:
            out.append("")  # an empty output
        elif i % 3 == 0:
            out.append(" ".join(words[1:]) + "   ")  # trailing spaces: stripped like sacreBLEU's CLI
        elif i % 7 == 0:
            out.append(line[::-1] + "\r")  # a CRLF line
        else:
            out.append(line[: max(1, len(line) * 3 // 4)])
    return out


@pytest.fixture(scope="module")
def files(shared_data, tmp_path_factory):
    d = tmp_path_factory.mktemp("mt")
    made = {}
    for code in ("zho_Hans", "eng_Latn"):
        refs = (shared_data / "flores200" / "dev" / f"{code}.dev").read_text(encoding="utf-8").splitlines()[:60]
        (d / f"ref.{code}").write_text("\n".join(refs) + "\n", encoding="utf-8")
        with open(d / f"hyp.{code}", "w", encoding="utf-8", newline="") as f:
            f.write("\n".join(_perturb(refs)) + "\n")
        made[code] = (d / f"hyp.{code}", d / f"ref.{code}")
    return made


def _cli(ref, hyp, *args):
    cmd = [sys.executable, "-m", "sacrebleu", str(ref), "-i", str(hyp), "-w", "8", "--format", "json", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    return data if isinstance(data, list) else [data]


@pytest.mark.parametrize("code,tok", [("zho_Hans", "zh"), ("eng_Latn", "13a")])
def test_scores_equal_sacrebleu_cli(files, code, tok):
    hyp, ref = files[code]
    ours = score_translation(read_lines(hyp), read_lines(ref), tgt_lang=code)
    assert ours["tokenize"] == tok
    bleu, chrf, ter = _cli(ref, hyp, "-m", "bleu", "chrf", "ter", "--tokenize", tok)
    (chrfpp,) = _cli(ref, hyp, "-m", "chrf", "--chrf-word-order", "2")
    for name, cli in (("bleu", bleu), ("chrf", chrf), ("ter", ter), ("chrf++", chrfpp)):
        assert float(f"{ours[name]:.8f}") == cli["score"], name
        assert ours["signatures"][name] == cli["signature"], name


def test_cli_json_has_the_promised_keys(files):
    hyp, ref = files["zho_Hans"]
    res = runner.invoke(app, ["translation", "--hyp", str(hyp), "--ref", str(ref), "--tgt-lang", "zho_Hans",
                              "--json", "--bootstrap", "50"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    for key in ("bleu", "chrf", "chrf++", "ter", "off_target_rate", "signatures", "ci"):
        assert key in out
    assert out["tokenize"] == "zh"
    assert "bs:50" in out["signatures"]["bleu"]
    lang = out["offtarget"]["breakdown"]["language"]["zho_Hans"]
    assert lang["judged"] + lang["unjudged"] == 60
    assert 0 <= out["off_target_rate"] <= 1


def test_misaligned_files_name_both_files_and_counts(files, tmp_path):
    hyp, ref = files["eng_Latn"]
    short = tmp_path / "short.txt"
    short.write_text("a\nb\n")
    res = runner.invoke(app, ["translation", "--hyp", str(short), "--ref", str(ref)])
    assert isinstance(res.exception, EvalError)
    msg = str(res.exception)
    assert str(short) in msg and str(ref) in msg and "2 lines" in msg and "60 lines" in msg


def test_tokenizer_choice_per_target():
    assert choose_tokenizer("zho_Hant")[0] == "zh"
    assert choose_tokenizer("yue_Hant")[0] == "zh"
    assert choose_tokenizer("deu_Latn") == ("13a", [])
    assert choose_tokenizer(None)[0] == "13a"
    ja, notes = choose_tokenizer("jpn_Jpan")
    assert ja in ("ja-mecab", "char")
    if ja == "char":
        assert "ja-mecab is not installed" in notes[0]  # never silently claims ja-mecab
    assert choose_tokenizer("kor_Hang")[0] in ("ko-mecab", "13a")
    assert choose_tokenizer("zho_Hans", tokenize="char")[0] == "char"
    with pytest.raises(EvalError, match="unknown tokenizer"):
        choose_tokenizer("deu_Latn", tokenize="moses")


def test_spbleu_without_its_model_is_a_clear_error(tmp_path, monkeypatch):
    from sacrebleu.tokenizers import tokenizer_spm

    monkeypatch.setattr(tokenizer_spm, "SACREBLEU_DIR", str(tmp_path))
    with pytest.raises(EvalError, match="spBLEU"):
        choose_tokenizer("zho_Hans", spbleu=True)


def test_bootstrap_multi_reference_and_significance():
    refs = ["the cat sat on the mat today", "a dog barked at the moon loudly", "we went to the park by bus"] * 10
    good = list(refs)
    bad = [" ".join(r.split()[:3]) for r in refs]
    res = score_translation(good, [refs, bad], tgt_lang="en", bootstrap=20)
    assert res["nrefs"] == 2 and res["bleu"] == pytest.approx(100.0)
    assert set(res["ci"]) == {"bleu", "chrf", "chrf++", "ter"}
    sig = paired_significance(bad, good, refs, "en", n=200)
    assert sig["metrics"]["bleu"]["significant"] and sig["metrics"]["bleu"]["delta"] > 0
    same = paired_significance(good, good, refs, "en", n=200)
    assert not same["metrics"]["chrf"]["significant"]
    close = paired_significance(good, ["the cat sat on a mat today"] + good[1:], refs, "en", n=200)
    assert close["metrics"]["bleu"]["p_value"] > 0.05 and not close["metrics"]["bleu"]["significant"]
    with pytest.raises(EvalError, match="misaligned"):
        score_translation(good[:2], refs)


def test_generate_then_score_with_tiny_model(tiny_model_dir, tmp_path):
    from bayling.resources import sample_dir

    out = tmp_path / "hyps.jsonl"
    res = runner.invoke(app, [
        "translation", "--model", str(tiny_model_dir), "--chat-format", "chatml", "--corpus", str(sample_dir()), "--src-lang", "eng_Latn",
        "--tgt-lang", "deu_Latn,fra_Latn", "--limit", "2", "--max-new-tokens", "4", "--hyp-out", str(out),
        "--json", "--quiet", "--bootstrap", "0", "--metrics", "bleu,chrf",
    ])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert set(data["breakdown"]["direction"]) == {"eng_Latn-deu_Latn", "eng_Latn-fra_Latn"}
    assert "bleu" in data and "off_target_rate" in data
    lines = out.read_text().splitlines()
    assert len(lines) == 4 and "hyp" in json.loads(lines[0])


@pytest.mark.slow
def test_few_shot_translation_with_the_embedded_model(shared_data):
    from bayling.corpus import read_flores
    from bayling.eval.translation import score_directions, translate
    from bayling.infer.engine import TransformersEngine

    engine = TransformersEngine.load("gemma3-270m", batch_size=2)
    flores = shared_data / "flores200"
    test = list(read_flores(flores, "devtest", pairs=[("eng_Latn", "fra_Latn")]))[:2]
    shots = list(read_flores(flores, "dev", pairs=[("eng_Latn", "fra_Latn")]))[:2]
    hyps = translate(engine, test, shots=shots, n_shots=2, max_new_tokens=48, progress=False)
    assert len(hyps) == 2 and all("\n" not in h for h in hyps)
    res = score_directions(test, hyps, metrics=("chrf",))
    assert res["direction"] == "eng_Latn-fra_Latn" and res["chrf"] > 0


def test_comet_is_optional(tmp_path):
    import importlib.util

    with pytest.raises(EvalError, match="no such COMET checkpoint"):
        score_translation(["a"], ["a"], ["a"], "en", comet=str(tmp_path / "missing.ckpt"))
    if importlib.util.find_spec("comet") is None:
        ckpt = tmp_path / "model.ckpt"
        ckpt.write_bytes(b"")
        res = score_translation(["a b c"], ["a b c"], ["x y z"], "en", comet=str(ckpt), metrics=("bleu",))
        assert res["comet"] is None and any("COMET skipped" in n for n in res["notes"])


def test_run_scores_every_prompt_on_the_same_sentences_and_reports_failures(tmp_path):
    """A non-FLORES corpus: its first pairs are the shots and leave the test set for *every* prompt,
    so a chat model and a few-shot base are scored on the same sentences (pairable)."""
    from bayling.eval.translation import TranslationConfig, run
    from bayling.testing.fake_engine import FakeEngine

    tsv = tmp_path / "t.tsv"
    rows = [(f"The house number {i} is red.", f"Das Haus Nummer {i} ist rot.") for i in range(8)]
    tsv.write_text("".join(f"{s}\t{t}\n" for s, t in rows), encoding="utf-8")

    def reply(target):  # copies the source for the chat prompt, loops for the few-shot one
        if isinstance(target, str):
            return " ".join(["rot"] * 50)
        return target[-1]["content"].splitlines()[-1]

    cfg = dict(corpus=str(tsv), src_lang="eng_Latn", tgt_lang="deu_Latn", shots=2, max_new_tokens=20, progress=False)
    chat = run(FakeEngine(reply), TranslationConfig(prompt="chat", **cfg))
    few = run(FakeEngine(reply), TranslationConfig(prompt="few-shot", **cfg))
    assert [e["src"] for e in chat["examples"]] == [e["src"] for e in few["examples"]] == [s for s, _ in rows[2:]]
    assert chat["source_copy_rate"] == 1.0 and chat["max_new_tokens_rate"] == 0.0
    assert few["max_new_tokens_rate"] == 1.0 and few["source_copy_rate"] == 0.0
    assert any("left out of the test set" in n for n in chat["notes"])
