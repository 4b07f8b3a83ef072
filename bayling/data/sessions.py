"""Interactive translation sessions: turn 1 asks for a translation, later turns steer it.

Two planners, both pure functions of their arguments:
- `plan_refine_session` (the default, "refine"): mostly single-turn translations; multi-turn
  sessions start from a flawed *draft* (weight 0, not trained) and train only the fix. No trained
  answer is text already in its conversation (see the section at the end of this file).
- `plan_session` ("v1", and every teacher-mode session) below.

`plan_session(unit, rng, sampler, mode)`: In reference mode
it only uses follow-ups whose answer is in the data (grounding rules below); in teacher mode it
also plans style, length, polish, alternatives and explanation turns and leaves every answer to
the teacher.

Reference-mode answers:
  translate         the reference
  terminology       the reference (the required terms are cut from it)
  format            the reference (only when it keeps the source's numbers, names and markup)
  error_feedback    a fixed preface + the reference (the *user* proposes the corrupted version)
  back_translation  the source
  third_language    the same FLORES line in a third language
"""

from __future__ import annotations

import random
from typing import Callable

from bayling.data.grounding import change_number, corrupt, drop_terms, edit_in_terms, pick_terms, preserved_items, script_of
from bayling.data.names import INSTRUCTION_LANGS, join_terms, language_name
from bayling.data.records import Plan, Turn, Unit, expect, length_of
from bayling.data.sampling import LanguageSampler
from bayling.data.templates import STYLES, render

__all__ = ["FOLLOW_UPS", "REFERENCE_FOLLOW_UPS", "REFINE_KINDS", "SESSION_KINDS", "TURN_WEIGHTS", "plan_refine_session",
           "plan_session"]

REFERENCE_FOLLOW_UPS = ("terminology", "format", "error_feedback", "back_translation", "third_language")
FOLLOW_UPS = REFERENCE_FOLLOW_UPS + ("style", "length", "polish", "alternatives", "explanation")
SESSION_KINDS = ("translate",) + FOLLOW_UPS + ("wrong_language", "error_report")
# Follow-ups that switch the output language go last, so "the translation" in earlier turns is unambiguous.
_LAST = {"third_language": 1, "back_translation": 2}
# How many user turns (1..5) a session has, before the cap and what the sentence allows.
TURN_WEIGHTS = (0.2, 0.3, 0.25, 0.15, 0.1)
_TURN_CUM = [sum(TURN_WEIGHTS[: i + 1]) for i in range(len(TURN_WEIGHTS))]

# What the user asks for, when a teacher writes the user turn instead of a template.
BRIEFS = {
    "style_formal": "asks for the translation to be rewritten in a more formal register",
    "style_casual": "asks for a more casual, conversational version of the translation",
    "style_child": "asks for the translation to be rewritten so that a young child understands it",
    "style_poetic": "asks for a more poetic, literary version of the translation",
    "shorter": "asks for a shorter, more concise translation",
    "longer": "asks for a longer, more explicit translation",
    "polish": "asks for the translation to be polished so that it reads more fluently",
    "alternatives": "asks for {n} alternative translations",
    "explanation": "asks why the translation was done this way (word choice or structure)",
    "error_report": "points out that the translation contains a mistake and asks for a fix",
}


def plan_session(unit: Unit, rng: random.Random, sampler: LanguageSampler, mode: str = "reference",
                 max_turns: int = 5, system: str = "") -> Plan | None:
    """A 1-5 turn interactive-translation conversation over one corpus line (None if impossible)."""
    if unit.direction is not None:
        src, tgt = unit.direction
    else:
        src = sampler.draw(rng)
        tgt = sampler.draw(rng, exclude=(src,))
        if src is None or tgt is None:
            return None
    source, ref = unit.texts[src], unit.texts[tgt]
    choices = ["eng_Latn", "zho_Hans"] + [c for c in (src, tgt) if c in INSTRUCTION_LANGS]
    lang = rng.choice(choices)
    teacher = mode == "teacher"
    s = _Session(unit, rng, sampler, src, tgt, source, ref, lang, teacher)

    first = render("translate", lang, rng, src=s.name(src), tgt=s.name(tgt), text=source)
    turns = [Turn("translate", first, None if teacher else ref, expect(tgt, src_len=length_of(source, src)))]
    wanted = min(rng.choices(range(1, 6), cum_weights=_TURN_CUM)[0], max_turns) - 1
    kinds = list(FOLLOW_UPS if teacher else REFERENCE_FOLLOW_UPS)
    rng.shuffle(kinds)
    follow: list[Turn] = []
    for kind in kinds:
        if len(follow) >= wanted:
            break
        turn = getattr(s, kind)()
        if turn is not None:
            follow.append(turn)
    follow.sort(key=lambda t: _LAST.get(t.kind, 0))  # stable: the shuffled order stays among the rest
    return Plan(unit.id, unit.source, "session", src, tgt, lang, turns + follow, system, mode)


