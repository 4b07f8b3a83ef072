import json

import pytest
from typer.testing import CliRunner

from bayling.eval.cli import app
from bayling.eval.common import EvalError
from bayling.eval.constrained import constrained_instruction, includes, read_constrained, score_constraints

# BayLing's own hypothesis file layout (exp/constrained_translation/*/hypo.en-zh.zh.jsonl)
ROWS = [
    {"src": "I'm sorry that your order is running late.", "tgt": "很抱歉，您点的餐可能会晚到一会。",
     "constraint": ["可能会晚", "餐可能"], "hypo": "对不起，由于餐可能会晚，您的订单可能会晚到达。"},
    {"src": "your account is anjahoehn.", "tgt": "您的帐户是 anjahoehn。", "constraint": ["是 anjahoehn", "帐户是"],
     "hypo": "你的帐户是anjahoehn。"},
    {"src": "To do this, please follow these instructions:", "tgt": "为此，请按照以下说明操作：",
     "constraint": ["按照以下"], "hypo": "请按照以下说明操作。"},
]


@pytest.fixture
def data(tmp_path):
    p = tmp_path / "hypo.en-zh.zh.jsonl"
    p.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in ROWS) + "\n", encoding="utf-8")
    return p


def test_inclusion_exact_and_loose(data):
    items = read_constrained(str(data))
    assert items[0].hyp.startswith("对不起") and items[1].constraints == ("是 anjahoehn", "帐户是")
    res = score_constraints([i.hyp for i in items], [i.constraints for i in items])
    assert res["terms"] == 5
    assert res["term_inclusion_rate"] == pytest.approx(4 / 5)  # "是 anjahoehn" lacks the space
    assert res["sentence_inclusion_rate"] == pytest.approx(2 / 3)
    assert res["term_inclusion_rate_loose"] == 1.0
    assert includes("你的帐户是anjahoehn。", "是 anjahoehn", loose=True)


def test_cli_reads_languages_from_the_name_and_scores_translation(data):
    res = CliRunner().invoke(app, ["constrained", str(data), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["tgt_lang"] == "zh" and out["translation"]["tokenize"] == "zh"
    assert out["inclusion_rate"] == pytest.approx(0.8) and "bleu" in out and "off_target_rate" in out


def test_bad_records_name_the_line(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text('{"src": "a", "constraint": ["x"]}\n{"src": "b"}\n')
    with pytest.raises(EvalError, match=r"c.jsonl:2: no 'constraint'"):
        read_constrained(str(p))
    p.write_text('{"src": "a", "constraint": ["x"]}\n')
    res = CliRunner().invoke(app, ["constrained", str(p)])
    assert isinstance(res.exception, EvalError) and "c.jsonl:1" in str(res.exception)


def test_instruction_lists_the_terms():
    text = constrained_instruction("Hello.", "English", "Chinese (Simplified)", ["你好"])
    assert '"你好"' in text and "Hello." in text
