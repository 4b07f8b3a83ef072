import json

import pytest
from typer.testing import CliRunner

from bayling.eval.cli import app
from bayling.eval.common import EvalError
from bayling.eval.offtarget import offtarget_rate


def test_rate_counts_only_what_can_be_judged():
    texts = ["这是一个中文句子，我们今天去公园散步。", "This sentence is plainly written in English.", "",
             "Das ist ein deutscher Satz über das Wetter heute."]
    res = offtarget_rate(texts, "zh", segments=True)
    assert res["n"] == 4 and res["judged"] == 3 and res["unjudged"] == 1  # blank text is not judged
    assert res["off_target"] == 2 and res["off_target_rate"] == pytest.approx(2 / 3)
    zh = res["breakdown"]["language"]["zho_Hans"]
    assert zh["detected_instead"] == {"eng_Latn": 1, "deu_Latn": 1}
    assert res["segments"] == [True, False, None, False]


def test_per_language_breakdown_and_unjudgeable_languages():
    texts = ["Bonjour tout le monde, comment allez-vous aujourd'hui ?", "Hello everyone, how are you today?",
             "Bawo ni gbogbo yin se wa loni?"]
    res = offtarget_rate(texts, ["fra_Latn", "fra_Latn", "yor_Latn"])
    fr, yo = res["breakdown"]["language"]["fra_Latn"], res["breakdown"]["language"]["yor_Latn"]
    assert fr["off_target_rate"] == 0.5 and fr["detected_instead"] == {"eng_Latn": 1}
    assert yo["judged"] == 0 and yo["off_target_rate"] is None and "unreliable" in yo["unjudged_reason"]
    assert res["off_target_rate"] == 0.5
    with pytest.raises(EvalError, match="2 texts but 1"):
        offtarget_rate(texts[:2], ["fra_Latn"])


def test_offtarget_cli(tmp_path):
    hyp = tmp_path / "hyp.txt"
    hyp.write_text("Guten Morgen, wie geht es dir?\nGood morning, how are you?\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["offtarget", "--hyp", str(hyp), "--tgt-lang", "German", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["off_target_rate"] == 0.5
