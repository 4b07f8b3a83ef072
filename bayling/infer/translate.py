"""Batch translation: lines, TSV, JSONL or a FLORES folder in; translations out; resumable.

Each input line becomes an `Item` with a stable id. Finished records are appended (and fsynced)
to `<out>.partial.jsonl` batch by batch. Every record carries a `resume_key`, a hash of what
made it (source text, languages, terms, prompt mode and few-shot examples, generation settings,
model), and a rerun reuses a record only for an item with the same key: resuming matches by content, never by
position, so an edited input is translated again exactly where it changed. At the end the output
is written whole, in input order, and atomically replaced — so it is never half written and never
holds a line twice. A plain-text output cannot carry the keys: its records are kept beside it in
`<out>.records.jsonl`. Terms that must appear (`constraints`) and a refinement
request (`refine`) become further chat turns on each result, as in interactive translation.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from bayling.errors import BaylingError
from bayling.infer.engine import Engine, GenerationConfig
from bayling.infer.prompts import (
    FEW_SHOT_STOP,
    constrained_instruction,
    constraint_request,
    few_shot_prompt,
    sample_shots,
    translation_instruction,
)

__all__ = [
    "BASE_MODELS",
    "Item",
    "PROMPT_MODES",
    "TranslateError",
    "TranslateSummary",
    "bos_of",
    "default_prompt_mode",
    "first_turn",
    "longest_first_order",
    "read_items",
    "resume_key",
    "translate_batch",
    "translate_file",
    "translate_text",
    "translation_request",
]

PROMPT_MODES = ("few-shot", "chat")
# Embedded models that are not instruction-tuned: they translate through a few-shot prompt.
BASE_MODELS = frozenset({"gemma3-270m"})


class TranslateError(BaylingError, ValueError):
    """Input that cannot be translated as asked (unknown format, missing language, duplicate ids)."""


@dataclass(frozen=True)
class Item:
    id: str
    src: str
    src_lang: str  # FLORES codes
    tgt_lang: str
    ref: str | None = None
    constraints: tuple[str, ...] = ()


def default_prompt_mode(model: str | None, adapter: str | None = None, backend: str = "transformers") -> str:
    """few-shot for an embedded base model used as it is; chat for tuned models and remote servers."""
    from bayling.models import DEFAULT_MODEL

    plain_base = backend != "openai" and not adapter and (model or DEFAULT_MODEL) in BASE_MODELS
    return "few-shot" if plain_base else "chat"


def _code(name: str | None, what: str, where: str) -> str:
    from bayling.languages import resolve

    if not name:
        raise TranslateError(f"{where}: no {what} language: pass --{what}-lang")
    return resolve(name).code


def read_items(spec: str | Path, src_lang: str | None, tgt_lang: str | None, *, split: str = "devtest",
               field: str = "src", constraints: Sequence[str] = ()) -> Iterator[Item]:
    """Items from a FLORES folder, .jsonl, .tsv, or a plain file of lines (blank lines kept as blanks)."""
    from bayling.corpus.core import LineFile
    from bayling.corpus.flores import is_flores_dir

    path = Path(spec)
    if not path.exists():
        raise TranslateError(f"{path}: no such file or folder")
    terms = tuple(constraints)
    if path.is_dir():
        if not is_flores_dir(path):
            raise TranslateError(f"{path}: a folder must be FLORES-200 laid out (<split>/<code>.<split>)")
        yield from _flores_items(path, split, _code(src_lang, "src", str(path)), _code(tgt_lang, "tgt", str(path)), terms)
        return
    if path.suffix == ".jsonl":
        yield from _jsonl_items(path, src_lang, tgt_lang, field, terms)
        return
    src, tgt = _code(src_lang, "src", str(path)), _code(tgt_lang, "tgt", str(path))
    tsv = path.suffix == ".tsv"
    lines = LineFile(path, allow_blank=True)
    for line in lines:
        ref = None
        if tsv:
            cells = line.split("\t")
            if lines.n == 1 and cells[0].strip().lower() in ("src", "source", "text", "sentence"):
                continue  # header row
            line, ref = cells[0], (cells[1] if len(cells) > 1 else None)
        yield Item(str(lines.n), line, src, tgt, ref, terms)


def _flores_items(root: Path, split: str, src: str, tgt: str, terms: tuple[str, ...]) -> Iterator[Item]:
    from bayling.corpus import flores_languages, read_flores_multiway

    have = flores_languages(root, split)
    if src not in have:
        raise TranslateError(f"{root}: no {src}.{split} file")
    langs = [src, tgt] if tgt in have and tgt != src else [src]
    for no, sents in read_flores_multiway(root, split, langs=langs):
        yield Item(f"{split}:{no}", sents[src], src, tgt, sents.get(tgt) if tgt != src else None, terms)


def _jsonl_items(path: Path, src_lang: str | None, tgt_lang: str | None, field: str,
                 terms: tuple[str, ...]) -> Iterator[Item]:
    from bayling.corpus.core import json_lines

    fixed_src = _code(src_lang, "src", str(path)) if src_lang else None
    fixed_tgt = _code(tgt_lang, "tgt", str(path)) if tgt_lang else None
    for where, rec in json_lines(path):
        if isinstance(rec, str):
            raise TranslateError(rec)
        if not isinstance(rec.get(field), str):
            raise TranslateError(f"{where}: expected an object with a string field {field!r}")
        own = rec.get("constraints") or []
        if not isinstance(own, list) or not all(isinstance(t, str) for t in own):
            raise TranslateError(f"{where}: 'constraints' should be a list of strings")
        yield Item(
            str(rec.get("id", where.rsplit(":", 1)[1])), rec[field],
            fixed_src or _code(rec.get("src_lang"), "src", where),
            fixed_tgt or _code(rec.get("tgt_lang"), "tgt", where),
            rec.get("tgt", rec.get("ref")), terms + tuple(own),
        )


def _lang_name(code: str) -> str:
    from bayling.languages import resolve

    return resolve(code).name


def bos_of(engine: Engine) -> str:
    """The text a raw prompt starts with for this engine (its tokenizer's BOS, else its chat format's)."""
    tok = getattr(engine, "tokenizer", None)
    if tok is not None:
        return tok.bos_token or ""
    fmt = getattr(engine, "chat_format", None)
    return fmt.variables.get("bos", "") if fmt is not None else ""


def first_turn(item: Item) -> dict:
    """The user message that asks for this item's translation."""
    s, t = _lang_name(item.src_lang), _lang_name(item.tgt_lang)
    if item.constraints:
        return {"role": "user", "content": constrained_instruction(item.src, s, t, item.constraints)}
    return {"role": "user", "content": translation_instruction(item.src, s, t)}


