"""Interactive translation: scripted multi-turn sessions, scored turn by turn.

A session translates one sentence, then steers the translation the way a user does in BayLing's
interactive-translation data: use a term (constraint), change the style, shorten it. Each reply
is checked for what can be checked without a judge — the term is there (and earlier terms kept),
the target language is kept, the length limit holds, the text changed when asked to — and
compared with the reference by chrF. The summary groups turns by kind.

Session script, one JSON object a line:
  {"id": "...", "src": "...", "ref": "...", "src_lang": "eng_Latn", "tgt_lang": "zho_Hans",
   "turns": [{"kind": "translate", "user": "..."},
             {"kind": "constraint", "user": "...", "terms": ["..."]},
             {"kind": "style", "user": "..."},
             {"kind": "length", "user": "...", "max_length": 12}]}
A transcript is the same record plus "replies": [one string per turn].
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

from bayling.eval.common import EvalError, mean, read_records, script_of, text_length

__all__ = ["KINDS", "InteractiveConfig", "build_sessions", "read_sessions", "run", "run_sessions", "score_sessions",
           "session_scripts"]

KINDS = ("translate", "constraint", "style", "length")
STYLES = (
    "Please make the translation more formal.",
    "Please make the translation more casual and conversational.",
    "Please rewrite the translation in a more vivid, literary style.",
)
LENGTH_RATIO = 0.7  # a length turn asks for at most this share of the reference's length


def _pick_terms(ref: str, tgt_lang: str, rng: random.Random, absent_from: str | None = None) -> list[str]:
    """One whole word of the reference (jieba words for Chinese), by the data builder's term picker;
    with `absent_from`, one the model's first answer lacks, so the request names a real difference."""
    from bayling.data.grounding import pick_terms, script_of

    return list(pick_terms(ref, script_of(tgt_lang), rng, absent_from=absent_from, most=1))


def build_sessions(
    pairs: Sequence[Any],
    *,
    kinds: Sequence[str] = KINDS,
    terms: Sequence[Sequence[str]] | None = None,
    seed: int = 0,
    missing_terms: bool = False,
) -> list[dict[str, Any]]:
    """One scripted session per `Pair`: translate, then the follow-up kinds in order.

    Terms for constraint turns come from `terms` (e.g. a constrained-translation corpus) or are
    taken from the reference; with `missing_terms`, run_sessions takes a reference word that the
    model's first answer lacks (a session whose first answer has them all drops that turn).
    Length limits are LENGTH_RATIO of the reference's length.
    """
    from bayling.infer.prompts import constraint_request, translation_instruction
    from bayling.languages import resolve

    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds or kinds[0] != "translate":
        raise EvalError(f"session kinds {list(kinds)}: the first must be 'translate', the others from {', '.join(KINDS)}")
    if terms is not None and len(terms) != len(pairs):
        raise EvalError(f"build_sessions: {len(pairs)} pairs but {len(terms)} term lists")
    sessions = []
    for i, p in enumerate(pairs):
        rng = random.Random(f"{seed}:{i}")
        src_name, tgt_name = resolve(p.src_lang).name, resolve(p.tgt_lang).name
        turns: list[dict[str, Any]] = []
        for kind in kinds:
            if kind == "translate":
                turns.append({"kind": kind, "user": translation_instruction(p.src, src_name, tgt_name)})
            elif kind == "constraint" and terms is None and missing_terms:
                # The term is chosen after turn 1: a reference word the first answer lacks (run_sessions).
                turns.append({"kind": kind, "user": "", "terms": None, "seed": f"{seed}:{i}"})
            elif kind == "constraint":
                want = list(terms[i]) if terms is not None else _pick_terms(p.tgt, p.tgt_lang, rng)
                if not want:
                    continue
                turns.append({"kind": kind, "user": constraint_request(want), "terms": want})
            elif kind == "style":
                turns.append({"kind": kind, "user": STYLES[i % len(STYLES)]})
            elif kind == "length":
                unit = "characters" if script_of(p.tgt) == "unspaced" else "words"
                limit = max(1, math.ceil(LENGTH_RATIO * text_length(p.tgt)))
                turns.append({"kind": kind, "max_length": limit,
                              "user": f"Please shorten the translation to at most {limit} {unit}, keeping its core meaning."})
        sessions.append({"id": p.origin, "src": p.src, "ref": p.tgt, "src_lang": p.src_lang, "tgt_lang": p.tgt_lang,
                         "turns": turns})
    return sessions


