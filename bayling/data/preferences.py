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
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Iterator

from bayling.errors import BaylingError

__all__ = ["REJECTED", "PreferenceError", "preference_pairs"]


class PreferenceError(BaylingError, ValueError):
    """A transcript that cannot give a preference pair in any way (not a refinement session)."""


REJECTED = ("without_term", "unchanged", "first_answer")


def preference_pairs(transcripts: Iterable[tuple[str, dict[str, Any]]], counts: Counter | None = None,
                     keep: Iterable[str] = REJECTED) -> Iterator[dict]:
    """One pair per usable (origin, transcript); `counts` tallies what each transcript became.
    `keep`: the kinds of rejected answer to make pairs of (e.g. the model's own failures only)."""
    counts = Counter() if counts is None else counts
    keep = set(keep)
    if not keep or keep - set(REJECTED):
        raise PreferenceError(f"keep: kinds of rejected answer from {', '.join(REJECTED)}, not {sorted(keep)}")
    for origin, t in transcripts:
        turns, replies = t.get("turns"), t.get("replies")
        if not isinstance(turns, list) or not isinstance(replies, list) or len(replies) != len(turns):
            raise PreferenceError(f"{origin}: not a transcript (needs 'turns' and one 'replies' string per turn)")
        if not t.get("ref"):
            raise PreferenceError(f"{origin}: no 'ref' (the reference is the chosen answer)")
        if len(turns) < 2 or turns[0].get("kind") != "translate" or turns[1].get("kind") != "constraint":
            counts["no term request"] += 1  # the first answer had every reference word, or another kind of session
            continue
        first, reply, terms, ref = replies[0], replies[1], list(turns[1].get("terms") or []), t["ref"]
        if not first.strip():
            counts["empty first answer"] += 1
            continue
        if not terms or not all(w in ref for w in terms) or any(w in first for w in terms):
            counts["request not a real difference"] += 1
            continue
        if all(w in reply for w in terms):
            rejected, kind = first, "first_answer"
        else:
            rejected, kind = reply, "unchanged" if reply.strip() == first.strip() else "without_term"
        if not rejected.strip():
            rejected, kind = first, "first_answer"
        if kind not in keep:
            counts[f"{kind} (not kept)"] += 1
            continue
        counts[kind] += 1
        yield {
            "prompt": [{"role": "user", "content": turns[0]["user"]}, {"role": "assistant", "content": first},
                       {"role": "user", "content": turns[1]["user"]}],
            "chosen": [{"role": "assistant", "content": ref}],
            "rejected": [{"role": "assistant", "content": rejected}],
            "meta": {"id": t.get("id", origin), "src_lang": t.get("src_lang"), "tgt_lang": t.get("tgt_lang"),
                     "terms": terms, "rejected": kind},
        }
