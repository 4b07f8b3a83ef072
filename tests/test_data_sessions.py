"""bayling.data build (reference mode): grounding, variety, determinism, sharding, templates."""

from __future__ import annotations

import json
import random
import re
import shutil
import string
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

import bayling
from bayling.corpus import read_flores_multiway
from bayling.data.build import BuildConfig, build_conversations, parse_shard, plan_conversations
from bayling.data.cli import app
from bayling.data.grounding import change_number, corrupt, drop_terms, edit_in_terms, pick_terms, preserved_items
from bayling.data.names import INSTRUCTION_LANGS, language_name
from bayling.data.records import Unit
from bayling.data.sampling import LanguageSampler, language_weights
from bayling.data.sessions import REFERENCE_FOLLOW_UPS, REFINE_KINDS, plan_refine_session, plan_session
from bayling.data.templates import PHRASES

SAMPLE = Path(bayling.__file__).parent / "assets" / "sample"
FLORES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "flores200"


@pytest.fixture(scope="module")
def lines() -> dict[int, dict[str, str]]:
    return dict(read_flores_multiway(SAMPLE, "dev"))


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return list(build_conversations(BuildConfig(str(SAMPLE), per_line=4, seed=11, crosslingual=0.3, sessions="v1",
                                                max_turns=5)))


def _line_no(record: dict) -> int:
    return int(record["meta"]["source"].rsplit(":", 1)[1])


def test_every_assistant_turn_is_grounded_in_the_corpus(records, lines):
    assert len(records) == 48 * 4
    for r in records:
        meta, texts = r["meta"], lines[_line_no(r)]
        sentences = set(texts.values())
        lang = meta["instruction_lang"]
        users = [m["content"] for m in r["messages"] if m["role"] == "user"]
        answers = [m["content"] for m in r["messages"] if m["role"] == "assistant"]
        assert len(users) == len(answers) == len(meta["kinds"]) == len(meta["expect"])
        for kind, user, answer in zip(meta["kinds"], users, answers):
            if kind == "error_feedback":
                preface, _, rest = answer.partition("\n")
                assert preface in PHRASES[lang]["error_preface"] and rest == texts[meta["tgt_lang"]]
            elif kind == "langid":
                names = {p.format(name=language_name(meta["src_lang"], lang)) for p in PHRASES[lang]["langid_a"]}
                assert answer in names and texts[meta["src_lang"]] in user
            elif kind == "same_meaning":
                same = sum(t in user for t in sentences) == 2
                assert answer in PHRASES[lang]["same_yes" if same else "same_no"]
            elif kind == "pick_language":
                k = 1 + [line.split(" ", 1)[1] for line in user.splitlines()[-3:]].index(texts[meta["src_lang"]])
                assert answer in {p.format(k=k, text=texts[meta["src_lang"]]) for p in PHRASES[lang]["pick_language_a"]}
            else:
                assert answer in sentences, (kind, answer)
        if meta["task"] == "session":
            assert texts[meta["src_lang"]] in users[0] and answers[0] == texts[meta["tgt_lang"]]


def test_turn_answers_match_their_kind(records, lines):
    for r in records:
        meta, texts = r["meta"], lines[_line_no(r)]
        answers = [m["content"] for m in r["messages"] if m["role"] == "assistant"]
        for kind, check, answer in zip(meta["kinds"], meta["expect"], answers):
            if kind in ("terminology", "format"):
                assert answer == texts[meta["tgt_lang"]] and all(t in answer for t in check["terms"])
            if kind == "back_translation":
                assert answer == texts[meta["src_lang"]]
            if kind == "third_language":
                assert check["lang"] not in (meta["src_lang"], meta["tgt_lang"]) and answer == texts[check["lang"]]
            if kind in ("translate", "xl_translate", "answer_in"):
                assert answer == texts[check["lang"]]


