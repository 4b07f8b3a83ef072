"""Preference pairs for term requests, from a model's own refinement sessions (DPO data).

A transcript of `bayling eval interactive --kinds translate,constraint --missing-terms` holds a
model's first translation, a request for a word of the reference that translation lacks, and the
model's answer to it. Each transcript becomes one pair in TRL's conversational preference layout:

    {"prompt": [user, assistant (the model's first answer), user (the request)],
     "chosen": [{"role": "assistant", "content": the reference}],
     "rejected": [{"role": "assistant", "content": the model's answer when it lacks the word,
                   else its first answer handed back}],
     "meta": {"terms": [...], "rejected": "without_term" | "unchanged" | "first_answer", ...}}

The reference has the word by construction; the rejected answer never has it: either the model's
own failure (a rewrite without the word, or the first answer back unchanged) or, where the model
did use the word, the first answer itself, which is what a user gets when a request is ignored.
Play the sessions on lines that are not test data (FLORES dev, never devtest).

On-policy pairs (`chosen="own"`): `sample_replies` adds a transcript's "samples", more answers to the
same request drawn at a temperature; the chosen answer is then the model's own answer that has the word
(the best by sentence chrF against the reference, the greedy reply among them), the rejected one its
greedy reply when that lacks the word, else its best-scoring sampled answer without it; a pair is kept
only when the chosen answer scores at least as well as the rejected one (better on both counts). Both are
the model's own, so training moves it towards what it can already say (Xiong et al. 2024, iterative
on-policy DPO) rather than towards a reference far from its distribution.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Iterator

from bayling.data.io import DataError

__all__ = ["CHOSEN", "REJECTED", "PreferenceError", "check_transcript", "preference_pairs", "sample_replies"]


class PreferenceError(DataError):
    """A transcript that cannot give a preference pair in any way (not a refinement session)."""


REJECTED = ("without_term", "unchanged", "first_answer")
CHOSEN = ("reference", "own")


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def check_transcript(origin: str, t: dict[str, Any]) -> dict[str, Any]:
    """`t` itself if it has a transcript's layout, else PreferenceError naming origin (file:line) and the field."""
    turns, replies = t.get("turns"), t.get("replies")
    if not isinstance(turns, list) or not isinstance(replies, list) or len(replies) != len(turns):
        raise PreferenceError(f"{origin}: not a transcript (needs 'turns' and one 'replies' string per turn)")
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise PreferenceError(f"{origin}: turns[{i}] must be an object, not {type(turn).__name__}")
        if not isinstance(turn.get("user"), str):
            raise PreferenceError(f"{origin}: turns[{i}].user must be a string, not {type(turn.get('user')).__name__}")
        if turn.get("terms") is not None and not _strings(turn["terms"]):  # a string is not a list of one term
            raise PreferenceError(f"{origin}: turns[{i}].terms must be a list of strings, not {turn['terms']!r:.60}")
    for i, reply in enumerate(replies):
        if not isinstance(reply, str):
            raise PreferenceError(f"{origin}: replies[{i}] must be a string, not {type(reply).__name__}")
    if not t.get("ref"):
        raise PreferenceError(f"{origin}: no 'ref' (the reference is the chosen answer)")
    if not isinstance(t["ref"], str):
        raise PreferenceError(f"{origin}: 'ref' must be a string, not {type(t['ref']).__name__}")
    if "samples" in t and not _strings(t["samples"]):
        raise PreferenceError(f"{origin}: 'samples' must be a list of strings")
    return t


def _is_request(t: dict[str, Any]) -> bool:
    turns = t.get("turns") or []
    return len(turns) >= 2 and turns[0].get("kind") == "translate" and turns[1].get("kind") == "constraint"


def sample_replies(engine: Any, transcripts: list[dict[str, Any]], n: int, *, temperature: float = 0.7,
                   top_p: float = 0.9, max_new_tokens: int = 160, seed: int = 0, progress: bool = True) -> list[dict]:
    """Each term-request transcript with "samples": `n` more answers to its request, drawn at `temperature`
    after the same first answer (the greedy one the transcript holds). Other transcripts pass unchanged."""
    from bayling.eval.engines import EMPTY_REPLY, chat_turns
    from bayling.infer.engine import GenerationConfig

    if n < 1 or temperature <= 0:
        raise PreferenceError(f"samples must be >= 1 and temperature > 0 (got {n}, {temperature})")
    todo = [t for t in transcripts if _is_request(t)]
    history = [[{"role": "user", "content": t["turns"][0]["user"]},
                {"role": "assistant", "content": t["replies"][0] if t["replies"][0].strip() else EMPTY_REPLY}]
               for t in todo for _ in range(n)]
    config = GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
    drawn = chat_turns(engine, [[t["turns"][1]["user"]] for t in todo for _ in range(n)], config,
                       progress=progress, label=f"sampling {n} answers per request", history=history)
    for k, t in enumerate(todo):
        t["samples"] = [r for (r,) in drawn[k * n:(k + 1) * n]]
    return transcripts


