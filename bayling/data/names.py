"""Language names as they are written inside instructions, per instruction language.

Thirty widely used languages have a hand-written name in each instruction language; any other
FLORES language falls back to its English name from `bayling.languages`. The names
are chosen to fit the templates without inflection: German "auf {name}", French "en {name}",
Spanish "al {name}", Russian "на {name}" (accusative = nominative for these adjectives).
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["INSTRUCTION_LANGS", "join_terms", "language_name"]

# Instruction languages, in the column order of _TABLE below.
INSTRUCTION_LANGS = ("eng_Latn", "zho_Hans", "deu_Latn", "fra_Latn", "spa_Latn", "jpn_Jpan", "rus_Cyrl")

_TABLE = """
eng_Latn|English|英语|Englisch|anglais|inglés|英語|английский
zho_Hans|Chinese|中文|Chinesisch|chinois|chino|中国語|китайский
zho_Hant|Traditional Chinese|繁体中文|Chinesisch (Langzeichen)|chinois traditionnel|chino tradicional|繁体字中国語|традиционный китайский
yue_Hant|Cantonese|粤语|Kantonesisch|cantonais|cantonés|広東語|кантонский
deu_Latn|German|德语|Deutsch|allemand|alemán|ドイツ語|немецкий
fra_Latn|French|法语|Französisch|français|francés|フランス語|французский
spa_Latn|Spanish|西班牙语|Spanisch|espagnol|español|スペイン語|испанский
jpn_Jpan|Japanese|日语|Japanisch|japonais|japonés|日本語|японский
rus_Cyrl|Russian|俄语|Russisch|russe|ruso|ロシア語|русский
por_Latn|Portuguese|葡萄牙语|Portugiesisch|portugais|portugués|ポルトガル語|португальский
ita_Latn|Italian|意大利语|Italienisch|italien|italiano|イタリア語|итальянский
kor_Hang|Korean|韩语|Koreanisch|coréen|coreano|韓国語|корейский
arb_Arab|Arabic|阿拉伯语|Arabisch|arabe|árabe|アラビア語|арабский
hin_Deva|Hindi|印地语|Hindi|hindi|hindi|ヒンディー語|хинди
vie_Latn|Vietnamese|越南语|Vietnamesisch|vietnamien|vietnamita|ベトナム語|вьетнамский
tha_Thai|Thai|泰语|Thailändisch|thaï|tailandés|タイ語|тайский
tur_Latn|Turkish|土耳其语|Türkisch|turc|turco|トルコ語|турецкий
nld_Latn|Dutch|荷兰语|Niederländisch|néerlandais|neerlandés|オランダ語|нидерландский
pol_Latn|Polish|波兰语|Polnisch|polonais|polaco|ポーランド語|польский
ukr_Cyrl|Ukrainian|乌克兰语|Ukrainisch|ukrainien|ucraniano|ウクライナ語|украинский
ind_Latn|Indonesian|印尼语|Indonesisch|indonésien|indonesio|インドネシア語|индонезийский
swh_Latn|Swahili|斯瓦希里语|Swahili|swahili|suajili|スワヒリ語|суахили
ces_Latn|Czech|捷克语|Tschechisch|tchèque|checo|チェコ語|чешский
swe_Latn|Swedish|瑞典语|Schwedisch|suédois|sueco|スウェーデン語|шведский
heb_Hebr|Hebrew|希伯来语|Hebräisch|hébreu|hebreo|ヘブライ語|иврит
ell_Grek|Greek|希腊语|Griechisch|grec|griego|ギリシャ語|греческий
ben_Beng|Bengali|孟加拉语|Bengalisch|bengali|bengalí|ベンガル語|бенгальский
pes_Arab|Persian|波斯语|Persisch|persan|persa|ペルシア語|персидский
fin_Latn|Finnish|芬兰语|Finnisch|finnois|finés|フィンランド語|финский
hun_Latn|Hungarian|匈牙利语|Ungarisch|hongrois|húngaro|ハンガリー語|венгерский
"""

_NAMES: dict[str, dict[str, str]] = {lang: {} for lang in INSTRUCTION_LANGS}
for _row in _TABLE.strip().splitlines():
    _code, *_cells = _row.split("|")
    for _lang, _cell in zip(INSTRUCTION_LANGS, _cells, strict=True):
        _NAMES[_lang][_code] = _cell

# How a list of quoted terms reads: (open quote, close quote, "and").
_QUOTING = {
    "eng_Latn": ("“", "”", " and "),
    "zho_Hans": ("“", "”", "和"),
    "deu_Latn": ("„", "“", " und "),
    "fra_Latn": ("« ", " »", " et "),
    "spa_Latn": ("«", "»", " y "),
    "jpn_Jpan": ("「", "」", "と"),
    "rus_Cyrl": ("«", "»", " и "),
}


@lru_cache(maxsize=None)
def language_name(code: str, instruction_lang: str) -> str:
    """How `code` is named in an instruction written in `instruction_lang`."""
    name = _NAMES[instruction_lang].get(code)
    if name is not None:
        return name
    from bayling.languages import UnknownLanguage, resolve

    try:
        name = resolve(code).name
    except UnknownLanguage:
        name = code
    return name


def join_terms(terms: list[str] | tuple[str, ...], instruction_lang: str) -> str:
    """Quoted terms joined the way the instruction language writes a short list."""
    left, right, conj = _QUOTING[instruction_lang]
    return conj.join(f"{left}{t}{right}" for t in terms)
