"""General instructions: one reader for the layouts people bring, file:line errors, a held-out slice."""

import json

import pytest

from bayling.data.instructions import InstructionError, read_instructions, to_messages


def _jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def test_every_layout_becomes_the_same_conversation():
    want = [{"role": "user", "content": "Name a colour.\n\nOne word."}, {"role": "assistant", "content": "Blue."}]
    layouts = [
        {"instruction": "Name a colour.", "input": "One word.", "output": "Blue."},  # Alpaca
        {"instruction": "Name a colour.", "context": "One word.", "response": "Blue."},  # Dolly
        {"prompt": "Below is an instruction that describes a task, paired with an input that provides further "
                   "context. Write a response that appropriately completes the request.\n\n### Instruction:\n"
                   "Name a colour.\n\n### Input:\nOne word.\n\n### Response:\n", "response": "Blue."},
        {"conversations": [{"from": "human", "value": "Name a colour.\n\nOne word."}, {"from": "gpt", "value": "Blue."}]},
        {"messages": want},
        {"conversation": [{"role": "UTILISATEUR", "content": "Name a colour.\n\nOne word."},
                          {"role": "ASSISTANT", "content": "Blue."}]},
        {"instruction": "Name a colour.", "instances": [{"input": "One word.", "output": "Blue."}]},  # self-instruct
    ]
    for record in layouts:
        assert to_messages(record) == want, record


def test_a_json_list_and_jsonl_read_alike_with_a_held_out_tail(tmp_path):
    records = [{"instruction": f"Count to {i}.", "input": "", "output": " ".join(map(str, range(1, i + 2)))}
               for i in range(10)]
    as_list = tmp_path / "a.json"
    as_list.write_text(json.dumps(records), encoding="utf-8")
    as_lines = _jsonl(tmp_path / "a.jsonl", records)
    a = read_instructions(as_list, holdout=3, limit=5, lang="eng_Latn")
    b = read_instructions(as_lines, holdout=3, limit=5, lang="eng_Latn")
    assert [r["messages"] for r in a.train] == [r["messages"] for r in b.train]
    assert len(a.train) == 5 and len(a.heldout) == 3
    # The held-out slice is the file's end and never overlaps what is trained, whatever the limit.
    assert a.heldout[0]["messages"][0]["content"] == "Count to 7."
    whole = read_instructions(as_lines, holdout=3, lang="eng_Latn")
    assert len(whole.train) == 7 and not {r["meta"]["source"] for r in whole.train} & {r["meta"]["source"] for r in b.heldout}
    meta = a.train[0]["meta"]
    assert meta == {"task": "general", "kinds": ["general"], "source": f"{as_list}[0]", "lang": "eng_Latn"}
    assert b.train[2]["meta"]["source"] == f"{as_lines}:3"


def test_the_request_language_is_detected_per_record(tmp_path):
    path = _jsonl(tmp_path / "mixed.jsonl", [
        {"instruction": "给出三个保持健康的秘诀。", "input": "", "output": "均衡饮食，定期锻炼，充足睡眠。"},
        {"instruction": "Give three tips for staying healthy.", "input": "", "output": "Eat well, move, sleep."},
    ])
    assert [r["meta"]["lang"] for r in read_instructions(path).train] == ["zho_Hans", "eng_Latn"]


@pytest.mark.parametrize("record, named", [
    ({"instruction": "Hi", "output": ""}, r":2: turn 1 \(assistant\): content must be non-empty text"),
    ({"instruction": "Hi", "output": 5}, r":2: turn 1 \(assistant\): content must be non-empty text"),
    ({"messages": "hello"}, r":2: 'messages' must be a list of objects, not str"),
    ({"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}, r":2: turn 0: unknown role 'robot'"),
    ({"messages": [{"role": "user", "content": "x"}]}, r":2: the last turn is not an answer"),
    ({"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]}, r":2: turn 0: expected a user turn"),
    ({"text": "free text"}, r":2: no 'messages'"),
])
def test_bad_records_are_named_by_file_line_and_field(tmp_path, record, named):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"instruction": "Fine.", "output": "Yes."}) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(InstructionError, match=named) as err:
        read_instructions(path, lang="eng_Latn")
    assert str(err.value).startswith(f"{path}:2:")
    kept = read_instructions(path, lang="eng_Latn", skip_bad=True)
    assert len(kept.train) == 1 and kept.bad == 1


def test_broken_json_names_its_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"instruction": "a", "output": "b"}\n{"instruction": \n')
    with pytest.raises(InstructionError, match=r"broken.jsonl:2: not valid JSON"):
        read_instructions(path, lang="eng_Latn")


def test_every_shared_instruction_file_reads(shared_data):
    """The layouts users bring (../shared/data/instructions) all read, each with few unreadable records."""
    for path in sorted((shared_data / "instructions").glob("*.json*")):
        if path.name.startswith("dpo_"):  # preference pairs, not instructions
            continue
        got = read_instructions(path, limit=50, holdout=20, lang="und", skip_bad=True)
        assert len(got.train) == 50 and len(got.heldout) == 20, path.name
        assert got.bad <= 0.05 * (len(got.train) + len(got.heldout) + got.bad) or got.bad < 50, (path.name, got.bad)
