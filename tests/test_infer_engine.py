"""The Engine interface: streaming equals batch output, stop strings, cancellation, adapters, backends."""

from __future__ import annotations

import json
import threading

import pytest

from bayling.infer.engine import GenerationConfig, Rewriter, StopScanner, TransformersEngine, cut_at_stop
from bayling.testing.fake_engine import FakeEngine


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    return TransformersEngine.load(str(tiny_model_dir), chat_format="chatml")


def test_stop_scanner_never_emits_part_of_a_stop_string():
    s = StopScanner(["<|im_end|>", "\n\n"])
    assert s.feed("Hello") == ("Hello", False)
    assert s.feed(" wor<|im") == (" wor", False)  # "<|im" might begin a stop string: held back
    assert s.feed("_e") == ("", False)
    assert s.feed("nd|> trailing") == ("", True)
    s = StopScanner(["<|im_end|>"])
    assert s.feed("a<|i") == ("a", False) and s.feed("s it") == ("<|is it", False)
    assert s.flush() == ""
    assert cut_at_stop("abc\n\nd", ["\n\n"]) == "abc"


def test_rewriter_fills_placeholders_across_pieces():
    r = Rewriter({"[NAME]": "BayLing", "[名字]": "百聆"})
    out = "".join(r.feed(p) for p in ["I am [NA", "ME], ", "也叫[名", "字]", " ["]) + r.flush()
    assert out == "I am BayLing, 也叫百聆 ["


def test_stream_equals_batch_output(engine):
    cfg = GenerationConfig(max_new_tokens=12, temperature=0.0)
    prompt = "The quick brown fox jumps"
    [batch] = engine.complete([prompt], cfg)
    stream = engine.stream(prompt, cfg)
    assert "".join(stream) == batch
    assert stream.finish_reason in ("stop", "length") and 0 < stream.completion_tokens <= 12
    assert stream.prompt_tokens == engine.count_tokens(prompt)


def test_chat_stream_equals_chat(engine):
    cfg = GenerationConfig(max_new_tokens=10, temperature=1.0, seed=3)
    chat = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Der schnelle braune Fuchs"}]]
    assert engine.stream(chat[0], cfg).text().strip() == engine.chat(chat, cfg)[0]


def test_stream_and_batch_cut_at_the_same_stop_string(engine):
    prompt = "Le renard brun rapide"
    free = engine.complete([prompt], GenerationConfig(max_new_tokens=12, temperature=1.0, seed=5))[0]
    assert len(free) >= 6
    stop = free[3:6]
    cfg = GenerationConfig(max_new_tokens=12, temperature=1.0, seed=5, stop=(stop,))
    [cut] = engine.complete([prompt], cfg)
    streamed = engine.stream(prompt, cfg)
    assert cut == "".join(streamed) == cut_at_stop(free, [stop])
    assert streamed.finish_reason == "stop"


def test_a_stop_string_ends_generation_itself(engine):
    """Not just the text is cut: the model stops generating, in a batch too, row by row."""
    prompt = "Le renard brun rapide"
    free_cfg = GenerationConfig(max_new_tokens=40, temperature=1.0, seed=5)
    free = engine.stream(prompt, free_cfg)
    text = free.text()
    assert free.completion_tokens == 40
    stop = text[4:7]
    s = engine.stream(prompt, GenerationConfig(max_new_tokens=40, temperature=1.0, seed=5, stop=(stop,)))
    assert s.text() == cut_at_stop(text, [stop])
    assert s.completion_tokens < 20  # ended a token or two after the stop string, not at 40
    # A stop string that is one of the model's stop tokens ends generation as an eos id would.
    eos = engine.tokenizer.eos_token
    assert engine._generate_kwargs(GenerationConfig(stop=(eos, stop))).get("stopping_criteria") is not None
    assert "stopping_criteria" not in engine._generate_kwargs(GenerationConfig(stop=(eos,)))


