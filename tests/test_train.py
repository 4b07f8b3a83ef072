import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bayling.chat_formats import get_format
from bayling.train import TrainConfig, train
from bayling.train.dataset import IGNORE, TrainDataError, read_conversations, tokenize_conversations, to_messages
from bayling.train.packing import Collator, pack, packing_efficiency


ROOT = Path(__file__).resolve().parents[1]
# Subprocesses run this checkout's code, one thread each (two runs share the machine's cores).
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
CLI = [sys.executable, "-m", "bayling.cli", "train"]


def write_convs(path, n=24, turns=2):
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            msgs = []
            for t in range(1 + (i + turns) % 3):
                msgs += [{"role": "user", "content": f"Translate into German: the dog {i} sleeps ({t})."},
                         {"role": "assistant", "content": f"Der Hund {i} schläft ({t})."}]
            f.write(json.dumps({"messages": msgs, "meta": {"src_lang": "eng_Latn"}}, ensure_ascii=False) + "\n")
    return path


def decoded_trained_spans(tok, example):
    spans, cur = [], []
    for tid, lab in zip(example.input_ids, example.labels):
        if lab != IGNORE:
            assert lab == tid
            cur.append(tid)
        elif cur:
            spans.append(tok.decode(cur))
            cur = []
    if cur:
        spans.append(tok.decode(cur))
    return spans


def test_labels_are_exactly_the_assistant_turns(tiny_tokenizer, tmp_path):
    path = write_convs(tmp_path / "c.jsonl", n=3)
    examples, stats = tokenize_conversations(read_conversations(path), tiny_tokenizer, get_format("gemma"), 512)
    assert stats.kept == 3
    for (origin, msgs), ex in zip(read_conversations(path), examples):
        expected = [m["content"] + "<end_of_turn>" for m in msgs if m["role"] == "assistant"]
        assert decoded_trained_spans(tiny_tokenizer, ex) == expected


def test_weight_zero_turns_are_context_not_trained(tiny_tokenizer, tmp_path):
    msgs = [{"role": "user", "content": "Translate into German: the dog sleeps."},
            {"role": "assistant", "content": "Der Katze schläft.", "weight": 0},
            {"role": "user", "content": "Please make sure it uses 'Hund'."},
            {"role": "assistant", "content": "Der Hund schläft.", "weight": 1},
            {"role": "user", "content": "Now in French."},
            {"role": "assistant", "content": "Le chien dort."}]
    path = tmp_path / "w.jsonl"
    path.write_text(json.dumps({"messages": msgs}) + "\n" + json.dumps({"messages": msgs[:2]}) + "\n")
    examples, stats = tokenize_conversations(read_conversations(path), tiny_tokenizer, get_format("gemma"), 512)
    assert decoded_trained_spans(tiny_tokenizer, examples[0]) == ["Der Hund schläft.<end_of_turn>",
                                                                  "Le chien dort.<end_of_turn>"]
    assert stats.kept == 1 and stats.dropped == {"no trained assistant turn": 1}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [msgs[0], {**msgs[1], "weight": 0.5}]}) + "\n")
    _, stats = tokenize_conversations(read_conversations(bad), tiny_tokenizer, get_format("gemma"), 512)
    assert stats.dropped == {"weight": 1}


def _term_record():
    msgs = [{"role": "user", "content": "Translate into German: the dog sleeps near the house."},
            {"role": "assistant", "content": "Der Hund schläft beim Haus.", "weight": 0},
            {"role": "user", "content": "Please make sure it uses 'neben'."},
            {"role": "assistant", "content": "Der Hund schläft neben dem Haus."}]
    return {"messages": msgs, "meta": {"expect": [{"lang": None, "terms": ["Haus"]},
                                                  {"lang": "deu_Latn", "terms": ["neben"]}]}}


def test_term_weight_marks_the_requested_word_in_its_own_answer(tiny_tokenizer, tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(_term_record()) + "\n")
    msgs = to_messages(_term_record())
    assert msgs[3]["terms"] == ["neben"] and msgs[1]["terms"] == ["Haus"]
    plain, _ = tokenize_conversations(read_conversations(path), tiny_tokenizer, get_format("gemma"), 512)
    assert plain[0].weights is None  # term_weight 1: every trained token weighs the same
    weighted, stats = tokenize_conversations(read_conversations(path), tiny_tokenizer, get_format("gemma"), 512,
                                             term_weight=4.0)
    ex = weighted[0]
    assert ex.labels == plain[0].labels  # the same tokens are trained; only their weights differ
    heavy = [t for t, w in zip(ex.input_ids, ex.weights) if w == 4.0]
    assert "neben" in tiny_tokenizer.decode(heavy) and "Haus" not in tiny_tokenizer.decode(heavy)  # weight-0 turn stays 0
    assert "Hund" not in tiny_tokenizer.decode(heavy)
    assert {w for w, lab in zip(ex.weights, ex.labels) if lab == IGNORE} == {0.0}
    assert stats.term_tokens == len(heavy) > 0