ShotPool = Mapping[tuple[str, str], Sequence[tuple[str, str]]]  # (src, tgt) -> solved pairs


def translation_request(item: Item, mode: str, examples: Sequence[tuple[str, str]] = (), bos: str = ""):
    """What the engine is asked: a few-shot prompt (text) or a one-turn chat (messages)."""
    if mode == "few-shot":
        return few_shot_prompt(item.src, _lang_name(item.src_lang), _lang_name(item.tgt_lang), examples, bos)
    return [first_turn(item)]


def longest_first_order(items: Sequence[Item], mode: str, shot_pool: ShotPool | None = None, bos: str = "") -> list[int]:
    """Indices of `items`, longest request first: a batch's rows then end at about the same step,
    and no batch waits on one long row (continuous batching refills from the short ones at the end)."""
    pool = shot_pool or {}
    size = [len(str(translation_request(it, mode, pool.get((it.src_lang, it.tgt_lang), ()), bos))) for it in items]
    return sorted(range(len(items)), key=lambda i: -size[i])


def translate_batch(engine: Engine, items: Sequence[Item], *, mode: str = "chat",
                    config: GenerationConfig = GenerationConfig(), refine: str | None = None,
                    shots: int = 3, shot_pool: ShotPool | None = None,
                    cancel: threading.Event | None = None, language_guard: int = 0) -> list[dict]:
    """One record per item: id, src, hyp, languages, ref, messages (the chat it took) and, when
    asked, draft (before refinement) and constraints_met. Few-shot examples come from `shot_pool`
    per direction when given (an eval's dev pairs), else `shots` pairs of the shipped sample.

    `language_guard` N > 0: a first answer the language detector judges to be in another language
    than the target is drawn again N times (temperature GUARD_TEMPERATURE) and replaced by the first
    draw judged on target; the record says `guard: replaced` or `guard: kept` (no draw was on
    target). Answers the detector cannot judge are left alone.

    With `cancel`, generation streams one item at a time and stops soon after it is set (a server
    whose client left); the records are then incomplete.
    """
    def chat(convs: list[list[dict]], cfg: GenerationConfig) -> list[str]:
        if cancel is None:
            return engine.chat(convs, cfg) if convs else []
        return [engine.stream(c, cfg, cancel).text().strip() for c in convs]

    def complete(prompts: list[str], cfg: GenerationConfig) -> list[str]:
        if cancel is None:
            return engine.complete(prompts, cfg) if prompts else []
        return [engine.stream(p, cfg, cancel).text() for p in prompts]

    if mode not in PROMPT_MODES:
        raise TranslateError(f"unknown prompt mode {mode!r}; choose one of: {', '.join(PROMPT_MODES)}")
    live = [i for i, it in enumerate(items) if it.src.strip()]
    hyps = [""] * len(items)
    if mode == "few-shot":
        bos = bos_of(engine)

        def examples(it: Item) -> Sequence[tuple[str, str]]:
            if shot_pool is not None:
                return shot_pool.get((it.src_lang, it.tgt_lang), ())
            return sample_shots(it.src_lang, it.tgt_lang, shots)

        prompts = [translation_request(items[i], mode, examples(items[i]), bos) for i in live]
        cfg = replace(config, stop=tuple(dict.fromkeys(config.stop + FEW_SHOT_STOP)))
        outs = [o.strip() for o in complete(prompts, cfg)]
    else:
        cfg = config
        outs = chat([[first_turn(items[i])] for i in live], config)
    for i, out in zip(live, outs):
        hyps[i] = out
    guarded = _guard_language(items, hyps, live, language_guard, cfg,  # few-shot: the newline stop too
                              lambda ids, cfg: ([o.strip() for o in complete([prompts[live.index(i)] for i in ids], cfg)]
                                                if mode == "few-shot" else chat([[first_turn(items[i])] for i in ids], cfg)))
    # An empty answer ends that chat: a turn with no content cannot be rendered again.
    chats = [[first_turn(it)] + ([{"role": "assistant", "content": h}] if h else []) if it.src.strip() else []
             for it, h in zip(items, hyps)]

    def more(asks: dict[int, str]) -> None:
        """One further turn on each chat in `asks` (index -> request); an empty reply changes nothing."""
        ids = [i for i in asks if hyps[i]]
        convs = [chats[i] + [{"role": "user", "content": asks[i]}] for i in ids]
        for i, conv, out in zip(ids, convs, chat(convs, config)):
            if out:
                chats[i] = conv + [{"role": "assistant", "content": out}]
                hyps[i] = out

    def missing(i: int) -> list[str]:
        return [t for t in items[i].constraints if t not in hyps[i]]

    # A result missing a required term gets one more turn naming them (chat models only).
    if mode == "chat":
        more({i: constraint_request(missing(i)) for i in live if missing(i)})
    drafts = list(hyps)
    if refine:
        more({i: refine for i in live})

    records = []
    for i, it in enumerate(items):
        rec = {"id": it.id, "src": it.src, "hyp": hyps[i], "src_lang": it.src_lang, "tgt_lang": it.tgt_lang}
        if it.ref is not None:
            rec["ref"] = it.ref
        if refine and it.src.strip():
            rec["draft"] = drafts[i]
        if i in guarded:
            rec["guard"] = guarded[i]
        if it.constraints:
            rec["constraints"] = list(it.constraints)
            rec["constraints_met"] = bool(hyps[i]) and not missing(i)
        if chats[i]:
            rec["messages"] = chats[i]
        records.append(rec)
    return records