def test_kinds_languages_and_turn_counts_vary(records):
    kinds = Counter(k for r in records for k in r["meta"]["kinds"])
    assert set(REFERENCE_FOLLOW_UPS) <= set(kinds)
    assert {"xl_translate", "answer_in", "langid", "same_meaning", "pick_language"} <= set(kinds)
    assert len({r["meta"]["instruction_lang"] for r in records}) >= 5
    turns = Counter(len(r["meta"]["kinds"]) for r in records if r["meta"]["task"] == "session")
    assert set(turns) == {1, 2, 3, 4, 5}
    assert len({(r["meta"]["src_lang"], r["meta"]["tgt_lang"]) for r in records}) >= 20
    # Several phrasings per kind are in use, not just the first.
    firsts = Counter(m["content"].split("\n")[0][:12] for r in records for m in r["messages"][:1])
    assert len(firsts) > 10


def test_output_language_switches_come_last(records):
    for r in records:
        kinds = r["meta"]["kinds"]
        moved = [i for i, k in enumerate(kinds) if k in ("third_language", "back_translation")]
        assert moved == list(range(len(kinds) - len(moved), len(kinds)))


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    runner = CliRunner()
    args = ["build", "--corpus", str(SAMPLE), "--langs", "en,zh,de,ja", "--limit", "40", "--no-progress"]
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        result = runner.invoke(app, args + ["--seed", str(seed), "--out", str(tmp_path / f"{name}.jsonl")])
        assert result.exit_code == 0, result.output
    a, b, c = ((tmp_path / f"{n}.jsonl").read_bytes() for n in "abc")
    assert a == b and a != c
    assert len(a.splitlines()) == 40
    assert {json.loads(x)["meta"]["src_lang"] for x in a.splitlines()} <= {"eng_Latn", "zho_Hans", "deu_Latn", "jpn_Jpan"}


def test_shards_partition_the_run():
    whole = [json.dumps(r) for r in build_conversations(BuildConfig(str(SAMPLE), limit=70, per_line=2, seed=3))]
    parts = [json.dumps(r) for i in range(3)
             for r in build_conversations(BuildConfig(str(SAMPLE), limit=70, per_line=2, seed=3, shard=(i, 3)))]
    assert len(whole) == 70 and sorted(parts) == sorted(whole)
    assert parse_shard("2/5") == (2, 5)
    with pytest.raises(ValueError, match="i/N"):
        parse_shard("two")


def test_teacher_plans_cover_every_kind_and_leave_answers_open():
    plans = list(plan_conversations(BuildConfig(str(SAMPLE), mode="teacher", per_line=4, crosslingual=0.0)))
    kinds = Counter(t.kind for p in plans for t in p.turns)
    assert {"style", "length", "polish", "alternatives", "explanation", "error_feedback", "terminology"} <= set(kinds)
    assert all(t.answer is None for p in plans for t in p.turns)
    explanation = next(t for p in plans for t in p.turns if t.kind == "explanation")
    assert explanation.expect["lang"] in INSTRUCTION_LANGS  # answered in the user's language


def test_bilingual_corpus_keeps_its_direction(tmp_path):
    (tmp_path / "a.en").write_text("The cat sleeps on the warm windowsill.\nIt rained all day in the city.\n")
    (tmp_path / "a.de").write_text("Die Katze schläft auf der warmen Fensterbank.\nEs regnete den ganzen Tag in der Stadt.\n")
    corpus = f"{tmp_path}/a.en,{tmp_path}/a.de"
    recs = list(build_conversations(BuildConfig(corpus, per_line=5, crosslingual=0.5, sessions="v1")))
    assert len(recs) == 10
    for r in recs:
        assert (r["meta"]["src_lang"], r["meta"]["tgt_lang"]) == ("eng_Latn", "deu_Latn")
        assert "third_language" not in r["meta"]["kinds"] and r["meta"]["task"] == "session"
    # Refine sessions read a parallel pair either way (balance into and out of English).
    recs = list(build_conversations(BuildConfig(corpus, per_line=20, multi_turn=0.0)))
    assert {(r["meta"]["src_lang"], r["meta"]["tgt_lang"]) for r in recs} == {("eng_Latn", "deu_Latn"),
                                                                              ("deu_Latn", "eng_Latn")}