def test_continuous_batching_gives_generate_outputs_token_for_token(tiny_model_dir):
    """A row that finishes leaves the batch and the next prompt takes its place: 7 prompts of
    different lengths through 3 rows must come out as `generate` on padded batches would make
    them, with no stop, a one-character stop ended by its tokens, and the chat's stop tokens."""
    static = TransformersEngine.load(str(tiny_model_dir), chat_format="chatml", batch_size=3, batching="static")
    continuous = TransformersEngine(static.model, static.tokenizer, "chatml", batch_size=3)
    assert continuous.batching == "continuous"
    prompts = ["The quick brown fox " * k + "jumps" for k in range(1, 8)]
    free = GenerationConfig(max_new_tokens=24)
    expected = static.complete(prompts, free)
    assert continuous.complete(prompts, free) == expected
    char = next(c for c in "".join(expected) if c.isalpha())
    stop = GenerationConfig(max_new_tokens=24, stop=(char,))
    cut = continuous.complete(prompts, stop)
    assert cut == static.complete(prompts, stop) == [cut_at_stop(e, [char]) for e in expected]
    assert any(c != e for c, e in zip(cut, expected))  # the stop did end some rows early
    chats = [[{"role": "user", "content": p}] for p in prompts[:4]]
    assert continuous.chat(chats, free) == static.chat(chats, free)
    # Text matching is needed for longer stops: those (and sampling) take the static path.
    assert continuous._stop_ids_for(GenerationConfig(stop=("ab",))) is None
    with pytest.raises(ValueError, match="batching must be one of"):
        TransformersEngine(static.model, static.tokenizer, "chatml", batching="dynamic")


class CancelAfter(threading.Event):
    """A cancel event that reads as set from its n-th look on: cancelled after exactly n tokens."""

    def __init__(self, n: int):
        super().__init__()
        self.n, self.looks = n, 0

    def is_set(self) -> bool:
        self.looks += 1
        return self.looks >= self.n or super().is_set()


def test_cancel_ends_generation_early(engine):
    greedy = GenerationConfig(max_new_tokens=60, temperature=0.0)
    baseline = engine.stream("The quick brown fox", greedy)
    full = baseline.text()
    assert baseline.completion_tokens == 60 and baseline.finish_reason == "length"  # left alone, it runs to the cap
    stream = engine.stream("The quick brown fox", greedy, CancelAfter(5))
    cut = stream.text()
    assert stream.completion_tokens == 5 and stream.finish_reason == "stop"
    assert cut and full.startswith(cut) and len(cut) < len(full)


def test_closing_a_stream_cancels_it():
    fake = FakeEngine(lambda t: "w " * 100, token_latency=0.01)
    s = fake.stream("x", GenerationConfig(max_new_tokens=100))
    next(s)
    s.close()
    assert s.cancel.is_set()


def test_engine_chat_validates_messages(engine):
    from bayling.chat_formats import ChatFormatError

    with pytest.raises(ChatFormatError):
        engine.chat([[{"role": "robot", "content": "x"}]], GenerationConfig(max_new_tokens=2))
    with pytest.raises(ChatFormatError):
        engine.stream([], GenerationConfig(max_new_tokens=2))