GUARD_TEMPERATURE = 0.7


def _guard_language(items: Sequence[Item], hyps: list[str], live: list[int], draws: int, config: GenerationConfig,
                    generate: Callable[[list[int], GenerationConfig], list[str]]) -> dict[int, str]:
    """Re-draw off-target first answers (see translate_batch's `language_guard`); hyps updated in place."""
    from bayling.languages import is_on_target

    if draws <= 0:
        return {}
    off = [i for i in live if hyps[i] and is_on_target(hyps[i], items[i].tgt_lang) is False]
    outcome = {i: "kept" for i in off}
    todo = list(off)
    for k in range(draws):
        if not todo:
            break
        cfg = replace(config, temperature=GUARD_TEMPERATURE, seed=config.seed + 1 + k)
        for i, out in zip(todo, generate(todo, cfg)):
            if out and is_on_target(out, items[i].tgt_lang):
                hyps[i], outcome[i] = out, "replaced"
        todo = [i for i in todo if outcome[i] == "kept"]
    return outcome


def _read_partial(path: Path) -> list[dict]:
    """Records from a progress file; a last line cut by a kill is dropped (and cut off the file)."""
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
    return [r for r in (_json_or_none(x) for x in data[:end].decode("utf-8").splitlines()) if isinstance(r, dict)]


