"""What reference-mode follow-ups are grounded in: terms, preserved items and corruptions of a reference.

Each helper looks only at the sentences themselves, so a turn built from its result is true of
the data: a term is cut from the reference (so the reference contains it), preserved items are
numbers, names and markup that the reference already carries over from the source, and a
corruption is the reference with one deliberate error (what the *user* proposes, never what the
assistant says). Patterns are compiled once at import; nothing here calls a model.
"""

from __future__ import annotations

import difflib
import random
import re
import unicodedata

__all__ = ["change_number", "corrupt", "drop_terms", "edit_in_terms", "pick_terms", "preserved_items", "script_of"]

# Scripts written without spaces between words.
UNSPACED = frozenset({"Hans", "Hant", "Jpan", "Thai", "Khmr", "Laoo", "Mymr", "Tibt"})
_EDGE = "\"'`.,;:!?()[]{}<>«»“”„‘’‚‹›「」『』（）【】《》，。、！？：；…—–-·¡¿/\\*।॥"
_JA_TERM = re.compile(r"[\u4e00-\u9fff々]{2,4}|[\u30a1-\u30faー]{3,8}")
NUMBER = re.compile(r"[0-9]+(?:[.,:][0-9]+)*")  # a number as written, separators kept
_NUMBER = NUMBER
_MARKUP = re.compile(r"<[^<>\s][^<>]*>|https?://[^\s)\]]+|[\w.+-]+@[\w-]+\.[\w.]+")
_NAME = re.compile(r"[A-Z][A-Za-z'-]*[A-Za-z]")
_MIN_WORD = {"Hang": 2}  # Korean words (with their particles) are short; elsewhere 5+ letters
_MIN_WORD_DEFAULT = 5


def script_of(code: str) -> str:
    """ISO 15924 script of a FLORES code ("zho_Hans" -> "Hans")."""
    return code.rpartition("_")[2]


def _chinese_words(text: str) -> list[str]:
    """Whole Chinese words of 2-4 Han characters, by jieba's segmenter (its dictionary, no model)."""
    import jieba

    jieba.setLogLevel(60)  # it logs its dictionary load at INFO
    return [w for w in jieba.lcut(text) if 2 <= len(w) <= 4 and all("\u3400" <= ch <= "\u9fff" for ch in w)]


def _candidates(text: str, script: str) -> list[str]:
    if script in ("Hans", "Hant"):
        return _chinese_words(text)
    if script == "Jpan":
        return _JA_TERM.findall(text)
    if script in UNSPACED:
        return []
    least = _MIN_WORD.get(script, _MIN_WORD_DEFAULT)
    words = (w.strip(_EDGE) for w in text.split())
    return [w for w in words if len(w) >= least and _is_word(w.replace("-", "").replace("'", ""))]


def _is_word(text: str) -> bool:
    """Letters, with the combining vowel signs and viramas that Brahmic scripts (Devanagari,
    Bengali, Tamil...) write inside words: "नेपालको" is a word though str.isalpha says no."""
    return bool(text) and text[0].isalpha() and all(c.isalpha() or unicodedata.category(c) in ("Mn", "Mc") for c in text)


def pick_terms(reference: str, script: str, rng: random.Random, absent_from: str | None = None,
               most: int = 2) -> tuple[str, ...]:
    """One (sometimes two) whole words of the reference; () when none can be found.

    The one term picker of data and eval. With `absent_from` (a draft or a model's first answer),
    only words that text lacks, so asking for them names a real difference.
    """
    found = [w for w in dict.fromkeys(_candidates(reference, script)) if absent_from is None or w not in absent_from]
    if not found:
        return ()
    k = 2 if most >= 2 and len(found) >= 4 and rng.random() < 0.3 else 1
    return tuple(rng.sample(found, k))


def drop_terms(reference: str, terms: tuple[str, ...], script: str) -> str | None:
    """The reference without its first occurrence of each term: a draft that lacks them."""
    draft = reference
    for term in terms:
        if script in UNSPACED:
            draft = draft.replace(term, "", 1)
        else:
            draft = re.sub(rf"(^|\s){re.escape(term)}(?=[\s{re.escape(_EDGE)}]|$)\s?", r"\1", draft, count=1)
    draft = re.sub(r"\s+([.,;:!?])", r"\1", re.sub(r"\s{2,}", " ", draft)).strip()
    return draft if draft and draft != reference and all(t not in draft for t in terms) else None


def edit_in_terms(draft: str, reference: str, terms: tuple[str, ...], script: str, slack: int = 3) -> str | None:
    """The draft post-edited to use `terms`: for each, the stretch between the nearest words the
    draft shares with the reference on either side of the term is replaced by the reference's
    stretch there, and the rest of the draft is kept. None when the draft does not align around a
    term (the replaced stretch would be more than the term and `slack` words, twice that in
    characters for unspaced scripts), when the draft loops (a repeated word 4-gram) or is much longer
    than the reference: then only the reference answers the request."""
    unspaced = script in UNSPACED
    if len(draft) > 1.5 * len(reference) + 20 or (not unspaced and _loops(draft.split())):
        return None
    out = draft.strip()
    for term in terms:
        out = _edit_in(out, reference.strip(), term, unspaced, slack)
        if out is None:
            return None
    return out if out != draft.strip() else None


