"""The eval a recipe runs on every system, over the tasks' own `run`s.

Held-out translation (translation.run: chrF/BLEU/off-target per direction, runaway outputs,
source copies) on the same sentences for every system, then a two-turn refinement check
(interactive.run: translate, then "make sure the translation uses X" with X a reference word the
first answer lacks). Optional, off by default: the knowledge battery (knowledge.run, log-likelihood,
local models only) and the answer-language probe (answer_language.run). Also the numbers read
across systems: the detector's floor on the references, paired bootstrap tests of pooled chrF and
McNemar tests of the knowledge battery.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from bayling.eval.answer_language import AnswerLanguageConfig
from bayling.eval.knowledge import KnowledgeConfig

__all__ = ["SuiteConfig", "evaluate_system", "knowledge_markdown", "paired_chrf", "paired_knowledge",
           "pick_sentences", "reference_off_target", "summary"]


@dataclass
class SuiteConfig:
    __pydantic_config__ = {"extra": "forbid"}  # bayling.config.parse_section: an unknown key is an error
    corpus: str = "sample"  # "sample", "flores" (../shared), "newstest:YEAR/xx-yy" or a path
    split: str = "devtest"
    directions: list[str] = field(default_factory=lambda: ["eng_Latn-zho_Hans", "eng_Latn-deu_Latn",
                                                           "zho_Hans-eng_Latn", "deu_Latn-eng_Latn"])
    limit: int = 8  # sentences per direction
    shots_split: str = "dev"
    n_shots: int = 3
    max_new_tokens: int = 96
    systems: list[str] = field(default_factory=lambda: ["base", "tuned"])
    batch_size: int = 32  # batched greedy decoding on 2 cores: 36 tokens/s at batch 8, 111 at 32
    sessions_per_direction: int | None = None  # refinement sessions per direction (default: limit)
    base_url: str | None = None  # score the tuned model through an OpenAI-compatible server (vLLM)
    # Loop guards for every system (bayling.infer.engine.GUARDS), e.g. {no_repeat_ngram_size: 4}; {}: plain greedy.
    decoding: dict[str, Any] = field(default_factory=dict)
    # Off-target first answers drawn again up to N times (bayling.infer.translate's language guard); None: off.
    language_guard: int | None = None
    # The knowledge battery, e.g. {tasks: [arc_easy, piqa, winogrande, boolq], limit: 200}; None: not run.
    knowledge: KnowledgeConfig | None = None
    # The answer-language probe, e.g. {per_language: 3}; None: not run.
    answer_language: AnswerLanguageConfig | None = None


def _translation(cfg: SuiteConfig):
    from bayling.errors import ConfigError
    from bayling.eval.translation import TranslationConfig
    from bayling.resources import named_corpus

    root = named_corpus(cfg.corpus)
    if root is None:
        raise ConfigError(f"eval corpus {cfg.corpus!r} is not available here")
    return TranslationConfig(corpus=root, directions=cfg.directions, split=cfg.split, limit=cfg.limit,
                             shots=cfg.n_shots, shots_split=cfg.shots_split, max_new_tokens=cfg.max_new_tokens,
                             language_guard=cfg.language_guard or 0)


def pick_sentences(cfg: SuiteConfig) -> tuple[list, list]:
    """(test pairs, shot pairs): the same for every system."""
    from bayling.eval.translation import pick

    test, shots, _ = pick(_translation(cfg))
    return test, shots


def evaluate_system(engine: Any, prompt: str, pairs: Sequence[Any], shots: Sequence[Any], cfg: SuiteConfig,
                    seed: int = 0) -> dict[str, Any]:
    """One system's scores on `pairs` ("few-shot" prompt for a base model, "chat" for a tuned one),
    with every hypothesis kept so systems can be compared sentence by sentence."""
    from bayling.eval import interactive, translation

    tr = translation.run(engine, replace(_translation(cfg), prompt=prompt, pairs=pairs, shot_pairs=shots))
    per = cfg.sessions_per_direction
    chosen = list(pairs) if per is None else [p for i, p in enumerate(pairs) if i % cfg.limit < per]
    inter = interactive.run(engine, interactive.InteractiveConfig(
        pairs=chosen, kinds=["translate", "constraint"], seed=seed, missing_terms=True,
        max_new_tokens=cfg.max_new_tokens))
    constraint = inter["breakdown"]["turn_kind"].get("constraint", {})
    directions = tr.get("breakdown", {}).get("direction") or {
        tr["direction"]: {"chrf": tr["chrf"], "bleu": tr["bleu"], "off_target_rate": tr.get("off_target_rate")}}
    directions = {k: dict(d) for k, d in directions.items()}
    for k, rates in _refinement_by_direction(inter["turns_detail"]).items():
        directions.setdefault(k, {}).update(rates)
    out = {
        "chrf": tr["chrf"], "bleu": tr["bleu"], "off_target_rate": tr.get("off_target_rate"),
        "max_new_tokens_rate": tr["max_new_tokens_rate"], "source_copy_rate": tr["source_copy_rate"],
        "constraint_inclusion": constraint.get("constraint_ok_rate"),
        "refinement_on_target": constraint.get("on_target_rate"),
        "refinement_changed": constraint.get("changed_rate"),
        "prompt": prompt,
        "breakdown": {"direction": directions},
        "examples": [{"src": e["src"], "ref": e["tgt"], "hyp": e["hyp"], "direction": f"{e['src_lang']}-{e['tgt_lang']}"}
                     for e in tr["examples"]],
        "refinement_examples": [_refinement_example(s, recs) for s, recs in _by_session(inter)],
    }
    out.update(_extras(engine, cfg))
    if "knowledge" in out and "breakdown" in out["knowledge"]:
        out["breakdown"]["knowledge"] = out["knowledge"]["breakdown"]["task"]
    return out


def _extras(engine: Any, cfg: SuiteConfig) -> dict[str, Any]:
    """The optional tasks' results, with their headline numbers at the top level for the report."""
    from bayling.eval import answer_language, knowledge

    out: dict[str, Any] = {}
    if cfg.knowledge is not None:
        if getattr(engine, "model", None) is None:  # log-likelihoods need the weights, not an endpoint
            out["knowledge"] = {"skipped": "log-likelihood scoring needs a local model"}
        else:
            kn = knowledge.run(engine, replace(cfg.knowledge, progress=False))
            out["knowledge"] = kn
            out["knowledge_english_accuracy"] = kn["english_accuracy"]
            out["knowledge_english_accuracy_norm"] = kn["english_accuracy_norm"]
    if cfg.answer_language is not None:
        al = answer_language.run(engine, replace(cfg.answer_language, progress=False))
        out["answer_language"] = al
        out["answer_language_rate"] = al["on_target_rate"]
    return out


