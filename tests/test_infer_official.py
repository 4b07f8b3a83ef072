"""Official BayLing checkpoints: the right template and stops, whatever the name suggests."""

from __future__ import annotations

import json
import shutil

import pytest

from bayling.chat_formats import FORMATS
from bayling.infer.official import LLAMA3_STOP_IDS, LLAMA3_VOCAB, OFFICIAL, detect_official

# Expectations taken from the released sources, not from bayling's own table:
# - BayLing v1 (7B/13B v1.0, 13B v1.1): the "BayLing" conversation template of ictnlp/BayLing,
#   bayling/conversation.py (commit 0d3d2a2): this system text, then sep "\n"; each user turn
#   "### Instruction:\n" + text + "\n"; each reply "### Response:\n" + text + "</s>" + "\n".
# - Meta's Llama 3 tokenizer: <|end_of_text|> 128001, <|eot_id|> 128009, vocabulary 128256.
# - LLaMA 1/2 tokenizer: vocabulary 32000.
# UNVERIFIED (no released file read): BayLing-2-7B/13B using the v1 template; the
# BayLing-2-llama-3-8B system prompt; that its generation_config stops on 128001 only.
OFFICIAL_V1_SYSTEM = ("I am an intelligent language assistant developed by the NLP Group of ICT/CAS.\n"
                      "Below is a dialog consisting of instructions and responses. "
                      "Write a response that completes the request.\n")


def official_v1_prompt(turns: list[tuple[str, str | None]]) -> str:
    """ictnlp/BayLing's SeparatorStyle.BAYLING get_prompt, written out for these values."""
    out = OFFICIAL_V1_SYSTEM + "\n"
    for user, reply in turns:
        out += "### Instruction:\n" + user + "\n"
        out += "### Response:\n" + (reply + "</s>" + "\n" if reply is not None else "")
    return out


def test_v1_template_renders_as_the_released_code_does():
    msgs = [{"role": "user", "content": "Translate into Chinese: Good morning."},
            {"role": "assistant", "content": "早上好。"},
            {"role": "user", "content": "Make it more formal."}]
    expected = official_v1_prompt([("Translate into Chinese: Good morning.", "早上好。"), ("Make it more formal.", None)])
    assert FORMATS["bayling-v1"].render(msgs, add_generation_prompt=True) == expected


def test_llama3_ids_are_meta_s():
    assert (LLAMA3_STOP_IDS, LLAMA3_VOCAB) == ((128001, 128009), 128256)


@pytest.mark.parametrize("name,fmt", [
    ("ICTNLP/bayling-7b-diff", "bayling-v1"),
    ("ICTNLP/bayling-13b-v1.1", "bayling-v1"),
    ("/models/bayling-13b-diff", "bayling-v1"),
    ("ICTNLP/BayLing-2-7B", "bayling-v1"),  # unverified: the v1 template is assumed for BayLing-2-7B/13B
    ("ICTNLP/BayLing-2-13B", "bayling-v1"),
    ("ICTNLP/BayLing-2-llama-3-8B", "bayling2-llama3"),
    ("/data/bayling2_llama3_8b", "bayling2-llama3"),
])
def test_detection_by_name(name, fmt):
    m = detect_official(name)
    assert m is not None and m.chat_format == fmt


def test_the_llama3_model_gets_both_stop_ids():
    m = detect_official("ICTNLP/BayLing-2-llama-3-8B")
    assert set(m.stop_token_ids) == {128001, 128009} == set(LLAMA3_STOP_IDS)


def test_a_renamed_llama3_folder_is_known_by_its_vocabulary():
    # FastChat-style matching ("bayling" in the path) would give it the v1 template.
    assert detect_official("my-bayling-checkpoint", {"vocab_size": 128256}).chat_format == "bayling2-llama3"
    assert detect_official("my-bayling-checkpoint", {"vocab_size": 32000}).chat_format == "bayling-v1"


def test_not_official():
    assert detect_official("gemma3-270m") is None
    assert detect_official("/home/me/bayling/runs/my-model") is None  # a parent folder's name does not count
    assert detect_official(None) is None


def test_own_trained_folders_are_not_mistaken_for_official(tmp_path):
    run = tmp_path / "bayling-run"
    run.mkdir()
    (run / "bayling.json").write_text(json.dumps({"chat_format": "gemma"}))
    assert detect_official(str(run)) is None


def test_delta_releases_are_marked():
    assert OFFICIAL["BayLing-13B-v1.0"].delta and not OFFICIAL["BayLing-13B-v1.1"].delta


def test_loading_an_official_folder_picks_template_stops_and_placeholders(tiny_model_dir, tmp_path):
    from bayling.infer.engine import TransformersEngine

    folder = tmp_path / "BayLing-2-llama-3-8B"
    shutil.copytree(tiny_model_dir, folder)
    engine = TransformersEngine.load(str(folder))
    assert engine.chat_format.name == "bayling2-llama3"
    assert {128001, 128009} <= set(engine._stop_ids)
    eot = engine.tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert eot in engine._stop_ids
    assert engine.render([{"role": "user", "content": "hi"}]).startswith(
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nI am BayLing")
    assert engine.replacements["[NAME]"] == "BayLing"
    # An explicit --chat-format still wins.
    assert TransformersEngine.load(str(folder), chat_format="chatml").chat_format.name == "chatml"


def test_placeholders_are_filled_in_chat_and_stream():
    from bayling.infer.engine import GenerationConfig
    from bayling.testing.fake_engine import FakeEngine

    fake = FakeEngine(lambda t: "我是[名字]，I am [NAME] from [AFFILIATION].")
    fake.replacements = OFFICIAL["BayLing-13B-v1.1"].replacements
    msgs = [{"role": "user", "content": "who are you"}]
    assert fake.chat([msgs], GenerationConfig())[0] == "我是百聆，I am BayLing from ICT/CAS."
    assert fake.stream(msgs, GenerationConfig()).text() == "我是百聆，I am BayLing from ICT/CAS."
