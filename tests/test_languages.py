"""bayling.languages: the FLORES-200 table, name resolution and language identification."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bayling import languages as L
from bayling.languages import (
    LANGID_TO_FLORES,
    Language,
    UnknownLanguage,
    detect_language,
    flores_from_langid,
    is_on_target,
    langid_labels_for,
    language_table,
    resolve,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

SENTENCES = {  # used when ../shared/data is absent
    "eng_Latn": "The scientists announced on Monday that they had invented a new diagnostic tool.",
    "zho_Hans": "周一，斯坦福大学医学院的科学家宣布，他们发明了一种新型诊断工具。",
    "deu_Latn": "Am Montag gaben Wissenschaftler bekannt, dass sie ein neues Diagnosewerkzeug erfunden haben.",
    "rus_Cyrl": "В понедельник учёные объявили, что изобрели новый диагностический инструмент.",
    "jpn_Jpan": "月曜日、スタンフォード大学医学部の科学者たちは、新しい診断ツールを発明したと発表しました。",
}


def _flores_lines(code: str, n: int = 5) -> list[str]:
    path = SHARED / "flores200" / "dev" / f"{code}.dev"
    if path.is_file():
        return path.read_text(encoding="utf-8").splitlines()[:n]
    return [SENTENCES[code]]


def test_table_has_204_sorted_unique_codes():
    codes = [lang.code for lang in L.LANGUAGES]
    assert len(codes) == 204
    assert codes == sorted(set(codes))
    assert all(isinstance(lang, Language) for lang in L.LANGUAGES)


def test_codes_equal_the_flores_file_names(shared_data: Path):
    names = sorted(p.name.removesuffix(".dev") for p in (shared_data / "flores200" / "dev").glob("*.dev"))
    assert [lang.code for lang in L.LANGUAGES] == names


def test_codes_and_iso_fields_are_well_formed():
    for lang in L.LANGUAGES:
        assert lang.code == f"{lang.iso639_3}_{lang.script}", lang
        assert re.fullmatch(r"[a-z]{3}", lang.iso639_3), lang
        assert re.fullmatch(r"[A-Z][a-z]{3}", lang.script), lang
        assert lang.iso639_1 is None or re.fullmatch(r"[a-z]{2}", lang.iso639_1), lang
        assert lang.name and lang.native and "\t" not in lang.native


def test_known_entries():
    zh = resolve("zho_Hans")
    assert (zh.name, zh.native, zh.script, zh.iso639_3, zh.iso639_1) == (
        "Chinese (Simplified)", "中文（简体）", "Hans", "zho", "zh"
    )
    assert resolve("zho_Hant").iso639_1 == "zh"
    assert resolve("deu_Latn").native == "Deutsch"
    assert resolve("ace_Arab").name == "Acehnese (Arabic script)"
    assert resolve("yue_Hant").iso639_1 is None


def test_chinese_spellings_all_resolve_to_simplified():
    assert resolve("zh") == resolve("中文") == resolve("zho_Hans") == resolve("Chinese")
    assert resolve("Chinese").code == "zho_Hans"


@pytest.mark.parametrize(
    "name, code",
    [
        ("zh-CN", "zho_Hans"), ("zh_cn", "zho_Hans"), ("ZH", "zho_Hans"), ("chinese (simplified)", "zho_Hans"),
        ("Mandarin", "zho_Hans"), ("zho", "zho_Hans"), ("zh-TW", "zho_Hant"), ("zh-Hant", "zho_Hant"),
        ("Traditional Chinese", "zho_Hant"), ("cantonese", "yue_Hant"), ("yue", "yue_Hant"),
        ("Deutsch", "deu_Latn"), ("GERMAN", "deu_Latn"), ("deu", "deu_Latn"), ("de", "deu_Latn"),
        ("eng_Latn", "eng_Latn"), ("ENG-latn", "eng_Latn"), (" english ", "eng_Latn"),
        ("Français", "fra_Latn"), ("francais", "fra_Latn"), ("日本語", "jpn_Jpan"), ("Русский", "rus_Cyrl"),
        ("العربية", "arb_Arab"), ("ar", "arb_Arab"), ("Arabic", "arb_Arab"), ("arb_Latn", "arb_Latn"),
        ("fa", "pes_Arab"), ("Persian", "pes_Arab"), ("no", "nob_Latn"), ("Norwegian", "nob_Latn"),
        ("sq", "als_Latn"), ("Malay", "zsm_Latn"), ("Acehnese", "ace_Latn"), ("ks", "kas_Arab"),
        ("Ta'izzi-Adeni Arabic", "acq_Arab"), ("Kabiye", "kbp_Latn"),
    ],
)
def test_resolve_is_case_space_and_separator_insensitive(name, code):
    assert resolve(name).code == code


def test_every_name_native_and_alias_resolves_back():
    for lang in L.LANGUAGES:
        for key in (lang.code, lang.code.lower(), lang.code.replace("_", "-"), lang.name.upper()):
            assert resolve(key) == lang, key
        for key in (lang.native, *lang.aliases):
            resolved = resolve(key)
            # a name shared by script variants goes to the default one (Chinese -> zho_Hans)
            assert resolved == lang or resolved.iso639_3 == lang.iso639_3, (key, lang.code, resolved.code)


def test_resolve_passes_a_language_through():
    lang = resolve("de")
    assert resolve(lang) is lang


def test_unknown_language_lists_close_matches():
    with pytest.raises(UnknownLanguage) as err:
        resolve("Chinse")
    msg = str(err.value)
    assert msg.startswith("unknown language 'Chinse'; did you mean: Chinese (Simplified) (zho_Hans)")
    assert "Chinese (Traditional) (zho_Hant)" in msg
    assert err.value.suggestions[0].code == "zho_Hans"
    assert isinstance(err.value, ValueError)


def test_unknown_language_without_close_matches():
    with pytest.raises(UnknownLanguage, match="unknown language 'qqqqxx'") as err:
        resolve("qqqqxx")
    assert err.value.suggestions == ()
    with pytest.raises(UnknownLanguage, match="empty"):
        resolve("  ")


def test_flores_from_langid():
    expected = {
        "zh": "zho_Hans", "en": "eng_Latn", "de": "deu_Latn", "ar": "arb_Arab", "fa": "pes_Arab",
        "ms": "zsm_Latn", "sw": "swh_Latn", "et": "est_Latn", "lv": "lvs_Latn", "uz": "uzn_Latn",
        "mn": "khk_Cyrl", "ne": "npi_Deva", "yue": "yue_Hant", "az": "azj_Latn", "no": "nob_Latn",
        "sq": "als_Latn", "qu": "quy_Latn", "gn": "grn_Latn", "ku": "kmr_Latn", "ps": "pbt_Arab",
        "or": "ory_Orya", "arz": "arz_Arab", "ceb": "ceb_Latn", "__label__ja": "jpn_Jpan",
    }
    assert {label: flores_from_langid(label) for label in expected} == expected
    # lid.176 labels without a FLORES-200 counterpart; "als" is Alemannic there, not Tosk Albanian
    for label in ("la", "br", "fy", "wuu", "sh", "als", "xyz", ""):
        assert flores_from_langid(label) is None, label


def test_langid_mapping_points_at_real_codes_and_round_trips():
    codes = {lang.code for lang in L.LANGUAGES}
    assert len(LANGID_TO_FLORES) >= 110
    for label, code in LANGID_TO_FLORES.items():
        assert code in codes, (label, code)
        assert label in langid_labels_for(code), (label, code)
    for lang in L.LANGUAGES:
        for label in langid_labels_for(lang.code):
            mapped = flores_from_langid(label)
            assert mapped is None or label in langid_labels_for(mapped)


def test_langid_labels_for():
    assert langid_labels_for("zho_Hans") >= {"zh"}
    assert langid_labels_for("zho_Hant") >= {"zh"}
    assert langid_labels_for("yue_Hant") >= {"yue", "zh"}
    assert langid_labels_for("nob_Latn") >= {"no", "nn"} and langid_labels_for("nno_Latn") >= {"no", "nn"}
    assert "en" not in langid_labels_for("deu_Latn")
    assert langid_labels_for("dzo_Tibt") == frozenset()
    assert langid_labels_for("German") == {"de"}
    assert all(langid_labels_for(code) for code in L.LANGID_UNRELIABLE)


@pytest.mark.parametrize("code", ["eng_Latn", "zho_Hans", "deu_Latn", "rus_Cyrl", "jpn_Jpan"])
def test_detect_language_on_real_sentences(code):
    for line in _flores_lines(code):
        found, score = detect_language(line)
        assert found == code, line
        assert 0.0 < score <= 1.0


def test_detect_language_handles_newlines_and_blank_text():
    assert detect_language("Das ist ein Satz.\nUnd das ist noch ein deutscher Satz.")[0] == "deu_Latn"
    assert detect_language("  \n ") == (None, 0.0)


def test_is_on_target():
    en = _flores_lines("eng_Latn", 1)[0]
    zh = _flores_lines("zho_Hans", 1)[0]
    assert is_on_target(zh, "zho_Hans") is True
    assert is_on_target(zh, "Chinese (Traditional)") is True  # the detector cannot tell the scripts apart
    assert is_on_target(en, "zho_Hans") is False
    assert is_on_target(en, "en") is True
    assert is_on_target(en, "deu_Latn") is False
    assert is_on_target(en, "dzo_Tibt") is None  # lid.176 has no Dzongkha
    assert is_on_target(en, "som_Latn") is None  # has a label, but the lite model misses most Somali
    assert is_on_target("", "eng_Latn") is None


def test_language_table():
    rows = language_table()
    assert len(rows) == 204 and all(len(r) == len(L.TABLE_COLUMNS) for r in rows)
    assert language_table(header=True)[0] == L.TABLE_COLUMNS
    (row,) = language_table("中文")
    assert row == ("zho_Hans", "Chinese (Simplified)", "中文（简体）", "Hans", "zho", "zh", "wuu,zh")
    assert language_table("dzo_Tibt")[0][-1] == "-"
    assert language_table("som_Latn")[0][-1] == "so (unreliable)"


def test_families_name_only_flores_languages_and_leave_the_rest_other():
    isos = {lang.iso639_3 for lang in L.all_languages()}
    assert set(L.FAMILIES) <= isos
    assert L.family_of("zh") == L.family_of("yue_Hant") == "Sino-Tibetan"
    assert L.family_of("ace_Arab") == L.family_of("ace_Latn") == "Austronesian"  # by language, not script
    assert L.family_of("eus_Latn") == L.family_of("hat_Latn") == "other"  # isolate, creole: never guessed