def read_sessions(path: str) -> list[dict[str, Any]]:
    """Session scripts (or transcripts, which add "replies") from JSONL, checked field by field."""
    sessions = []
    for where, r in read_records(path):
        for key in ("src", "tgt_lang", "turns"):
            if key not in r:
                raise EvalError(f"{where}: missing field {key!r}")
        if not isinstance(r["turns"], list) or not r["turns"]:
            raise EvalError(f"{where}: 'turns' should be a non-empty list")
        for t in r["turns"]:
            if not isinstance(t, dict) or not isinstance(t.get("user"), str) or t.get("kind") not in KINDS:
                raise EvalError(f"{where}: each turn needs 'user' text and a 'kind' from {', '.join(KINDS)}")
        if "replies" in r and (not isinstance(r["replies"], list) or len(r["replies"]) != len(r["turns"])):
            raise EvalError(f"{where}: 'replies' should hold one string per turn ({len(r['turns'])})")
        r.setdefault("id", where)
        sessions.append(r)
    if not sessions:
        raise EvalError(f"{path}: no sessions")
    return sessions


def run_sessions(engine: Any, sessions: Sequence[dict[str, Any]], *, max_new_tokens: int = 256,
                 progress: bool = True) -> list[list[str]]:
    """Play every session through `engine.chat`, turn by turn, all sessions batched per turn."""
    from bayling.eval.engines import EMPTY_REPLY, chat_turns
    from bayling.infer.engine import GenerationConfig

    config = GenerationConfig(max_new_tokens=max_new_tokens)
    if not any(t.get("kind") == "constraint" and t.get("terms") is None for s in sessions for t in s["turns"]):
        user_turns = [[t["user"] for t in s["turns"]] for s in sessions]
        return chat_turns(engine, user_turns, config, progress=progress, label="interactive sessions")
    # Terms picked after the first answer: play turn 1, choose, then the rest with that history.
    first = chat_turns(engine, [[s["turns"][0]["user"]] for s in sessions], config, progress=progress,
                       label="interactive sessions (turn 1)")
    for s, (reply,) in zip(sessions, first):
        _choose_missing_terms(s, reply)
    history = [[{"role": "user", "content": s["turns"][0]["user"]},
                {"role": "assistant", "content": reply if reply.strip() else EMPTY_REPLY}] for s, (reply,) in zip(sessions, first)]
    rest = chat_turns(engine, [[t["user"] for t in s["turns"][1:]] for s in sessions], config, progress=progress,
                      label="interactive sessions (follow-ups)", history=history)
    return [f + r for f, r in zip(first, rest)]


def _choose_missing_terms(session: dict[str, Any], first_reply: str) -> None:
    """Fill in the session's open constraint turn with a reference word its first reply lacks, or drop it."""
    from bayling.infer.prompts import constraint_request

    turns = []
    for t in session["turns"]:
        if t.get("kind") == "constraint" and t.get("terms") is None:
            want = _pick_terms(session["ref"], session["tgt_lang"], random.Random(t.pop("seed", "")), absent_from=first_reply)
            if not want:
                session["constraint_skipped"] = "the first answer already has every reference word"
                continue
            t.update(terms=want, user=constraint_request(want))
        turns.append(t)
    session["turns"] = turns


def score_sessions(sessions: Sequence[dict[str, Any]], replies: Sequence[Sequence[str]] | None = None) -> dict[str, Any]:
    """Per-turn checks and a summary by turn kind. `replies` defaults to each session's "replies"."""
    from sacrebleu.metrics import CHRF

    from bayling.languages import is_on_target

    if replies is None:
        if any("replies" not in s for s in sessions):
            raise EvalError("score_sessions: sessions carry no replies; run them through a model first")
        replies = [s["replies"] for s in sessions]
    if len(replies) != len(sessions):
        raise EvalError(f"score_sessions: {len(sessions)} sessions but {len(replies)} reply lists")
    chrf = CHRF()
    turns_out = []
    for s, rs in zip(sessions, replies):
        required: list[str] = []
        prev = None
        for n, (turn, reply) in enumerate(zip(s["turns"], rs), 1):
            kind = turn["kind"]
            rec: dict[str, Any] = {"session": s.get("id"), "turn": n, "kind": kind, "src_lang": s.get("src_lang"),
                                   "tgt_lang": s["tgt_lang"], "on_target": is_on_target(reply, s["tgt_lang"])}
            if kind == "constraint":
                rec["constraint_ok"] = all(t in reply for t in turn.get("terms", []))
            if required and kind != "constraint":
                rec["constraints_kept"] = all(t in reply for t in required)
            if kind == "constraint":
                required += turn.get("terms", [])
            if kind == "length" and "max_length" in turn:
                rec["length"] = text_length(reply)
                rec["length_ok"] = rec["length"] <= int(turn["max_length"])
            if prev is not None:
                rec["changed"] = reply.strip() != prev.strip()
            if s.get("ref"):
                rec["chrf"] = chrf.sentence_score(reply, [s["ref"]]).score
            prev = reply
            turns_out.append(rec)

    checks = ("on_target", "constraint_ok", "constraints_kept", "length_ok", "changed")
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for rec in turns_out:
        by_kind[rec["kind"]].append(rec)
    breakdown: dict[str, dict[str, Any]] = {}
    for kind in [k for k in KINDS if k in by_kind]:
        recs = by_kind[kind]
        row: dict[str, Any] = {"n": len(recs)}
        for c in checks:
            vals = [r[c] for r in recs if r.get(c) is not None]
            if vals:
                row[f"{c}_rate"] = mean(vals)
        pairs = [(reply, s["ref"]) for s, rs in zip(sessions, replies) for t, reply in zip(s["turns"], rs)
                 if t["kind"] == kind and s.get("ref")]
        if pairs:
            row["chrf"] = CHRF().corpus_score([h for h, _ in pairs], [[r for _, r in pairs]]).score
        breakdown[kind] = row
    summary = {
        "sessions": len(sessions),
        "turns": len(turns_out),
        "on_target_rate": mean(r["on_target"] for r in turns_out),
        "constraint_ok_rate": mean(r.get("constraint_ok") for r in turns_out),
        "constraints_kept_rate": mean(r.get("constraints_kept") for r in turns_out),
        "length_ok_rate": mean(r.get("length_ok") for r in turns_out),
    }
    return {"task": "interactive", **summary, "breakdown": {"turn_kind": breakdown}, "turns_detail": turns_out}