def _read_final(records: Path) -> list[dict]:
    """Records of a finished earlier run (the .jsonl output, or the records kept beside a text output)."""
    if not records.exists():
        return []
    lines = records.read_text(encoding="utf-8").splitlines()
    return [r for r in (_json_or_none(x) for x in lines) if isinstance(r, dict)]


def _json_or_none(line: str):
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def resume_key(item: Item, engine: Engine, mode: str, config: GenerationConfig, refine: str | None,
               extra: Any = None) -> str:
    """What a translation depends on, hashed: a record is reused only for an item with the same key
    (`extra`: anything else it depends on, JSON-able: the few-shot pairs from a shot pool, a weights hash)."""
    made_of = [item.src, item.src_lang, item.tgt_lang, list(item.constraints), engine.name, mode, asdict(config), refine]
    if extra:  # only then: keys made without it stay as they were
        made_of.append(extra)
    return hashlib.blake2b(json.dumps(made_of, ensure_ascii=False).encode("utf-8"), digest_size=8).hexdigest()


def _as_item(rec: dict, item: Item) -> dict:
    """An earlier record for the same content, under this item's id and reference."""
    rec = {**rec, "id": item.id}
    if item.ref is not None:
        rec["ref"] = item.ref
    else:
        rec.pop("ref", None)
    return rec


def _one_line(text: str) -> str:
    return " ".join(text.split("\n"))


def _write_atomic(out: Path, lines: Iterable[str]) -> None:
    from bayling.io import atomic_open

    with atomic_open(out) as f:
        for line in lines:
            f.write(line + "\n")


@dataclass
class TranslateSummary:
    total: int = 0
    translated: int = 0
    resumed: int = 0
    out: str | None = None
    constraints_met: float | None = None


