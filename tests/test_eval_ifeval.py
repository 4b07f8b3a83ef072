import json

import pytest
from typer.testing import CliRunner

pytest.importorskip("if_verifiable", reason="IFEval's checkers are the ifeval extra: pip install 'bayling[ifeval]'")

from bayling.eval.cli import app
from bayling.eval.common import EvalError
from bayling.eval.ifeval import (IFEvalConfig, Turn, check_answer, is_echo, load_ifeval, read_answers,
                                 read_ifeval, run, score_answers)
from bayling.testing.fake_engine import FakeEngine


def _turn(prompt, *pairs):
    return Turn(prompt, [i for i, _ in pairs], [k for _, k in pairs])


def test_checks_pass_and_fail_and_loose_forgives_a_chatty_first_line():
    t = _turn("Write about tea without commas. End with 'Is there anything else I can help with?'",
              ("punctuation:no_comma", {}), ("startend:end_checker", {"end_phrase": "Is there anything else I can help with?"}))
    strict, loose = check_answer(t, "Sure, here it is:\nTea is warm and calm. Is there anything else I can help with?")
    assert strict == [False, True] and loose == [True, True]  # loose drops the first line, as IFEval does
    assert check_answer(t, "Tea, tea. Bye.") == ([False, False], [False, False])
    assert check_answer(t, "   ") == ([False, False], [False, False])  # an empty answer follows nothing
    bullets = _turn("Two bullets.", ("detectable_format:number_bullet_lists", {"num_bullets": 2}))
    assert check_answer(bullets, "* green\n* black")[0] == [True]
    assert check_answer(bullets, "* green\n* black\n* white")[0] == [False]
    words = _turn("At least 5 words.", ("length_constraints:number_words", {"relation": "at least", "num_words": 5}))
    assert check_answer(words, "one two three four five")[0] == [True]
    assert check_answer(words, "one two three four")[0] == [False]


def test_sentences_are_counted_with_the_packaged_english_punkt():
    # Punkt's English model knows "Dr." is an abbreviation; an untrained Punkt or a bare split counts 3
    t = _turn("Fewer than 3 sentences.", ("length_constraints:number_sentences", {"relation": "less than", "num_sentences": 3}))
    assert check_answer(t, "Dr. Smith came home. He drank green tea.")[0] == [True]
    assert check_answer(t, "One. Two. Three.")[0] == [False]
    caps = _turn("Use at least 2 capital words.", ("change_case:capital_word_frequency",
                                                   {"capital_relation": "at least", "capital_frequency": 2}))
    assert check_answer(caps, "This is VERY, VERY good.")[0] == [True]


def test_m_ifeval_checks():
    at_most = _turn("Como máximo 3 palabras.", ("es:length_constraints:number_words", {"relation": "como máximo", "num_words": 3}))
    assert check_answer(at_most, "uno dos tres")[0] == [True] and check_answer(at_most, "uno dos tres cuatro")[0] == [False]
    tildes = _turn("Dos palabras con tilde.", ("es:special_character:tildes", {"relation": "al menos", "num_words": 2}))
    assert check_answer(tildes, "El camión está aquí.")[0] == [True] and check_answer(tildes, "El perro.")[0] == [False]
    ask = _turn("Pregunta algo.", ("es:punctuation:question_marks", {}))
    assert check_answer(ask, "Hola. ¿Qué tal?")[0] == [True] and check_answer(ask, "Hola. Qué tal?")[0] == [False]
    title = _turn("Un titre.", ("fr:detectable_format:title", {}))
    assert check_answer(title, "##Le thé##\nDu texte.")[0] == [True] and check_answer(title, "<<Le thé>>")[0] == [False]
    quote = _turn("Entre guillemets.", ("fr:startend:quotation", {}))
    assert check_answer(quote, "« Bonjour »")[0] == [True]
    kana = _turn("ひらがなだけ", ("ja:letters:hiragana_only", {}), ("ja:punctuation:no_comma", {}))
    assert check_answer(kana, "きょうは　いい　てんきです。")[0] == [True, True]
    assert check_answer(kana, "今日は、いい天気です。")[0] == [False, False]
    kw = _turn("「抹茶」を使って", ("ja:keywords:existence", {"keywords": ["抹茶"]}))
    assert check_answer(kw, "京都の抹茶はおいしい。")[0] == [True]  # no word boundaries in Japanese: a substring
    nominal = _turn("体言止めを2回", ("ja:detectable_format:nominal_ending", {"count": 2}))
    assert check_answer(nominal, "静かな夜。")[0] == [None]  # no offline checker: left out, not failed


