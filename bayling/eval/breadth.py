"""Breadth: English to and from every FLORES-200 language, the same N sentences each, one system a run.

`run(engine, config)` translates FLORES devtest eng_Latn -> xx and xx -> eng_Latn for every other
language in the folder (203 in FLORES-200): the first `per_direction` lines of each, which are the
same sentences in every language (FLORES is multi-way) and for every system; a base model's
few-shot examples are the first lines of dev. Per direction it scores chrF (sacreBLEU) and the
off-target rate next to the detector's rate on the references themselves: a target the detector
has no reliable label for, or whose own references it recognises less than half of the time, is
marked with the reason and left out of the pooled off-target rate, never counted as a failure.

Cache: translations go through bayling.infer.translate.translate_file into
DIR/<system>.translations.jsonl. Records are appended and fsynced to its `.partial.jsonl` one engine
call at a time, each with a resume key (source, languages, shots, prompt mode, generation settings,
model name and weights hash), so a killed run loses at most the call in flight and a rerun
translates only what has no record with the same key: the base's long run is paid once, and a run
over fewer languages keeps the others' records. Across directions, requests are handed to the
engine longest first, `requests_per_call` at a time (the transformers engine's continuous batching
takes few-shot prompts too: their one stop string, a newline, ends a row by token id).

`compare(base, system)` gives the numbers issue 45's "Done when" asks for: pooled chrF per side with
a paired bootstrap (translation.paired_significance), directions more than 3 chrF below the base,
pooled en->xx off-target against the base's; `write_comparison` adds a markdown table and a plot
grouped by script (languages.tsv) and family (languages.FAMILIES).

Result (DIR/<system>.json): task "breadth", system, model, prompt, corpus, split, per_direction,
shots, max_new_tokens, pivot; chrf_en_xx / chrf_xx_en (chrF pooled over that side's sentences) and
off_target_en_xx / off_target_xx_en (pooled over counted directions), with the references' rate;
`directions`: {"eng_Latn-fra_Latn": {lang, side, script, family, n, chrf, off_target_rate,
off_target, judged, ref_off_target_rate, counted, unjudged_reason, detected_instead}};
`breakdown` (direction, script, family) for `bayling eval report`; `examples`: [{id, direction,
src, ref, hyp}], in direction order.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from bayling.eval.common import EvalError, mean

__all__ = ["BELOW", "BreadthConfig", "cache_path", "compare", "comparison_markdown", "directions", "load_result",
           "pick_sentences", "plot_comparison", "run", "score", "summary_block", "summary_text", "write_comparison"]

PIVOT = "eng_Latn"
SIDES = ("en-xx", "xx-en")
BELOW = 3.0  # chrF: a direction this far under the base counts as worse (issue 45: at most 10% of them)
REF_RECOGNISED_MIN = 0.5  # the detector must find at least this share of a target's references in it


@dataclass
class BreadthConfig:
    """What `run` translates and where it caches. `corpus`: "flores" (../shared/data/flores200) or a
    FLORES-200 folder; `langs`: "all" or codes/names; `system`: the name of the result and cache."""

    corpus: str = "flores"
    split: str = "devtest"
    per_direction: int = 20
    langs: str | Sequence[str] = "all"
    prompt: str = "few-shot"
    shots: int = 3
    shots_split: str = "dev"
    max_new_tokens: int = 128
    out: str = "breadth"
    system: str = "base"
    model: str | None = None  # recorded in the result
    weights: str | None = None  # a hash of the weights (ModelSpec.fingerprint): in every resume key
    pivot: str = PIVOT
    progress: bool = True
    language_guard: int = 0  # off-target answers drawn again up to N times (bayling.infer.translate)


def _root(config: BreadthConfig) -> str:
    from bayling.corpus.flores import is_flores_dir
    from bayling.resources import named_corpus

    root = named_corpus(config.corpus)
    if root is None:
        raise EvalError(f"corpus {config.corpus!r}: ../shared/data/flores200 is absent here; pass --corpus PATH "
                        "(a FLORES-200 folder with dev/ and devtest/)")
    if not is_flores_dir(root):
        raise EvalError(f"{root}: not a FLORES-200 folder (<split>/<code>.<split> files)")
    return root


def _languages(config: BreadthConfig, root: str) -> list[str]:
    from bayling.corpus import flores_languages
    from bayling.languages import UnknownLanguage, resolve

    have = flores_languages(root, config.split)
    pivot = resolve(config.pivot).code
    if pivot not in have:
        raise EvalError(f"{root}: no {pivot}.{config.split} file")
    if isinstance(config.langs, str) and config.langs.strip().lower() == "all":
        return [c for c in have if c != pivot]
    names = [x.strip() for x in config.langs.split(",")] if isinstance(config.langs, str) else list(config.langs)
    codes = []
    for name in filter(None, names):
        try:
            code = resolve(name).code
        except UnknownLanguage as e:
            raise EvalError(f"--langs: {e}") from None
        if code not in have:
            raise EvalError(f"--langs: {root} has no {code}.{config.split}")
        if code != pivot and code not in codes:
            codes.append(code)
    if not codes:
        raise EvalError(f"--langs {config.langs!r}: no language besides {pivot}")
    return codes


def directions(config: BreadthConfig) -> list[str]:
    """pivot -> xx for every language, then xx -> pivot ("eng_Latn-fra_Latn", ...)."""
    from bayling.languages import resolve

    langs, pivot = _languages(config, _root(config)), resolve(config.pivot).code
    return [f"{pivot}-{c}" for c in langs] + [f"{c}-{pivot}" for c in langs]


def pick_sentences(config: BreadthConfig) -> tuple[list, list]:
    """(test pairs, shot pairs): the first `per_direction` lines of the split in every direction —
    the same sentences for every system — and, for a few-shot prompt, the first lines of dev."""
    from bayling.eval.translation import TranslationConfig, pick

    shots = config.shots if config.prompt == "few-shot" else 0
    test, shot_pairs, _ = pick(TranslationConfig(corpus=_root(config), directions=directions(config),
                                                 split=config.split, limit=config.per_direction, shots=shots,
                                                 shots_split=config.shots_split))
    return test, shot_pairs


def _id(pair: Any) -> str:
    return f"{pair.src_lang}-{pair.tgt_lang}:{pair.origin.rsplit(':', 1)[1]}"


def cache_path(config: BreadthConfig) -> Path:
    return Path(config.out) / f"{config.system}.translations.jsonl"


def _translate(engine: Any, pairs: Sequence[Any], shots: Sequence[Any], config: BreadthConfig) -> tuple[list[str], Any]:
    """Every pair's translation, through the resumable cache: (hyps in pair order, TranslateSummary)."""
    from bayling.eval.common import progress_bar, read_records
    from bayling.eval.translation import shot_pool
    from bayling.infer.engine import GenerationConfig
    from bayling.infer.translate import PROMPT_MODES, Item, translate_file

    if config.prompt not in PROMPT_MODES:
        raise EvalError(f"--prompt {config.prompt!r}: use few-shot (base models) or chat (tuned models)")
    items = [Item(_id(p), p.src, p.src_lang, p.tgt_lang, p.tgt) for p in pairs]
    cache = cache_path(config)
    with progress_bar(config.progress, len(items), f"{config.system}: translating") as bar:
        summary = translate_file(engine, items, cache, mode=config.prompt,
                                 config=GenerationConfig(max_new_tokens=config.max_new_tokens),
                                 batch_size=max(1, int(engine.requests_per_call)),
                                 on_progress=lambda done, total: bar.set(done),
                                 shot_pool=shot_pool(shots, config.shots), longest_first=True, keep_earlier=True,
                                 key_extra=config.weights, language_guard=config.language_guard)
    hyp = {rec["id"]: rec.get("hyp", "") for _, rec in read_records(cache)}
    return [" ".join(hyp[it.id].strip().splitlines()) for it in items], summary