REFINEMENT_RATES = (("constraint_ok", "constraint_inclusion"), ("on_target", "refinement_on_target"),
                    ("changed", "refinement_changed"))


def _refinement_by_direction(turns: list[dict]) -> dict[str, dict[str, float]]:
    """The refinement (constraint) turns' rates per direction, named as the system-level ones."""
    from bayling.eval.common import mean

    by: dict[str, list[dict]] = {}
    for t in turns:
        if t["kind"] == "constraint":
            by.setdefault(f"{t['src_lang']}-{t['tgt_lang']}", []).append(t)
    out = {}
    for d, recs in by.items():
        rates = {name: mean(r.get(check) for r in recs) for check, name in REFINEMENT_RATES}
        out[d] = {"refinement_sessions": len(recs), **{k: v for k, v in rates.items() if v is not None}}
    return out


def _by_session(inter: dict):
    """(transcript, its turns' checks) for every session, in order."""
    turns = iter(inter["turns_detail"])
    for s in inter["transcripts"]:
        yield s, [next(turns) for _ in zip(s["turns"], s["replies"])]


def _refinement_example(session: dict, recs: list[dict]) -> dict:
    """One session as a report shows it: the direction, the turns, the replies and the follow-up's checks."""
    follow = next((r for r in recs if r["kind"] == "constraint"), None)
    ex = {"direction": f"{session.get('src_lang')}-{session['tgt_lang']}", "ref": session.get("ref"),
          "turns": [t["user"] for t in session["turns"]], "replies": session["replies"]}
    if follow is not None:
        ex["terms"] = next(t.get("terms") for t in session["turns"] if t["kind"] == "constraint")
        ex.update({name: follow.get(check) for check, name in REFINEMENT_RATES})
    return ex


