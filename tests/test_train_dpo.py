"""Preference pairs from refinement transcripts, and DPO training on them (tiny random model)."""

import json
import math
import subprocess
import sys
from collections import Counter

import pytest
import torch

from bayling.chat_formats import get_format
from bayling.data.preferences import PreferenceError, preference_pairs, sample_replies
from bayling.train import TrainConfig, train
from bayling.train.dataset import IGNORE, read_preferences, tokenize_preferences
from bayling.train.packing import PairCollator


def _transcript(first, reply, terms=("Hund",), ref="Der Hund schläft im Garten.", kinds=("translate", "constraint")):
    turns = [{"kind": "translate", "user": "Translate into German: the dog sleeps in the garden."}]
    if "constraint" in kinds:
        turns.append({"kind": "constraint", "terms": list(terms),
                      "user": f"The translation must contain these terms: \"{terms[0]}\". Please revise it."})
    return {"id": "s", "src_lang": "eng_Latn", "tgt_lang": "deu_Latn", "ref": ref, "turns": turns,
            "replies": [first, reply][: len(turns)]}


def test_pairs_reject_the_models_failure_or_else_its_first_answer():
    counts = Counter()
    rows = list(preference_pairs(enumerate([
        _transcript("Die Katze schläft.", "Die Katze schläft im Garten."),  # rewrote, still no "Hund"
        _transcript("Die Katze schläft.", "Die Katze schläft."),  # handed back unchanged
        _transcript("Die Katze schläft.", "Der Hund schläft."),  # used the word: reject the ignored request
        _transcript("Der Hund schläft im Garten.", "", kinds=("translate",)),  # no request was made
        _transcript("Der Hund schläft.", "Der Hund schläft."),  # the "request" is not a real difference
    ]), counts))
    assert [r["meta"]["rejected"] for r in rows] == ["without_term", "unchanged", "first_answer"]
    assert [r["rejected"][0]["content"] for r in rows] == ["Die Katze schläft im Garten.", "Die Katze schläft.",
                                                           "Die Katze schläft."]
    for r in rows:
        assert r["chosen"] == [{"role": "assistant", "content": "Der Hund schläft im Garten."}]
        assert [m["role"] for m in r["prompt"]] == ["user", "assistant", "user"]
        assert r["prompt"][1]["content"] == "Die Katze schläft." and "Hund" in r["prompt"][2]["content"]
        assert "Hund" not in r["rejected"][0]["content"]
    assert counts == Counter(without_term=1, unchanged=1, first_answer=1, **{"no term request": 1,
                                                                            "request not a real difference": 1})
    failures = list(preference_pairs(enumerate([_transcript("Die Katze schläft.", "Die Katze schläft."),
                                                _transcript("Die Katze schläft.", "Der Hund schläft.")]),
                                     keep=["without_term", "unchanged"]))
    assert [r["meta"]["rejected"] for r in failures] == ["unchanged"]
    with pytest.raises(PreferenceError, match="kinds of rejected"):
        list(preference_pairs([], keep=["copies"]))
    with pytest.raises(PreferenceError, match="7: not a transcript"):
        list(preference_pairs([(7, {"turns": [], "ref": "x"})]))


def test_own_pairs_prefer_the_models_answer_with_the_word_when_it_translates_no_worse():
    ref = "Der Hund schläft im Garten."
    def t(first, reply, samples):
        return {**_transcript(first, reply, ref=ref), "samples": samples}
    counts = Counter()
    rows = list(preference_pairs(enumerate([
        # greedy lacks the word; the best-scoring sample with it is chosen, the greedy reply rejected
        t("Die Katze schläft.", "Die Katze schläft im Garten.", ["Der Hund.", "Der Hund schläft im Garten.", "Katze."]),
        # greedy has the word: it is chosen; the best sampled answer without the word is rejected
        t("Die Katze schläft.", "Der Hund schläft im Garten.", ["Die Katze schläft im Garten.", "Katze.", "Der Hund."]),
        t("Die Katze schläft.", "Die Katze schläft.", ["Die Katze.", "Eine Katze schläft."]),  # never the word
        t("Die Katze schläft.", "Der Hund schläft.", ["Der Hund schläft im Garten!", "Der Hund."]),  # never without
        # the only answer with the word is a worse translation than the rejected one: no pair
        t("Die Katze schläft.", "Die Katze schläft im Garten.", ["Hund.", "Die Katze."]),
    ]), counts, chosen="own"))
    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"], r["meta"]["rejected"]) for r in rows] == [
        ("Der Hund schläft im Garten.", "Die Katze schläft im Garten.", "without_term"),
        ("Der Hund schläft im Garten.", "Die Katze schläft im Garten.", "sampled_without_term")]
    for r in rows:
        assert r["meta"]["chosen"] == "own" and r["meta"]["chosen_chrf"] >= r["meta"]["rejected_chrf"]
        assert r["prompt"][1]["content"] == "Die Katze schläft."
    assert counts == Counter(without_term=1, sampled_without_term=1, **{
        "no own answer with the word": 1, "no own answer without the word": 1,
        "own answer with the word translates worse": 1})
    with pytest.raises(PreferenceError, match="0: no 'samples'"):
        list(preference_pairs(enumerate([_transcript("Die Katze.", "Die Katze.")]), chosen="own"))
    with pytest.raises(PreferenceError, match="chosen: one of"):
        list(preference_pairs([], chosen="teacher"))