def _side(direction: str, pivot: str) -> str:
    return "en-xx" if direction.startswith(pivot + "-") else "xx-en"


def score(pairs: Sequence[Any], hyps: Sequence[str], pivot: str = PIVOT) -> dict[str, Any]:
    """Per-direction chrF and off-target (with the references' rate), pooled numbers per side, groups."""
    from bayling.eval.offtarget import offtarget_rate, unjudgeable_reason
    from bayling.eval.translation import score_directions, score_translation
    from bayling.languages import family_of, resolve

    scored = score_directions(pairs, hyps, metrics=("chrf",))
    per = scored.get("directions") or {scored["direction"]: scored}
    by_dir: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(pairs):
        by_dir[f"{p.src_lang}-{p.tgt_lang}"].append(i)
    # The same lines in every direction: the references into a language are judged once (English: 1 of 203 times).
    refs_by_tgt: dict[str, list[str]] = {}
    for idx in by_dir.values():
        refs_by_tgt.setdefault(pairs[idx[0]].tgt_lang, [pairs[i].tgt for i in idx])
    ref_rate = {t: offtarget_rate(refs, t) for t, refs in refs_by_tgt.items()}

    out: dict[str, dict] = {}
    for name, idx in by_dir.items():
        src, tgt = pairs[idx[0]].src_lang, pairs[idx[0]].tgt_lang
        other = tgt if src == pivot else src
        lang = resolve(other)
        ot = per[name]["offtarget"]
        entry = ot["breakdown"]["language"][tgt]
        ref = ref_rate[tgt]
        reason = unjudgeable_reason(tgt)
        if reason is None and ref["judged"] and ref["off_target"] / ref["judged"] > 1 - REF_RECOGNISED_MIN:
            reason = f"the detector recognises only {ref['judged'] - ref['off_target']}/{ref['judged']} of the references"
        out[name] = {
            "lang": other, "name": lang.name, "side": _side(name, pivot), "script": lang.script,
            "family": family_of(lang), "n": len(idx), "chrf": per[name]["chrf"],
            "off_target_rate": ot["off_target_rate"], "off_target": entry["off_target"], "judged": entry["judged"],
            "ref_off_target_rate": ref["off_target_rate"], "ref_off_target": ref["off_target"], "ref_judged": ref["judged"],
            "counted": reason is None, "unjudged_reason": reason, "detected_instead": entry["detected_instead"],
        }
    result: dict[str, Any] = {}
    for side in SIDES:
        names = [d for d in out if out[d]["side"] == side]
        idx = [i for d in names for i in by_dir[d]]
        if not idx:
            continue
        key = side.replace("-", "_")
        pooled = score_translation([hyps[i] for i in idx], [pairs[i].tgt for i in idx], metrics=("chrf",),
                                   offtarget=False)
        result[f"chrf_{key}"] = pooled["chrf"]
        result["signature"] = pooled["signatures"]["chrf"]
        result[f"chrf_{key}_macro"] = mean(out[d]["chrf"] for d in names)
        counted = [out[d] for d in names if out[d]["counted"]]
        judged = sum(d["judged"] for d in counted)
        result[f"off_target_{key}"] = sum(d["off_target"] for d in counted) / judged if judged else None
        ref_judged = sum(d["ref_judged"] for d in counted)
        result[f"ref_off_target_{key}"] = sum(d["ref_off_target"] for d in counted) / ref_judged if ref_judged else None
        result[f"directions_{key}"] = len(names)
        result[f"counted_{key}"] = len(counted)
    result["directions"] = out
    result["breakdown"] = _breakdown(out)
    return result