def reference_off_target(examples: list[dict]) -> dict:
    """The language detector's floor: the off-target rate it gives the *references* (FLORES
    Swahili and Nepali references are judged off-target ~10% of the time), overall and per direction."""
    from bayling.eval.offtarget import offtarget_rate

    by: dict[str, list[str]] = {}
    for e in examples:
        by.setdefault(e["direction"], []).append(e["ref"])
    per = {d: offtarget_rate(refs, d.partition("-")[2]) for d, refs in by.items()}
    off, judged = sum(o["off_target"] for o in per.values()), sum(o["judged"] for o in per.values())
    return {"off_target_rate": off / judged if judged else None,
            "direction": {d: o["off_target_rate"] for d, o in per.items()}}


def summary(result: dict) -> dict:
    """A system's scores without its examples (nor the knowledge items and the probe's answers)."""
    out = {k: v for k, v in result.items() if k not in ("examples", "refinement_examples")}
    for key, heavy in (("knowledge", "items"), ("answer_language", "examples")):
        if isinstance(out.get(key), dict):
            out[key] = {k: v for k, v in out[key].items() if k != heavy}
    return out


def paired_chrf(systems: dict[str, dict]) -> dict | None:
    """chrF of every system against the first, pooled over all sentences, by paired bootstrap —
    when each kept all its hypotheses for the same sentences (else None)."""
    from bayling.eval.translation import paired_significance

    examples = [r.get("examples") or [] for r in systems.values()]
    keys = [[(e["direction"], e["src"]) for e in ex] for ex in examples]
    if len(systems) < 2 or len(keys[0]) < 20 or any(k != keys[0] for k in keys[1:]):
        return None
    labels = list(systems)
    refs = [e["ref"] for e in examples[0]]
    base = [e["hyp"] for e in examples[0]]
    out: dict[str, Any] = {"sentences": len(refs), "systems": {}}
    for label, ex in zip(labels[1:], examples[1:]):
        test = paired_significance(base, [e["hyp"] for e in ex], refs, method="bs", metrics=("chrf",))
        chrf = test["metrics"]["chrf"]
        out["baseline"] = chrf["baseline"]
        out["systems"][label] = {k: chrf[k] for k in ("system", "delta", "p_value", "significant")}
    return out


def paired_knowledge(systems: dict[str, dict]) -> dict | None:
    """The knowledge battery of every system against the first, McNemar's exact test per task on the
    same items (knowledge.compare) — when the first and another ran it (else None)."""
    from bayling.eval.knowledge import compare

    runs = {name: r["knowledge"] for name, r in systems.items() if "items" in (r.get("knowledge") or {})}
    labels = list(runs)
    if len(labels) < 2 or labels[0] != next(iter(systems)):
        return None
    return {"baseline": labels[0], "systems": {name: compare(runs[labels[0]], runs[name]) for name in labels[1:]}}


def knowledge_markdown(systems: dict[str, dict], base_model: str | None = None) -> str | None:
    """The knowledge section of a report (knowledge.report_markdown): every system that ran the
    battery, McNemar against the first, the model card beside a Gemma 3 270M base; None if none ran it."""
    from bayling.eval.knowledge import report_markdown

    runs = {name: r["knowledge"] for name, r in systems.items() if "items" in (r.get("knowledge") or {})}
    return report_markdown(runs, base_model) if runs else None
