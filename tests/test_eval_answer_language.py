import json

import pytest
from typer.testing import CliRunner

from bayling.eval import answer_language as task
from bayling.eval.answer_language import AnswerLanguageConfig, build_prompts
from bayling.eval.common import EvalError
from bayling.testing.fake_engine import FakeEngine

# Answers long enough for the lite detector to be sure of them.
SAYS = {
    "fra_Latn": "Pour rester en bonne santé, il faut bien dormir, manger des légumes et marcher chaque jour.",
    "deu_Latn": "Um gesund zu bleiben, sollte man genug schlafen, viel Gemüse essen und jeden Tag spazieren gehen.",
    "zho_Hans": "保持健康的方法是每天睡足八个小时，多吃蔬菜，并且经常出去散步。",
    "eng_Latn": "To stay healthy, sleep enough, eat plenty of vegetables and go for a walk every day.",
}


def _engine_answering(lang_of_prompt: dict[str, str], answers: dict[str, str]) -> FakeEngine:
    """An engine that answers each prompt in the language `answers` gives for the prompt's asked language."""
    return FakeEngine(reply=lambda messages: answers[lang_of_prompt[messages[-1]["content"]]])


def test_prompts_are_fixed_and_cover_100_judgeable_languages():
    a, b = build_prompts(AnswerLanguageConfig()), build_prompts(AnswerLanguageConfig())
    assert a == b  # the same prompts for every system
    langs = {it["lang"] for it in a}
    assert len(langs) >= 100 and all(task.unjudgeable_reason(c) is None for c in langs)
    named = [it for it in a if it["form"].startswith("named")]
    assert len(named) == 3 * len(langs)
    assert {it["request_lang"] for it in named} == {"eng_Latn", "zho_Hans"}
    fr = [it["prompt"] for it in named if it["lang"] == "fra_Latn"]
    assert any(p.endswith("Answer in French.") for p in fr) and any(p.endswith("请用法语回答。") for p in fr)
    native = {it["lang"] for it in a if it["form"] == "native"}
    assert native == {"zho_Hans", "spa_Latn", "fra_Latn", "jpn_Jpan", "deu_Latn", "rus_Cyrl"}
    assert len(build_prompts(AnswerLanguageConfig(langs="all", native=False))) == 3 * 204
    with pytest.raises(Exception, match="unknown language"):
        build_prompts(AnswerLanguageConfig(langs="fr,klingon"))


def test_rates_from_an_engine_answering_in_chosen_languages():
    cfg = AnswerLanguageConfig(langs="fra_Latn,deu_Latn,zho_Hans,spa_Latn,swh_Latn,yor_Latn", per_language=2,
                               progress=False)
    items = build_prompts(cfg)
    asked = {it["prompt"]: it["lang"] for it in items}
    # French, German, Chinese answered in them (named and native requests alike); Spanish in English,
    # Swahili with nothing; Yoruba (the detector is unreliable on it) in English.
    answers = {"fra_Latn": SAYS["fra_Latn"], "deu_Latn": SAYS["deu_Latn"], "zho_Hans": SAYS["zho_Hans"],
               "spa_Latn": SAYS["eng_Latn"], "swh_Latn": "", "yor_Latn": SAYS["eng_Latn"]}
    res = task.run(_engine_answering(asked, answers), cfg)
    lang = res["breakdown"]["language"]
    assert lang["fra_Latn"]["on_target_rate"] == 1.0 and lang["fra_Latn"]["n"] == 4  # 2 named + 2 native
    assert lang["zho_Hans"]["on_target_rate"] == 1.0 and lang["deu_Latn"]["on_target_rate"] == 1.0
    assert lang["spa_Latn"]["on_target_rate"] == 0.0 and lang["spa_Latn"]["off_target_as"] == "eng_Latn"
    assert lang["swh_Latn"]["on_target_rate"] == 0.0 and lang["swh_Latn"]["empty"] == 2  # blank: judged, wrong
    assert lang["swh_Latn"]["off_target_as"] == "empty"
    yo = lang["yor_Latn"]
    assert yo["judged"] == 0 and yo["unjudged"] == 2 and yo["on_target_rate"] is None
    assert "unreliable" in res["unjudged_languages"]["yor_Latn"]
    # pooled over judged answers: fr 4 + de 4 + zh 4 on target, es 4 + sw 2 off; yo counted apart
    assert res["judged"] == 18 and res["unjudged"] == 2 and res["n"] == 20
    assert res["on_target_rate"] == pytest.approx(12 / 18)
    assert res["languages_judged"] == 5 and res["languages_at_90"] == 3
    assert res["breakdown"]["form"]["native"]["on_target_rate"] == pytest.approx(6 / 8)
    assert len(res["examples"]) == 20 and "signature" in res


def test_misaligned_answers_are_refused():
    items = build_prompts(AnswerLanguageConfig(langs="fra_Latn", per_language=1, native=False))
    with pytest.raises(EvalError, match="1 prompts but 2 answers"):
        task.score_answers(items, ["a", "b"])


def test_cli_prints_the_table_and_writes_json(tmp_path, monkeypatch):
    import bayling.eval.cli as cli

    monkeypatch.setattr(cli, "_engine", lambda *a, **k: FakeEngine(reply=lambda m: SAYS["fra_Latn"]))
    out = tmp_path / "al.json"
    res = CliRunner().invoke(cli.app, ["answer-language", "--model", "fake", "--langs", "fr,en", "--per-language", "1",
                                       "--no-native", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert "French" in res.output and "pooled" in res.output
    saved = json.loads(out.read_text())
    assert saved["breakdown"]["language"]["fra_Latn"]["on_target_rate"] == 1.0
    assert saved["breakdown"]["language"]["eng_Latn"]["on_target_rate"] == 0.0


def test_detector_floor_on_references(shared_data):
    cfg = AnswerLanguageConfig(langs="fra_Latn,deu_Latn", per_language=1, native=False, floor=5, progress=False)
    res = task.run(FakeEngine(reply=lambda m: SAYS["fra_Latn"]), cfg)
    assert res["breakdown"]["language"]["deu_Latn"]["reference_rate"] == 1.0
    assert res["reference_rate"] == 1.0