def test_plan_session_is_a_pure_function_of_its_rng(lines):
    sampler = LanguageSampler(language_weights(lines[1]))
    unit = Unit("x#0", "x", lines[5], None, lines[4])
    a = plan_session(unit, random.Random(1), sampler)
    b = plan_session(unit, random.Random(1), sampler)
    assert a == b


def test_grounding_helpers():
    rng = random.Random(0)
    ref = "Der Zug nach München fährt um 8:45 Uhr von Gleis 7 ab."
    for _ in range(20):
        terms = pick_terms(ref, "Latn", rng)
        assert terms and all(t in ref and len(t) >= 5 for t in terms)
        wrong = corrupt(ref, "Latn", rng)
        assert wrong and wrong != ref
    assert pick_terms("科学家警告说，气候变化正使南欧的热浪持续时间更长、强度更大。", "Hans", rng)
    assert pick_terms("ミュンヘン行きの列車は午前8時45分に7番線から発車します。", "Jpan", rng)
    assert pick_terms("รถไฟไปมิวนิกออกเวลา", "Thai", rng) == ()
    # Brahmic words carry vowel signs (str.isalpha says no): Nepali and Bengali have terms too.
    nepali = "काठमाडौंबाट पोखरा जाने बस बिहान आठ बजे छुट्छ र साँझ पोखरामा पुग्छ।"
    words = {w.strip("।") for w in nepali.split() if len(w.strip("।")) >= 5}
    drawn = {t for _ in range(30) for t in pick_terms(nepali, "Deva", rng)}
    assert "पुग्छ" in drawn and drawn <= words  # whole words, the danda stripped
    assert pick_terms(nepali, "Deva", rng, absent_from=" ".join(words - {"पोखरामा"})) == ("पोखरामा",)
    assert pick_terms("ঢাকা থেকে বাসটি সকালে ছাড়ে।", "Beng", rng)
    src = "Maria Santos opened her first bakery in Lisbon in 2012 and now employs 35 people."
    assert preserved_items(src, "Maria Santos eröffnete 2012 ihre erste Bäckerei in Lissabon und beschäftigt 35 Menschen.") \
        == ("2012", "35", "Santos")
    assert preserved_items(src, "Maria Santos eröffnete zwanzig-zwölf ihre erste Bäckerei.") == ()


def test_templates_are_complete_and_fill_cleanly():
    keys = set(PHRASES["eng_Latn"])
    slots = dict(src="X", tgt="Y", l3="Z", lang="L", name="N", text="T", a="A", b="B", c="C", terms="'t'",
                 wrong="W", n=2, k=1)
    for lang in INSTRUCTION_LANGS:
        assert set(PHRASES[lang]) == keys, lang
        for kind, phrasings in PHRASES[lang].items():
            assert phrasings, (lang, kind)
            for p in phrasings:
                used = {f for _, f, _, _ in string.Formatter().parse(p) if f}
                assert used <= set(slots), (lang, kind, p)
                assert p.format(**slots).strip()
        assert all(len(v) >= 2 for k, v in PHRASES[lang].items() if not k.startswith("pick_language")), lang


def test_temperature_flattens_language_weights():
    codes = ["eng_Latn", "zho_Hans", "swh_Latn", "fuv_Latn"]
    natural = language_weights(codes, temperature=1.0)
    flat = language_weights(codes, temperature=5.0)
    assert natural["eng_Latn"] / natural["fuv_Latn"] == pytest.approx(100)
    assert flat["eng_Latn"] / flat["fuv_Latn"] < 3
    assert sum(flat.values()) == pytest.approx(1)
    sizes = language_weights(codes, 1.0, {"eng_Latn": 1, "zho_Hans": 1, "swh_Latn": 1, "fuv_Latn": 1})
    assert set(sizes.values()) == {0.25}


@pytest.mark.skipif(not (FLORES / "dev").is_dir(), reason=f"FLORES-200 not found at {FLORES}")
def test_issue_command_on_real_flores(tmp_path):
    out = tmp_path / "convs.jsonl"
    result = CliRunner().invoke(app, ["build", "--corpus", str(FLORES), "--split", "dev", "--langs",
                                      "eng_Latn,zho_Hans,deu_Latn", "--limit", "300", "--seed", "7", "--out", str(out)])
    assert result.exit_code == 0, result.output
    recs = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert len(recs) == 300 and recs[0]["meta"]["source"] == "flores200/dev:1"
    for r in recs:
        assert {m["role"] for m in r["messages"]} <= {"system", "user", "assistant"}
        assert set(r["meta"]) >= {"src_lang", "tgt_lang", "instruction_lang", "kinds", "source"}