def _own_pair(first: str, reply: str, samples: list[str], terms: list[str], ref: str, chrf) -> tuple | None:
    """(chosen, rejected, kind, chosen chrF, rejected chrF) from the model's own answers, or None."""
    def score(text: str) -> float:
        return chrf.sentence_score(text, [ref]).score

    has = [a for a in dict.fromkeys([reply, *samples]) if a.strip() and all(w in a for w in terms)]
    if not has:
        return None
    chosen = max(has, key=score)
    if not all(w in reply for w in terms):
        rejected, kind = reply, "unchanged" if reply.strip() == first.strip() else "without_term"
    else:
        lacking = [a for a in samples if a.strip() and not all(w in a for w in terms)]
        if not lacking:
            return None
        rejected, kind = max(lacking, key=score), "sampled_without_term"
    if not rejected.strip() or score(chosen) < score(rejected):
        return None  # an answer that has the word but translates worse is not the one to prefer
    return chosen, rejected, kind, score(chosen), score(rejected)


def preference_pairs(transcripts: Iterable[tuple[str, dict[str, Any]]], counts: Counter | None = None,
                     keep: Iterable[str] = REJECTED, chosen: str = "reference") -> Iterator[dict]:
    """One pair per usable (origin, transcript); `counts` tallies what each transcript became.
    `keep`: the kinds of rejected answer to make pairs of (e.g. the model's own failures only).
    `chosen`: "reference", or "own" (the model's own answer with the word; needs `sample_replies`'s
    "samples"; `keep` then applies to without_term / unchanged and sampled_without_term is always kept)."""
    counts = Counter() if counts is None else counts
    keep = set(keep)
    if not keep or keep - set(REJECTED):
        raise PreferenceError(f"keep: kinds of rejected answer from {', '.join(REJECTED)}, not {sorted(keep)}")
    if chosen not in CHOSEN:
        raise PreferenceError(f"chosen: one of {', '.join(CHOSEN)}, not {chosen!r}")
    chrf = None
    if chosen == "own":
        from sacrebleu.metrics import CHRF

        chrf = CHRF()
    for origin, t in transcripts:
        turns, replies = check_transcript(origin, t)["turns"], t["replies"]
        if not _is_request(t):
            counts["no term request"] += 1  # the first answer had every reference word, or another kind of session
            continue
        first, reply, terms, ref = replies[0], replies[1], list(turns[1].get("terms") or []), t["ref"]
        if not first.strip():
            counts["empty first answer"] += 1
            continue
        if not terms or not all(w in ref for w in terms) or any(w in first for w in terms):
            counts["request not a real difference"] += 1
            continue
        extra: dict[str, Any] = {}
        if chrf is not None:
            samples = t.get("samples")
            if not isinstance(samples, list):
                raise PreferenceError(f"{origin}: no 'samples' (chosen=own needs the model's sampled answers)")
            own = _own_pair(first, reply, samples, terms, ref, chrf)
            if own is None:
                with_word = [a for a in [reply, *samples] if a.strip() and all(w in a for w in terms)]
                without = [a for a in [reply, *samples] if a.strip() and not all(w in a for w in terms)]
                counts["no own answer with the word" if not with_word else "no own answer without the word"
                       if not without else "own answer with the word translates worse"] += 1
                continue
            good, rejected, kind, good_chrf, bad_chrf = own
            extra = {"chosen": "own", "chosen_chrf": round(good_chrf, 2), "rejected_chrf": round(bad_chrf, 2)}
        else:
            good = ref
            if all(w in reply for w in terms):
                rejected, kind = first, "first_answer"
            else:
                rejected, kind = reply, "unchanged" if reply.strip() == first.strip() else "without_term"
            if not rejected.strip():
                rejected, kind = first, "first_answer"
        if kind in REJECTED and kind not in keep:
            counts[f"{kind} (not kept)"] += 1
            continue
        counts[kind] += 1
        yield {
            "prompt": [{"role": "user", "content": turns[0]["user"]}, {"role": "assistant", "content": first},
                       {"role": "user", "content": turns[1]["user"]}],
            "chosen": [{"role": "assistant", "content": good}],
            "rejected": [{"role": "assistant", "content": rejected}],
            "meta": {"id": t.get("id", origin), "src_lang": t.get("src_lang"), "tgt_lang": t.get("tgt_lang"),
                     "terms": terms, "rejected": kind, **extra},
        }
