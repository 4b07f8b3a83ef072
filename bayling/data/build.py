"""`build_conversations`: corpus lines in, conversation records out, streaming and deterministic.

The pipeline per corpus line: a `Unit` (the line in every chosen language) -> a `Plan`
(interactive-translation session, or a cross-lingual task with probability `crosslingual`)
-> a record. Each unit has its own rng seeded from (seed, unit id), so the output is the same
in any run, and `shard=(i, n)` keeps the units whose id hashes to shard i: the shards of a run
partition its records exactly. `limit` counts units in corpus order before sharding, so the
shards of a limited run partition that same run. Memory stays flat: one line at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Callable, Iterator

from bayling.data.crosslingual import plan_crosslingual
from bayling.data.records import Plan, Unit, to_record
from bayling.data.sampling import LanguageSampler, language_weights, record_rng, shard_of
from bayling.data.sessions import plan_refine_session, plan_session
from bayling.errors import ConfigError

__all__ = ["BuildConfig", "build_conversations", "parse_shard", "plan_conversations", "read_units"]

MODES = ("reference", "teacher")
SESSIONS = ("refine", "v1")  # draft-then-refine (recipe v2) or the first recipe's sessions


@dataclass
class BuildConfig:
    __pydantic_config__ = {"extra": "forbid"}  # bayling.config.parse_section: an unknown key is an error
    corpus: str  # a FLORES-200 folder (multi-way) or anything bayling.corpus.open_pairs reads
    split: str = "dev"
    langs: list[str] | None = None  # None: every language of the FLORES folder
    limit: int | None = None  # corpus units (line x per_line) to use, counted before sharding
    seed: int = 0
    mode: str = "reference"
    per_line: int = 1  # conversations per corpus line (each with its own rng)
    max_turns: int = 3
    sessions: str = "refine"  # reference mode: "refine" (draft-then-refine) or "v1"; teacher mode plans v1
    multi_turn: float = 0.4  # refine: share of sessions with a follow-up
    into_english: float = 0.5  # refine: share of hub-centric pairs translated into the hub (English or Chinese)
    # refine: share of multi-way lines paired with Chinese instead of English (of the 90% paired with a
    # hub; BayLing 2's second hub); only where the line has Chinese. 0: English only.
    chinese_hub: float = 0.15
    crosslingual: float = 0.1  # share of units that become cross-lingual tasks (multi-way corpora)
    constrained: float = 0.0  # refine: share of single-turn requests that also name reference terms
    term_edits: bool = False  # refine: a terminology fix of a model's draft is the draft post-edited where it aligns
    temperature: float = 5.0  # language sampling temperature
    lang_sizes: dict[str, float] | None = None  # relative data size per language (default: built-in tiers)
    system: str = ""
    shard: tuple[int, int] = (0, 1)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.sessions not in SESSIONS:
            raise ConfigError(f"sessions must be one of {', '.join(SESSIONS)}, got {self.sessions!r}")
        for name in ("crosslingual", "multi_turn", "into_english", "constrained", "chinese_hub"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if self.per_line < 1 or not 1 <= self.max_turns <= 5:
            raise ConfigError("per_line must be >= 1 and max_turns between 1 and 5")
        i, n = self.shard
        if n < 1 or not 0 <= i < n:
            raise ConfigError(f"shard {i}/{n}: need 0 <= i < N")


def parse_shard(text: str) -> tuple[int, int]:
    """ "3/8" -> (3, 8)."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: expected i/N, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard {text!r}: need 0 <= i < N")
    return i, n


def read_units(cfg: BuildConfig) -> tuple[list[str], Iterator[Unit]]:
    """The corpus languages, and one Unit per (line, k < per_line), limited and sharded."""
    from bayling.corpus import corpus_kind, flores_languages, open_pairs, read_flores_multiway

    if corpus_kind(cfg.corpus) == "flores":
        rows = read_flores_multiway(cfg.corpus, cfg.split, cfg.langs)
        langs = _resolved(cfg.langs) if cfg.langs else flores_languages(cfg.corpus, cfg.split)
        corpus_id = f"{Path(cfg.corpus).resolve().name}/{cfg.split}"
        lines: Iterator[tuple[str, dict[str, str], tuple[str, str] | None]] = (
            (f"{corpus_id}:{no}", texts, None) for no, texts in rows)
    else:
        src, tgt = (cfg.langs + [None, None])[:2] if cfg.langs else (None, None)
        pairs = open_pairs(cfg.corpus, src_lang=src, tgt_lang=tgt)
        lines = ((p.origin, {p.src_lang: p.src, p.tgt_lang: p.tgt}, (p.src_lang, p.tgt_lang)) for p in pairs)
        langs = _resolved([c for c in (src, tgt) if c])
    return langs, _units(lines, cfg)


def _resolved(names: list[str]) -> list[str]:
    from bayling.corpus.core import lang_code

    return list(dict.fromkeys(lang_code(name) for name in names))


def _units(lines, cfg: BuildConfig) -> Iterator[Unit]:
    i, n = cfg.shard
    units = _all_units(lines, cfg.per_line)
    if cfg.limit is not None:
        units = islice(units, cfg.limit)
    for unit in units:
        if n == 1 or shard_of(unit.id, n) == i:
            yield unit


def _all_units(lines, per_line: int) -> Iterator[Unit]:
    prev = None
    for source, texts, direction in lines:
        for k in range(per_line):
            yield Unit(f"{source}#{k}", source, texts, direction, prev)
        prev = texts


def plan_conversations(cfg: BuildConfig, drafts: Callable | None = None) -> Iterator[Plan]:
    """One Plan per unit: a cross-lingual task (share `crosslingual`) or an interactive session.

    `drafts`: a model's own translations for refine sessions' drafts (bayling.data.drafts)."""
    langs, units = read_units(cfg)
    return _plans(units, langs, cfg, drafts)


def _plans(units: Iterator[Unit], langs: list[str], cfg: BuildConfig, drafts: Callable | None = None) -> Iterator[Plan]:
    sampler = LanguageSampler(language_weights(langs, cfg.temperature, cfg.lang_sizes)) if langs else None
    for unit in units:
        if sampler is None:  # a bilingual corpus whose languages came from its files
            sampler = LanguageSampler(language_weights(unit.texts, cfg.temperature, cfg.lang_sizes))
        rng = record_rng(cfg.seed, unit.id)
        plan = None
        if rng.random() < cfg.crosslingual:
            plan = plan_crosslingual(unit, rng, sampler, cfg.system)
        if plan is None and cfg.mode == "reference" and cfg.sessions == "refine":
            plan = plan_refine_session(unit, rng, sampler, multi_turn=cfg.multi_turn, into_english=cfg.into_english,
                                       chinese_hub=min(cfg.chinese_hub, 0.9),
                                       max_turns=cfg.max_turns, system=cfg.system, drafts=drafts,
                                       constrained=cfg.constrained, term_edits=cfg.term_edits)
        elif plan is None:
            plan = plan_session(unit, rng, sampler, cfg.mode, cfg.max_turns, cfg.system)
        if plan is not None:
            yield plan


def build_conversations(cfg: BuildConfig, drafts: Callable | None = None) -> Iterator[dict]:
    """Reference-mode records, ready for `write_jsonl` (every trained answer grounded in the corpus)."""
    if cfg.mode != "reference":
        raise ConfigError("build_conversations writes reference mode; teacher mode goes through bayling.data.teacher")
    return (to_record(plan) for plan in plan_conversations(cfg, drafts))