def _breakdown(per: dict[str, dict]) -> dict[str, dict]:
    """What `bayling eval report` draws: per direction, and per script and family (mean over languages)."""
    direction = {d: {k: e[k] for k in ("chrf", "off_target_rate", "ref_off_target_rate")} for d, e in per.items()}
    groups: dict[str, dict] = {}
    for dim in ("script", "family"):
        rows: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
        for e in per.values():
            rows[e[dim]][e["side"]].append(e["chrf"])
        groups[dim] = {g: {"chrf_en_xx": mean(r["en-xx"]), "chrf_xx_en": mean(r["xx-en"]),
                           "n": max(len(r["en-xx"]), len(r["xx-en"]))} for g, r in _ordered(rows)}
    return {"direction": direction, **groups}


def _ordered(rows: dict) -> list:
    return sorted(rows.items(), key=lambda kv: (-max(len(v) for v in kv[1].values()), kv[0] == "other", kv[0]))


def run(engine: Any, config: BreadthConfig) -> dict[str, Any]:
    """Translate (cached, resumable) and score one system; writes DIR/<system>.json and returns it."""
    from bayling.eval.common import write_json
    from bayling.eval.translation import failure_rates
    from bayling.languages import resolve

    pivot = resolve(config.pivot).code
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", config.system):
        raise EvalError(f"--system-name {config.system!r}: it names files, so letters, digits and . _ + - only")
    if config.per_direction < 1:
        raise EvalError(f"--per-direction {config.per_direction}: at least 1 sentence per direction")
    pairs, shots = pick_sentences(config)
    started = time.monotonic()
    hyps, summary = _translate(engine, pairs, shots, config)
    seconds = time.monotonic() - started
    result: dict[str, Any] = {
        "task": "breadth", "system": config.system, "model": config.model or getattr(engine, "name", None),
        "weights": config.weights, "prompt": config.prompt, "corpus": str(config.corpus), "split": config.split,
        "per_direction": config.per_direction, "shots": config.shots if config.prompt == "few-shot" else 0,
        "shots_split": config.shots_split, "max_new_tokens": config.max_new_tokens, "pivot": pivot,
        "languages": len({p.src_lang for p in pairs} | {p.tgt_lang for p in pairs}) - 1, "sentences": len(pairs),
        "translated": summary.translated, "resumed": summary.resumed, "translate_seconds": round(seconds, 1),
        "cache": str(cache_path(config)),
    }
    result.update(score(pairs, hyps, pivot))
    result.update(failure_rates(engine, pairs, hyps, config.max_new_tokens))  # runaways, source copies
    result["examples"] = [{"id": _id(p), "direction": f"{p.src_lang}-{p.tgt_lang}", "src": p.src, "ref": p.tgt,
                           "hyp": h} for p, h in zip(pairs, hyps)]
    write_json(Path(config.out) / f"{config.system}.json", result)
    return result