class _Session:
    """The follow-up builders for one session; each returns a Turn, or None when not groundable."""

    def __init__(self, unit: Unit, rng: random.Random, sampler: LanguageSampler, src: str, tgt: str,
                 source: str, ref: str, lang: str, teacher: bool) -> None:
        self.unit, self.rng, self.sampler = unit, rng, sampler
        self.src, self.tgt, self.source, self.ref, self.lang, self.teacher = src, tgt, source, ref, lang, teacher
        self.src_len = length_of(source, src)

    def name(self, code: str) -> str:
        return language_name(code, self.lang)

    def _turn(self, kind: str, user: str, answer: str | None, check: dict, brief: str = "") -> Turn:
        return Turn(kind, user, None if self.teacher else answer, check, brief)

    def terminology(self) -> Turn | None:
        terms = pick_terms(self.ref, script_of(self.tgt), self.rng)
        if not terms:
            return None
        user = render("terminology", self.lang, self.rng, terms=join_terms(terms, self.lang))
        return self._turn("terminology", user, self.ref, expect(self.tgt, terms, self.src_len))

    def format(self) -> Turn | None:
        items = preserved_items(self.source, self.ref)
        if not items:
            return None
        user = render("format", self.lang, self.rng)
        return self._turn("format", user, self.ref, expect(self.tgt, items, self.src_len))

    def error_feedback(self) -> Turn | None:
        if self.teacher:  # the user reports a mistake in the teacher's own translation
            user = render("error_report", self.lang, self.rng)
            return Turn("error_feedback", user, None, expect(None), BRIEFS["error_report"])
        wrong = corrupt(self.ref, script_of(self.tgt), self.rng)
        if wrong is None:
            return None
        user = render("error_feedback", self.lang, self.rng, wrong=wrong)
        preface = render("error_preface", self.lang, self.rng)
        return Turn("error_feedback", user, f"{preface}\n{self.ref}",
                    expect(self.tgt, src_len=self.src_len, skip=len(preface) + 1))

    def back_translation(self) -> Turn:
        user = render("back_translation", self.lang, self.rng, src=self.name(self.src))
        return self._turn("back_translation", user, self.source, expect(self.src, src_len=length_of(self.ref, self.tgt)))

    def third_language(self) -> Turn | None:
        if self.unit.direction is not None or len(self.unit.texts) < 3:
            return None
        l3 = self.sampler.draw(self.rng, exclude=(self.src, self.tgt))
        if l3 is None or l3 not in self.unit.texts:
            return None
        user = render("third_language", self.lang, self.rng, l3=self.name(l3))
        return self._turn("third_language", user, self.unit.texts[l3], expect(l3, src_len=self.src_len))

    # Drafts with one real flaw, and the follow-up that names it (draft-then-refine sessions).

    def draft_terminology(self) -> tuple[str, Turn] | None:
        script = script_of(self.tgt)
        terms = pick_terms(self.ref, script, self.rng)
        draft = drop_terms(self.ref, terms, script) if terms else None
        if draft is None:
            return None
        user = render("terminology", self.lang, self.rng, terms=join_terms(terms, self.lang))
        return draft, Turn("terminology", user, self.ref, expect(self.tgt, terms, self.src_len))


    def draft_format(self) -> tuple[str, Turn] | None:
        changed = change_number(self.ref, self.source, self.rng)
        if changed is None:
            return None
        draft, number = changed
        user = render("format", self.lang, self.rng)
        return draft, Turn("format", user, self.ref, expect(self.tgt, (number,), self.src_len))


    def draft_wrong_language(self) -> tuple[str, Turn] | None:
        # The failure seen in evals: the source handed back untranslated (or another language).
        others = [c for c in self.unit.texts if c not in (self.src, self.tgt)]
        draft = self.unit.texts[self.rng.choice(others)] if others and self.rng.random() < 0.3 else self.source
        user = render("wrong_language", self.lang, self.rng, tgt=self.name(self.tgt))
        return draft, Turn("wrong_language", user, self.ref, expect(self.tgt, src_len=self.src_len))


    def draft_error_report(self) -> tuple[str, Turn] | None:
        draft = corrupt(self.ref, script_of(self.tgt), self.rng)
        if draft is None:
            return None
        user = render("error_report", self.lang, self.rng)
        return draft, Turn("error_report", user, self.ref, expect(self.tgt, src_len=self.src_len))

    # Teacher-only follow-ups: no single reference answers them.

    def style(self) -> Turn | None:
        key = "style_" + self.rng.choice(STYLES)
        user = render(key, self.lang, self.rng)
        return self._turn("style", user, None, expect(self.tgt, src_len=self.src_len), BRIEFS[key])

    def length(self) -> Turn | None:
        key = self.rng.choice(("shorter", "longer"))
        return self._turn("length", render(key, self.lang, self.rng), None, expect(self.tgt), BRIEFS[key])

    def polish(self) -> Turn | None:
        user = render("polish", self.lang, self.rng)
        return self._turn("polish", user, None, expect(self.tgt, src_len=self.src_len), BRIEFS["polish"])

    def alternatives(self) -> Turn | None:
        n = self.rng.choice((2, 3))
        user = render("alternatives", self.lang, self.rng, n=n)
        return self._turn("alternatives", user, None, expect(self.tgt), BRIEFS["alternatives"].format(n=n))

    def explanation(self) -> Turn | None:
        user = render("explanation", self.lang, self.rng)
        return self._turn("explanation", user, None, expect(self.lang), BRIEFS["explanation"])