@pytest.mark.skipif(not (FLORES / "dev").is_dir(), reason=f"FLORES-200 not found at {FLORES}")
def test_crosslingual_reaches_many_flores_languages():
    cfg = BuildConfig(str(FLORES), limit=150, crosslingual=1.0, seed=1)
    langs = Counter(lang for r in build_conversations(cfg) for lang in (r["meta"]["src_lang"], r["meta"]["tgt_lang"]))
    assert len(langs) > 120


# --- Draft-then-refine sessions (the default) ---------------------------------------------------


@pytest.fixture(scope="module")
def refine_records() -> list[dict]:
    return list(build_conversations(BuildConfig(str(SAMPLE), per_line=8, seed=5, multi_turn=0.6, crosslingual=0.0)))


def test_refine_trains_only_fixes_of_real_flaws(refine_records, lines):
    seen = Counter()
    for r in refine_records:
        meta, texts = r["meta"], lines[_line_no(r)]
        src, ref = texts[meta["src_lang"]], texts[meta["tgt_lang"]]
        answers = [m for m in r["messages"] if m["role"] == "assistant"]
        users = [m["content"] for m in r["messages"] if m["role"] == "user"]
        assert src in users[0] and len(answers) == len(meta["kinds"]) == len(meta["expect"])
        for k, (kind, check, m) in enumerate(zip(meta["kinds"], meta["expect"], answers)):
            seen[kind] += 1
            earlier = [x["content"] for x in r["messages"][: r["messages"].index(m)]]
            if m.get("weight", 1) == 0:  # only a first answer can be a draft, and it is never the reference
                assert k == 0 and m["content"] != ref and meta["kinds"][1] in REFINE_KINDS
                continue
            assert not any(m["content"] in e for e in earlier), "a trained answer copies the conversation"
            if kind == "third_language":
                assert answers[k]["content"] == texts[check["lang"]] and check["lang"] not in (meta["src_lang"], meta["tgt_lang"])
                continue
            assert m["content"] == ref, kind
        if answers[0].get("weight", 1) == 0:
            draft, kind, check = answers[0]["content"], meta["kinds"][1], meta["expect"][1]
            if kind == "terminology":
                assert all(t in ref and t not in draft for t in check["terms"])
            elif kind == "format":
                assert check["terms"][0] in ref and check["terms"][0] in src and draft != ref
            elif kind == "wrong_language":
                assert draft in set(texts.values()) - {ref}
    assert set(REFINE_KINDS) | {"translate", "third_language"} <= set(seen)


def test_refine_sessions_are_mostly_single_turn_and_balanced(refine_records):
    n = len(refine_records)
    multi = sum(len(r["meta"]["kinds"]) > 1 for r in refine_records)
    assert 0.3 * n < multi < 0.8 * n
    into = sum(r["meta"]["tgt_lang"] == "eng_Latn" for r in refine_records)
    out = sum(r["meta"]["src_lang"] == "eng_Latn" for r in refine_records)
    assert 0.6 < into / out < 1.6


def test_plan_refine_session_is_a_pure_function_of_its_rng(lines):
    sampler = LanguageSampler(language_weights(lines[1]))
    unit = Unit("x#0", "x", lines[5], None, lines[4])
    plans = [plan_refine_session(unit, random.Random(s), sampler, multi_turn=1.0) for s in (3, 3, 4)]
    assert plans[0] == plans[1] and plans[0] != plans[2]


