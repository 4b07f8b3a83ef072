"""Constrained (lexically constrained) translation: are the required terms in the output?

Reads BayLing's format — one JSON object a line, {"src", "tgt", "constraint": [...]} — and its
hypothesis files, which add the output as "hypo" to the same record. Any corpus whose records
carry a list of terms works the same way (`constraint` or `constraints`).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any, Sequence

from bayling.eval.common import EvalError, check_aligned, read_records
from bayling.infer.prompts import constrained_instruction  # the request a model gets (one home: infer.prompts)

__all__ = [
    "ConstrainedItem",
    "HYP_FIELDS",
    "constrained_instruction",
    "includes",
    "read_constrained",
    "score_constraints",
]

HYP_FIELDS = ("hypo", "hyp", "output", "prediction", "translation")  # BayLing's files use "hypo"


@dataclass(frozen=True)
class ConstrainedItem:
    src: str
    tgt: str | None
    constraints: tuple[str, ...]
    origin: str  # file:line
    hyp: str | None = None
    src_lang: str | None = None
    tgt_lang: str | None = None
    extra: dict = field(default_factory=dict, compare=False)


def read_constrained(path: str, *, hyp_field: str | None = None, src_lang: str | None = None,
                     tgt_lang: str | None = None) -> list[ConstrainedItem]:
    """Records of a constrained-translation JSONL file; the hypothesis is read from `hyp_field`
    or the first of HYP_FIELDS present."""
    items = []
    for where, r in read_records(path):
        terms = r.get("constraint", r.get("constraints"))
        if terms is None:
            raise EvalError(f"{where}: no 'constraint' list (record has: {', '.join(r) or 'nothing'})")
        if isinstance(terms, str):
            terms = [terms]
        if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
            raise EvalError(f"{where}: 'constraint' should be a list of strings")
        if not isinstance(r.get("src"), str):
            raise EvalError(f"{where}: missing string field 'src'")
        hyp = None
        names = (hyp_field,) if hyp_field else HYP_FIELDS
        for name in names:
            if name in r:
                if not isinstance(r[name], str):
                    raise EvalError(f"{where}: field {name!r} should be a string")
                hyp = r[name]
                break
        else:
            if hyp_field:
                raise EvalError(f"{where}: missing hypothesis field {hyp_field!r}")
        items.append(ConstrainedItem(
            src=r["src"], tgt=r.get("tgt"), constraints=tuple(t for t in terms if t.strip()), origin=where,
            hyp=hyp, src_lang=r.get("src_lang") or src_lang, tgt_lang=r.get("tgt_lang") or tgt_lang,
        ))
    if not items:
        raise EvalError(f"{path}: no records")
    return items


def _loose(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(text.split())


def includes(hyp: str, term: str, loose: bool = False) -> bool:
    """Is `term` in `hyp`? Exact substring (as BayLing scores it); `loose` also ignores case,
    width and whitespace ("App 与" matches "App与")."""
    return _loose(term) in _loose(hyp) if loose else term in hyp


def score_constraints(
    hyps: Sequence[str],
    constraints: Sequence[Sequence[str]],
    refs: Sequence[str] | None = None,
    tgt_lang: str | None = None,
    *,
    loose: bool = False,
    srcs: Sequence[str] | None = None,
    **translation_kw: Any,
) -> dict[str, Any]:
    """Term inclusion rate (matched terms / all terms), sentence inclusion rate (outputs holding
    every term), both exact and loose; plus translation scores when references are given."""
    named = [("hypotheses", list(hyps)), ("constraints", list(constraints))]
    if refs is not None:
        named.append(("references", list(refs)))
    check_aligned(named)
    terms = matched = full = matched_loose = full_loose = with_terms = 0
    per_segment = []
    for hyp, cons in zip(hyps, constraints):
        hit = [includes(hyp, t) for t in cons]
        hit_loose = [includes(hyp, t, True) for t in cons]
        terms += len(cons)
        matched += sum(hit)
        matched_loose += sum(hit_loose)
        if cons:
            with_terms += 1
            full += all(hit)
            full_loose += all(hit_loose)
        per_segment.append(sum(hit_loose if loose else hit))
    result: dict[str, Any] = {
        "task": "constrained",
        "n": len(hyps),
        "terms": terms,
        "term_inclusion_rate": matched / terms if terms else None,
        "sentence_inclusion_rate": full / with_terms if with_terms else None,
        "term_inclusion_rate_loose": matched_loose / terms if terms else None,
        "sentence_inclusion_rate_loose": full_loose / with_terms if with_terms else None,
        "matching": "loose" if loose else "exact",
    }
    if loose:  # the headline follows the chosen matching
        result["inclusion_rate"] = result["term_inclusion_rate_loose"]
    else:
        result["inclusion_rate"] = result["term_inclusion_rate"]
    if refs is not None:
        from bayling.eval.translation import score_translation

        result["translation"] = score_translation(hyps, list(refs), srcs, tgt_lang, **translation_kw)
        for k in ("bleu", "chrf", "off_target_rate"):
            result[k] = result["translation"].get(k)
    return result