def _loops(words: list[str], n: int = 4) -> bool:
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(grams) != len(set(grams))


def _edit_in(draft: str, reference: str, term: str, unspaced: bool, slack: int) -> str | None:
    d, r = (list(draft), list(reference)) if unspaced else (draft.split(), reference.split())
    if unspaced:
        start = reference.find(term)
        end, size, least, slack = start + len(term), len(term), 2, 2 * slack
    else:
        start = next((k for k, w in enumerate(r) if w.strip(_EDGE) == term), -1)
        end, size, least = start + 1, 1, 1
    if start < 0:
        return None
    # Shared stretches (draft start, reference start, size), cut back to what lies wholly before or after the term.
    before, after = [], []
    for a, b, n in difflib.SequenceMatcher(None, d, r, autojunk=False).get_matching_blocks():
        if b < start and min(n, start - b) >= least:
            before.append((a + min(n, start - b), b + min(n, start - b)))  # where it ends
        skip = max(0, end - b)
        if b + n > end and n - skip >= least:
            after.append((a + skip, b + skip))  # where it starts
    if not before and not after:
        return None
    d1, r1 = before[-1] if before else (0, 0)
    d2, r2 = after[0] if after else (len(d), len(r))
    if d2 < d1 or r2 - r1 > size + slack or d2 - d1 > r2 - r1 + slack:
        return None
    out = ("" if unspaced else " ").join(d[:d1] + r[r1:r2] + d[d2:])
    return out if term in out else None


def change_number(reference: str, source: str, rng: random.Random) -> tuple[str, str] | None:
    """(draft, number): the reference with one digit changed in a number the source also has."""
    numbers = [m for m in _NUMBER.finditer(reference) if m.group() in source]
    if not numbers:
        return None
    m = rng.choice(numbers)
    digits = [i for i in range(m.start(), m.end()) if reference[i].isdigit()]
    i = rng.choice(digits)
    new = rng.choice([d for d in "0123456789" if d != reference[i]])
    return reference[:i] + new + reference[i + 1:], m.group()


def preserved_items(source: str, reference: str) -> tuple[str, ...]:
    """Numbers, markup and Latin-script names of the source that the reference keeps verbatim.

    () when there are none, or when the reference changes any number or markup of the source
    (then asking to "keep the numbers" would not be answered by the reference).
    """
    kept = _NUMBER.findall(source) + _MARKUP.findall(source)
    if any(item not in reference for item in kept):
        return ()
    first, _, rest = source.partition(" ")  # a sentence's first word is capitalised anyway
    names = [n for n in _NAME.findall(rest) if len(n) >= 3 and n in reference]
    return tuple(dict.fromkeys(kept + names))


def corrupt(reference: str, script: str, rng: random.Random) -> str | None:
    """The reference with one error: a changed number, swapped or dropped words, or a cut span."""
    numbers = list(_NUMBER.finditer(reference))
    if numbers and rng.random() < 0.6:
        m = rng.choice(numbers)
        digits = [i for i in range(m.start(), m.end()) if reference[i].isdigit()]
        i = rng.choice(digits)
        new = rng.choice([d for d in "0123456789" if d != reference[i]])
        return reference[:i] + new + reference[i + 1:]
    if script not in UNSPACED:
        return _corrupt_words(reference, rng)
    return _corrupt_chars(reference, rng)


def _corrupt_words(reference: str, rng: random.Random) -> str | None:
    words = reference.split(" ")
    if len(words) < 4:
        return None
    inner = range(1, len(words) - 2)  # keep the first word and the final punctuation in place
    if rng.random() < 0.5:
        i = rng.choice(inner)
        if words[i] == words[i + 1]:
            return None
        words[i], words[i + 1] = words[i + 1], words[i]
    else:
        content = [i for i in range(1, len(words) - 1) if len(words[i].strip(_EDGE)) >= 4]
        if not content:
            return None
        del words[rng.choice(content)]
    wrong = " ".join(words)
    return wrong if wrong != reference else None


def _corrupt_chars(reference: str, rng: random.Random) -> str | None:
    if len(reference) < 10:
        return None
    size = rng.choice((2, 3))
    start = rng.randrange(2, len(reference) - size - 2)
    if rng.random() < 0.5:  # swap two neighbouring spans
        a, b = reference[start:start + size], reference[start + size:start + 2 * size]
        wrong = reference[:start] + b + a + reference[start + 2 * size:]
    else:  # drop a span
        wrong = reference[:start] + reference[start + size:]
    return wrong if wrong != reference and wrong.strip(_EDGE) else None
