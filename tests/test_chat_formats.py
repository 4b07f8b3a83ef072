import pytest

from bayling.chat_formats import (
    BAYLING_V1_SYSTEM,
    FORMATS,
    ChatFormatError,
    attach_format,
    encode_chat,
    fill_name_placeholders,
    get_format,
    validate_messages,
)


def conversation(turns: int, system: bool = False) -> list[dict]:
    msgs = [{"role": "system", "content": "You translate carefully."}] if system else []
    for i in range(turns):
        msgs.append({"role": "user", "content": f"Translate sentence {i}: Der Hund schläft."})
        msgs.append({"role": "assistant", "content": f"The dog sleeps ({i}). 狗在睡觉。"})
    return msgs


def masked_spans(tokenizer, ids, mask) -> list[str]:
    spans, cur = [], []
    for tid, m in zip(ids, mask):
        if m:
            cur.append(tid)
        elif cur:
            spans.append(tokenizer.decode(cur))
            cur = []
    if cur:
        spans.append(tokenizer.decode(cur))
    return spans


END = {"bayling-v1": "</s>", "bayling2-llama3": "<|eot_id|>", "llama3": "<|eot_id|>",
       "gemma": "<end_of_turn>", "chatml": "<|im_end|>"}


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize("turns", [1, 2, 5])
@pytest.mark.parametrize("system", [False, True])
def test_mask_covers_exactly_the_assistant_messages(tiny_tokenizer, name, turns, system):
    msgs = conversation(turns, system)
    ids, mask = encode_chat(tiny_tokenizer, msgs, name)
    assert len(ids) == len(mask)
    expected = [m["content"] + END[name] for m in msgs if m["role"] == "assistant"]
    assert masked_spans(tiny_tokenizer, ids, mask) == expected


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_apply_chat_template_mask_agrees(tiny_tokenizer, name):
    """A tokenizer carrying our template gives the ecosystem the same mask."""
    import copy

    tok = copy.deepcopy(tiny_tokenizer)
    attach_format(tok, name)
    msgs = conversation(3, system=True)
    out = tok.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = encode_chat(tok, msgs, name)
    assert out["input_ids"] == ids
    assert out["assistant_masks"] == mask


def test_bayling_v1_text_is_the_released_format():
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    text = FORMATS["bayling-v1"].render(msgs)
    assert text == BAYLING_V1_SYSTEM + "### Instruction:\nHi\n### Response:\nHello</s>\n"
    prompt = FORMATS["bayling-v1"].render(msgs[:1], add_generation_prompt=True)
    assert prompt.endswith("### Instruction:\nHi\n### Response:\n")


def test_bayling2_llama3_text():
    msgs = [{"role": "user", "content": "Hi"}]
    text = FORMATS["bayling2-llama3"].render(msgs, add_generation_prompt=True)
    assert text == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "I am BayLing developed by the NLP Group of ICT/CAS.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_gemma_folds_system_into_first_user_turn():
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    text = FORMATS["gemma"].render(msgs, add_generation_prompt=True)
    assert text == "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"


def test_model_own_template_without_generation_blocks(tiny_tokenizer):
    """A Hugging Face template with no {% generation %} still yields exact assistant spans."""
    import copy

    tok = copy.deepcopy(tiny_tokenizer)
    tok.chat_template = (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )
    msgs = conversation(2)
    ids, mask = encode_chat(tok, msgs, "auto")
    assert masked_spans(tok, ids, mask) == [m["content"] + "<|im_end|>" for m in msgs if m["role"] == "assistant"]


def test_auto_without_template_is_a_clear_error(tiny_tokenizer):
    import copy

    tok = copy.deepcopy(tiny_tokenizer)
    tok.chat_template = None
    with pytest.raises(ChatFormatError, match="no chat template"):
        get_format("auto", tok)
    with pytest.raises(ChatFormatError, match="unknown chat format 'vicuna'"):
        get_format("vicuna", tok)


@pytest.mark.parametrize(
    "messages, fragment",
    [
        ([], "no messages"),
        ([{"role": "robot", "content": "x"}], "unknown role 'robot'"),
        ([{"role": "user", "content": "  "}], "message 0: empty content"),
        ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}], "only come first"),
        ([{"content": "a"}], "needs 'role'"),
    ],
)
def test_bad_messages_name_the_problem(messages, fragment):
    with pytest.raises(ChatFormatError, match=fragment):
        validate_messages(messages)


def test_name_placeholders():
    assert fill_name_placeholders("I am [NAME], 我是[名字]。") == "I am BayLing, 我是百聆。"
