"""Engine drafts: a model's own translation as the (untrained) first answer of a refine session.

BayLing's interactive data corrects the model's *own* translations. A draft made by cutting a word
out of the reference is almost the reference already, so a model trained on it learns to repeat
its first answer with small edits; a draft from a real model has the errors that model makes
(wrong language, missing words, runaway text), and the follow-up names one of them.

Two passes keep the builder deterministic: `DraftRecorder` records which (direction, source) the
planner asks a draft for; `generate_drafts` translates those once with any engine (a few-shot
prompt for a base model) into a JSONL cache keyed by content — the line, and the engine by its
weights' content and generation settings (`draft_engine`), so other weights at the same path or
other settings never reuse a draft — appended batch by batch, so a killed run resumes where it
stopped; then the planner runs again with `DraftCache.lookup`.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from bayling.hardware import fast_bf16
from bayling.io import append_jsonl
from bayling.models import ModelSpec, default_chat_format, resolve_model

__all__ = ["DraftCache", "DraftRecorder", "DraftRequest", "draft_engine", "draft_key", "generate_drafts",
           "prepare_drafts"]

N_SHOTS = 3


@dataclass(frozen=True)
class DraftRequest:
    src_lang: str
    tgt_lang: str
    source: str
    reference: str  # not part of the key: only used to pick few-shot examples for other lines


def draft_key(engine_name: str, src_lang: str, tgt_lang: str, source: str) -> str:
    payload = json.dumps([engine_name, src_lang, tgt_lang, source], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


class DraftRecorder:
    """Pass 1: answers no draft (the planner falls back to reference-made drafts) and remembers the asks."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], DraftRequest] = {}

    def __call__(self, src_lang: str, tgt_lang: str, source: str, reference: str) -> None:
        self.requests.setdefault((src_lang, tgt_lang, source), DraftRequest(src_lang, tgt_lang, source, reference))
        return None


class DraftCache:
    """key -> draft, in a JSONL file that only grows; a torn last line (a kill mid-write) is ignored.

    `engine_name` names what makes the drafts (`draft_engine`): it is part of every key.
    """

    def __init__(self, path: str | Path, engine_name: str):
        self.path, self.engine_name = Path(path), engine_name
        self._drafts: dict[str, str] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict) and "key" in rec and "draft" in rec:
                    self._drafts[rec["key"]] = rec["draft"]

    def __len__(self) -> int:
        return len(self._drafts)

    def key(self, src_lang: str, tgt_lang: str, source: str) -> str:
        return draft_key(self.engine_name, src_lang, tgt_lang, source)

    def lookup(self, src_lang: str, tgt_lang: str, source: str, reference: str = "") -> str | None:
        return self._drafts.get(self.key(src_lang, tgt_lang, source))

    def add(self, items: Iterable[tuple[DraftRequest, str]]) -> None:
        records = []
        for req, draft in items:
            key = self.key(req.src_lang, req.tgt_lang, req.source)
            self._drafts[key] = draft
            records.append({"key": key, "model": self.engine_name, "src_lang": req.src_lang,
                            "tgt_lang": req.tgt_lang, "draft": draft})
        append_jsonl(self.path, records)


def draft_engine(spec: ModelSpec, *, prompt: str, max_new_tokens: int, n_shots: int = N_SHOTS) -> str:
    """What a draft depends on besides its line: the model by the content of its weights (a model
    replaced at the same path makes new drafts), the precision it runs in, and how it is asked."""
    dtype = "bf16" if fast_bf16() else "fp32"  # what load_model picks: greedy decoding differs between them
    return (f"{spec.ref}|{prompt}|{spec.chat_format}|{max_new_tokens} tokens|{n_shots} shots|{dtype}"
            f"|{spec.fingerprint[:16]}")


def generate_drafts(requests: Sequence[DraftRequest], engine, cache: DraftCache, *, prompt: str = "few-shot",
                    n_shots: int = N_SHOTS, max_new_tokens: int = 128, batch_size: int = 32,
                    progress: bool = True) -> int:
    """Translate every request the cache lacks; returns how many were made now.

    Few-shot examples for a direction are other requests of that direction (their references),
    never the line being translated. Chunks of 8 batches are appended to the cache as they finish.
    """
    from bayling.corpus import Pair
    from bayling.eval.translation import translate

    todo = [r for r in dict.fromkeys(requests) if cache.lookup(r.src_lang, r.tgt_lang, r.source) is None]
    if not todo:
        return 0
    by_dir: dict[tuple[str, str], list[DraftRequest]] = defaultdict(list)
    for r in dict.fromkeys(requests):
        by_dir[(r.src_lang, r.tgt_lang)].append(r)

    def shot_pairs(lo: int, hi: int) -> list:
        return [Pair(o.source, o.reference, o.src_lang, o.tgt_lang, "draft-shot")
                for rs in by_dir.values() for o in rs[lo:hi]]

    # translate() takes the first shots of each direction: one call for every line that is not a
    # shot itself, one for the shot lines with the next lines of their direction as shots.
    shot_lines = {o for rs in by_dir.values() for o in rs[:n_shots]}
    calls = [([r for r in todo if r not in shot_lines], shot_pairs(0, n_shots)),
             ([r for r in todo if r in shot_lines], shot_pairs(n_shots, 2 * n_shots))]
    from bayling.eval.common import progress_bar

    made = 0
    step = batch_size * 8
    with progress_bar(progress, len(todo), "drafts") as advance:
        for lines, shots in calls:
            for start in range(0, len(lines), step):
                chunk = lines[start: start + step]
                pairs = [Pair(r.source, "", r.src_lang, r.tgt_lang, "draft") for r in chunk]
                hyps = translate(engine, pairs, prompt=prompt, shots=shots, n_shots=n_shots,
                                 max_new_tokens=max_new_tokens, progress=False)
                cache.add(zip(chunk, (h.strip() for h in hyps)))
                made += len(chunk)
                advance(len(chunk))
    return made


def prepare_drafts(configs: Sequence, model: str, cache_path: str | Path, *, prompt: str = "few-shot",
                   chat_format: str | None = None, max_new_tokens: int = 128, batch_size: int = 32,
                   log: Callable[[str], None] = print, progress: bool = True) -> Callable:
    """Both passes for `BuildConfig`s: find the lines whose sessions want a draft, have `model`
    translate those the cache lacks, and return the lookup to build with."""
    from bayling.data.build import plan_conversations

    recorder = DraftRecorder()
    for cfg in configs:
        for _ in plan_conversations(cfg, recorder):
            pass
    if chat_format is None and prompt == "few-shot" and default_chat_format(model) == "auto":
        chat_format = "chatml"  # a few-shot prompt is plain text: any format will do for a template-less base
    spec = resolve_model(model, chat_format=chat_format)
    cache = DraftCache(cache_path, draft_engine(spec, prompt=prompt, max_new_tokens=max_new_tokens))
    requests = list(recorder.requests.values())
    todo = sum(cache.lookup(q.src_lang, q.tgt_lang, q.source) is None for q in requests)
    log(f"drafts: {len(requests)} lines want a draft from {model} ({prompt}); {len(requests) - todo} cached, "
        f"{todo} to translate ({cache_path})")
    if todo:
        from bayling.infer.engine import TransformersEngine

        engine = TransformersEngine.load(spec, batch_size=batch_size)
        generate_drafts(requests, engine, cache, prompt=prompt, max_new_tokens=max_new_tokens, batch_size=batch_size,
                        progress=progress)
    return cache.lookup