# --- Draft-then-refine sessions (recipe v2, reference mode) -------------------------------------
#
# v1 sessions answered turn 1 with the reference and then asked for things the reference already
# did, so a quarter of trained follow-ups repeated the previous answer and back-translation
# answers were the source itself: the model learned to copy. Here turn 1's answer is a *draft*
# with a real flaw and weight 0 (context, not trained); the follow-up names that flaw and only the
# fix, the reference, is trained. No trained answer appears earlier in its conversation.

REFINE_KINDS = {"terminology": 0.35, "wrong_language": 0.25, "error_report": 0.2, "format": 0.2}
ENGLISH = "eng_Latn"


def plan_refine_session(unit: Unit, rng: random.Random, sampler: LanguageSampler, *, multi_turn: float = 0.4,
                        into_english: float = 0.5, chinese_hub: float = 0.0, max_turns: int = 3, system: str = "",
                        drafts: Callable[[str, str, str, str], str | None] | None = None,
                        constrained: float = 0.0, term_edits: bool = False) -> Plan | None:
    """A translation conversation: usually one turn; with probability `multi_turn` a flawed draft
    (weight 0) and the user's correction, or a translation and a third language. A share
    `constrained` of the single-turn ones asks for reference words in the first request
    ("The translation must contain these terms: ...": the reference has them).

    `drafts(src, tgt, source, reference)` gives a model's own translation when there is one
    (bayling.data.drafts); the follow-up then names a real flaw of it. Without one, or when that
    draft has none to name, the draft is the reference with one flaw made in it. With `term_edits`,
    a terminology fix of a model's draft is that draft post-edited to use the terms where it aligns
    with the reference around them (grounding.edit_in_terms), else the reference."""
    direction = _direction(unit, rng, sampler, into_english, chinese_hub)
    if direction is None:
        return None
    src, tgt = direction
    source, ref = unit.texts[src], unit.texts[tgt]
    lang = rng.choice(["eng_Latn", "zho_Hans"] + [c for c in (src, tgt) if c in INSTRUCTION_LANGS])
    s = _Session(unit, rng, sampler, src, tgt, source, ref, lang, teacher=False)
    first = render("translate", lang, rng, src=s.name(src), tgt=s.name(tgt), text=source)
    check = expect(tgt, src_len=s.src_len)
    turns = [Turn("translate", first, ref, check)]
    if max_turns >= 2 and rng.random() < multi_turn:
        refined = None
        if rng.random() < 0.8:
            engine_draft = drafts(src, tgt, source, ref) if drafts is not None else None
            refined = (_refine_engine_draft(s, engine_draft, term_edits) if engine_draft is not None else None) or _refine(s)
        if refined is not None:
            draft, fix = refined
            turns = [Turn("translate", first, draft, expect(None), weight=0), fix]
        third = s.third_language()
        said = [t.answer for t in turns]
        if third is not None and third.answer not in said and len(turns) < max_turns and (refined is None or rng.random() < 0.25):
            turns.append(third)
    elif constrained and rng.random() < constrained:  # drawn last: other sessions come out as without it
        terms = pick_terms(ref, script_of(tgt), rng)
        if terms:
            ask = render("constrained", lang, rng, terms=join_terms(terms, lang))
            turns = [Turn("translate", f"{first}\n{ask}", ref, expect(tgt, terms, s.src_len))]
    return Plan(unit.id, unit.source, "session", src, tgt, lang, turns, system, "reference")


