import json

import pytest
from typer.testing import CliRunner

from bayling.eval.cli import app
from bayling.eval.common import EvalError
from bayling.eval.multiple_choice import (MCQuestion, LoglikScorer, evaluate_mc, generative_prompt, load_mc,
                                          loglik_requests, parse_choice, parse_number, read_agieval)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from bayling.models import load_model

    return load_model(str(tiny_model_dir), dtype="float32")  # exactness checks: bf16 is the CPU default


class _Local:
    """What evaluate_mc needs from a local engine: the model and its tokenizer."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer


def test_loaders_on_shared_data(shared_data):
    xcopa = load_mc(shared_data / "xcopa" / "data", split="val", langs=["zh", "sw"], limit=3)
    assert [q.language for q in xcopa] == ["swh_Latn"] * 3 + ["zho_Hans"] * 3
    zh = xcopa[3]
    assert zh.context == "那人打开水龙头 所以" and zh.continuations[1] == " 水从水龙头喷口流出。" and zh.answer == 1
    cmmlu = load_mc(shared_data / "cmmlu" / "data", split="dev", subjects=["agronomy", "anatomy"])
    assert {q.subject for q in cmmlu} == {"agronomy", "anatomy"} and len(cmmlu) == 10
    assert cmmlu[0].options == ["胸", "腹", "大腿", "小腿"] and cmmlu[0].answer == 2
    mgsm = load_mc(shared_data / "mgsm", langs=["zh", "en"], limit=2)
    assert mgsm[0].kind == "numeric" and mgsm[0].language in ("eng_Latn", "zho_Hans")
    assert {q.answer for q in mgsm if q.language == "zho_Hans"} == {18.0, 3.0}


def test_agieval_layout(tmp_path):
    rows = [
        {"passage": "Some passage.", "question": "Which is true?", "options": ["(A)one", "(B)two", "(C)three", "(D)four"],
         "label": "C", "answer": None},
        {"passage": None, "question": "Pick two.", "options": ["(A)x", "(B)y", "(C)z", "(D)w"], "label": ["A", "D"]},
        {"passage": None, "question": "Cloze 1+1=?", "options": None, "label": None, "answer": "2"},
    ]
    p = tmp_path / "sat-en.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    qs = read_agieval(p)
    assert len(qs) == 2 and qs[0].options[2] == "three" and qs[0].answer == 2 and qs[1].answer == (0, 3)
    assert qs[0].stem == "Some passage.\nWhich is true?" and qs[0].subject == "sat-en"
    assert 'Answer is choice ()' in generative_prompt(qs[0]) and "(C)three" in generative_prompt(qs[0])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "options": ["(A)a"], "label": "Z"}) + "\n")
    with pytest.raises(EvalError, match=r"bad.jsonl:1"):
        read_agieval(bad)


def test_answer_parsing():
    assert parse_choice("Answer is choice (B)", 4) == (1,)
    assert parse_choice("答案是选项(D)需要酶的催化。", 4) == (3,)
    assert parse_choice("答案是(A)A。\n\n根据题目", 4) == (0,)
    assert parse_choice("C. because ...", 4) == (2,)
    assert parse_choice("The answer is choice (A)(C)", 4) == (0, 2)
    assert parse_choice("I am not sure", 4) is None
    assert parse_choice("Answer is choice (F)", 4) is None
    assert parse_number("so she makes 9 * 2 = $18. The answer is 18.") == 18
    assert parse_number("The answer is 1,250 dollars") == 1250
    assert parse_number("答案是 70000。") == 70000
    assert parse_number("no digits") is None


def _questions():
    return [
        MCQuestion("q1", "s1", "eng_Latn", "The quick brown fox?", ["jumps", "sleeps", "runs"], 0),
        MCQuestion("q2", "s1", "eng_Latn", "Der schnelle Fuchs?", ["springt", "schläft"], 1),
        MCQuestion("q3", "s2", "zho_Hans", "我们今天去哪里？", ["公园", "学校", "家", "海边"], 2),
        MCQuestion("q4", "s2", "zho_Hans", "狐", ["a"], 0, context="素早い茶色の", continuations=[" 狐", "犬が"]),
    ]


def test_loglik_batched_equals_unbatched_and_is_deterministic(tiny):
    model, tok = tiny
    reqs = [r for q in _questions() for mode in ("letters", "text") for r in loglik_requests(q, mode)]
    one = LoglikScorer(model, tok, batch_size=1).score(reqs)
    many = LoglikScorer(model, tok, batch_size=7).score(reqs)
    again = LoglikScorer(model, tok, batch_size=7).score(reqs)
    assert many == again
    for (a, na), (b, nb) in zip(one, many):
        assert na == nb and a == pytest.approx(b, abs=1e-4)
    tight = LoglikScorer(model, tok, batch_size=16, logit_budget=1).score(reqs)  # budget forces 1 row per batch
    assert [round(x, 4) for x, _ in tight] == [round(x, 4) for x, _ in one]


def test_loglik_matches_a_plain_forward(tiny):
    import torch

    model, tok = tiny
    ctx, cont = "The quick brown", " fox jumps"
    (lp, n), = LoglikScorer(model, tok).score([(ctx, cont)])
    ids = [tok.bos_token_id] + tok(ctx + cont, add_special_tokens=False)["input_ids"]
    k = 1 + len(tok(ctx, add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
    assert n == len(ids) - k
    assert lp == pytest.approx(sum(logp[i - 1, ids[i]].item() for i in range(k, len(ids))), abs=1e-4)


def test_evaluate_mc_loglik_and_ready_generative_answers(tiny):
    model, tok = tiny
    qs = _questions()[:3] + [MCQuestion("m1", "mgsm-en", "eng_Latn", "2+2?", [], 4.0, kind="numeric")]
    outputs = ["Answer is choice (A)", "I don't know", "答案是选项(C)", "2+2 is 4. The answer is 4."]
    res = evaluate_mc(qs, _Local(model, tok), method="both", outputs=outputs, progress=False)
    assert res["accuracy_generate"] == pytest.approx(3 / 4) and res["unparsed"] == 1
    assert set(res["breakdown"]["subject"]) == {"s1", "s2", "mgsm-en"}
    assert res["breakdown"]["language"]["zho_Hans"]["accuracy_generate"] == 1.0
    assert 0 <= res["accuracy"] <= 1 and "accuracy_norm" in res and res["notes"]
    assert res["predictions"][0]["pred"] in (0, 1, 2)
    with pytest.raises(EvalError, match="local model"):
        evaluate_mc(qs[:1], object(), method="loglik", progress=False)


def test_mc_cli_on_xcopa_with_tiny_model(tiny_model_dir, shared_data, tmp_path):
    out = tmp_path / "mc.json"
    res = CliRunner().invoke(app, ["mc", str(shared_data / "xcopa" / "data"), "--split", "val", "--langs", "zh,it",
                                   "--limit", "4", "--model", str(tiny_model_dir), "--chat-format", "chatml",
                                   "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["n"] == 8 and set(data["breakdown"]["language"]) == {"ita_Latn", "zho_Hans"}
    assert "| accuracy |" in res.stdout


@pytest.mark.slow
def test_xcopa_with_the_embedded_model(shared_data):
    from bayling.infer.engine import TransformersEngine

    engine = TransformersEngine.load("gemma3-270m")
    qs = load_mc(shared_data / "xcopa" / "data", split="val", langs=["it"], limit=10)
    first = evaluate_mc(qs, engine, method="loglik", batch_size=8, progress=False)
    second = evaluate_mc(qs, engine, method="loglik", batch_size=3, progress=False)
    assert first["n"] == 10 and 0 <= first["accuracy"] <= 1
    assert [p["pred"] for p in first["predictions"]] == [p["pred"] for p in second["predictions"]]


def test_foundry_layouts_are_read_with_lm_eval_prompts(tmp_path):
    from bayling.eval.multiple_choice import mcnemar, read_foundry

    rows = {"piqa.jsonl": [{"query": "Question: How to open a jar?\n", "choices": ["twist the lid", "eat it"], "gold": 0}],
            "winogrande.jsonl": [{"context_options": ["Ann helped Bo because Ann", "Ann helped Bo because Bo"],
                                  "continuation": "was kind.", "gold": 0}],
            "lambada_openai.jsonl": [{"context": "The cat sat on the", "continuation": "mat"}]}
    for name, recs in rows.items():
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in recs))
    qs = load_mc(tmp_path)  # the folder: LAMBADA (language modelling) is left out
    assert {q.subject for q in qs} == {"piqa", "winogrande"} and all(q.language == "eng_Latn" for q in qs)
    piqa = next(q for q in qs if q.subject == "piqa")
    assert loglik_requests(piqa) == [("Question: How to open a jar?\nAnswer:", " twist the lid"),
                                     ("Question: How to open a jar?\nAnswer:", " eat it")]
    wino = next(q for q in qs if q.subject == "winogrande")
    assert loglik_requests(wino)[1] == ("Ann helped Bo because Bo", " was kind.")
    with pytest.raises(EvalError, match=r"lambada_openai.jsonl:1: a language-modelling record"):
        read_foundry(tmp_path / "lambada_openai.jsonl")
    bad = tmp_path / "arc_easy.jsonl"
    bad.write_text(json.dumps({"query": "Q", "choices": ["a"], "gold": 0}) + "\n")
    with pytest.raises(EvalError, match=r"arc_easy.jsonl:1: 'query' should be text and 'choices' two or more"):
        read_foundry(bad)
    t = mcnemar([True, True, True, False], [False, False, False, True])
    assert (t["baseline_only"], t["system_only"]) == (3, 1) and t["p_value"] == pytest.approx(0.625)
    assert mcnemar([True], [True])["p_value"] == 1.0
    with pytest.raises(EvalError, match="misaligned"):
        mcnemar([True], [])