def summary_text(result: dict[str, Any], path: str | None = None) -> str:
    """A few lines on one system's run: pooled chrF and off-target per side, and the run's pace."""
    def num(v: Any, fmt: str) -> str:
        return "–" if v is None else format(v, fmt)

    lines = [(f"breadth: {result['system']} ({result['prompt']}) on {result['corpus']} {result['split']}: "
              f"{result['languages']} languages x 2 directions x {result['per_direction']} sentences")]
    for side in SIDES:
        k = side.replace("-", "_")
        if f"chrf_{k}" in result:
            lines.append(f"  {side.replace('-', '->')}: pooled chrF {result[f'chrf_{k}']:.1f} | off-target "
                         f"{num(result[f'off_target_{k}'], '.3f')} over {result[f'counted_{k}']}/"
                         f"{result[f'directions_{k}']} judged directions (references: "
                         f"{num(result[f'ref_off_target_{k}'], '.3f')})")
    rates = [f"{name} {result[k]:.1%}" for k, name in (("max_new_tokens_rate", "ran to max_new_tokens"),
                                                        ("source_copy_rate", "copied the source"))
             if result.get(k) is not None]
    if rates:
        lines.append("  " + ", ".join(rates))
    pace = ""
    if result["translated"] and result["translate_seconds"]:
        pace = f" ({result['translated'] / result['translate_seconds']:.2f} sentences/s)"
    lines.append(f"  translated {result['translated']}, reused {result['resumed']} from the cache, "
                 f"{result['translate_seconds']:.0f} s{pace}")
    if path:
        lines.append(f"  result: {path}  (compare: bayling eval breadth-compare BASE.json {path})")
    return "\n".join(lines)


# --- two systems ---------------------------------------------------------------------------------

def load_result(path: str | Path) -> dict[str, Any]:
    from bayling.eval.report import load_results

    (_, result), = load_results([str(path)])
    if result.get("task") != "breadth" or "examples" not in result:
        raise EvalError(f"{path}: not a `bayling eval breadth` result (task {result.get('task')!r})")
    return result