def test_echo_counts_copies_of_the_request_not_answers_that_quote_it():
    prompt = "Write a short poem about the sea. Do not use any commas in your response."
    assert is_echo(prompt, prompt)
    assert is_echo(prompt, "write a short poem about the sea. do not use any commas")  # truncated, recased
    assert not is_echo(prompt, "Waves roll in and out\nthe gulls cry over the grey water\nsalt on every stone")
    answer = prompt + "\n\n" + "The sea is wide and the sea is deep and the boats sleep on it at night " * 3
    assert not is_echo(prompt, answer)  # repeats the request, then answers (combination:repeat_prompt)
    assert not is_echo(prompt, "")


def test_layouts_and_errors(tmp_path):
    p = tmp_path / "mixed.jsonl"
    rows = [
        {"key": 1, "prompt": "Say hi without commas.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
        {"key": 2, "turns": [
            {"prompt": "Name a fruit.", "instruction_id_list": [], "kwargs": []},
            {"prompt": "Now in capitals.", "instruction_id_list": ["change_case:english_capital"], "kwargs": [{}]}]},
        {"key": 3, "language": "French", "turn_1_prompt": json.dumps({"role": "user", "content": "Bonjour ?"}),
         "turn_1_instruction_id_list": json.dumps(["detectable_content:postscript"]),
         "turn_1_kwargs": json.dumps([json.dumps({"postscript_marker": "P.S.", "unused": None})]),
         "turn_2_prompt": None},
    ]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    prompts = read_ifeval(p)
    assert [len(x.turns) for x in prompts] == [1, 2, 1]
    assert [x.language for x in prompts] == ["eng_Latn", "eng_Latn", "fra_Latn"]
    assert prompts[2].turns[0].prompt == "Bonjour ?" and prompts[2].turns[0].kwargs == [{"postscript_marker": "P.S."}]
    assert [x.key for x in load_ifeval(p, langs=["fr"])] == [3]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "x", "instruction_id_list": ["a:b", "c:d"], "kwargs": [{}]}) + "\n")
    with pytest.raises(EvalError, match=r"bad.jsonl:1: turn 1: kwargs should be one object per instruction id"):
        read_ifeval(bad)
    bad.write_text(json.dumps({"prompt": "x", "instruction_id_list": ["punctuation:no_colon"], "kwargs": [{}]}) + "\n")
    with pytest.raises(EvalError, match=r"bad.jsonl:1: unknown instruction id 'punctuation:no_colon'"):
        load_ifeval(bad)


def _write(tmp_path, rows, name="prompts.jsonl"):
    p = tmp_path / name
    p.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return p


def test_multi_turn_answers_see_the_conversation_and_each_turn_is_scored(tmp_path):
    data = _write(tmp_path, [{"key": "c1", "turns": [
        {"prompt": "Describe tea in lowercase.", "instruction_id_list": ["change_case:english_lowercase"], "kwargs": [{}]},
        {"prompt": "Again, and end with 'Bye.'", "instruction_id_list": ["change_case:english_lowercase", "startend:end_checker"],
         "kwargs": [{}, {"end_phrase": "Bye."}]}]}])
    seen = []

    def reply(messages):
        seen.append([m["content"] for m in messages])
        return "tea is a warm drink made from leaves" if len(messages) == 1 else "tea is warm. Bye."

    result = run(FakeEngine(reply=reply), IFEvalConfig(data=str(data), progress=False))
    assert seen[1] == ["Describe tea in lowercase.", "tea is a warm drink made from leaves", "Again, and end with 'Bye.'"]
    assert result["breakdown"]["turn"]["1"]["prompt_strict"] == 1.0
    assert result["breakdown"]["turn"]["2"]["prompt_strict"] == 0.0  # "Bye." is not lowercase
    assert result["breakdown"]["turn"]["2"]["instruction_strict"] == 0.5
    assert result["n"] == 2 and result["instructions"] == 3