def test_draft_helpers_name_real_differences():
    rng = random.Random(2)
    ref = "Der Zug nach München fährt um 8:45 Uhr von Gleis 7 ab."
    terms = ("München",)
    assert drop_terms(ref, terms, "Latn") == "Der Zug nach fährt um 8:45 Uhr von Gleis 7 ab."
    zh = "科学家警告说，气候变化正使南欧的热浪持续时间更长。"
    words = pick_terms(zh, "Hans", rng)
    assert words and all(w in zh for w in words) and drop_terms(zh, words, "Hans") is not None
    assert all(w not in "科学家警告说" for w in pick_terms(zh, "Hans", rng, absent_from="科学家警告说"))
    draft, number = change_number(ref, "The train to Munich leaves at 8:45 from platform 7.", rng)
    assert number in ref and number not in draft and draft != ref
    assert change_number(ref, "No numbers here.", rng) is None


def test_edit_in_terms_post_edits_the_draft_only_where_it_aligns():
    ref = "This letter must be legalized by the Ministry of Foreign Affairs, and comply with certain requirements."
    draft = "This letter should be recognized by the Ministry of Foreign Affairs and meet certain requirements."
    edited = edit_in_terms(draft, ref, ("comply",), "Latn")
    # Only the stretch between the shared words around the term changes; the rest is the draft's.
    assert edited == "This letter should be recognized by the Ministry of Foreign Affairs and comply with certain requirements."
    # Nothing shared around the term, a looping draft, or one far longer than the reference: no edit.
    assert edit_in_terms("Completely unrelated words here.", ref, ("comply",), "Latn") is None
    loop = "This letter and meet certain and meet certain and meet certain requirements."
    assert edit_in_terms(loop, ref, ("comply",), "Latn") is None
    assert edit_in_terms(draft * 3, ref, ("comply",), "Latn") is None
    # A term the draft would need a long rewrite for is left to the reference.
    assert edit_in_terms("This letter requirements.", ref, ("legalized",), "Latn") is None
    # Unspaced scripts align characters; two terms are edited in one after the other.
    zh_ref, zh_draft = "他指出，美国持续打压，实施制裁。", "他指出，美国继续打压，采取制裁。"
    assert edit_in_terms(zh_draft, zh_ref, ("持续",), "Hans") == "他指出，美国持续打压，采取制裁。"
    assert edit_in_terms(zh_draft, zh_ref, ("持续", "实施"), "Hans") == zh_ref


def _engine_draft_sessions(lines, draft_of, **kw) -> list:
    from bayling.data.sessions import _refine_engine_draft  # noqa: F401  (the path under test)

    sampler = LanguageSampler(language_weights(lines[1]))
    plans = []
    for no in range(1, 25):
        unit = Unit(f"x:{no}#0", f"x:{no}", lines[no], None, None)
        plan = plan_refine_session(unit, random.Random(no), sampler, multi_turn=1.0,
                                   drafts=lambda s, t, src, ref: draft_of(src, ref, t), **kw)
        plans.append((plan, lines[no]))
    return plans