def test_term_weight_scales_those_tokens_in_the_loss(tiny_model_dir, tiny_tokenizer, tmp_path):
    """Weighted loss = sum(weight x token cross-entropy) / trained tokens; weights of 1 change nothing."""
    from transformers import AutoModelForCausalLM, TrainingArguments

    from bayling.train.trainer import _sft_trainer_class

    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(_term_record()) + "\n")
    (ex,), _ = tokenize_conversations(read_conversations(path), tiny_tokenizer, get_format("chatml"), 512,
                                      term_weight=3.0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    trainer = _sft_trainer_class()(model=model, args=TrainingArguments(str(tmp_path / "o"), use_cpu=True,
                                                                       report_to=[]))
    batch = Collator(tiny_tokenizer.pad_token_id, packed=True)([pack([ex], 512)[0]])
    with torch.no_grad():
        ours = trainer.compute_loss(model, dict(batch))
        logits = model(input_ids=batch["input_ids"]).logits[0, :-1].float()
        target, w = batch["labels"][0, 1:], batch["loss_weights"][0, 1:]
        keep = target != IGNORE
        ce = torch.nn.functional.cross_entropy(logits[keep], target[keep], reduction="none")
        torch.testing.assert_close(ours, (ce * w[keep]).sum() / keep.sum(), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(ours, ce.mean())  # the term tokens did weigh more
        unweighted = {k: v for k, v in batch.items() if k != "loss_weights"}
        torch.testing.assert_close(trainer.compute_loss(model, unweighted), ce.mean(), atol=1e-5, rtol=1e-5)


def test_repeated_ngram_ends_are_the_tokens_that_repeat_a_4gram():
    from bayling.chat_formats import repeated_ngram_ends

    assert repeated_ngram_ends([1, 2, 3, 4, 5, 6], 4) == []
    # 1 2 3 1 2 3 1: the 4-gram (1 2 3 1) first ends at index 3, again at index 6
    assert repeated_ngram_ends([1, 2, 3, 1, 2, 3, 1, 2], 4) == [6, 7]
    assert repeated_ngram_ends([7, 7, 7, 7, 7, 7], 4) == [4, 5]
    assert repeated_ngram_ends([7, 7, 7], 4) == []


def _looping_draft_record():
    loop = "wa mtaa " * 12
    msgs = [{"role": "user", "content": "Translate into Swahili: the street children play."},
            {"role": "assistant", "content": "Watoto " + loop.strip(), "weight": 0},
            {"role": "user", "content": "You repeated yourself; please translate it properly."},
            {"role": "assistant", "content": "Watoto wa mtaani wanacheza wa mtaa wa mtaa wa mtaa wa mtaa."}]
    return {"messages": msgs}


def test_unlikelihood_marks_only_the_drafts_repeated_4grams(tiny_tokenizer, tmp_path):
    path = tmp_path / "u.jsonl"
    path.write_text(json.dumps(_looping_draft_record()) + "\n")
    read = lambda: read_conversations(path)  # noqa: E731
    plain, _ = tokenize_conversations(read(), tiny_tokenizer, get_format("gemma"), 512)
    (ex,), stats = tokenize_conversations(read(), tiny_tokenizer, get_format("gemma"), 512, unlikelihood=0.5)
    assert plain[0].weights is None
    negative = [i for i, w in enumerate(ex.weights) if w < 0]
    assert negative and {ex.weights[i] for i in negative} == {-0.5}
    assert stats.unlikelihood_tokens == len(negative)
    # The same tokens as plain SFT are trained positively (the answer, repeats and all: weight 1)...
    assert [lab if w > 0 else IGNORE for lab, w in zip(ex.labels, ex.weights)] == plain[0].labels
    assert stats.assistant_tokens == sum(lab != IGNORE for lab in plain[0].labels)
    # ...and the unlikelihood tokens lie in the draft, once the loop has begun, labelled with themselves.
    draft = tiny_tokenizer.decode([ex.input_ids[i] for i in range(len(ex.input_ids))][: negative[-1] + 1])
    assert draft.rstrip().endswith("mtaa") and "please translate" not in draft
    assert all(ex.labels[i] == ex.input_ids[i] for i in negative)
    first = tiny_tokenizer.decode(ex.input_ids[: negative[0]])
    assert first.count("wa mtaa") >= 1 and "Watoto" in first  # nothing before the loop began


def test_unlikelihood_loss_is_minus_log_one_minus_p(tiny_model_dir, tiny_tokenizer, tmp_path):
    """Negative weights -a add a * -log(1 - p(token)); the sum is divided by all labelled tokens."""
    from transformers import AutoModelForCausalLM, TrainingArguments

    from bayling.train.trainer import _sft_trainer_class

    path = tmp_path / "u.jsonl"
    path.write_text(json.dumps(_looping_draft_record()) + "\n")
    (ex,), _ = tokenize_conversations(read_conversations(path), tiny_tokenizer, get_format("chatml"), 512,
                                      unlikelihood=2.0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    trainer = _sft_trainer_class()(model=model, args=TrainingArguments(str(tmp_path / "o"), use_cpu=True,
                                                                       report_to=[]))
    batch = Collator(tiny_tokenizer.pad_token_id, packed=True)([pack([ex], 512)[0]])
    with torch.no_grad():
        ours = trainer.compute_loss(model, dict(batch))
        logp = model(input_ids=batch["input_ids"]).logits[0, :-1].float().log_softmax(-1)
        target, w = batch["labels"][0, 1:], batch["loss_weights"][0, 1:]
        keep = target != IGNORE
        p = logp[keep].gather(-1, target[keep, None])[:, 0].exp()
        w = w[keep]
        assert (w < 0).any() and (w > 0).any()
        expected = torch.where(w < 0, -torch.log1p(-p) * -w, -p.log() * w).sum() / keep.sum()
        torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_unlikelihood_lowers_the_loops_probability(tiny_model_dir, tmp_path):
    """A few steps with unlikelihood make the draft's looping continuation less likely than plain SFT does."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = tmp_path / "u.jsonl"
    data.write_text("".join(json.dumps(_looping_draft_record()) + "\n" for _ in range(8)))
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)

    def loop_logprob(folder):
        model = AutoModelForCausalLM.from_pretrained(folder).eval()
        ex = tokenize_conversations(read_conversations(data), tok, get_format("gemma"), 512, unlikelihood=1.0)[0][0]
        ids = torch.tensor([ex.input_ids])
        with torch.no_grad():
            logp = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
        marked = [i for i, w in enumerate(ex.weights) if w < 0]
        return sum(logp[i - 1, ex.input_ids[i]].item() for i in marked) / len(marked)

    scores = {}
    for ul in (0.0, 4.0):
        out = tmp_path / f"o{ul}"
        train(TrainConfig(data=str(data), out=str(out), model=str(tiny_model_dir), chat_format="gemma", method="full",
                          max_steps=24, batch_size=2, lr=1e-1, max_len=256, unlikelihood=ul, seed=1, save_steps=100))
        scores[ul] = loop_logprob(out)
    # The answer repeats "wa mtaa" too, so plain SFT makes the draft's loop likelier than at the start;
    # with unlikelihood it ends less likely than with plain SFT (an identical run otherwise).
    assert scores[4.0] < scores[0.0] - 0.05, scores


def test_sharegpt_and_alpaca_layouts():
    assert to_messages({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}) == [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    assert to_messages({"instruction": "Translate", "input": "Hund", "output": "dog"}) == [
        {"role": "user", "content": "Translate\n\nHund"}, {"role": "assistant", "content": "dog"}]


def test_bad_records_are_counted_not_fatal(tiny_tokenizer, tmp_path):
    path = tmp_path / "bad.jsonl"
    good = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    lines = [
        json.dumps(good),
        json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),
        json.dumps({"messages": [{"role": "wizard", "content": "x"}, {"role": "assistant", "content": "b"}]}),
        json.dumps({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "b"}]}),
        "{not json",
        json.dumps({"messages": [{"role": "user", "content": "long " * 400}, {"role": "assistant", "content": "b"}]}),
    ]
    path.write_text("\n".join(lines) + "\n")
    examples, stats = tokenize_conversations(read_conversations(path), tiny_tokenizer, get_format("chatml"), 64)
    assert stats.kept == 1 and len(examples) == 1
    assert stats.dropped == {"no assistant turn": 1, "unknown role": 1, "empty content": 1, "JSON": 1,
                             "longer than max_len": 1}


def test_bad_record_errors_say_file_line_and_what_is_wrong(tiny_tokenizer, tmp_path):
    path = tmp_path / "bad.jsonl"
    lines = [
        {"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "b"}]},
        {"messages": "hello"},
        {"conversations": "hello"},
        {"messages": [{"role": "robot", "content": "a"}, {"role": "assistant", "content": "b"}]},
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    errors = []
    _, stats = tokenize_conversations(read_conversations(path), tiny_tokenizer, get_format("chatml"), 64,
                                      on_error=lambda origin, err: errors.append(str(err)))
    assert errors == [f"{path}:1: message 0: content must be a string, not int",
                      f"{path}:2: 'messages' must be a list of objects, not str",
                      f"{path}:3: 'conversations' must be a list of objects, not str",
                      f"{path}:4: message 0: unknown role 'robot' (use system, user, assistant)"]
    assert stats.dropped == {"content must be a string": 1, "must be a list": 2, "unknown role": 1}


def test_overlong_conversation_is_cut_at_a_turn_boundary(tiny_tokenizer, tmp_path):
    msgs = []
    for t in range(6):
        msgs += [{"role": "user", "content": f"turn {t} " + "word " * 10}, {"role": "assistant", "content": f"answer {t}"}]
    examples, stats = tokenize_conversations([("x", msgs)], tiny_tokenizer, get_format("chatml"), 90)
    assert stats.truncated == 1
    spans = decoded_trained_spans(tiny_tokenizer, examples[0])
    assert 1 <= len(spans) < 6
    assert spans == [f"answer {t}<|im_end|>" for t in range(len(spans))]  # whole turns only


@pytest.mark.parametrize("attn", ["eager", "sdpa"])  # eager: the CPU default; sdpa: the GPU one
def test_packing_is_dense_and_does_not_leak_attention(tiny_model_dir, tiny_tokenizer, tmp_path, attn):
    from transformers import AutoModelForCausalLM

    path = write_convs(tmp_path / "c.jsonl", n=30)
    examples, _ = tokenize_conversations(read_conversations(path), tiny_tokenizer, get_format("chatml"), 256)
    rows = pack(examples, 256)
    assert sorted(len(e) for r in rows for e in r.examples) == sorted(len(e) for e in examples)
    assert all(len(r) <= 256 for r in rows)
    total = sum(len(e) for e in examples)
    assert len(rows) <= -(-total // 256) + 1  # at most one row more than the ideal
    assert packing_efficiency(rows, 1) > 0.85
    assert packing_efficiency(rows, 1) > packing_efficiency([type(rows[0])([e]) for e in examples], 4)

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=attn).eval()
    row = rows[0]
    assert len(row.examples) >= 2
    batch = Collator(tiny_tokenizer.pad_token_id)([row])
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        start = 0
        for ex in row.examples:
            alone = model(input_ids=torch.tensor([ex.input_ids])).logits[0]
            torch.testing.assert_close(packed[start : start + len(ex)], alone, atol=1e-4, rtol=1e-4)
            start += len(ex)


def test_nothing_trainable_fails_before_loading_a_model(tiny_model_dir, tmp_path):
    # A folder whose tokenizer loads but whose weights do not exist: reaching the model would
    # raise an OSError about missing weights instead of the data error.
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    for f in tiny_model_dir.iterdir():
        if not f.name.endswith(".safetensors"):
            (no_weights / f.name).write_bytes(f.read_bytes())
    path = tmp_path / "empty.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}]}) + "\n")
    with pytest.raises(TrainDataError, match="nothing trainable"):
        train(TrainConfig(data=str(path), out=str(tmp_path / "run"), model=str(no_weights), chat_format="chatml",
                          max_steps=1))


def test_lora_run_saves_a_servable_adapter_and_resumes(tiny_model_dir, tmp_path):
    data = write_convs(tmp_path / "c.jsonl", n=16)
    out = tmp_path / "run"
    cfg = dict(data=str(data), out=str(out), model=str(tiny_model_dir), chat_format="chatml", max_steps=4,
               batch_size=2, max_len=128, save_steps=2, lr=1e-3)
    s = train(TrainConfig(**cfg))
    assert s["global_step"] == 4 and s["final_loss"] is not None
    for f in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "bayling.json",
              "README.md", "train_summary.json"):
        assert (out / f).is_file(), f
    assert json.loads((out / "bayling.json").read_text())["chat_format"] == "chatml"
    for ckpt in (out / "checkpoints").glob("checkpoint-*"):  # every saved step loads like the final model
        assert json.loads((ckpt / "bayling.json").read_text())["chat_format"] == "chatml"

    from bayling.models import load_model

    model, tok = load_model(str(out))  # the adapter folder alone is enough (merged for inference)
    assert "<|im_start|>" in tok.chat_template

    # Another config (more steps: another learning-rate schedule) never resumes this one's checkpoints.
    s2 = train(TrainConfig(**{**cfg, "max_steps": 6, "resume": True}))
    assert s2["global_step"] == 6
    assert [h["step"] for h in s2["log_history"] if "loss" in h] == [1, 2, 3, 4, 5, 6]
    assert [h["loss"] for h in s2["log_history"] if "loss" in h][:4] != [h["loss"] for h in s["log_history"] if "loss" in h]


def test_full_fine_tune(tiny_model_dir, tmp_path):
    data = write_convs(tmp_path / "c.jsonl", n=8)
    s = train(TrainConfig(data=str(data), out=str(tmp_path / "full"), model=str(tiny_model_dir),
                          chat_format="gemma", method="full", max_steps=2, batch_size=2, max_len=128))
    assert (tmp_path / "full" / "model.safetensors").is_file()
    assert s["method"] == "full"
    # The tied embedding / LM head is frozen by default and trained on request.
    from safetensors.torch import load_file

    from bayling.testing.tiny import build_tiny_model  # noqa: F401  (the fixture's builder)

    before = load_file(str(tiny_model_dir / "model.safetensors"))
    after = load_file(str(tmp_path / "full" / "model.safetensors"))
    emb = next(k for k in before if "embed_tokens" in k)
    block = next(k for k in before if "layers.0.mlp" in k)
    torch.testing.assert_close(after[emb].float(), before[emb].to(after[emb].dtype).float())  # bf16 storage on bf16 CPUs
    assert not torch.allclose(after[block].float(), before[block].float())
    train(TrainConfig(data=str(data), out=str(tmp_path / "full-emb"), model=str(tiny_model_dir), chat_format="gemma",
                      method="full", max_steps=2, batch_size=2, max_len=128, train_embeddings=True, lr=1e-2))
    trained = load_file(str(tmp_path / "full-emb" / "model.safetensors"))
    assert not torch.allclose(trained[emb].float(), before[emb].float())


def test_qlora_quantizes_the_base_or_says_why_not(monkeypatch, tiny_model_dir, tmp_path):
    from bayling.train import trainer

    # Without CUDA + bitsandbytes the run stops with the reason (it used to train plain LoRA silently).
    data = write_convs(tmp_path / "c.jsonl", n=4)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="bitsandbytes"):
        train(TrainConfig(data=str(data), out=str(tmp_path / "q"), model=str(tiny_model_dir), chat_format="gemma",
                          method="qlora", max_steps=1))
    # With them, the base loads as 4-bit NF4 on this process's GPU (bench/gpu_check.sh runs it for real).
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    import importlib.util

    real_find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: object() if n == "bitsandbytes" else real_find(n, *a))
    monkeypatch.setenv("LOCAL_RANK", "1")
    import torch as t

    kw = trainer._quantized_load("qlora", t.bfloat16)
    q = kw["quantization_config"]
    assert q.load_in_4bit and q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_compute_dtype == t.bfloat16
    assert kw["device_map"] == {"": 1}
    assert trainer._quantized_load("lora", t.bfloat16) == {}


def test_bf16_auto_follows_the_hardware(monkeypatch, tiny_model_dir, tmp_path):
    from bayling import hardware

    assert hardware.resolve_bf16(False) is False and hardware.resolve_bf16("true") is True
    with pytest.raises(ValueError, match="bf16"):
        hardware.resolve_bf16("maybe")
    monkeypatch.setattr(hardware, "fast_bf16", lambda: False)
    assert hardware.resolve_bf16("auto") is False
    if not hardware.cpu_has_fast_bf16():
        pytest.skip("this CPU has no AVX-512 BF16 / AMX: the bf16 path is not exercised")
    # On a bf16 CPU: frozen weights in bf16, LoRA weights in fp32, and the loss close to fp32's.
    data = write_convs(tmp_path / "c.jsonl", n=8)
    losses = {}
    for bf16 in (False, True):
        s = train(TrainConfig(data=str(data), out=str(tmp_path / f"b{bf16}"), model=str(tiny_model_dir),
                              chat_format="gemma", max_steps=3, batch_size=2, max_len=128, bf16=bf16, seed=1))
        losses[bf16] = [h["loss"] for h in s["log_history"] if "loss" in h]
    assert losses[True] != losses[False]  # autocast really ran
    assert losses[True] == pytest.approx(losses[False], rel=0.03)


def test_cli_error_is_one_line(tmp_path):
    missing = tmp_path / "nope.jsonl"
    r = subprocess.run([sys.executable, "-m", "bayling.cli", "train", "--data", str(missing), "--out",
                        str(tmp_path / "o"), "--model", "/tmp"], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "error:" in r.stderr


def _adapter(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def _losses(folder: Path) -> list[tuple[int, float]]:
    history = json.loads((folder / "train_summary.json").read_text())["log_history"]
    return [(h["step"], h["loss"]) for h in history if "loss" in h]


def _assert_same_training(a: Path, b: Path, rtol: float):
    (steps_a, loss_a), (steps_b, loss_b) = zip(*_losses(a)), zip(*_losses(b))
    assert steps_a == steps_b
    torch.testing.assert_close(torch.tensor(loss_a), torch.tensor(loss_b), atol=0, rtol=rtol)
    wa, wb = _adapter(a), _adapter(b)
    assert wa.keys() == wb.keys()
    assert max(w.abs().max().item() for k, w in wa.items() if "lora_B" in k) > 1e-3  # it trained
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=1e-5, rtol=1e-3, msg=k)


def _json_complete(path: Path) -> bool:
    try:
        json.loads(path.read_text())
        return True
    except (OSError, ValueError):
        return False


def test_killed_training_resumes_to_the_uninterrupted_result(tiny_model_dir, tmp_path):
    """SIGKILL `bayling train` once a checkpoint is on disk; --resume ends where an unbroken run does."""
    data = write_convs(tmp_path / "c.jsonl", n=16)
    args = ["--data", str(data), "--model", str(tiny_model_dir), "--chat-format", "chatml", "--max-steps", "40",
            "--batch-size", "2", "--max-len", "96", "--save-steps", "4", "--lr", "5e-3", "--seed", "7"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    baseline = subprocess.Popen(CLI + args + ["--out", str(whole)], env=ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    victim = subprocess.Popen(CLI + args + ["--out", str(killed)], env=ENV, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        # A tiny step takes ~30 ms: 40 steps leave a second or more after the first checkpoint to kill in.
        first = killed / "checkpoints" / "checkpoint-4" / "bayling-checkpoint.json"  # written once it is complete
        deadline = time.monotonic() + 300
        while not _json_complete(first):
            assert victim.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.01)
        assert victim.poll() is None, "finished before it could be killed"
        victim.send_signal(signal.SIGKILL)
        assert victim.wait() == -signal.SIGKILL
    finally:
        victim.kill()
    assert not (killed / "train_summary.json").exists()  # it really died mid-run

    r = subprocess.run(CLI + args + ["--out", str(killed), "--resume"], env=ENV, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    import re

    resumed_at = int(re.search(r"resume.*checkpoint-(\d+)", r.stderr.replace("\n", "")).group(1))
    shown = [int(n) for n in re.findall(r"\| *(\d+)/40 \[", r.stderr)]  # the progress bar's steps
    assert min(shown) == resumed_at and max(shown) == 40  # only the steps after the checkpoint were redone
    assert baseline.wait(timeout=300) == 0, baseline.stderr.read()[-2000:]
    assert [s for s, _ in _losses(killed)] == list(range(1, 41))
    _assert_same_training(killed, whole, rtol=1e-4)


def test_two_ranks_of_batch_b_train_like_one_rank_of_batch_2b(tiny_model_dir, tmp_path):
    """torchrun -> Trainer -> DDP on gloo: data sharding and the loss scaling across ranks.

    2 processes x 2 rows per step must see the same rows and take the same steps as 1 process x 4
    rows (dropout off, so the only difference is where the sums are done).
    """
    import shutil

    if shutil.which("torchrun") is None:
        pytest.skip("torchrun not on PATH")
    data = write_convs(tmp_path / "c.jsonl", n=32)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  lora_dropout: 0.0\n  bf16: false\n")  # fp32: bf16 rounding differs with the reduction order
    args = [str(recipe), "--data", str(data), "--model", str(tiny_model_dir), "--chat-format", "chatml",
            "--max-steps", "3", "--max-len", "96", "--lr", "5e-3"]
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    two = subprocess.Popen(["torchrun", "--standalone", "--nproc_per_node", "2", "-m", "bayling.cli", "train", *args,
                            "--batch-size", "2", "--out", str(ddp)],
                           env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    one = subprocess.run(CLI + args + ["--batch-size", "4", "--out", str(single)], env=ENV, capture_output=True,
                         text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.wait(timeout=300) == 0, two.stderr.read()[-2000:]
    ranks = [(ddp / "rank_losses" / f"rank{i}.jsonl").read_text().splitlines() for i in range(2)]
    assert len(ranks[0]) == 3 and ranks[0] == ranks[1]
    _assert_same_training(ddp, single, rtol=1e-4)


PROMPT = [{"role": "user", "content": "Translate into German: the dog sleeps."}]
REPLY = "Der Hund schläft."
IDS = torch.tensor([[5, 6, 7, 8]])


@pytest.fixture(scope="module")
def learned(tiny_model_dir, tmp_path_factory):
    """A LoRA adapter trained until the tiny model has memorised one reply (16 steps, ~10 s)."""
    tmp = tmp_path_factory.mktemp("learned")
    data = tmp / "one.jsonl"
    data.write_text((json.dumps({"messages": PROMPT + [{"role": "assistant", "content": REPLY}]}) + "\n") * 8)
    out = tmp / "run"
    summary = train(TrainConfig(data=str(data), out=str(out), model=str(tiny_model_dir), chat_format="chatml",
                                max_steps=16, batch_size=2, max_len=64, lr=1e-2, packing=False, save_steps=1000))
    return out, summary


def _logits(model, ids=IDS):
    with torch.no_grad():
        return model(ids).logits


def _shift_from_base(tiny_model_dir, model) -> float:
    """How far a trained model's logits are from the base's: ~0 would mean the adapter does nothing."""
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    return (_logits(model) - _logits(base)).abs().max().item()


def test_lora_learns_a_reply_it_can_memorise(learned, tiny_model_dir):
    from bayling.infer.engine import GenerationConfig, TransformersEngine

    out, summary = learned
    losses = [h["loss"] for h in summary["log_history"] if "loss" in h]
    assert len(losses) == 16
    # The frozen tied head bounds the tiny model's logits (~±0.8), so the loss cannot go far below
    # ln(vocab) = 6.4; 6.37 -> 5.82 measured. What it can do is make the reply the greedy one.
    assert losses[-1] < losses[0] - 0.3, losses
    greedy = GenerationConfig(max_new_tokens=12, temperature=0.0)
    tuned = TransformersEngine.load(str(out)).chat([PROMPT], greedy)[0]
    base = TransformersEngine.load(str(tiny_model_dir), chat_format="chatml").chat([PROMPT], greedy)[0]
    assert tuned == REPLY and base != REPLY


def test_merged_and_unmerged_adapter_agree(learned, tiny_model_dir):
    from bayling.models import load_model

    out, _ = learned
    merged, _ = load_model(str(out), dtype="float32")
    unmerged, _ = load_model(str(out), merge=False, dtype="float32")
    assert type(unmerged).__name__.startswith("Peft") and not type(merged).__name__.startswith("Peft")
    assert _shift_from_base(tiny_model_dir, merged) > 0.1  # measured 0.53: the equality below means something
    torch.testing.assert_close(_logits(merged), _logits(unmerged), atol=1e-4, rtol=1e-4)


def test_merge_folds_the_adapter_into_full_weights(learned, tiny_model_dir, tmp_path):
    from bayling.models import load_model
    from bayling.train.merge import merge_adapter

    out, _ = learned
    merged = merge_adapter(out, tmp_path / "merged")
    assert not (merged / "adapter_config.json").exists()
    peft_model, _ = load_model(str(out), merge=False, dtype="float32")
    full, tok = load_model(str(merged), dtype="float32")
    assert _shift_from_base(tiny_model_dir, full) > 0.1
    torch.testing.assert_close(_logits(full), _logits(peft_model), atol=1e-4, rtol=1e-4)
    assert "<|im_start|>" in tok.chat_template


def test_trained_positions_only_loss_equals_the_full_loss(tiny_model_dir, tiny_tokenizer, tmp_path):
    """Skipping the LM head on untrained positions changes nothing in the loss."""
    from transformers import AutoModelForCausalLM, TrainingArguments

    from bayling.train.trainer import _sft_trainer_class

    path = write_convs(tmp_path / "c.jsonl", n=6)
    examples, _ = tokenize_conversations(read_conversations(path), tiny_tokenizer, get_format("chatml"), 512)
    batch = Collator(tiny_tokenizer.pad_token_id, packed=False)(examples[:3])
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    trainer = _sft_trainer_class()(model=model, args=TrainingArguments(str(tmp_path / "o"), use_cpu=True,
                                                                       report_to=[]))
    with torch.no_grad():
        ours = trainer.compute_loss(model, dict(batch))
        reference = model(**batch).loss  # transformers' own shifted mean cross-entropy
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_chunked_loss_matches_on_the_embedded_gemma(tmp_path):
    """Gemma 3 (262k vocab, sliding-window layers): our loss equals transformers' on real weights."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments

    from bayling.models import resolve_model_path
    from bayling.train.trainer import _sft_trainer_class

    path = resolve_model_path("gemma3-270m")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    data = write_convs(tmp_path / "c.jsonl", n=3)
    examples, _ = tokenize_conversations(read_conversations(data), tok, get_format("gemma"), 512)
    batch = Collator(tok.pad_token_id, packed=False)(examples)
    trainer = _sft_trainer_class()(model=model, args=TrainingArguments(str(tmp_path / "o"), use_cpu=True,
                                                                       report_to=[]))
    with torch.no_grad():
        ours = trainer.compute_loss(model, dict(batch))
        reference = model(**batch).loss
    torch.testing.assert_close(ours, reference, atol=2e-4, rtol=2e-4)


def test_packed_adapter_is_small_and_equivalent(learned, tiny_model_dir, tmp_path):
    from bayling.models import load_model
    from bayling.train.merge import pack_adapter

    out, _ = learned
    packed = pack_adapter(out, tmp_path / "packed")
    assert not (packed / "tokenizer.json").exists()
    size = (packed / "adapter_model.safetensors").stat().st_size
    assert size < (out / "adapter_model.safetensors").stat().st_size * 0.6  # bf16
    a, _ = load_model(str(out), dtype="float32")
    b, tok = load_model(str(packed), dtype="float32")  # tokenizer from the base, format from bayling.json
    assert _shift_from_base(tiny_model_dir, b) > 0.1  # ten times the tolerance below
    torch.testing.assert_close(_logits(a), _logits(b), atol=1e-2, rtol=1e-2)


# Span edges are where a real tokenizer's merges bite: replies that open with a space, a newline,
# punctuation or CJK, end in spaces, or hold the template's own markers as text.
EDGE_REPLIES = [" leading space", "\nleading newline", "「引号」开头。", "trailing spaces   ", "...", "model\nmodel",
                "<start_of_turn> as text", "emoji 🦊 end 🦊", "1", "ends in blank lines\n\n"]


@pytest.mark.slow
def test_assistant_spans_on_the_gemma_tokenizer(tmp_path):
    from transformers import AutoTokenizer

    from bayling.models import resolve_model_path

    tok = AutoTokenizer.from_pretrained(resolve_model_path("gemma3-270m"))
    convs = []
    for i, reply in enumerate(EDGE_REPLIES):
        msgs = [{"role": "user", "content": f"Question {i} "}, {"role": "assistant", "content": reply},
                {"role": "user", "content": "again?"}, {"role": "assistant", "content": reply[::-1] or "x"}]
        if i % 2:
            msgs.insert(0, {"role": "system", "content": "Be brief."})
        convs.append((f"c{i}", msgs))
    examples, stats = tokenize_conversations(convs, tok, get_format("gemma", tok), 512)
    assert stats.kept == len(EDGE_REPLIES)
    for (_, msgs), ex in zip(convs, examples):
        # Measured: Gemma merges a reply's leading newlines with the template's "model\n" into one
        # token, which is not trained (only tokens wholly inside the reply are); serving strips
        # leading blanks of a reply too (Engine._stream_chat).
        expected = [m["content"].lstrip("\n") + "<end_of_turn>" for m in msgs if m["role"] == "assistant"]
        assert decoded_trained_spans(tok, ex) == expected
        assert tok.decode(ex.input_ids) == get_format("gemma", tok).render(msgs)


@pytest.mark.slow
def test_packing_does_not_leak_attention_on_the_embedded_gemma(tmp_path):
    """Gemma 3's sliding-window and global layers, packed rows vs each conversation alone."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bayling.models import resolve_model_path

    path = resolve_model_path("gemma3-270m")
    tok = AutoTokenizer.from_pretrained(path)
    data = write_convs(tmp_path / "c.jsonl", n=6)
    examples, _ = tokenize_conversations(read_conversations(data), tok, get_format("gemma", tok), 512)
    rows = pack(examples, 512)
    row = max(rows, key=lambda r: len(r.examples))
    assert len(row.examples) >= 3
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").eval()
    model.config.use_cache = False
    batch = Collator(tok.pad_token_id)([row])
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        start = 0
        for ex in row.examples:
            alone = model(input_ids=torch.tensor([ex.input_ids]), use_cache=False).logits[0]
            torch.testing.assert_close(packed[start : start + len(ex)], alone, atol=2e-3, rtol=2e-3)
            start += len(ex)


def test_checkpoint_selection_keeps_the_best_scored_weights(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    from bayling.corpus import Pair
    from bayling.train.select import best_point, read_curve, write_select_set

    data = write_convs(tmp_path / "c.jsonl", n=16)
    select = tmp_path / "dev.jsonl"
    write_select_set(select, [Pair(f"the dog {i} sleeps.", f"Der Hund {i} schläft.", "eng_Latn", "deu_Latn", "x")
                              for i in range(4)])
    out = tmp_path / "sel"
    s = train(TrainConfig(data=str(data), out=str(out), model=str(tiny_model_dir), chat_format="gemma", max_steps=5,
                          batch_size=2, max_len=128, save_steps=2, save_total_limit=1, select_set=str(select),
                          select_max_new_tokens=8, lr=5e-3))
    curve = read_curve(out)
    assert [p["step"] for p in curve] == [2, 4, 5]  # every save, then the final weights
    assert all(p["n"] == 4 and 0 <= p["chrf"] <= 100 and "off_target_rate" in p for p in curve)
    best = best_point(curve)
    assert s["selection"]["best_step"] == best["step"] and s["selection"]["curve"] == curve
    saved = load_file(str(out / "adapter_model.safetensors"))
    if best["checkpoint"] is not None:  # the best checkpoint survives rotation and is the run's model
        kept = load_file(str(Path(best["checkpoint"]) / "adapter_model.safetensors"))
        assert saved.keys() == kept.keys() and all(torch.equal(saved[k], kept[k]) for k in saved)
    assert best_point([{"step": 2, "chrf": 5.0}, {"step": 4, "chrf": 5.0}])["step"] == 2


def test_selection_scores_a_checkpoint_as_the_eval_decodes_it(tiny_model_dir, tmp_path):
    """score_model decodes a merged bf16 copy, like `load_model` does for the eval, and leaves the
    trained model (LoRA, fp32, training mode) as it was."""
    from peft import PeftModel, get_peft_model_state_dict

    from bayling.corpus import Pair
    from bayling.eval.translation import failure_rates, score_directions, translate
    from bayling.infer.engine import TransformersEngine
    from bayling.models import load_model
    from bayling.train.select import score_model

    data = write_convs(tmp_path / "c.jsonl", n=8)
    train(TrainConfig(data=str(data), out=str(tmp_path / "r"), model=str(tiny_model_dir), chat_format="gemma",
                      max_steps=4, batch_size=2, max_len=128, lr=5e-2))
    pairs = [Pair(f"the dog {i} sleeps.", f"Der Hund {i} schläft.", "eng_Latn", "deu_Latn", "x") for i in range(6)]
    model, tok = load_model(str(tiny_model_dir), adapter=str(tmp_path / "r"), merge=False, dtype="float32")
    model.train()
    before = {k: v.clone() for k, v in get_peft_model_state_dict(model).items()}
    point = score_model(model, tok, "gemma", pairs, True, 12)

    merged, _ = load_model(str(tiny_model_dir), adapter=str(tmp_path / "r"), dtype="bfloat16")
    engine = TransformersEngine(merged, tok, "gemma")
    hyps = translate(engine, pairs, prompt="chat", max_new_tokens=12, progress=False)
    assert point["chrf"] == round(score_directions(pairs, hyps)["chrf"], 2) and point["n"] == 6
    assert point["max_new_tokens_rate"] == failure_rates(engine, pairs, hyps, 12)["max_new_tokens_rate"]
    assert isinstance(model, PeftModel) and model.training and next(model.parameters()).dtype == torch.float32
    after = get_peft_model_state_dict(model)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_loading_a_checkpoint_restores_its_adapter(tiny_model_dir, tmp_path):
    from peft import get_peft_model_state_dict

    from bayling.models import load_model
    from bayling.train.select import load_checkpoint_weights

    data = write_convs(tmp_path / "c.jsonl", n=8)
    train(TrainConfig(data=str(data), out=str(tmp_path / "r"), model=str(tiny_model_dir), chat_format="gemma",
                      max_steps=4, batch_size=2, max_len=128, save_steps=2, save_total_limit=3, lr=5e-3))
    model, _ = load_model(str(tiny_model_dir), adapter=str(tmp_path / "r" / "checkpoints" / "checkpoint-4"), merge=False)
    before = {k: v.clone() for k, v in get_peft_model_state_dict(model).items()}
    load_checkpoint_weights(model, tmp_path / "r" / "checkpoints" / "checkpoint-2")
    after = get_peft_model_state_dict(model)
    assert any(not torch.equal(before[k], after[k]) for k in before)


def _tiny_run(tiny_model_dir, tmp_path, out="run", **over) -> dict:
    data = tmp_path / "c.jsonl"
    if not data.exists():
        write_convs(data, n=16)
    return {**dict(data=str(data), out=str(tmp_path / out), model=str(tiny_model_dir), chat_format="chatml",
                   max_steps=4, batch_size=2, max_len=96, save_steps=1, save_total_limit=3, lr=5e-3, seed=3), **over}


def test_a_checkpoint_killed_while_written_is_skipped(tiny_model_dir, tmp_path):
    """Killed while checkpoint-4 was written (its folder there, files missing): a resume takes
    checkpoint-3 and ends where the uninterrupted run did (issue 44, defect 1)."""
    cfg = _tiny_run(tiny_model_dir, tmp_path)
    train(TrainConfig(**cfg))
    out = tmp_path / "run"
    whole = tmp_path / "whole"
    import shutil

    shutil.copytree(out, whole)
    for f in ("train_summary.json", "adapter_model.safetensors"):  # the run never got past the save
        (out / f).unlink()
    last = out / "checkpoints" / "checkpoint-4"
    for f in last.iterdir():  # as after a kill once only the weights were written
        if f.name not in ("adapter_model.safetensors", "adapter_config.json"):
            f.unlink() if f.is_file() else shutil.rmtree(f)
    (out / "checkpoints" / "checkpoint-5").mkdir()  # and a folder with nothing in it yet
    s = train(TrainConfig(**cfg, resume=True))
    assert s["global_step"] == 4
    assert not (out / "checkpoints" / "checkpoint-5").exists()
    _assert_same_training(out, whole, rtol=1e-4)


def test_resuming_the_final_checkpoint_trains_no_extra_step(tiny_model_dir, tmp_path):
    """Killed during the final save: the last checkpoint is the model, step 4 of 4, not 5 (defect 3)."""
    cfg = _tiny_run(tiny_model_dir, tmp_path)
    first = train(TrainConfig(**cfg))
    out = tmp_path / "run"
    (out / "adapter_model.safetensors").unlink()
    (out / "train_summary.json").unlink()
    s = train(TrainConfig(**cfg, resume=True))
    assert s["global_step"] == 4
    assert [h["step"] for h in s["log_history"] if "loss" in h] == [1, 2, 3, 4]
    assert s["final_loss"] == first["final_loss"]
    torch.testing.assert_close(_adapter(out), _adapter(out / "checkpoints" / "checkpoint-4"))


def test_a_changed_config_or_no_resume_trains_from_step_0(tiny_model_dir, tmp_path):
    """Another lr never continues the old lr's checkpoints, nor does a run without resume (defect 2):
    the curve is the one a fresh run of the new config draws."""
    train(TrainConfig(**_tiny_run(tiny_model_dir, tmp_path)))
    fresh = train(TrainConfig(**_tiny_run(tiny_model_dir, tmp_path, out="fresh", lr=1e-3)))
    changed = train(TrainConfig(**_tiny_run(tiny_model_dir, tmp_path, lr=1e-3), resume=True))
    losses = lambda s: [(h["step"], h["loss"]) for h in s["log_history"] if "loss" in h]  # noqa: E731
    assert losses(changed) == losses(fresh)
    again = train(TrainConfig(**_tiny_run(tiny_model_dir, tmp_path, lr=1e-3)))  # resume off: start over
    assert losses(again) == losses(fresh)
    # The same data path with other contents is another config too.
    write_convs(tmp_path / "c.jsonl", n=12, turns=1)
    other = train(TrainConfig(**_tiny_run(tiny_model_dir, tmp_path, lr=1e-3), resume=True))
    assert other["data"]["read"] == 12 and [s for s, _ in losses(other)] == [1, 2, 3, 4]