def compare(base: dict[str, Any], system: dict[str, Any], n_bootstrap: int = 1000) -> dict[str, Any]:
    """The system against the base on the directions both scored, on the same sentences (refused otherwise)."""
    from bayling.eval.translation import paired_significance

    pivot = base.get("pivot", PIVOT)
    ex_a, ex_b = _by_direction(base), _by_direction(system)
    shared = [d for d in base["directions"] if d in system["directions"]]
    if not shared:
        raise EvalError(f"{base['system']} and {system['system']} share no direction")
    for d in shared:
        ids_a, ids_b = [(e["id"], e["ref"]) for e in ex_a[d]], [(e["id"], e["ref"]) for e in ex_b[d]]
        if ids_a != ids_b:
            raise EvalError(f"{d}: {base['system']} and {system['system']} were scored on different sentences "
                            f"({len(ids_a)} vs {len(ids_b)}); rerun one with the same --corpus/--split/--per-direction")
    notes = []
    only = sorted(set(base["directions"]) ^ set(system["directions"]))
    if only:
        notes.append(f"{len(only)} directions scored by only one system are left out (e.g. {only[0]})")
    out: dict[str, Any] = {"base": base["system"], "system": system["system"], "pivot": pivot,
                           "corpus": base.get("corpus"), "split": base.get("split"),
                           "per_direction": base.get("per_direction"), "directions": len(shared), "sides": {}}
    rows: dict[str, dict] = {}
    for d in shared:
        a, b = base["directions"][d], system["directions"][d]
        row = rows.setdefault(a["lang"], {k: a[k] for k in ("lang", "name", "script", "family")})
        row[a["side"]] = {"base": a["chrf"], "system": b["chrf"], "delta": b["chrf"] - a["chrf"],
                          "base_off_target": a["off_target_rate"], "system_off_target": b["off_target_rate"],
                          "ref_off_target": a["ref_off_target_rate"], "counted": a["counted"],
                          "unjudged_reason": a["unjudged_reason"]}
    for side in SIDES:
        names = [d for d in shared if base["directions"][d]["side"] == side]
        if not names:
            continue
        refs = [e["ref"] for d in names for e in ex_a[d]]
        test = paired_significance([e["hyp"] for d in names for e in ex_a[d]],
                                   [e["hyp"] for d in names for e in ex_b[d]], refs,
                                   method="bs", n=n_bootstrap, metrics=("chrf",))["metrics"]["chrf"]
        counted = [d for d in names if base["directions"][d]["counted"]]
        ot_a, ot_b = _pooled_off_target(base, counted), _pooled_off_target(system, counted)
        below = [d for d in names if system["directions"][d]["chrf"] - base["directions"][d]["chrf"] < -BELOW]
        out["sides"][side] = {
            "directions": len(names), "sentences": len(refs),
            "chrf_base": test["baseline"], "chrf_system": test["system"], "delta": test["delta"],
            "p_value": test["p_value"], "significant": test["significant"], "bootstrap": n_bootstrap,
            "signature": test["signature"], "below": len(below), "below_directions": below,
            "off_target_base": ot_a, "off_target_system": ot_b, "counted": len(counted),
            "unjudged": _reasons(base["directions"][d]["unjudged_reason"] for d in names if d not in counted),
        }
    below_all = sum(s["below"] for s in out["sides"].values())
    out["below"], out["below_share"] = below_all, below_all / len(shared)
    out["goals"] = _goals(out)
    out["groups"] = {dim: _groups(rows.values(), dim) for dim in ("script", "family")}
    out["rows"] = _sorted_rows(rows.values())
    if notes:
        out["notes"] = notes
    return out


def _pooled_off_target(result: dict, directions: Sequence[str]) -> float | None:
    judged = sum(result["directions"][d]["judged"] for d in directions)
    return sum(result["directions"][d]["off_target"] for d in directions) / judged if judged else None


def _by_direction(result: dict) -> dict[str, list[dict]]:
    by: dict[str, list[dict]] = defaultdict(list)
    for e in result["examples"]:
        by[e["direction"]].append(e)
    return by


def _short(reason: str) -> str:
    """A table cell's word for why a direction's off-target rate is not counted."""
    if reason.startswith("the detector recognises only"):
        return "references " + reason.split()[4] + " recognised"
    return "no detector label" if "no label" in reason else "detector unreliable" if "unreliable" in reason else reason


def _reasons(reasons: Any) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for r in reasons:
        counts["references not recognised" if r.startswith("the detector recognises only") else _short(r)] += 1
    return dict(counts)


def _goals(cmp: dict) -> dict[str, bool | None]:
    """Issue 45's "Done when" on these numbers (the 14 mini directions and quickstart are checked elsewhere)."""
    sides = cmp["sides"]

    def better(side: str) -> bool | None:
        s = sides.get(side)
        return None if s is None else bool(s["delta"] > 0 and s["significant"])

    en = sides.get("en-xx")
    halved = None
    if en and en["off_target_base"] is not None and en["off_target_system"] is not None:
        halved = en["off_target_system"] <= 0.5 * en["off_target_base"]
    return {"en_xx_better": better("en-xx"), "xx_en_better": better("xx-en"),
            "at_most_10pct_below": cmp["below_share"] <= 0.10, "en_xx_off_target_halved": halved}


def _group_key(row: dict) -> tuple:
    return (row["script"], row["family"] == "other", row["family"], row["lang"])