def translate_file(
    engine: Engine,
    items: Iterable[Item],
    out: str | Path | None,
    *,
    mode: str = "chat",
    config: GenerationConfig = GenerationConfig(),
    refine: str | None = None,
    batch_size: int = 8,
    on_progress: Callable[[int, int], None] | None = None,
    emit: Callable[[dict], None] | None = None,
    shot_pool: ShotPool | None = None,
    longest_first: bool = False,
    keep_earlier: bool = False,
    key_extra: Any = None,
    language_guard: int = 0,
) -> TranslateSummary:
    """Translate `items` into `out` (.jsonl: records; anything else: one translation per line, with
    the records in `<out>.records.jsonl`), reusing the records of earlier runs whose `resume_key` matches.

    With out=None every record goes to `emit` as soon as its batch is done (no resuming).
    `on_progress(done, total)` is called after each batch. `shot_pool`: few-shot examples per
    direction (see translate_batch). `longest_first`: what is left is translated longest request
    first (the output keeps input order). `keep_earlier`: the finished output also keeps an earlier
    run's records for ids not among `items` (a cache that a run over a subset must not shrink).
    `key_extra`: more that every translation depends on (e.g. a hash of the weights), in each resume key.
    `language_guard`: off-target answers drawn again (translate_batch).
    """
    items = list(items)
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise TranslateError(f"input ids must be unique; {dup!r} appears more than once")
    summary = TranslateSummary(total=len(items), out=str(out) if out else None)
    jsonl = out is not None and str(out).endswith(".jsonl")
    pool = shot_pool if mode == "few-shot" and shot_pool is not None else None
    def extra(it: Item) -> Any:
        shots = [list(e) for e in pool.get((it.src_lang, it.tgt_lang), ())] if pool is not None else []
        return {k: v for k, v in (("shots", shots), ("extra", key_extra), ("language_guard", language_guard)) if v}

    keys = {it.id: resume_key(it, engine, mode, config, refine, extra(it)) for it in items}
    done: dict[str, dict] = {}
    partial = records = None
    final: list[dict] = []  # every record of earlier runs
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial.jsonl")
        records = out if jsonl else out.with_name(out.name + ".records.jsonl")
        # By content, not position: an input line edited, inserted or moved finds only its own translation.
        final = _read_final(records) + _read_partial(partial)
        earlier = {r["resume_key"]: r for r in final if "resume_key" in r}
        for it in items:
            if keys[it.id] in earlier:
                done[it.id] = _as_item(earlier[keys[it.id]], it)
    todo = [it for it in items if it.id not in done]
    if longest_first:
        todo = [todo[i] for i in longest_first_order(todo, mode, pool, bos_of(engine) if mode == "few-shot" else "")]
    summary.resumed = len(items) - len(todo)
    if on_progress:
        on_progress(summary.resumed, len(items))
    sink = open(partial, "a", encoding="utf-8") if partial is not None else None
    try:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            for rec in translate_batch(engine, batch, mode=mode, config=config, refine=refine, shot_pool=pool,
                                       language_guard=language_guard):
                rec["resume_key"] = keys[rec["id"]]
                done[rec["id"]] = rec
                if sink is not None:
                    sink.write(json.dumps(rec, ensure_ascii=False) + "\n")
                elif emit is not None:
                    emit(rec)
            if sink is not None:
                sink.flush()
                os.fsync(sink.fileno())
            summary.translated += len(batch)
            if on_progress:
                on_progress(summary.resumed + summary.translated, len(items))
    finally:
        if sink is not None:
            sink.close()
    if out is not None:
        ordered = [done[i] for i in ids]
        if keep_earlier:  # the newest record of each id no item asked for (partial records come last)
            ordered += list({r.get("id"): r for r in final if r.get("id") not in done}.values())
        _write_atomic(records, (json.dumps(r, ensure_ascii=False) for r in ordered))
        if not jsonl:
            _write_atomic(out, (_one_line(r["hyp"]) for r in ordered))
        partial.unlink(missing_ok=True)
    scored = [r["constraints_met"] for r in done.values() if "constraints_met" in r]
    if scored:
        summary.constraints_met = sum(scored) / len(scored)
    return summary


def translate_text(engine: Engine, text: str, src_lang: str, tgt_lang: str, *, mode: str = "chat",
                   config: GenerationConfig = GenerationConfig(), constraints: Sequence[str] = (),
                   cancel: threading.Event | None = None) -> dict:
    """One translation with the chat it took (for the web page, which refines it further)."""
    item = Item("0", text, _code(src_lang, "src", "request"), _code(tgt_lang, "tgt", "request"),
                constraints=tuple(constraints))
    rec = translate_batch(engine, [item], mode=mode, config=config, cancel=cancel)[0]
    return {k: rec[k] for k in ("hyp", "src_lang", "tgt_lang", "messages", "constraints_met") if k in rec}

