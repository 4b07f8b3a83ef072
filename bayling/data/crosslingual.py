"""Cross-lingual instructions (BayLing 2) over every language of a multi-way corpus line.

The instruction is written in one of the instruction languages (names.INSTRUCTION_LANGS) while
the sentences and answers can be in any FLORES language, drawn by temperature-sampled weights.
Every answer is grounded in the multi-way line:

  xl_translate   instruction in X, sentence in S, "translate into Y"  -> the Y sentence
  answer_in      "what does this say? answer in Y"                    -> the Y sentence
  langid         "which language is this?"                            -> fixed phrase + S's name, in X
  same_meaning   two sentences, same line or the previous line        -> fixed yes / no, in X
  pick_language  three sentences of one line, "which one is in L?"    -> fixed phrase + position + sentence
"""

from __future__ import annotations

import random

from bayling.data.names import INSTRUCTION_LANGS, language_name
from bayling.data.records import Plan, Turn, Unit, expect, length_of
from bayling.data.sampling import LanguageSampler
from bayling.data.templates import render

__all__ = ["XL_KINDS", "plan_crosslingual"]

XL_KINDS = ("xl_translate", "answer_in", "langid", "same_meaning", "pick_language")


def plan_crosslingual(unit: Unit, rng: random.Random, sampler: LanguageSampler, system: str = "") -> Plan | None:
    """A one-turn cross-lingual task over a multi-way line (None for a bilingual corpus line)."""
    if unit.direction is not None or len(unit.texts) < 2:
        return None
    lang = rng.choice(INSTRUCTION_LANGS)
    kinds = list(XL_KINDS)
    rng.shuffle(kinds)
    for kind in kinds:
        built = _BUILDERS[kind](unit, rng, sampler, lang)
        if built is not None:
            src, tgt, turn = built
            return Plan(unit.id, unit.source, "crosslingual", src, tgt, lang, [turn], system)
    return None


def _translate(unit: Unit, rng: random.Random, sampler: LanguageSampler, lang: str, kind: str):
    src = sampler.draw(rng)
    tgt = sampler.draw(rng, exclude=(src,))
    if tgt is None:
        return None
    text = unit.texts[src]
    names = {"src": language_name(src, lang), "tgt": language_name(tgt, lang)}
    user = render("translate" if kind == "xl_translate" else kind, lang, rng, text=text, **names)
    return src, tgt, Turn(kind, user, unit.texts[tgt], expect(tgt, src_len=length_of(text, src)))


def _langid(unit: Unit, rng: random.Random, sampler: LanguageSampler, lang: str):
    src = sampler.draw(rng)
    user = render("langid", lang, rng, text=unit.texts[src])
    answer = render("langid_a", lang, rng, name=language_name(src, lang))
    return src, lang, Turn("langid", user, answer, expect(lang))


def _same_meaning(unit: Unit, rng: random.Random, sampler: LanguageSampler, lang: str):
    a = sampler.draw(rng)
    b = sampler.draw(rng, exclude=(a,))
    if b is None:
        return None
    same = unit.prev is None or rng.random() < 0.5
    other = unit.texts[b] if same else unit.prev[b]
    same = same or other == unit.texts[b]  # a repeated sentence in the corpus is still "the same"
    user = render("same_meaning", lang, rng, a=unit.texts[a], b=other)
    answer = render("same_yes" if same else "same_no", lang, rng)
    return a, b, Turn("same_meaning", user, answer, expect(lang))


def _pick_language(unit: Unit, rng: random.Random, sampler: LanguageSampler, lang: str):
    if len(unit.texts) < 3:
        return None
    picked: tuple[str, ...] = ()
    for _ in range(3):
        code = sampler.draw(rng, exclude=picked)
        if code is None:
            return None
        picked += (code,)
    order = list(picked)
    rng.shuffle(order)
    wanted = picked[0]
    a, b, c = (unit.texts[code] for code in order)
    user = render("pick_language", lang, rng, lang=language_name(wanted, lang), a=a, b=b, c=c)
    answer = render("pick_language_a", lang, rng, k=order.index(wanted) + 1, text=unit.texts[wanted])
    return wanted, wanted, Turn("pick_language", user, answer, expect(None))


_BUILDERS = {
    "xl_translate": lambda u, r, s, lang: _translate(u, r, s, lang, "xl_translate"),
    "answer_in": lambda u, r, s, lang: _translate(u, r, s, lang, "answer_in"),
    "langid": _langid,
    "same_meaning": _same_meaning,
    "pick_language": _pick_language,
}