def _sorted_rows(rows: Any) -> list[dict]:
    """Languages grouped by script (largest group first), then family, then code."""
    rows = list(rows)
    size: dict[str, int] = defaultdict(int)
    for r in rows:
        size[r["script"]] += 1
    return sorted(rows, key=lambda r: (-size[r["script"]], *_group_key(r)))


def _groups(rows: Any, dim: str) -> list[dict]:
    by: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by[r[dim]].append(r)
    out = []
    for g, members in by.items():
        entry: dict[str, Any] = {dim: g, "languages": len(members)}
        for side in SIDES:
            deltas = [m[side]["delta"] for m in members if side in m]
            entry[f"delta_{side.replace('-', '_')}"] = mean(deltas)
            entry[f"below_{side.replace('-', '_')}"] = sum(d < -BELOW for d in deltas)
        out.append(entry)
    return sorted(out, key=lambda e: (-e["languages"], e[dim] == "other", e[dim]))


def _f(v: Any, fmt: str = ".1f", signed: bool = False) -> str:
    if v is None:
        return "–"
    return format(v, ("+" if signed else "") + fmt)


def summary_block(cmp: dict) -> str:
    """The acceptance numbers, one line each, with the goal each is held to."""
    def mark(ok: bool | None) -> str:
        return "n/a" if ok is None else "PASS" if ok else "FAIL"

    goals, sides = cmp["goals"], cmp["sides"]
    lines = [(f"== breadth: {cmp['system']} vs {cmp['base']} ({cmp['corpus']} {cmp['split']}, {cmp['directions']} "
              f"directions, {cmp['per_direction']} sentences each) ==")]
    for side, goal in (("en-xx", "en_xx_better"), ("xx-en", "xx_en_better")):
        s = sides.get(side)
        if s:
            lines.append(f"{side.replace('-', '->')} pooled chrF: {cmp['base']} {s['chrf_base']:.1f}, {cmp['system']} "
                         f"{s['chrf_system']:.1f} ({s['delta']:+.1f}), paired bootstrap p = {_f(s['p_value'], '.3f')} "
                         f"over {s['sentences']} sentences  [goal: better with p < 0.05: {mark(goals[goal])}]")
    per_side = ", ".join(f"{side.replace('-', '->')} {s['below']}" for side, s in sides.items())
    lines.append(f"directions more than {BELOW:g} chrF below {cmp['base']}: {cmp['below']}/{cmp['directions']} "
                 f"({cmp['below_share']:.1%}; {per_side})  [goal: at most 10%: {mark(goals['at_most_10pct_below'])}]")
    en = sides.get("en-xx")
    if en:
        ratio = (f", {en['off_target_system'] / en['off_target_base']:.2f}x" if en["off_target_base"]
                 and en["off_target_system"] is not None else "")
        lines.append(f"en->xx off-target (pooled over {en['counted']}/{en['directions']} judged directions): "
                     f"{cmp['base']} {_f(en['off_target_base'], '.3f')}, {cmp['system']} "
                     f"{_f(en['off_target_system'], '.3f')}{ratio}  [goal: at most half: "
                     f"{mark(goals['en_xx_off_target_halved'])}]")
        if en["unjudged"]:
            lines.append("  not judged (marked, not counted): " + ", ".join(f"{n} {r}" for r, n in en["unjudged"].items()))
    lines += [f"note: {n}" for n in cmp.get("notes", [])]
    return "\n".join(lines)