def test_adapter_folder_from_train_loads_with_its_chat_format(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    out = tmp_path / "run"
    peft_model.save_pretrained(out)
    cfg = json.loads((out / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(tiny_model_dir)
    (out / "adapter_config.json").write_text(json.dumps(cfg))
    (out / "bayling.json").write_text(json.dumps({"chat_format": "bayling-v1", "base_model": str(tiny_model_dir)}))

    engine = TransformersEngine.load(str(out))
    assert engine.chat_format.name == "bayling-v1" and engine.name == "run"
    assert engine.render([{"role": "user", "content": "hi"}]).endswith("### Instruction:\nhi\n### Response:\n")
    reply = engine.chat([[{"role": "user", "content": "hi"}]], GenerationConfig(max_new_tokens=3, temperature=0.0))[0]
    assert isinstance(reply, str) and "### Response" not in reply and "</s>" not in reply
    from bayling.infer.backends import load_engine

    assert load_engine(str(tiny_model_dir), adapter=str(out)).chat_format.name == "bayling-v1"


def test_load_engine_refuses_unknown_backends_clearly():
    from bayling.infer.backends import load_engine

    with pytest.raises(ValueError, match="unknown backend"):
        load_engine("x", backend="onnx")
    with pytest.raises(ValueError, match="--base-url"):
        load_engine("x", backend="openai")


@pytest.mark.slow
def test_embedded_model_streams_a_chat():
    engine = TransformersEngine.load("gemma3-270m")
    stream = engine.stream([{"role": "user", "content": "What is the capital of France?"}],
                           GenerationConfig(max_new_tokens=6))
    text = stream.text()
    assert text and "<end_of_turn>" not in text and stream.finish_reason in ("stop", "length")


def test_loop_guards_decode_as_generate_does_and_requests_can_turn_them_off(tiny_model_dir):
    """An engine-wide `no_repeat_ngram_size` (or `repetition_penalty`) gives transformers'
    `generate` outputs with that setting, on the static path even when continuous batching is
    the engine's default (its logits processors see no token history); a request's own value wins."""
    import torch

    from bayling.infer.backends import load_engine

    engine = load_engine(str(tiny_model_dir), chat_format="chatml", batch_size=2, decoding={"no_repeat_ngram_size": 2})
    assert engine.batching == "continuous" and engine.decoding == {"no_repeat_ngram_size": 2}
    tok = engine.tokenizer
    prompts = ["The quick brown fox jumps", "over the lazy dog and the"]
    cfg = GenerationConfig(max_new_tokens=30)
    plain = engine.complete(prompts, GenerationConfig(max_new_tokens=30, no_repeat_ngram_size=0))

    def bigrams_repeat(ids):
        grams = list(zip(ids, ids[1:]))
        return len(grams) != len(set(grams))

    for p, out in zip(prompts, engine.complete(prompts, cfg)):
        enc = tok(p, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            ref = engine.model.generate(**enc, max_new_tokens=30, do_sample=False, no_repeat_ngram_size=2,
                                        eos_token_id=engine._stop_ids, pad_token_id=tok.pad_token_id)
        new = ref[0, enc["input_ids"].shape[1]:].tolist()
        assert out == cut_at_stop(tok.decode(new), engine._text_stops(cfg))
        assert not bigrams_repeat(enc["input_ids"][0].tolist() + new)
    # The random model loops without the guard, so the guard changed something.
    assert any(bigrams_repeat(tok(p + o, add_special_tokens=False)["input_ids"]) for p, o in zip(prompts, plain))
    off = load_engine(str(tiny_model_dir), chat_format="chatml", batch_size=2)
    assert off.decoding == {} and off.complete(prompts, cfg) == plain
    assert engine.guards(GenerationConfig(repetition_penalty=1.3)) == {"repetition_penalty": 1.3, "no_repeat_ngram_size": 2}


@pytest.mark.parametrize("decoding, message", [
    ({"top_k": 5}, "unknown decoding setting"),
    ({"no_repeat_ngram_size": -1}, "whole number"),
    ({"no_repeat_ngram_size": 2.5}, "whole number"),
    ({"repetition_penalty": 0}, r"\(0, 10\]"),
    ({"repetition_penalty": "high"}, r"\(0, 10\]"),
])
def test_load_engine_refuses_bad_loop_guards_before_loading(decoding, message):
    from bayling.errors import ConfigError
    from bayling.infer.backends import load_engine

    with pytest.raises(ConfigError, match=message):
        load_engine("no-such-model", decoding=decoding)


def test_reply_loop_guard_bans_the_replys_own_repeats_not_the_prompts():
    import torch

    from bayling.infer.engine import _ReplyNoRepeatNGram

    guard = _ReplyNoRepeatNGram(2)
    scores = guard(torch.tensor([[5, 6, 5]]), torch.zeros(1, 8))  # first call: the prompt alone
    assert torch.isfinite(scores).all()  # the prompt's own "5 6" may come again
    scores = guard(torch.tensor([[5, 6, 5, 1, 2, 1]]), torch.zeros(1, 8))
    assert scores[0].isinf().nonzero().flatten().tolist() == [2]  # "1 2" is the reply's: not twice
    scores = guard(torch.tensor([[5, 6, 5, 1, 2, 1, 3]]), torch.zeros(1, 8))
    assert torch.isfinite(scores).all()


def test_reply_loop_guard_through_the_engine(tiny_model_dir):
    import torch

    engine = TransformersEngine.load(str(tiny_model_dir), chat_format="chatml", batch_size=2)
    engine.decoding = {"reply_no_repeat_ngram_size": 2}
    prompts = ["The quick brown fox jumps", "over the lazy dog and the"]
    cfg = GenerationConfig(max_new_tokens=30)
    tok = engine.tokenizer
    with engine._tok_lock:
        tok.padding_side = "left"
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        out = engine.model.generate(**enc, **engine._generate_kwargs(cfg))
    replies = out[:, enc["input_ids"].shape[1]:].tolist()
    for ids in replies:
        grams = list(zip(ids, ids[1:]))
        assert len(grams) == len(set(grams))
    assert engine.complete(prompts, cfg) == [cut_at_stop(tok.decode(r), engine._text_stops(cfg)) for r in replies]
    plain = engine.complete(prompts, GenerationConfig(max_new_tokens=30, reply_no_repeat_ngram_size=0))
    assert plain != engine.complete(prompts, cfg)