CHINESE = "zho_Hans"


def _direction(unit: Unit, rng: random.Random, sampler: LanguageSampler, into_english: float,
               chinese_hub: float = 0.0) -> tuple[str, str] | None:
    """Hub-centric and balanced (BayLing 2 aligns every language to its English and Chinese data):
    a multi-way line pairs a drawn language with English (share 0.9 - chinese_hub) or Chinese
    (chinese_hub), or 10% of the time two drawn languages; into the hub with probability
    `into_english`. A bilingual pair is read either way."""
    if unit.direction is not None:
        a, b = unit.direction
        return (b, a) if rng.random() < 0.5 else (a, b)
    x = rng.random()
    if ENGLISH in unit.texts and x < 0.9:
        hub = CHINESE if x >= 0.9 - chinese_hub and CHINESE in unit.texts else ENGLISH
        other = sampler.draw(rng, exclude=(hub,))
        if other is None or other not in unit.texts:
            return None
        return (other, hub) if rng.random() < into_english else (hub, other)
    src = sampler.draw(rng)
    tgt = sampler.draw(rng, exclude=(src,))
    return None if src is None or tgt is None else (src, tgt)


def _refine(s: _Session) -> tuple[str, Turn] | None:
    """(draft, follow-up) for the first refinement kind, in weighted random order, that this line grounds."""
    kinds = list(REFINE_KINDS)
    order = []
    while kinds:
        kind = s.rng.choices(kinds, weights=[REFINE_KINDS[k] for k in kinds])[0]
        kinds.remove(kind)
        order.append(kind)
    for kind in order:
        made = getattr(s, f"draft_{kind}")()
        if made is not None:
            return made
    return None


# A model's own draft: the follow-up names a flaw it really has (the order below: first what
# makes the draft useless, then what the eval asks for most).
ENGINE_KINDS = {"terminology": 0.5, "format": 0.2, "error_report": 0.3}


def _refine_engine_draft(s: _Session, draft: str, term_edits: bool = False) -> tuple[str, Turn] | None:
    """(draft, follow-up) for a real flaw of a model's draft; None when it has none we can name."""
    from bayling.data.grounding import NUMBER
    from bayling.languages import is_on_target

    draft = draft.strip()[: 3 * max(len(s.ref), 40)]  # a runaway draft is kept, but not all of it
    if draft == s.ref.strip():
        return None
    check = expect(s.tgt, src_len=s.src_len)
    if not draft or draft == s.source.strip() or is_on_target(draft, s.tgt) is False:
        user = render("wrong_language", s.lang, s.rng, tgt=s.name(s.tgt))
        return draft or s.source, Turn("wrong_language", user, s.ref, check)
    options: dict[str, tuple[str, Turn]] = {}
    terms = pick_terms(s.ref, script_of(s.tgt), s.rng, absent_from=draft)
    if terms:
        user = render("terminology", s.lang, s.rng, terms=join_terms(terms, s.lang))
        edited = edit_in_terms(draft, s.ref, terms, script_of(s.tgt)) if term_edits else None
        options["terminology"] = (draft, Turn("terminology", user, edited or s.ref, expect(s.tgt, terms, s.src_len)))
    numbers = tuple(n for n in dict.fromkeys(NUMBER.findall(s.source)) if n in s.ref and n not in draft)
    if numbers:
        user = render("format", s.lang, s.rng)
        options["format"] = (draft, Turn("format", user, s.ref, expect(s.tgt, numbers, s.src_len)))
    options["error_report"] = (draft, Turn("error_report", render("error_report", s.lang, s.rng), s.ref, check))
    kinds = list(options)
    kind = s.rng.choices(kinds, weights=[ENGINE_KINDS[k] for k in kinds])[0]
    return options[kind]