@dataclass
class InteractiveConfig:
    """Where `run`'s sessions come from — exactly one of: a script or transcript file (`sessions`), a
    corpus (`corpus` with languages or `directions`, `split`, `limit` per direction), a
    constrained-translation JSONL (`constraints`: its terms drive the constraint turns), or
    ready `pairs` — and how they are played."""

    sessions: str | None = None
    corpus: str | None = None
    constraints: str | None = None
    pairs: Sequence[Any] | None = None
    src_lang: str | None = None
    tgt_lang: str | None = None
    directions: Sequence[str] | None = None
    split: str | None = "devtest"
    limit: int | None = 20
    kinds: Sequence[str] = KINDS
    seed: int = 0
    missing_terms: bool = False  # constraint turns name a reference word the first answer lacks
    max_new_tokens: int = 256
    progress: bool = True


def session_scripts(config: InteractiveConfig) -> list[dict[str, Any]]:
    """The sessions a config describes (transcripts keep their "replies")."""
    sources = [config.sessions, config.corpus, config.constraints, config.pairs]
    if sum(x is not None for x in sources) != 1:
        raise EvalError("interactive: give exactly one of sessions, corpus, constraints, pairs")
    kw = {"kinds": list(config.kinds), "seed": config.seed, "missing_terms": config.missing_terms}
    if config.sessions:
        return read_sessions(config.sessions)
    if config.pairs is not None:
        return build_sessions(config.pairs, **kw)
    if config.corpus:
        from bayling.eval.translation import TranslationConfig, pick

        test, _, _ = pick(TranslationConfig(corpus=config.corpus, src_lang=config.src_lang, tgt_lang=config.tgt_lang,
                                            directions=config.directions, split=config.split, limit=config.limit,
                                            shots=0))
        return build_sessions(test, **kw)
    from bayling.corpus import Pair
    from bayling.eval.constrained import read_constrained
    from bayling.languages import resolve

    s, t = config.src_lang, config.tgt_lang
    if not (s and t):
        raise EvalError(f"{config.constraints}: say the languages (--src-lang, --tgt-lang)")
    items = [i for i in read_constrained(config.constraints) if i.tgt][: config.limit]
    pairs = [Pair(i.src, i.tgt or "", resolve(s).code, resolve(t).code, i.origin) for i in items]
    return build_sessions(pairs, **{**kw, "terms": [list(i.constraints) for i in items]})


def run(engine: Any, config: InteractiveConfig) -> dict[str, Any]:
    """Play the config's sessions through `engine` (transcripts are scored as they are; then
    `engine` may be None) and score them; `transcripts` holds each session with its replies."""
    script = session_scripts(config)
    if all("replies" in s for s in script):
        replies = [s["replies"] for s in script]
    else:
        if engine is None:
            raise EvalError("running sessions needs a model: --model (and --base-url for an endpoint)")
        replies = run_sessions(engine, script, max_new_tokens=config.max_new_tokens, progress=config.progress)
    result = score_sessions(script, replies)
    result["transcripts"] = [{**s, "replies": r} for s, r in zip(script, replies)]
    return result