def test_sample_replies_draws_n_answers_after_the_same_greedy_first_answer(tiny_model_dir):
    from bayling.infer.backends import load_engine

    engine = load_engine(str(tiny_model_dir), chat_format="chatml", batch_size=4)
    seen = []
    chat = engine.chat
    engine.chat = lambda convs, config: seen.append((convs, config)) or chat(convs, config)
    transcripts = [_transcript("Die Katze schläft.", "Die Katze."), _transcript("Der Hund.", "", kinds=("translate",))]
    out = sample_replies(engine, transcripts, 3, temperature=0.9, max_new_tokens=6, progress=False)
    assert len(out[0]["samples"]) == 3 and all(isinstance(x, str) for x in out[0]["samples"])
    assert "samples" not in out[1]  # no term request: nothing to sample
    (convs, config), = seen
    assert config.temperature == 0.9 and config.max_new_tokens == 6 and len(convs) == 3
    for conv in convs:
        assert [m["content"] for m in conv] == [transcripts[0]["turns"][0]["user"], "Die Katze schläft.",
                                                transcripts[0]["turns"][1]["user"]]
    with pytest.raises(PreferenceError, match="temperature > 0"):
        sample_replies(engine, transcripts, 2, temperature=0.0)


def _write_pairs(path, n=8):
    rows = [{"prompt": [{"role": "user", "content": f"Translate into German: the dog {i} sleeps."},
                        {"role": "assistant", "content": f"Die Katze {i} schläft."},
                        {"role": "user", "content": "The translation must contain these terms: \"Hund\"."}],
             "chosen": [{"role": "assistant", "content": f"Der Hund {i} schläft."}],
             "rejected": [{"role": "assistant", "content": f"Die Katze {i} schläft."}]} for i in range(n)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_pair_labels_are_the_final_answer_only(tiny_tokenizer, tmp_path):
    path = _write_pairs(tmp_path / "p.jsonl", n=2)
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"prompt": [], "chosen": "a", "rejected": "b"}\n')
        f.write('{"prompt": [{"role": "user", "content": "hi"}], "chosen": "same", "rejected": "same"}\n')
        f.write("not json\n")
    errors = []
    pairs, stats = tokenize_preferences(read_preferences(path), tiny_tokenizer, get_format("chatml"), 512,
                                        on_error=lambda origin, err: errors.append(str(err)))
    assert stats.read == 5 and stats.kept == 2 and sum(stats.dropped.values()) == 3
    assert "chosen = rejected" in stats.dropped
    assert any(":3:" in e and "'prompt'" in e for e in errors)  # file:line and the field
    for pair in pairs:
        for ex, text in ((pair.chosen, "Der Hund"), (pair.rejected, "Die Katze")):
            trained = tiny_tokenizer.decode([t for t in ex.labels if t != IGNORE])
            assert trained.startswith(text) and "Translate" not in trained and trained.count("schläft") == 1
        # The same prompt before both answers.
        start = next(i for i, t in enumerate(pair.chosen.labels) if t != IGNORE)
        assert pair.chosen.input_ids[:start] == pair.rejected.input_ids[:start]


def _policy(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                             init_lora_weights=False))
    return model