def test_fake_engine_end_to_end_counts_echoes(tmp_path):
    data = _write(tmp_path, [
        {"key": 1, "prompt": "Write two sentences about rain without commas.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
        {"key": 2, "prompt": "Écris un titre entre ##.", "instruction_id_list": ["fr:detectable_format:title"], "kwargs": [{}]},
        {"key": 3, "prompt": "静かな夜。体言止めで。", "instruction_id_list": ["ja:detectable_format:nominal_ending"], "kwargs": [{"count": 1}]},
    ])
    echo = run(FakeEngine(reply=lambda m: m[-1]["content"]), IFEvalConfig(data=str(data), progress=False))
    assert echo["echo_rate"] == 1.0 and echo["prompt_strict"] == 0.5  # the echo has no comma: followed by accident
    assert set(echo["breakdown"]["language"]) == {"eng_Latn", "fra_Latn", "jpn_Jpan"}
    assert echo["unchecked"] == {"ja:detectable_format:nominal_ending": 1}
    assert echo["breakdown"]["language"]["jpn_Jpan"]["prompt_strict"] is None
    assert echo["macro_echo_rate"] == 1.0
    good = run(FakeEngine(reply=lambda m: "Rain falls softly. The streets shine." if "rain" in m[-1]["content"] else "##Pluie##"),
               IFEvalConfig(data=str(data), langs=["en", "fr"], progress=False))
    assert good["n"] == 2 and good["prompt_strict"] == 1.0 and good["echo_rate"] == 0.0
    assert "if-verifiable==" in good["checkers"] and good["predictions"][0]["strict"] == [True]
    answers = _write(tmp_path, [{"prompt": "Write two sentences about rain without commas.", "response": "Rain, rain."},
                                {"key": 2, "responses": ["##Pluie##"]}], name="answers.jsonl")
    ready = run(None, IFEvalConfig(data=str(data), langs=["en", "fr"], answers=str(answers), progress=False))
    assert ready["prompt_strict"] == 0.5
    assert [a for a in read_answers(answers, load_ifeval(data, langs=["fr"]))] == [["##Pluie##"]]


def test_cli_runs_a_tiny_model_end_to_end(tmp_path, tiny_model_dir):
    data = _write(tmp_path, [
        {"key": i, "prompt": f"Write {i} words without commas.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
        for i in range(1, 5)])
    out = tmp_path / "result.json"
    res = CliRunner().invoke(app, ["ifeval", str(data), "--model", str(tiny_model_dir), "--chat-format", "chatml", "--limit", "3",
                                   "--max-new-tokens", "8", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert result["task"] == "ifeval" and result["n"] == 3 and len(result["predictions"]) == 3
    assert "prompt_strict" in res.output and "By instruction" in res.output


def test_shared_m_ifeval_files_load_with_every_id_known(shared_data):
    if not (shared_data / "ifeval").is_dir():
        pytest.skip("../shared/data/ifeval is absent")
    prompts = load_ifeval(shared_data / "ifeval")
    counts = {}
    for p in prompts:
        counts[p.language] = counts.get(p.language, 0) + 1
    assert counts == {"eng_Latn": 541, "spa_Latn": 115, "fra_Latn": 235, "jpn_Jpan": 172}
    result = score_answers(prompts, [[t.prompt for t in p.turns] for p in prompts])  # every request echoed
    assert result["echo_rate"] == 1.0 and 0.0 < result["prompt_strict"] < 0.5