def comparison_markdown(cmp: dict) -> str:
    """The summary block, tables by script and family, and every language grouped by script."""
    a, b = cmp["base"], cmp["system"]
    out = [f"# Breadth: {b} vs {a}", "", "```", summary_block(cmp), "```", ""]
    for dim in ("script", "family"):
        out += [f"## By {dim} (mean Δ chrF over languages; directions below −{BELOW:g})", "",
                f"| {dim} | languages | Δ en→xx | below | Δ xx→en | below |", "|---|---|---|---|---|---|"]
        out += [f"| {g[dim]} | {g['languages']} | {_f(g['delta_en_xx'], '.1f', True)} | {g['below_en_xx']} | "
                f"{_f(g['delta_xx_en'], '.1f', True)} | {g['below_xx_en']} |" for g in cmp["groups"][dim]]
        out.append("")
    out += [f"## Every language (chrF {a} → {b}; off-target {a} / {b} / references; – : not judged)", ""]
    script = None
    for r in cmp["rows"]:
        if r["script"] != script:
            script = r["script"]
            out += ["", f"### {script}", "", "| language | family | en→xx chrF | Δ | en→xx off-target | xx→en chrF | Δ |",
                    "|---|---|---|---|---|---|---|"]
        cells = [f"{r['lang']} {r['name']}", r["family"]]
        for side in SIDES:
            s = r.get(side)
            cells += ["", ""] if s is None else [f"{s['base']:.1f} → {s['system']:.1f}",
                                                 f"{s['delta']:+.1f}" + (" **▼**" if s["delta"] < -BELOW else "")]
            if side == "en-xx":
                cells.append("" if s is None else f"– ({_short(s['unjudged_reason'])})" if not s["counted"] else
                             f"{_f(s['base_off_target'], '.2f')} / {_f(s['system_off_target'], '.2f')} / "
                             f"{_f(s['ref_off_target'], '.2f')}")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def plot_comparison(cmp: dict, path: str | Path) -> None:
    """Δ chrF per language (en→xx above, xx→en below), grouped by script, coloured by family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayling.io import atomic_path

    rows = cmp["rows"]
    families = [g["family"] for g in cmp["groups"]["family"]]
    palette = [c for i, c in enumerate(plt.get_cmap("tab20").colors) if i not in (14, 15)]  # greys: "other"
    palette += list(plt.get_cmap("tab20b").colors)
    named = [f for f in families if f != "other"]
    color = {"other": "0.6", **{f: palette[i % len(palette)] for i, f in enumerate(named)}}
    fig, axes = plt.subplots(2, 1, figsize=(max(8.0, min(0.12 * len(rows) + 3, 30)), 8), sharex=True)
    xs = range(len(rows))
    for ax, side in zip(axes, SIDES):
        s = cmp["sides"].get(side)
        vals = [r[side]["delta"] if side in r else 0.0 for r in rows]
        ax.bar(xs, vals, color=[color[r["family"]] for r in rows], width=0.85)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.axhline(-BELOW, color="red", linewidth=0.6, linestyle="--")
        title = f"{side.replace('-', '→')}: Δ chrF ({cmp['system']} − {cmp['base']})"
        if s:
            title += (f"; pooled {s['chrf_base']:.1f} → {s['chrf_system']:.1f}, p = {_f(s['p_value'], '.3f')}; "
                      f"{s['below']} of {s['directions']} below −{BELOW:g}")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("Δ chrF")
        start = 0
        for i in range(1, len(rows) + 1):  # script groups: a separator and a label
            if i == len(rows) or rows[i]["script"] != rows[start]["script"]:
                if i < len(rows):
                    ax.axvline(i - 0.5, color="0.75", linewidth=0.5)
                ax.text((start + i - 1) / 2, 1.0, rows[start]["script"], transform=ax.get_xaxis_transform(),
                        ha="center", va="bottom", fontsize=6, rotation=90 if i - start < 4 else 0)
                start = i
    axes[1].set_xticks(list(xs))
    axes[1].set_xticklabels([r["lang"].split("_")[0] for r in rows], rotation=90, fontsize=5)
    fig.tight_layout()
    fig.legend(handles=[matplotlib.patches.Patch(color=color[f], label=f) for f in families], title="family",
               fontsize=7, ncol=min(len(families), 11), loc="upper center", bbox_to_anchor=(0.5, 0.0))
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight")
    plt.close(fig)


def write_comparison(base_path: str | Path, system_path: str | Path, out: str | Path | None = None) -> tuple[str, dict]:
    """Compare two results; write OUT.md, OUT.png and OUT.json (default: <base>-vs-<system> beside
    the system's result). Returns (summary block, comparison)."""
    from bayling.io import atomic_write_json, atomic_write_text

    base, system = load_result(base_path), load_result(system_path)
    cmp = compare(base, system)
    stem = Path(out) if out else Path(system_path).with_name(f"{base['system']}-vs-{system['system']}")
    stem.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stem.with_suffix(".md"), comparison_markdown(cmp))
    atomic_write_json(stem.with_suffix(".json"), cmp)
    plot_comparison(cmp, stem.with_suffix(".png"))
    cmp["written"] = [str(stem.with_suffix(x)) for x in (".md", ".png", ".json")]
    return summary_block(cmp), cmp