def test_dpo_loss_is_minus_log_sigmoid_of_the_reward_margin(tiny_model_dir, tiny_tokenizer, tmp_path):
    from transformers import TrainingArguments

    from bayling.train.trainer import _dpo_trainer_class, reference_logps

    pairs, _ = tokenize_preferences(read_preferences(_write_pairs(tmp_path / "p.jsonl", n=3)), tiny_tokenizer,
                                    get_format("chatml"), 512)
    model = _policy(tiny_model_dir)
    collator = PairCollator(tiny_tokenizer.pad_token_id)
    reference_logps(model, pairs, collator, bf16=False, batch_size=2)
    full = []
    with torch.no_grad():  # log-probabilities from the full logits, answer tokens only
        for pair in pairs:
            for ex in (pair.chosen, pair.rejected):
                ids = torch.tensor([ex.input_ids])
                logp = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
                target = torch.tensor(ex.labels[1:])
                keep = target != IGNORE
                full.append(logp[keep].gather(-1, target[keep, None]).sum().item())
    assert [v for p in pairs for v in p.ref_logps] == pytest.approx(full, abs=1e-4)

    trainer = _dpo_trainer_class()(model=model, args=TrainingArguments(str(tmp_path / "o"), use_cpu=True, report_to=[]),
                                   beta=0.5, sft_weight=0.0)
    with torch.no_grad():
        assert trainer.compute_loss(model, collator(pairs)).item() == pytest.approx(math.log(2), abs=1e-5)
        # Against other reference values the loss is the sigmoid of the shifted margin.
        for p, shift in zip(pairs, (1.0, -2.0, 0.5)):
            p.ref_logps = (p.ref_logps[0] - shift, p.ref_logps[1])
        expected = sum(-torch.nn.functional.logsigmoid(torch.tensor(0.5 * s)).item() for s in (1.0, -2.0, 0.5)) / 3
        assert trainer.compute_loss(model, collator(pairs)).item() == pytest.approx(expected, abs=1e-5)
        trainer.sft_weight = 2.0  # RPO: plus the chosen answers' token-mean cross-entropy
        chosen_tokens = sum(sum(t != IGNORE for t in p.chosen.labels[1:]) for p in pairs)
        nll = -sum(full[0::2]) / chosen_tokens
        assert trainer.compute_loss(model, collator(pairs)).item() == pytest.approx(expected + 2.0 * nll, abs=1e-4)


def test_dpo_from_an_adapter_moves_probability_to_the_chosen_answers(tiny_model_dir, tiny_tokenizer, tmp_path):
    from bayling.models import load_model

    data = _write_pairs(tmp_path / "p.jsonl", n=8)
    start = tmp_path / "sft"
    convs = tmp_path / "c.jsonl"
    convs.write_text("".join(json.dumps({"messages": json.loads(line)["prompt"][:2]}) + "\n"
                             for line in data.read_text().splitlines()))
    # Trained with dropout, which the DPO run turns off (its step 1 must equal the reference).
    train(TrainConfig(data=str(convs), out=str(start), model=str(tiny_model_dir), chat_format="chatml", max_steps=2,
                      batch_size=2, max_len=128, lr=1e-3, save_steps=100, lora_dropout=0.5))

    def margins(folder):
        model, tok = load_model(str(folder))
        pairs, _ = tokenize_preferences(read_preferences(data), tok, get_format("chatml"), 512)
        from bayling.train.trainer import reference_logps

        reference_logps(model, pairs, PairCollator(tok.pad_token_id), bf16=False)
        return [c - r for c, r in (p.ref_logps for p in pairs)]

    out = tmp_path / "dpo"
    s = train(TrainConfig(data=str(data), out=str(out), model=str(tiny_model_dir), chat_format="chatml",
                          objective="dpo", init_adapter=str(start), dpo_beta=0.5, max_steps=12, batch_size=4,
                          max_len=128, lr=5e-3, save_steps=100, logging_steps=1, seed=3))
    logs = [h for h in s["log_history"] if "loss" in h]
    assert s["objective"] == "dpo" and s["data"]["kept"] == 8
    assert logs[0]["loss"] == pytest.approx(math.log(2), abs=1e-3)  # step 1: the policy is the reference
    assert logs[0]["reward_margin"] == pytest.approx(0.0, abs=1e-3)
    assert logs[-1]["reward_accuracy"] == 1.0 and logs[-1]["loss"] < 0.5
    before, after = margins(start), margins(out)
    assert min(a - b for a, b in zip(after, before)) > 1.0  # every pair's chosen answer gained on its rejected one
    card = (out / "README.md").read_text()
    assert "DPO" in card and "not packed" in card and "efficiency" not in card  # pairs are not packed: no packing figures
    assert json.loads((out / "adapter_config.json").read_text())["lora_dropout"] == 0.0  # this run's, not the start's