def test_engine_drafts_get_follow_ups_naming_their_real_flaws(lines):
    # A model that hands the source back: every engine-draft session asks for the right language.
    for plan, texts in _engine_draft_sessions(lines, lambda src, ref, tgt: src):
        if len(plan.turns) > 1 and plan.turns[0].weight == 0 and plan.turns[0].answer == texts[plan.src_lang]:
            assert plan.turns[1].kind == "wrong_language" and plan.turns[1].answer == texts[plan.tgt_lang]
    # A draft that is the reference minus its second half: terms asked for are really missing from it.
    kinds = Counter()
    for plan, texts in _engine_draft_sessions(lines, lambda src, ref, tgt: ref[: len(ref) // 2]):
        ref = texts[plan.tgt_lang]
        if len(plan.turns) > 1 and plan.turns[0].weight == 0 and plan.turns[0].answer == ref[: len(ref) // 2]:
            fix = plan.turns[1]
            kinds[fix.kind] += 1
            assert fix.answer == ref and fix.kind in ("terminology", "format", "error_report", "wrong_language")
            if fix.kind == "terminology":
                assert all(t in ref and t not in plan.turns[0].answer for t in fix.expect["terms"])
            if fix.kind == "format":
                assert all(n in ref and n not in plan.turns[0].answer for n in fix.expect["terms"])
    assert kinds["terminology"] > 0
    # With term edits, a terminology fix is the draft with the terms edited in where it aligns, else the
    # reference; everything else about the sessions (the random choices included) is as without.
    def one_word_off(src, ref, tgt):
        words = ref.split()
        return " ".join(["So,"] + words[:-2] + ["something"] + words[-1:]) if len(words) > 4 else ref[: len(ref) // 2]

    plain = _engine_draft_sessions(lines, one_word_off)
    edited = _engine_draft_sessions(lines, one_word_off, term_edits=True)
    kinds = Counter()
    for (a, texts), (b, _) in zip(plain, edited):
        assert [t.kind for t in a.turns] == [t.kind for t in b.turns] and a.turns[0] == b.turns[0]
        if len(b.turns) > 1 and b.turns[1].kind == "terminology" and b.turns[0].weight == 0:
            fix, draft, ref = b.turns[1], b.turns[0].answer, texts[b.tgt_lang]
            assert a.turns[1].answer == ref and all(t in fix.answer for t in fix.expect["terms"])
            assert fix.answer in (ref, edit_in_terms(draft, ref, tuple(fix.expect["terms"]), b.tgt_lang[-4:]))
            kinds["edited" if fix.answer != ref else "reference"] += 1
    assert kinds["edited"] > 0
    # A perfect draft has nothing to fix: the session falls back to a reference-made flaw, and the
    # draft shown is never the reference itself.
    for plan, texts in _engine_draft_sessions(lines, lambda src, ref, tgt: ref):
        assert all(t.answer != texts[plan.tgt_lang] for t in plan.turns if t.weight == 0)


def test_drafts_are_generated_once_cached_and_resumed(tmp_path, lines):
    from bayling.data.drafts import DraftCache, DraftRecorder, generate_drafts
    from bayling.testing.fake_engine import FakeEngine

    cfg = BuildConfig(str(SAMPLE), per_line=2, seed=5, multi_turn=0.6, crosslingual=0.0)
    recorder = DraftRecorder()
    first_pass = [json.dumps(r, sort_keys=True) for r in build_conversations(cfg, recorder)]
    assert first_pass == [json.dumps(r, sort_keys=True) for r in build_conversations(cfg)]  # pass 1 changes nothing
    requests = list(recorder.requests.values())
    assert 10 < len(requests) < 2 * 48

    prompts = []

    def reply(prompt):
        prompts.append(prompt)
        return "DRAFT " + prompt.rsplit("\n", 1)[0].rsplit(": ", 1)[-1][:20]

    cache = DraftCache(tmp_path / "drafts.jsonl", "fake|few-shot")
    made = generate_drafts(requests[:5], FakeEngine(reply), cache, progress=False)
    assert made == 5 and len(cache) == 5
    with (tmp_path / "drafts.jsonl").open("a") as f:
        f.write('{"key": "torn')  # a kill mid-write
    resumed = DraftCache(tmp_path / "drafts.jsonl", "fake|few-shot")
    assert len(resumed) == 5
    n_prompts = len(prompts)
    assert generate_drafts(requests, FakeEngine(reply), resumed, progress=False) == len(requests) - 5
    assert len(prompts) - n_prompts == len(requests) - 5  # the cached five were not translated again
    # Few-shot examples are other lines of the same direction, never the line itself.
    for p in prompts:
        shots, _, last = p.rpartition("\n\n")
        assert last.split(": ", 1)[1].split("\n")[0] not in shots
    # Pass 2: the sessions that asked for a draft show the model's draft (weight 0).
    with_drafts = list(build_conversations(cfg, resumed.lookup))
    shown = [m["content"] for r in with_drafts for m in r["messages"] if m.get("weight") == 0]
    assert sum(d.startswith("DRAFT ") for d in shown) > 0.5 * len(shown)


def test_build_command_with_a_drafts_model(tmp_path, tiny_model_dir):
    out = tmp_path / "c.jsonl"
    args = ["build", "--corpus", str(SAMPLE), "--out", str(out), "--limit", "30", "--seed", "3", "--multi-turn", "0.9",
            "--crosslingual", "0", "--drafts-model", str(tiny_model_dir), "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    cache = [json.loads(line) for line in (tmp_path / "c.jsonl.drafts.jsonl").read_text().splitlines()]
    assert cache and all(c["model"].startswith(f"{tiny_model_dir}|few-shot|chatml|128 tokens|") for c in cache)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    shown = {m["content"] for r in records for m in r["messages"] if m.get("weight") == 0}
    assert shown & {c["draft"] for c in cache}
    again = CliRunner().invoke(app, args)  # the cache answers every draft: nothing is translated twice
    assert again.exit_code == 0 and "0 to translate" in again.output
    assert out.read_text() == "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n"


def _draft_counts(message: str) -> tuple[int, int]:
    cached, todo = re.search(r"(\d+) cached, (\d+) to translate", message).groups()
    return int(cached), int(todo)


def test_drafts_are_made_again_for_other_weights_or_settings_and_only_then(tmp_path):
    from bayling.data.drafts import prepare_drafts
    from bayling.testing.tiny import build_tiny_model

    model, cache = tmp_path / "dm", tmp_path / "s.drafts.jsonl"
    cfg = BuildConfig(str(SAMPLE), limit=10, seed=3, multi_turn=0.9, crosslingual=0.0)

    def run(**kw) -> tuple[int, int]:
        logs: list[str] = []
        prepare_drafts([cfg], str(model), cache, log=logs.append, progress=False, **{"max_new_tokens": 4, **kw})
        return _draft_counts(logs[0])

    build_tiny_model(model, seed=0)
    n = run()[1]
    assert n > 5 and run() == (n, 0)  # same weights, same settings: every draft is reused
    shutil.rmtree(model)
    build_tiny_model(model, seed=1)  # another model at the same path
    assert run() == (0, n) and run() == (n, 0)
    assert run(max_new_tokens=6) == (0, n)
    assert run(chat_format="gemma") == (0, n)
    assert run(prompt="chat", chat_format="gemma") == (0, n)
    # A template-less base is prompted few-shot in chatml anyway: naming that format changes nothing.
    assert run(chat_format="chatml") == (n, 0)


def test_a_torn_last_line_of_the_drafts_cache_costs_only_itself(tmp_path):
    from bayling.data.drafts import DraftCache, DraftRequest

    path = tmp_path / "drafts.jsonl"
    reqs = [DraftRequest("eng_Latn", "deu_Latn", f"Line {i}.", f"Zeile {i}.") for i in range(4)]
    DraftCache(path, "m").add((r, f"draft {i}") for i, r in enumerate(reqs[:2]))
    with path.open("a", encoding="utf-8") as f:
        f.write('{"key": "torn')  # a kill mid-write
    DraftCache(path, "m").add((r, f"draft {i}") for i, r in enumerate(reqs[2:], 2))
    again = DraftCache(path, "m")
    assert len(again) == 4
    assert [again.lookup(r.src_lang, r.tgt_lang, r.source) for r in reqs] == [f"draft {i}" for i in range(4)]


def test_constrained_first_requests_name_reference_words_and_change_nothing_else(lines):
    plain = list(build_conversations(BuildConfig(str(SAMPLE), per_line=8, seed=5, crosslingual=0.0)))
    asked = list(build_conversations(BuildConfig(str(SAMPLE), per_line=8, seed=5, crosslingual=0.0, constrained=0.5)))
    assert len(plain) == len(asked)
    changed = 0
    for p, a in zip(plain, asked):
        if a == p:
            continue
        changed += 1
        # Only single-turn requests gain a terms request; the answer stays the reference, which has every term.
        assert len(p["meta"]["kinds"]) == len(a["meta"]["kinds"]) == 1
        ref = lines[_line_no(a)][a["meta"]["tgt_lang"]]
        terms = a["meta"]["expect"][0]["terms"]
        user = a["messages"][0]["content"]
        assert terms and a["messages"][1]["content"] == ref == p["messages"][1]["content"]
        assert user.startswith(p["messages"][0]["content"] + "\n") and all(t in ref and t in user for t in terms)
    single = sum(len(p["meta"]["kinds"]) == 1 for p in plain)
    assert 0.3 * single < changed < 0.7 * single
