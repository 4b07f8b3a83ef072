import json

import pytest
from typer.testing import CliRunner

from bayling.corpus import Pair
from bayling.eval.cli import app
from bayling.eval.common import EvalError
from bayling.eval.interactive import build_sessions, read_sessions, run_sessions, score_sessions

PAIRS = [
    Pair("We went to the park today.", "我们今天去公园散步了。", "eng_Latn", "zho_Hans", "t:1"),
    Pair("The weather is lovely.", "Das Wetter ist heute wirklich wunderbar schön.", "eng_Latn", "deu_Latn", "t:2"),
]


class Scripted:
    """A fake chat engine: replies by turn number, remembering what it saw."""

    def __init__(self, replies):
        self.replies, self.seen = replies, []

    def chat(self, conversations, config):
        self.seen.append([len(c) for c in conversations])
        return [self.replies[i][sum(m["role"] == "user" for m in c) - 1] for i, c in enumerate(conversations)]


def test_build_sessions_is_deterministic_and_scripted():
    a = build_sessions(PAIRS, seed=1)
    assert a == build_sessions(PAIRS, seed=1)
    kinds = [t["kind"] for t in a[0]["turns"]]
    assert kinds == ["translate", "constraint", "style", "length"]
    term = a[0]["turns"][1]["terms"][0]
    assert term in {"我们", "今天", "公园", "散步"}  # a whole jieba word, never a span across words
    assert a[1]["turns"][1]["terms"][0] in {"Wetter", "heute", "wirklich", "wunderbar", "schön"}  # 5+ letters
    assert a[0]["turns"][3]["max_length"] == 8 and "characters" in a[0]["turns"][3]["user"]
    with pytest.raises(EvalError, match="first must be 'translate'"):
        build_sessions(PAIRS, kinds=["style"])


def test_sessions_run_turn_by_turn_and_score_per_turn():
    sessions = build_sessions(PAIRS[:1], terms=[["公园"]])
    replies = [["我们今天去公园散步了。", "我们今天去了公园。", "We went to the park.", "去公园了"]]
    engine = Scripted(replies)
    got = run_sessions(engine, sessions, progress=False)
    assert got == replies and engine.seen == [[1], [3], [5], [7]]  # each turn sees the history
    res = score_sessions(sessions, got)
    turns = res["turns_detail"]
    assert [t["kind"] for t in turns] == ["translate", "constraint", "style", "length"]
    assert turns[0]["on_target"] is True and turns[0]["chrf"] == pytest.approx(100)
    assert turns[1]["constraint_ok"] is True and turns[1]["changed"] is True
    assert turns[2]["on_target"] is False and turns[2]["constraints_kept"] is False  # drifted into English
    assert turns[3]["length_ok"] is True and turns[3]["constraints_kept"] is True
    by_kind = res["breakdown"]["turn_kind"]
    assert by_kind["style"]["on_target_rate"] == 0 and by_kind["constraint"]["constraint_ok_rate"] == 1
    assert res["on_target_rate"] == pytest.approx(0.75)


def test_transcripts_round_trip_and_cli_with_tiny_model(tiny_model_dir, tmp_path):
    from bayling.resources import sample_dir

    tr = tmp_path / "tr.jsonl"
    res = CliRunner().invoke(app, ["interactive", "--corpus", str(sample_dir()), "--src-lang", "eng_Latn",
                                   "--tgt-lang", "zho_Hans", "--limit", "2", "--model", str(tiny_model_dir),
                                   "--chat-format", "chatml", "--max-new-tokens", "4", "--transcript-out", str(tr),
                                   "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["sessions"] == 2 and set(out["breakdown"]["turn_kind"]) == {"translate", "constraint", "style", "length"}
    again = score_sessions(read_sessions(str(tr)))  # transcripts are scored as they are
    assert again["turns"] == out["turns"]


def test_constraint_terms_name_what_the_first_answer_lacks():
    pairs = PAIRS + [Pair("Good morning, everyone.", "Guten Morgen, alle zusammen.", "eng_Latn", "deu_Latn", "t:3")]
    sessions = build_sessions(pairs, kinds=["translate", "constraint"], seed=2, missing_terms=True)
    first = ["我们今天去了。", "Das Wetter ist heute schön.", "Guten Morgen, alle zusammen."]
    engine = Scripted([[f, f + " (revised)"] for f in first])
    replies = run_sessions(engine, sessions, progress=False)
    (zh_term,), (de_term,) = sessions[0]["turns"][1]["terms"], sessions[1]["turns"][1]["terms"]
    assert zh_term in {"公园", "散步"} and de_term in {"wirklich", "wunderbar"}  # in the reference, not the answer
    assert zh_term in sessions[0]["turns"][1]["user"]
    # A perfect first answer leaves nothing to ask for: its constraint turn is dropped.
    assert [t["kind"] for t in sessions[2]["turns"]] == ["translate"] and len(replies[2]) == 1
    assert replies[0] == [first[0], first[0] + " (revised)"]
    assert engine.seen == [[1, 1, 1], [3, 3]]  # turn 1 for all, then the follow-ups with their history
    scored = score_sessions(sessions, replies)
    assert scored["breakdown"]["turn_kind"]["constraint"]["n"] == 2