def test_prefs_cli_writes_pairs_and_fails_in_one_line_on_bad_input(tmp_path):
    transcripts = tmp_path / "t.jsonl"
    transcripts.write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in [
        _transcript("Die Katze schläft.", "Die Katze schläft."), _transcript("Der Hund.", "", kinds=("translate",))]),
        encoding="utf-8")
    out = tmp_path / "p.jsonl"
    run = subprocess.run([sys.executable, "-m", "bayling.cli", "data", "prefs", str(transcripts), "--out", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "wrote 1 pairs" in run.stderr and "unchanged 1" in run.stderr
    assert json.loads(out.read_text())["meta"]["rejected"] == "unchanged"
    transcripts.write_text(json.dumps({**_transcript("Die Katze schläft.", "Die Katze schläft."),
                                       "samples": ["Der Hund schläft im Garten."]}) + "\n", encoding="utf-8")
    own = subprocess.run([sys.executable, "-m", "bayling.cli", "data", "prefs", str(transcripts), "--out", str(out),
                          "--chosen", "own"], capture_output=True, text=True)
    assert own.returncode == 0, own.stderr
    assert json.loads(out.read_text())["chosen"][0]["content"] == "Der Hund schläft im Garten."
    no_model = subprocess.run([sys.executable, "-m", "bayling.cli", "data", "prefs", str(transcripts), "--out",
                               str(out), "--samples", "2"], capture_output=True, text=True)
    assert no_model.returncode != 0 and "--samples needs --model" in no_model.stderr
    transcripts.write_text('{"id": "x", "ref": "r", "turns": [{"kind": "translate"}]}\n')
    bad = subprocess.run([sys.executable, "-m", "bayling.cli", "data", "prefs", str(transcripts), "--out",
                          str(tmp_path / "q.jsonl")], capture_output=True, text=True)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1
    assert "t.jsonl:1" in bad.stderr and "replies" in bad.stderr
    assert not (tmp_path / "q.jsonl").exists()


BAD_TRANSCRIPTS = [  # (change to a good transcript, the field the error must name)
    (lambda t: t.update(replies=["Die Katze schläft.", None]), "replies"),
    (lambda t: t.update(replies=[5, "Die Katze schläft."]), "replies"),
    (lambda t: t.update(turns=["a", "b"]), "turns"),
    (lambda t: t.update(ref=5), "ref"),
    (lambda t: t["turns"][1].update(terms="Hund"), "terms"),
    (lambda t: t["turns"][1].update(terms=["Hund", 3]), "terms"),
    (lambda t: t["turns"][0].update(user=None), "user"),
    (lambda t: t.update(samples=["Der Hund.", None]), "samples"),
]


@pytest.mark.parametrize("spoil,field", BAD_TRANSCRIPTS, ids=[f"{f}{i}" for i, (_, f) in enumerate(BAD_TRANSCRIPTS)])
def test_malformed_transcripts_fail_naming_file_line_and_field(spoil, field, tmp_path):
    t = _transcript("Die Katze schläft.", "Die Katze schläft.")
    spoil(t)
    with pytest.raises(PreferenceError, match=rf"^t\.jsonl:3: .*{field}") as err:
        list(preference_pairs([("t.jsonl:3", t)], chosen="own" if field == "samples" else "reference"))
    assert "\n" not in str(err.value)
    # The CLI: exit 2, one line naming file:line and the field, no output file.
    path, out = tmp_path / "t.jsonl", tmp_path / "p.jsonl"
    good = {**_transcript("Die Katze.", "Die Katze."), "samples": []}
    path.write_text(json.dumps(good) + "\n" + json.dumps(t) + "\n", encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "bayling.cli", "data", "prefs", str(path), "--out", str(out),
                          *(["--chosen", "own"] if field == "samples" else [])], capture_output=True, text=True,
                         check=False)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "t.jsonl:2: " in run.stderr and field in run.stderr and not out.exists()
