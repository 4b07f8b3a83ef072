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
    "ConstrainedConfig",
    "ConstrainedItem",
    "HYP_FIELDS",
    "constrained_instruction",
    "includes",
    "read_constrained",
    "run",
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


@dataclass
class ConstrainedConfig:
    """A constrained-translation JSONL (`data`) and how to get and score its outputs: generated by
    the engine, given as `outputs` (aligned), or read from each record (`hyp_field`)."""

    data: str
    src_lang: str | None = None
    tgt_lang: str | None = None
    hyp_field: str | None = None
    outputs: str | Sequence[str] | None = None  # a file (one output a line) or the outputs
    loose: bool = False
    limit: int | None = None
    max_new_tokens: int = 256
    progress: bool = True


def run(engine: Any, config: ConstrainedConfig) -> dict[str, Any]:
    """Inclusion rates (and translation scores against the references) for the config's records;
    with an engine the outputs are generated first and `examples` holds them."""
    items = read_constrained(config.data, hyp_field=config.hyp_field, src_lang=config.src_lang,
                             tgt_lang=config.tgt_lang)[: config.limit]
    examples = None
    if engine is not None:
        from bayling.eval.engines import chat_turns
        from bayling.infer.engine import GenerationConfig
        from bayling.languages import resolve

        if not (config.src_lang and config.tgt_lang):
            raise EvalError(f"{config.data}: say the languages (--src-lang, --tgt-lang) to build the prompts")
        s, t = resolve(config.src_lang).name, resolve(config.tgt_lang).name
        asks = [[constrained_instruction(i.src, s, t, i.constraints)] for i in items]
        hyps = [r for (r,) in chat_turns(engine, asks, GenerationConfig(max_new_tokens=config.max_new_tokens),
                                         progress=config.progress, label="translating")]
        examples = [{"src": i.src, "tgt": i.tgt, "constraint": list(i.constraints), "hypo": h} for i, h in zip(items, hyps)]
    elif config.outputs is not None:
        from bayling.eval.common import read_lines

        named = isinstance(config.outputs, str)
        hyps = read_lines(config.outputs) if named else list(config.outputs)
        hyps = hyps[: len(items)] if config.limit else hyps
        check_aligned([(config.data, items), (config.outputs if named else "outputs", hyps)])
    else:
        missing = [i.origin for i in items if i.hyp is None]
        if missing:
            raise EvalError(f"{missing[0]}: no output field (hypo/hyp/output); give --hyp, --hyp-field or --model")
        hyps = [i.hyp or "" for i in items]
    refs = [i.tgt or "" for i in items] if all(i.tgt for i in items) else None
    result = score_constraints(hyps, [list(i.constraints) for i in items], refs, config.tgt_lang, loose=config.loose,
                               bootstrap=0)
    result.update(data=config.data, src_lang=config.src_lang, tgt_lang=config.tgt_lang)
    if examples is not None:
        result["examples"] = examples
    return result
