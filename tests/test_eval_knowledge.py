import io
import json

import pytest
from typer.testing import CliRunner

from bayling.eval import knowledge
from bayling.eval.common import EvalError
from bayling.eval.knowledge import KnowledgeConfig, calibration, compare, load_battery, report_markdown
from bayling.eval.multiple_choice import loglik_requests


class _Local:
    """What the log-likelihood scorer needs from a local engine: the model and its tokenizer."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from bayling.models import load_model

    return _Local(*load_model(str(tiny_model_dir), dtype="float32"))


def _jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def battery(tmp_path):
    """A data folder in the three layouts the battery reads, seven items each."""
    k = tmp_path / "knowledge"
    _jsonl(k / "arc_easy.jsonl", [{"query": f"Question: What is {i} plus one?", "choices": [str(i + 1), str(i + 2), "a dog", "blue"],
                                   "gold": 0} for i in range(7)])
    _jsonl(k / "boolq.jsonl", [{"query": f"Passage: The sky is blue {i}.\nQuestion: is the sky blue?", "choices": ["no", "yes"],
                                "gold": 1} for i in range(7)])
    _jsonl(k / "winogrande.jsonl", [{"context_options": ["The cup fell off the table because the cup",
                                                         "The cup fell off the table because the table"],
                                     "continuation": f"was too close to the edge {i}.", "gold": 0} for i in range(7)])
    _jsonl(tmp_path / "xcopa" / "data" / "zh" / "test.zh.jsonl",
           [{"premise": "我掏空了口袋。", "choice1": "我找到了一张票根。", "choice2": "我找到了一件武器。", "question": "effect",
             "label": 0, "idx": i} for i in range(7)])
    cmmlu = tmp_path / "cmmlu" / "data" / "test" / "world_history.csv"
    cmmlu.parent.mkdir(parents=True)
    cmmlu.write_text(",Question,A,B,C,D,Answer\n" + "".join(f"{i},第{i}题：哪一个正确？,甲,乙,丙,丁,B\n" for i in range(7)),
                     encoding="utf-8")
    return tmp_path


def _cfg(root, **kw):
    base = dict(tasks=["arc_easy", "boolq", "winogrande", "xcopa", "cmmlu"], limit=5, xcopa_langs=["zh"],
                cmmlu_subjects=["world_history"], data=str(root), progress=False)
    return KnowledgeConfig(**{**base, **kw})


def test_battery_prompts_follow_lm_eval(battery):
    rows = load_battery(_cfg(battery))
    assert list(rows) == ["arc_easy", "boolq", "winogrande", "xcopa-zh", "cmmlu"]
    assert all(len(qs) == 5 for qs in rows.values())  # the first 5 of each file
    arc = loglik_requests(rows["arc_easy"][0])
    assert arc[0] == ("Question: What is 0 plus one?\nAnswer:", " 1")
    assert loglik_requests(rows["boolq"][0])[1] == ("The sky is blue 0.\nQuestion: is the sky blue?\nAnswer:", " yes")
    wino = loglik_requests(rows["winogrande"][0])  # partial scoring: one continuation after each context
    assert [c for c, _ in wino] == ["The cup fell off the table because the cup", "The cup fell off the table because the table"]
    assert {x for _, x in wino} == {" was too close to the edge 0."}
    assert loglik_requests(rows["xcopa-zh"][0])[0] == ("我掏空了口袋 所以", " 我找到了一张票根。")
    assert loglik_requests(rows["cmmlu"][0])[1][1] == " B"


def test_shots_come_from_the_files_end_and_are_never_scored(battery):
    rows = load_battery(_cfg(battery, limit=10, shots={"arc_easy": 2}))
    arc = rows["arc_easy"]
    assert len(arc) == 5 and [q.id.rsplit(":", 1)[1] for q in arc] == ["1", "2", "3", "4", "5"]
    ctx = loglik_requests(arc[0])[0][0]
    assert ctx == ("Question: What is 5 plus one?\nAnswer: 6\n\nQuestion: What is 6 plus one?\nAnswer: 7\n\n"
                   "Question: What is 0 plus one?\nAnswer:")
    assert len(rows["boolq"]) == 7  # no shots there: every item
    with pytest.raises(EvalError, match="too few for 7 examples"):
        load_battery(_cfg(battery, shots=7))


def test_errors_name_the_file_and_line(battery, tmp_path):
    with pytest.raises(EvalError, match="unknown knowledge task"):
        load_battery(_cfg(battery, tasks=["mmlu"]))
    _jsonl(battery / "knowledge" / "piqa.jsonl", [{"query": "Q", "choices": ["a", "b"], "gold": 0},
                                                 {"query": "Q", "choices": ["a", "b"], "gold": 2}])
    with pytest.raises(EvalError, match=r"piqa.jsonl:2: 'gold' should be an option index 0-1"):
        load_battery(_cfg(battery, tasks=["piqa"]))
    with pytest.raises(EvalError, match="siqa.jsonl: no such file"):
        load_battery(_cfg(battery, tasks=["siqa"]))


def test_tiny_model_end_to_end(battery, tiny):
    res = knowledge.run(tiny, _cfg(battery))
    rows = res["breakdown"]["task"]
    assert set(rows) == {"arc_easy", "boolq", "winogrande", "xcopa-zh", "cmmlu"}
    assert rows["arc_easy"]["chance"] == 0.25 and rows["boolq"]["chance"] == 0.5 and rows["cmmlu"]["chance"] == 0.25
    for r in rows.values():
        assert r["n"] == 5 and 0 <= r["accuracy"] <= 1 and 0 <= r["accuracy_norm"] <= 1
    assert rows["winogrande"]["accuracy"] == rows["winogrande"]["accuracy_norm"]  # one shared continuation
    assert len(res["items"]["arc_easy"]["correct"]) == 5 and res["n"] == 25
    assert res["signature"].startswith("knowledge|tasks:arc_easy,boolq")
    again = knowledge.run(tiny, _cfg(battery))  # deterministic: the same items, the same outcomes
    assert again["items"] == res["items"]
    same = compare(res, again)
    assert all(t["accuracy"]["p_value"] == 1.0 for t in same["rows"].values()) and same["regressions"] == []


def _result(rows: dict[str, list[bool]]) -> dict:
    return {"task": "knowledge", "signature": "knowledge|test", "n": sum(map(len, rows.values())),
            "breakdown": {"task": {k: {"n": len(v), "accuracy": sum(v) / len(v), "accuracy_norm": sum(v) / len(v),
                                       "chance": 0.5, "shots": 0} for k, v in rows.items()}},
            "items": {k: {"ids": [f"{k}:{i}" for i in range(len(v))], "correct": v, "correct_norm": v}
                      for k, v in rows.items()}}


def test_paired_test_on_two_systems():
    base = _result({"arc_easy": [True] * 20, "piqa": [True, True, True, False] + [True] * 6, "xcopa-zh": [True] * 20})
    tuned = _result({"arc_easy": [True] * 10 + [False] * 10, "piqa": [False, False, False, True] + [True] * 6,
                     "xcopa-zh": [False] * 20})
    cmp = compare(base, tuned)
    arc = cmp["rows"]["arc_easy"]["accuracy"]
    assert arc["baseline_only"] == 10 and arc["system_only"] == 0
    assert arc["p_value"] == pytest.approx(2 / 2 ** 10) and arc["significant"] and arc["delta"] == -0.5
    piqa = cmp["rows"]["piqa"]["accuracy"]  # 3 against 1 discordant: p = 2 * (1 + 4) / 16
    assert piqa["p_value"] == pytest.approx(0.625) and not piqa["significant"]
    assert cmp["regressions"] == ["arc_easy"]  # XCOPA is not an English retention row
    text = report_markdown({"base": base, "tuned": tuned})
    assert "| arc_easy | 20 |" in text and "significantly below base (p < 0.05) on: arc_easy" in text
    other = _result({"arc_easy": [True] * 19})
    with pytest.raises(EvalError, match="different items"):
        compare(base, other)


def test_calibration_table_against_the_model_card():
    base = _result({"arc_easy": [True] * 58 + [False] * 42, "boolq": [True] * 30 + [False] * 70,
                    "xcopa-zh": [True] * 10})
    rows = calibration(base, "gemma3-270m")
    assert [r["task"] for r in rows] == ["arc_easy", "boolq"]  # only what the card reports
    arc = rows[0]
    assert arc["published"] == 57.7 and arc["published_shots"] == 0 and arc["accuracy"] == pytest.approx(58.0) and arc["within_ci"]
    assert "Q4_K_M" in arc["differs"] and "acc or acc_norm not stated" in arc["differs"]
    assert not rows[1]["within_ci"]  # 30 against 61.4: a gap to explain
    arc_c = calibration(_result({"arc_challenge": [True, False] * 10}))[0]
    assert "25-shot on the card, 0-shot here" in arc_c["differs"]
    from rich.console import Console

    console = Console(file=io.StringIO(), width=200)
    for t in knowledge.table(base, calibrate=rows):
        console.print(t)
    printed = console.file.getvalue()
    assert "57.7" in printed and knowledge.CARD_URL in printed
    assert "61.4 (0-shot)" in report_markdown({"base": base}, base_model="gemma3-270m")
    print(printed)


def test_knowledge_cli(battery, tiny_model_dir, tmp_path):
    from bayling.eval.cli import app

    out = tmp_path / "k.json"
    args = ["knowledge", "--model", str(tiny_model_dir), "--chat-format", "chatml", "--data", str(battery), "--tasks", "arc_easy,winogrande",
            "--limit", "3", "--calibrate", "-q", "--out", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "arc_easy" in res.output and "model card" in res.output
    res = CliRunner().invoke(app, [*args[:-2], "--compare", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["compared_with"]["regressions"] == []


def test_battery_on_shared_data(shared_data):
    rows = load_battery(KnowledgeConfig(limit=3, progress=False))
    assert set(rows) == {"arc_easy", "arc_challenge", "piqa", "winogrande", "boolq", "xcopa-zh", "xcopa-id", "xcopa-it",
                         "xcopa-sw", "cmmlu"}
    piqa = loglik_requests(rows["piqa"][0])[0][0]
    assert piqa == "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:"
    boolq = loglik_requests(rows["boolq"][0])[0][0]
    assert not boolq.startswith("Passage:") and boolq.endswith("?\nAnswer:")
    assert len(rows["cmmlu"]) == 12  # 3 from each of the 4 default subjects


def test_suite_runs_the_battery_when_configured(battery, tiny):
    from bayling.config import parse_section
    from bayling.eval.suite import SuiteConfig, _extras, knowledge_markdown, paired_knowledge, summary

    cfg = parse_section(SuiteConfig, {"knowledge": {"tasks": ["arc_easy"], "limit": 3, "data": str(battery)}}, "eval")
    assert parse_section(SuiteConfig, {}, "eval").knowledge is None  # off by default
    out = _extras(tiny, cfg)
    assert out["knowledge"]["breakdown"]["task"]["arc_easy"]["n"] == 3 and "knowledge_english_accuracy" in out
    assert "items" not in summary(out)["knowledge"]
    paired = paired_knowledge({"base": out, "tuned": out})
    assert paired["baseline"] == "base" and paired["systems"]["tuned"]["regressions"] == []
    text = knowledge_markdown({"base": out, "tuned": out}, base_model="gemma3-270m")
    assert "| arc_easy | 3 |" in text and "57.7 (0-shot)" in text
    assert knowledge_markdown({"base": {}}) is None
    assert _extras(object(), cfg)["knowledge"] == {"skipped": "log-likelihood scoring needs a local model"}


def test_agrees_with_lm_eval_harness(battery, tiny, tmp_path):
    """Where lm-evaluation-harness is installed: it picks the same options on the same files. (Its
    log-likelihoods equal ours token for token, except that the tiny tokenizer adds no BOS under
    lm-eval while we always put one first, as lm-eval does for Gemma.)"""
    pytest.importorskip("lm_eval")
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    (tmp_path / "t.yaml").write_text(
        "task: local_arc\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {battery / 'knowledge' / 'arc_easy.jsonl'}\noutput_type: multiple_choice\ntest_split: test\n"
        'doc_to_text: "{{query}}\\nAnswer:"\ndoc_to_target: gold\ndoc_to_choice: "{{choices}}"\n'
        "metric_list:\n  - metric: acc\n  - metric: acc_norm\n")
    lm = HFLM(pretrained=tiny.model, tokenizer=tiny.tokenizer, batch_size=4, device="cpu")
    theirs = simple_evaluate(model=lm, tasks=["local_arc"], task_manager=TaskManager(include_path=str(tmp_path)),
                             log_samples=True)
    ours = knowledge.run(tiny, _cfg(battery, tasks=["arc_easy"], limit=7))
    samples = sorted(theirs["samples"]["local_arc"], key=lambda s: s["doc_id"])
    assert [bool(s["acc"]) for s in samples] == ours["items"]["arc_easy"]["correct"]
    assert [bool(s["acc_norm"]) for s in samples] == ours["items"]["arc_easy"]["correct_norm"]
