"""The BayLing recipe as one resumable pipeline: data -> train -> eval -> report.

A recipe is a YAML file with `data`, `train` and `eval` sections (see recipes/mini.yaml). Each
stage writes its outputs atomically plus a `<stage>.done.json` marker; a rerun skips finished
stages and resumes an interrupted training run from its last checkpoint.

A multi-step recipe (RecipeSteps; recipes/bayling-mini.yaml) is a `steps:` list of such recipes, run
in order, each into `<out>/<step name>/`; a finished step (its eval marker) is skipped. In a step,
the string `step:NAME` stands for an earlier step's trained model (`<out>/NAME/model`), wherever a
model goes: `model`, `train.init_adapter`, `data.drafts.model`, `data.preferences.model`,
`eval.systems`. A recipe's `hours:` ({stage: hours}) records how long each stage took when it was
measured; `bayling recipe run --dry-run` lists the steps, stages and those hours without running.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from bayling.data.build import BuildConfig
from bayling.errors import BaylingError, ConfigError
from bayling.infer.engine import check_decoding
from bayling.eval.suite import SuiteConfig, evaluate_system, paired_chrf, pick_sentences, reference_off_target, summary
from bayling.io import atomic_write_json, write_jsonl
from bayling.resources import named_corpus
from bayling.train.trainer import TrainConfig, adapter_folder

__all__ = ["DataSection", "DataSource", "Recipe", "RecipeSteps", "STAGES", "STEP_REF", "SelectSection", "check_recipe",
           "describe_recipe", "load_recipe_file", "run_recipe", "run_steps"]

STAGES = ("data", "train", "eval")
PER_SOURCE = ("corpus", "split", "langs", "limit")  # BuildConfig fields each source sets itself
STEP_REF = "step:"  # in a multi-step recipe, "step:NAME" is that earlier step's trained model


@dataclass
class DataSource:
    __pydantic_config__ = {"extra": "forbid"}  # bayling.config.parse_section: an unknown key is an error
    corpus: str  # "sample" = the shipped sample; "flores" = ../shared FLORES-200 when present; or a path
    split: str = "dev"
    langs: list[str] | None = None
    limit: int | None = None
    into_english: float | None = None  # this source's share into English (None: the data section's)
    # parallel: a corpus the builder makes translation sessions from. instructions: general
    # instructions in any chat layout (bayling.data.instructions), `limit` records trained on and the
    # file's last `holdout` kept out for evaluation (out/heldout/<file>.jsonl).
    kind: str = "parallel"
    holdout: int = 100
    lang: str | None = None  # instructions: the language of the file's requests (None: detected per record)

    def __post_init__(self) -> None:
        if self.kind not in ("parallel", "instructions"):
            raise ConfigError(f"kind must be parallel or instructions, got {self.kind!r}")


@dataclass
class DataSection(BuildConfig):
    """The data stage: the data builder's own config (seed, sessions, multi_turn, temperature, ...),
    applied to every source; the sources and the fields below are the recipe's."""

    corpus: str = ""  # each source names its own
    sources: list[DataSource] = field(default_factory=lambda: [DataSource("sample")])
    single_turn: bool = False  # ALMA-style ablation: keep only the first translation turn
    filter: bool = True
    teacher: dict[str, Any] | None = None  # TeacherConfig fields (base_url, model, ...): teacher mode
    # Refine sessions' drafts from a model's own translations (bayling.data.drafts), e.g.
    # {model: base} (the recipe's model, few-shot) or {model: NAME, prompt: chat}; cached in out/drafts.jsonl.
    drafts: dict[str, Any] | None = None
    # Preference pairs instead of conversations (train with objective: dpo): a model plays
    # translate-then-term-request sessions, {model: NAME, corpus: flores, split: dev, lines: 50, ...},
    # on the first `lines` lines of every eval direction; transcripts in out/sessions.jsonl (kept and
    # reused), pairs (bayling.data.preferences) in out/prefs.jsonl; `rejected: [without_term, unchanged]`
    # keeps only the pairs whose rejected answer is the model's own failure. On-policy pairs:
    # `samples: 4, temperature: 0.7, chosen: own` draws 4 more answers per request (out/samples.jsonl) and
    # chooses the model's own answer with the word instead of the reference.
    preferences: dict[str, Any] | None = None

    def build_config(self, src: DataSource, path: str, limit: int | None) -> BuildConfig:
        """This section's builder settings for one source."""
        shared = {f.name: getattr(self, f.name) for f in fields(BuildConfig)}
        if src.into_english is not None:
            shared["into_english"] = src.into_english
        return BuildConfig(**{**shared, "corpus": path, "split": src.split, "langs": src.langs, "limit": limit,
                              "mode": "teacher" if self.teacher else self.mode})


@dataclass
class SelectSection:
    """Checkpoint selection: the last `lines` lines of FLORES-200 dev, in every eval direction, are
    held out of the training data and score each saved checkpoint (never devtest)."""
    __pydantic_config__ = {"extra": "forbid"}  # bayling.config.parse_section: an unknown key is an error

    lines: int = 0  # 0: no selection, the last step is the model
    max_new_tokens: int = 64


@dataclass
class Recipe:
    """The stages' own configs composed: the data builder's (DataSection), the trainer's
    (TrainConfig; `model`, data and output paths are the recipe's), the eval suite's."""

    name: str = "mini"
    out: str = "runs/mini"
    model: str = "gemma3-270m"
    data: DataSection = field(default_factory=DataSection)
    train: TrainConfig | dict[str, Any] = field(default_factory=dict)
    eval: SuiteConfig = field(default_factory=SuiteConfig)
    select: SelectSection = field(default_factory=SelectSection)
    hours: dict[str, float] = field(default_factory=dict)  # {stage: hours} as measured; read by --dry-run only

    def __post_init__(self) -> None:
        if isinstance(self.train, dict):  # a YAML section: checked now, not after the data stage
            self.train = TrainConfig.from_dict({"model": self.model, **self.train})
        check_decoding(self.eval.decoding)  # likewise the eval's loop guards, not after training
        if (self.train.objective == "dpo") != bool(self.data.preferences):
            raise ConfigError(f"recipe {self.name}: train.objective dpo and data.preferences go together "
                              "(DPO trains on the preference pairs that section makes)")

    @classmethod
    def from_dict(cls, doc: dict) -> "Recipe":
        """A recipe from its YAML mapping: every section typed and checked now, each problem named."""
        from bayling.config import parse_section

        doc = dict(doc)
        known = {"name", "out", "model", "data", "train", "eval", "select", "hours"}
        unknown = set(doc) - known
        if unknown:
            raise ConfigError(f"unknown recipe section(s): {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
        data = doc.get("data")
        if isinstance(data, dict):
            data = {"sources": ["sample"], **data}
            data["sources"] = [{"corpus": s} if isinstance(s, str) else s for s in data["sources"]] \
                if isinstance(data["sources"], list) else data["sources"]
            misplaced = [k for k in PER_SOURCE if k in data]
            if misplaced:
                raise ConfigError(f"recipe data: {', '.join(misplaced)} {'is' if len(misplaced) == 1 else 'are'} set "
                                  "per source, under data.sources")
        top = {k: doc[k] for k in ("name", "out", "model") if k in doc}
        for k, v in top.items():
            if not isinstance(v, str) or not v:
                raise ConfigError(f"recipe {k}: a non-empty string, got {v!r}")
        parts, problems = {}, []
        hours = doc.get("hours") or {}
        if not isinstance(hours, dict) or set(hours) - set(STAGES) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in hours.values()):
            problems.append(f"recipe hours: a mapping of stage ({', '.join(STAGES)}) to hours >= 0, got {hours!r}")
        else:
            parts["hours"] = {k: float(v) for k, v in hours.items()}
        model = top.get("model", cls.model)
        train = doc.get("train")
        # The recipe's model is the trainer's too, with or without a train section.
        train = {"model": model, **(train or {})} if train is None or isinstance(train, dict) else train
        for key, section, value in (("data", DataSection, data), ("train", TrainConfig, train),
                                    ("eval", SuiteConfig, doc.get("eval")), ("select", SelectSection, doc.get("select"))):
            try:
                parts[key] = parse_section(section, value, f"recipe {key}")
            except ConfigError as err:
                problems.append(str(err))
        if problems:
            raise ConfigError("; ".join(problems))
        return cls(**top, **parts)


@dataclass
class RecipeSteps:
    """Recipes run in order, each into `out/<its name>/`; `models` maps each step's name to its
    trained model's folder, which a later step names as `step:NAME`."""

    name: str
    out: str
    steps: list[Recipe]

    @property
    def models(self) -> dict[str, str]:
        return {r.name: str(Path(r.out) / "model") for r in self.steps}

    @classmethod
    def from_dict(cls, doc: dict) -> "RecipeSteps":
        """Every step typed and checked now (Recipe.from_dict), its `step:NAME` references resolved to
        earlier steps' model folders; each problem named with its step."""
        import re

        unknown = set(doc) - {"name", "out", "model", "steps"}
        if unknown:
            raise ConfigError(f"unknown section(s) beside steps: {', '.join(sorted(unknown))} (known: name, out, model, "
                              "steps; the data, train, eval and select sections go in each step)")
        for k in ("name", "out", "model"):
            if k in doc and (not isinstance(doc[k], str) or not doc[k]):
                raise ConfigError(f"recipe {k}: a non-empty string, got {doc[k]!r}")
        name = doc.get("name", "steps")
        out = doc.get("out", f"runs/{name}")
        steps = doc.get("steps")
        if not isinstance(steps, list) or not steps or not all(isinstance(s, dict) for s in steps):
            raise ConfigError("recipe steps: a list of recipes (each a mapping with its name, data, train and eval)")
        names = [s.get("name") for s in steps]
        made: list[Recipe] = []
        problems = []
        for i, step in enumerate(steps):
            sname = step.get("name")
            where = f"steps.{i}" + (f" ({sname})" if isinstance(sname, str) else "")
            if not isinstance(sname, str) or not re.fullmatch(r"[A-Za-z0-9][\w.-]*", sname):
                problems.append(f"{where}.name: each step needs a name of letters, digits, '.', '_' or '-' "
                                f"(its folder under {out}), got {sname!r}")
                continue
            if names.index(sname) != i:
                problems.append(f"{where}.name: {sname!r} names two steps")
                continue
            if "out" in step:
                problems.append(f"{where}.out: a step runs in {out}/{sname}; remove its out")
                continue
            earlier = {n: str(Path(out) / n / "model") for n in names[:i]}
            refs: list[str] = []
            resolved = _resolve_step_refs(step, earlier, names, "", refs)
            if refs:
                problems += [f"{where} {p}" for p in refs]
                continue
            try:
                made.append(Recipe.from_dict({**({"model": doc["model"]} if "model" in doc else {}), **resolved,
                                              "out": str(Path(out) / sname)}))
            except ConfigError as err:
                problems.append(f"{where}: {err}")
        if problems:
            raise ConfigError("; ".join(problems))
        return cls(name=name, out=out, steps=made)


def _resolve_step_refs(value: Any, earlier: dict[str, str], names: list, where: str, problems: list[str]) -> Any:
    """`value` with every string `step:NAME` replaced by that earlier step's model folder."""
    if isinstance(value, dict):
        return {k: _resolve_step_refs(v, earlier, names, f"{where}.{k}".lstrip("."), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_step_refs(v, earlier, names, f"{where}.{i}", problems) for i, v in enumerate(value)]
    if isinstance(value, str) and value.startswith(STEP_REF):
        ref = value[len(STEP_REF):]
        if ref in earlier:
            return earlier[ref]
        why = "is this step or a later one: a step can use only the models of the steps before it" if ref in names \
            else f"names no step (steps before this one: {', '.join(earlier) or 'none'})"
        problems.append(f"{where}: {value} {why}")
    return value


def load_recipe_file(path: str | Path, check: bool = True) -> Recipe | RecipeSteps:
    """A recipe file (a RecipeSteps when it has `steps:`), typed, and checked whole before any stage
    runs (check_recipe) unless `check` is False (a dry run lists a recipe whose data is not here)."""
    from bayling.train.trainer import read_recipe_yaml

    doc = read_recipe_yaml(path)
    if not doc:
        raise ConfigError(f"{path}: an empty recipe (a recipe names at least its data and eval; see recipes/mini.yaml)")
    try:
        r = RecipeSteps.from_dict(doc) if "steps" in doc else Recipe.from_dict(doc)
        if check:
            check_recipe(r)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    return r


def check_recipe(r: Recipe | RecipeSteps, pending: set[str] | frozenset[str] = frozenset()) -> None:
    """What the types cannot say, checked before any stage: sources and models exist, language codes
    and eval systems are real, and no training data holds an evaluation or selection sentence.
    `pending`: model folders an earlier step makes (not there yet, so not refused); every step of a
    RecipeSteps is checked with the models of the steps before it pending."""
    if isinstance(r, RecipeSteps):
        made: set[str] = set(pending)
        for i, step in enumerate(r.steps):
            try:
                check_recipe(step, pending=made)
            except ConfigError as err:
                raise ConfigError(f"steps.{i} ({step.name}): {err}") from None
            made.add(r.models[step.name])
        return
    from bayling.corpus.core import lang_code
    from bayling.models import check_model_name

    problems = []
    if r.eval.limit < 1:
        problems.append(f"recipe eval.limit: at least 1 sentence per direction, got {r.eval.limit}")
    if r.select.lines < 0:
        problems.append(f"recipe select.lines: 0 or more, got {r.select.lines}")
    for i, src in enumerate(r.data.sources):
        path = named_corpus(src.corpus)
        if path is not None and not Path(path).exists():
            problems.append(f"recipe data.sources.{i}.corpus: {src.corpus}: no such file or folder")
    codes = [(f"data.sources.{i}.langs", c) for i, s in enumerate(r.data.sources) for c in s.langs or []]
    codes += [(f"data.sources.{i}.lang", s.lang) for i, s in enumerate(r.data.sources) if s.lang]
    for d in r.eval.directions:
        src, sep, tgt = d.partition("-")
        if not sep or not src or not tgt:
            problems.append(f"recipe eval.directions: {d!r} is not SRC-TGT (e.g. eng_Latn-deu_Latn)")
        codes += [("eval.directions", c) for c in (src, tgt) if c]
    for where, code in codes:
        try:
            lang_code(code)
        except (ValueError, BaylingError) as err:
            problems.append(f"recipe {where}: {err}")
    for where, name in [("model", r.model)] + [("eval.systems", s) for s in r.eval.systems if s not in ("base", "tuned")]:
        if name in pending:
            continue
        try:
            check_model_name(name)
        except BaylingError as err:
            problems.append(f"recipe {where}: {err}")
    if r.train.init_adapter and r.train.init_adapter not in pending:
        try:
            adapter_folder(r.train.init_adapter)
        except BaylingError as err:
            problems.append(f"recipe train.init_adapter: {err}")
    eval_root = named_corpus(r.eval.corpus)
    if eval_root is None or not Path(eval_root).exists():
        problems.append(f"recipe eval.corpus: {r.eval.corpus!r} is not here"
                        + (" (../shared/data is absent)" if eval_root is None else ": no such file or folder"))
    if problems:
        raise ConfigError("; ".join(problems))
    _refuse_test_sentences(r)


def _refuse_test_sentences(r: Recipe) -> None:
    """The training data, by content, holds none of the eval's sentences nor the selection slice's."""
    from bayling.data.build import read_units

    held = {}
    for p in pick_sentences(r.eval)[0]:
        held.update({_norm(p.src): f"eval ({r.eval.corpus} {r.eval.split})", _norm(p.tgt): f"eval ({r.eval.corpus} {r.eval.split})"})
    for p in select_pairs(r):
        held.setdefault(_norm(p.src), "selection (the last select.lines of FLORES dev)")
        held.setdefault(_norm(p.tgt), "selection (the last select.lines of FLORES dev)")
    held = {k: v for k, v in held.items() if len(k) >= MIN_LEAK_CHARS}
    _refuse_ifeval_prompts(r)
    if not held:
        return
    trained = [(f"data.sources.{i} ({src.corpus} {src.split})", cfg) for i, (src, cfg) in enumerate(source_configs(r))]
    if r.data.preferences:
        opts = r.data.preferences
        root = named_corpus(str(opts.get("corpus", "flores")))
        if root is not None and Path(root).exists():
            from bayling.data.build import BuildConfig

            trained = [(f"data.preferences ({opts.get('corpus', 'flores')} {opts.get('split', 'dev')})",
                        BuildConfig(corpus=root, split=str(opts.get("split", "dev")), limit=int(opts.get("lines", 50)),
                                    langs=sorted({c for d in r.eval.directions for c in d.split("-")})))]
    for where, cfg in trained:
        for unit in read_units(cfg)[1]:
            for text in unit.texts.values():
                hit = held.get(_norm(text))
                if hit:
                    raise ConfigError(f"recipe {r.name}: {where} contains a sentence of the {hit} at {unit.source} "
                                      f"({text[:60]!r}): a model must not train on its test set; train on another split")


def _refuse_ifeval_prompts(r: Recipe) -> None:
    """IFEval / M-IFEval prompts (../shared/data/ifeval) are evaluation only: no instruction source
    may hold one."""
    from bayling.resources import shared_data_dir

    from bayling.eval.ifeval import load_ifeval

    shared = shared_data_dir()
    if shared is None or not (shared / "ifeval").is_dir() or not any(s.kind == "instructions" for s in r.data.sources):
        return
    # Every turn's prompt, read by the eval's own reader (IFEval, M-IFEval and Multi-IF layouts).
    prompts = {_norm(t.prompt): p.id for p in load_ifeval(shared / "ifeval") for t in p.turns}
    for src, part in instruction_sets(r, detect=False):
        for rec in part.train:
            for m in rec["messages"]:
                hit = prompts.get(_norm(m["content"])) if m["role"] == "user" else None
                if hit:
                    raise ConfigError(f"recipe {r.name}: {src.corpus} ({rec['meta']['source']}) holds the IFEval prompt "
                                      f"{hit}: evaluation prompts are never trained on")


MIN_LEAK_CHARS = 12  # shorter lines ("Yes.", a name) can repeat between unrelated splits


def _norm(text: str) -> str:
    return " ".join(text.split())


def instruction_sets(r: Recipe, detect: bool = True) -> list[tuple[DataSource, Any]]:
    """Every general-instruction source that is here, read and split (trained / held out);
    detect=False skips per-record language ID (a content check needs only the text)."""
    from bayling.data.instructions import read_instructions

    sets = []
    for src in r.data.sources:
        path = named_corpus(src.corpus)
        if src.kind == "instructions" and path is not None and Path(path).exists():
            sets.append((src, read_instructions(path, limit=src.limit, holdout=src.holdout,
                                                lang=src.lang or (None if detect else "und"), skip_bad=True)))
    return sets


def source_configs(r: Recipe) -> list[tuple[DataSource, BuildConfig]]:
    """The builder config of every parallel data source that is here (absent named corpora are
    skipped); the selection lines stay out of FLORES dev."""
    configs = []
    for src in r.data.sources:
        path = named_corpus(src.corpus)
        if src.kind != "parallel" or path is None or not Path(path).exists():
            continue
        limit = src.limit
        if r.select.lines and src.corpus == "flores" and src.split == "dev":  # the selection lines stay out
            kept = (_flores_lines(path, "dev") - r.select.lines) * r.data.per_line  # limit counts units: line x per_line
            limit = kept if limit is None else min(limit, kept)
        configs.append((src, r.data.build_config(src, path, limit)))
    return configs


def _mark(out: Path, stage: str, info: dict) -> None:
    atomic_write_json(out / f"{stage}.done.json", info)


def _done(out: Path, stage: str) -> dict | None:
    p = out / f"{stage}.done.json"
    return json.loads(p.read_text()) if p.is_file() else None


def stage_data(r: Recipe, out: Path, console) -> dict:
    from bayling.data.build import build_conversations
    from bayling.data.filters import FilterReport, apply_filters, default_filters

    if r.data.preferences:
        return _preference_data(r, out, console)

    here = source_configs(r)
    general = instruction_sets(r)
    used = [src.corpus for src, _ in here] + [src.corpus for src, _ in general]
    skipped = [src.corpus for src in r.data.sources if src.corpus not in used]
    configs = [cfg for _, cfg in here]
    drafts = _engine_drafts(r, out, configs, console) if r.data.drafts and not r.data.teacher else None
    for src, part in general:  # never trained on: instruction following is scored on these
        write_jsonl(out / "heldout" / f"{Path(src.corpus.partition(':')[2] or src.corpus).stem}.jsonl", part.heldout)

    def records():
        for k, cfg in enumerate(configs, 1):
            for rec in _teacher_records(cfg, r, out, k) if r.data.teacher else build_conversations(cfg, drafts):
                if r.data.single_turn:
                    rec = _first_turn_only(rec)
                    if rec is None:
                        continue
                yield rec

    report = FilterReport()
    stream = apply_filters(records(), default_filters(langid=True), report) if r.data.filter else records()
    # General instructions skip the translation filters (length ratio, target language): curated sets.
    n = write_jsonl(out / "convs.jsonl", itertools.chain(stream, *(part.train for _, part in general)))
    if n == 0:
        raise ConfigError(f"recipe {r.name}: the data stage produced no conversations (sources: "
                         f"{', '.join(s.corpus for s in r.data.sources)})")
    info = {"conversations": n, "sources": used, "skipped_sources": skipped,
            "filters": report.as_dict() if r.data.filter else None,
            "general": {src.corpus: {"trained": len(part.train), "heldout": len(part.heldout), "unreadable": part.bad}
                        for src, part in general}}
    console.print(f"[bold]data[/] {n} conversations from {', '.join(used)}"
                  + (f" (absent, skipped: {', '.join(skipped)})" if skipped else ""))
    return info


def _preference_data(r: Recipe, out: Path, console) -> dict:
    """The data stage of a DPO recipe: the model's own refinement sessions, then preference pairs."""
    from collections import Counter

    from bayling.data.io import read_records
    from bayling.data.preferences import REJECTED, preference_pairs
    from bayling.eval import interactive

    opts = dict(r.data.preferences)
    known = {"model", "corpus", "split", "lines", "max_new_tokens", "batch_size", "rejected", "chosen", "samples",
             "temperature"}
    if set(opts) - known:
        raise ConfigError(f"recipe data.preferences: unknown option(s) {', '.join(sorted(set(opts) - known))} "
                         f"(known: {', '.join(sorted(known))})")
    corpus, split = str(opts.get("corpus", "flores")), str(opts.get("split", "dev"))
    if corpus == r.eval.corpus and split == r.eval.split:
        raise ConfigError(f"recipe data.preferences: {corpus} {split} is the eval's test split; play the sessions on another")
    root = named_corpus(corpus)
    if root is None or not Path(root).exists():
        raise ConfigError(f"recipe data.preferences: corpus {corpus!r} is not here")
    lines = int(opts.get("lines", 50))
    if r.select.lines and corpus == "flores" and split == "dev" and lines > _flores_lines(root, "dev") - r.select.lines:
        raise ConfigError(f"recipe data.preferences: {lines} lines reach the {r.select.lines} held-out selection lines")
    chosen, samples = str(opts.get("chosen", "reference")), int(opts.get("samples", 0))
    if (chosen == "own") != (samples > 0):
        raise ConfigError("recipe data.preferences: chosen: own and samples (answers drawn per request) go together")
    engine = None

    def model_engine():
        nonlocal engine
        if engine is None:
            from bayling.infer.backends import load_engine

            model = r.model if opts.get("model", "base") == "base" else str(opts["model"])
            engine = load_engine(model, batch_size=int(opts.get("batch_size", r.eval.batch_size)), decoding=r.eval.decoding)
        return engine

    max_new = int(opts.get("max_new_tokens", r.eval.max_new_tokens))
    transcripts = out / "sessions.jsonl"
    if transcripts.is_file():
        console.print(f"[dim]preferences: transcripts played earlier ({transcripts}), reused[/]")
    else:
        played = interactive.run(model_engine(), interactive.InteractiveConfig(
            corpus=root, directions=r.eval.directions, split=split, limit=lines, kinds=["translate", "constraint"],
            missing_terms=True, seed=r.data.seed, max_new_tokens=max_new))
        write_jsonl(transcripts, played["transcripts"])
    if samples:
        from bayling.data.preferences import sample_replies

        sampled = out / "samples.jsonl"
        if sampled.is_file():
            console.print(f"[dim]preferences: sampled answers drawn earlier ({sampled}), reused[/]")
        else:
            write_jsonl(sampled, sample_replies(model_engine(), [t for _, t in read_records(transcripts)], samples,
                                                temperature=float(opts.get("temperature", 0.7)),
                                                max_new_tokens=max_new, seed=r.data.seed))
        transcripts = sampled
    counts: Counter = Counter()
    keep = opts.get("rejected", REJECTED)
    n = write_jsonl(out / "prefs.jsonl", preference_pairs(read_records(transcripts), counts, keep=keep, chosen=chosen))
    if n == 0:
        raise ConfigError(f"recipe {r.name}: no preference pairs from {transcripts} ({dict(counts)})")
    console.print(f"[bold]data[/] {n} preference pairs; rejected: " + ", ".join(f"{k} {v}" for k, v in counts.most_common()))
    return {"preference_pairs": n, "counts": dict(counts), "transcripts": str(transcripts)}


def _engine_drafts(r: Recipe, out: Path, configs: list, console):
    from bayling.data.drafts import prepare_drafts

    opts = dict(r.data.drafts)
    unknown = set(opts) - {"model", "prompt", "max_new_tokens", "batch_size"}
    if unknown:
        raise ConfigError(f"recipe data.drafts: unknown option(s) {', '.join(sorted(unknown))} "
                         "(known: model, prompt, max_new_tokens, batch_size)")
    model = r.model if opts.get("model", "base") == "base" else str(opts["model"])
    return prepare_drafts(configs, model, out / "drafts.jsonl", prompt=opts.get("prompt", "few-shot"),
                          chat_format=r.train.chat_format, max_new_tokens=int(opts.get("max_new_tokens", 128)),
                          batch_size=int(opts.get("batch_size", r.eval.batch_size)), log=console.print)


def _teacher_records(cfg, r: Recipe, out: Path, k: int):
    """Teacher-written conversations for one source; its own checkpoint and cache make it resumable."""
    import dataclasses
    import hashlib

    from bayling.data.build import plan_conversations
    from bayling.data.io import read_records
    from bayling.data.teacher import TeacherConfig, teacher_build

    part = out / f"teacher-{k}.jsonl"
    tcfg = TeacherConfig(**r.data.teacher)
    key = hashlib.sha256(json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str).encode()).hexdigest()
    if not part.is_file():
        teacher_build(plan_conversations(cfg), part, tcfg, key)
    for _, rec in read_records(part):
        yield rec


def _first_turn_only(rec: dict) -> dict | None:
    """ALMA-style single-turn translation: the first request and its answer only."""
    kinds = rec.get("meta", {}).get("kinds", [])
    if not kinds or kinds[0] != "translate":
        return None
    msgs = rec["messages"]
    start = 1 if msgs and msgs[0]["role"] == "system" else 0
    meta = {**rec["meta"], "kinds": ["translate"], "expect": rec["meta"].get("expect", [])[1:2]
            if msgs[start + 1].get("weight", 1) == 0 else rec["meta"].get("expect", [])[:1]}
    if msgs[start + 1].get("weight", 1) == 0:  # a refine session's draft: the single turn answers with its fix
        return {"messages": msgs[: start + 1] + [{"role": "assistant", "content": msgs[start + 3]["content"]}], "meta": meta}
    return {"messages": msgs[: start + 2], "meta": meta}


def _flores_lines(root: str, split: str) -> int:
    from bayling.corpus import read_flores_multiway

    return sum(1 for _ in read_flores_multiway(root, split, ["eng_Latn"]))


def select_pairs(r: Recipe) -> list:
    """The held-out selection slice: the last `select.lines` FLORES dev lines in every eval direction."""
    from bayling.corpus import read_flores

    root = named_corpus("flores")
    if not r.select.lines or root is None or not Path(root).exists():
        return []
    first = _flores_lines(root, "dev") - r.select.lines
    pairs = []
    for d in r.eval.directions:
        src, _, tgt = d.partition("-")
        pairs += list(itertools.islice(read_flores(root, "dev", pairs=[(src, tgt)]), first, None))
    return pairs


def stage_train(r: Recipe, out: Path, console, force: bool = False) -> dict:
    from bayling.train import train
    from bayling.train.select import write_select_set

    extra = {}
    pairs = select_pairs(r)
    if pairs:
        write_select_set(out / "select.jsonl", pairs)
        extra = {"select_set": str(out / "select.jsonl"), "select_max_new_tokens": r.select.max_new_tokens}
    elif r.select.lines:
        console.print("[yellow]select: FLORES-200 dev is not here; the last step is the model[/]")
    data = out / ("prefs.jsonl" if r.train.objective == "dpo" else "convs.jsonl")
    # Resume the checkpoints of this same training config (bayling.train.checkpoints); --force starts over.
    cfg = replace(r.train, **extra, data=str(data), out=str(out / "model"), resume=not force)
    summary = train(cfg)
    keys = ("global_step", "final_loss", "train_seconds", "packing_efficiency", "data", "selection")
    return {k: summary.get(k) for k in keys}


def stage_eval(r: Recipe, out: Path, console) -> dict:
    from bayling.infer.backends import load_engine

    pairs, shots = pick_sentences(r.eval)
    results: dict[str, Any] = {}
    for system in r.eval.systems:
        t = time.perf_counter()
        key = _system_fingerprint(r, system, out)
        saved = out / f"eval-{system.replace('/', '_')}.json"
        if saved.is_file() and json.loads(saved.read_text()).get("fingerprint") == key:
            # Same weights, same eval settings: greedy decoding gives the same answers (a resumed
            # run, or the base copied in from another run of the same eval).
            results[system] = json.loads(saved.read_text())["result"]
            console.print(f"[dim]eval {system}: scored earlier with the same weights and settings ({saved}), reused[/]")
            continue
        if system == "base":
            # The base model meets the refinement turns in the same chat format the tuned one learns.
            model, kw, prompt = r.model, {"chat_format": r.train.chat_format}, "few-shot"
        elif system == "tuned" and r.eval.base_url:  # the tuned model served elsewhere (vLLM)
            model, kw, prompt = None, {"backend": "openai", "base_url": r.eval.base_url}, "chat"
        else:
            model, kw, prompt = str(out / "model") if system == "tuned" else system, {}, "chat"
        engine = load_engine(model, batch_size=r.eval.batch_size, decoding=r.eval.decoding, **kw)
        console.print(f"[bold]eval[/] {system} ({prompt}) on {len(pairs)} held-out sentences")
        results[system] = evaluate_system(engine, prompt, pairs, shots, r.eval, seed=r.data.seed)
        results[system]["seconds"] = round(time.perf_counter() - t, 1)
        results[system]["backend"] = kw.get("backend", "transformers")  # what produced these answers
        if getattr(engine, "batching", None):
            results[system]["batching"] = engine.batching
        if engine.decoding:
            results[system]["decoding"] = dict(engine.decoding)
        if getattr(engine, "model", None) is not None and hasattr(engine.model, "dtype"):
            results[system]["dtype"] = str(engine.model.dtype).removeprefix("torch.")
        del engine
        atomic_write_json(saved, {"fingerprint": key, "result": results[system]})
    return results


def _system_fingerprint(r: Recipe, system: str, out: Path) -> str:
    """What a system's eval result depends on: its weights and every eval setting."""
    import hashlib

    if system == "tuned":
        from bayling.models.spec import content_fingerprint

        weights = out / "model"
        ident = [content_fingerprint(weights) if weights.is_dir() else "", r.eval.base_url or ""]
    else:
        name = r.model if system == "base" else system
        ident = [name, r.train.chat_format or ""]
        # A shipped or embedded name, or a folder, holds other weights after an update: key on its contents.
        from bayling.models.spec import resolve_model

        ident.append(resolve_model(name).fingerprint)
    # The other systems in the list change nothing about this one's answers; settings left unset
    # (None: a battery not asked for) do not either, so adding an optional setting keeps old results.
    settings = {k: v for k, v in asdict(r.eval).items() if k != "systems" and v is not None}
    from bayling.hardware import fast_bf16

    # Weights load in bf16 where that is fast (bayling.models.load_model): a result from the other dtype is not reused.
    doc = {"system": system, "weights": ident, "eval": settings, "seed": r.data.seed, "bf16": fast_bf16()}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()



def write_results(r: Recipe, out: Path, results: dict, timings: dict) -> None:
    from bayling.eval.report import plot_recipe_results, write_report

    paired = paired_chrf(results) if "base" in results else None
    doc = {**results, "recipe": r.name, "model": r.model, "timings_seconds": timings, "paired_chrf": paired,
           "reference_off_target": reference_off_target(next(iter(results.values()))["examples"]) if results else None,
           "eval_set": {"corpus": r.eval.corpus, "split": r.eval.split, "directions": r.eval.directions,
                        "sentences_per_direction": r.eval.limit}}
    atomic_write_json(out / "results.json", doc)
    runs = [(name, summary(res)) for name, res in results.items()]
    write_report(runs, html_path=str(out / "report.html"), markdown_path=str(out / "report.md"),
                 title=f"BayLing recipe {r.name}: {r.model}")
    plot_recipe_results(results, out / "results.png", r.model, out / "model")


MAIN_ONLY = ("data", "eval")  # under a multi-process launch: one rank builds and scores, the rest wait


def _ranks() -> tuple[bool, Any]:
    """(is this the main process, a barrier) — under `accelerate launch`/torchrun every rank runs
    the recipe, but only training is shared work."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return True, lambda: None
    from accelerate import PartialState

    state = PartialState()
    return state.is_main_process, state.wait_for_everyone


def run_recipe(r: Recipe | RecipeSteps, *, force: bool = False, stop_after: str | None = None) -> dict:
    """Every stage in order, each skipped when marked done (a RecipeSteps: run_steps)."""
    if isinstance(r, RecipeSteps):
        return run_steps(r, force=force, stop_after=stop_after)
    from rich.console import Console

    console = Console(stderr=True)
    check_recipe(r)  # before any stage: a wrong path or a test sentence in the data fails now, not hours later
    if force:  # the model that played them may have changed: sessions and samples are played again
        for name in ("sessions.jsonl", "samples.jsonl"):
            (Path(r.out) / name).unlink(missing_ok=True)
    out = Path(r.out)
    out.mkdir(parents=True, exist_ok=True)
    main, barrier = _ranks()
    timings_path = out / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() and not force else {}
    stages = {"data": stage_data, "train": stage_train, "eval": stage_eval}
    outputs: dict[str, Any] = {}
    for stage in STAGES:
        prev = None if force else _done(out, stage)
        barrier()  # every rank has read the marker before the main one can rewrite it
        if prev is not None:
            console.print(f"[dim]{stage}: done earlier ({out / (stage + '.done.json')}), skipped[/]")
            outputs[stage] = prev
        elif stage in MAIN_ONLY and not main:
            barrier()  # the main process runs it
            outputs[stage] = _done(out, stage)
        else:
            t = time.perf_counter()
            outputs[stage] = stages[stage](r, out, console, **({"force": True} if force and stage == "train" else {}))
            if main:
                timings[stage] = round(time.perf_counter() - t, 1)
                atomic_write_json(timings_path, timings)
                _mark(out, stage, outputs[stage])
            if stage in MAIN_ONLY:
                barrier()
        if stage == stop_after:
            break
    if "eval" in outputs and main:
        write_results(r, out, outputs["eval"], timings)
    return {"outputs": outputs, "timings": timings, "recipe": asdict(r)}


def run_steps(rs: RecipeSteps, *, force: bool = False, stop_after: str | None = None) -> dict:
    """Every step in order (run_recipe, so each resumes stage by stage); a finished step is skipped;
    `stop_after` names the last step to run."""
    from rich.console import Console

    console = Console(stderr=True)
    if stop_after is not None and stop_after not in rs.models:
        raise ConfigError(f"stop after {stop_after!r}: not a step of {rs.name} (steps: {', '.join(rs.models)})")
    runs: dict[str, dict] = {}
    for r in rs.steps:
        out = Path(r.out)
        if not force and _done(out, "eval") is not None:
            console.print(f"[dim]step {r.name}: done earlier ({out}), skipped[/]")
            timings = json.loads((out / "timings.json").read_text()) if (out / "timings.json").is_file() else {}
            runs[r.name] = {"timings": timings, "skipped": True}
        else:
            console.print(f"[bold]step {r.name}[/] -> {out}")
            runs[r.name] = run_recipe(r, force=force)
        if r.name == stop_after:
            break
    return {"steps": runs}


def describe_recipe(r: Recipe | RecipeSteps) -> list[str]:
    """What `bayling recipe run --dry-run` prints: each step and stage, what it does, the hours it took
    when measured (the recipe's `hours:`) and whether it is done in this checkout; runs nothing."""
    multi = isinstance(r, RecipeSteps)
    steps = r.steps if multi else [r]
    names = {folder: f"{STEP_REF}{name}" for name, folder in r.models.items()} if multi else {}

    def label(model: str | None, default: str) -> str:
        return default if model in (None, "base") else names.get(str(model), str(model))

    lines = [f"{r.name}: " + (f"{len(steps)} steps, each into {r.out}/<step>/" if multi else f"into {r.out}/")
             + " (dry run: nothing is run; hours: each stage's wall time when measured, the recipe's `hours:`)"]
    total, unmeasured = 0.0, False
    for s in steps:
        if multi:
            lines.append(f"step {s.name}")
        d, t, e = s.data, s.train, s.eval
        if d.preferences:
            p = d.preferences
            data = (f"preference pairs: {label(p.get('model'), s.model)} plays term-request sessions on the first "
                    f"{p.get('lines', 50)} lines of {p.get('corpus', 'flores')} {p.get('split', 'dev')} per eval direction"
                    + (f", {p['samples']} sampled answers per request (chosen: {p.get('chosen', 'reference')})"
                       if p.get("samples") else ""))
        else:
            corpora = dict.fromkeys(src.corpus.partition(":")[0] if src.corpus.startswith("newstest") else src.corpus
                                    for src in d.sources)
            data = (f"{'teacher-written' if d.teacher else d.sessions} conversations from {', '.join(corpora)}"
                    + (f"; refine drafts by {label(d.drafts.get('model'), s.model)}" if d.drafts else ""))
        train = (f"{'DPO' if t.objective == 'dpo' else 'SFT'} ({t.method}) from {label(t.init_adapter, s.model)}, "
                 + (f"{t.max_steps} steps" if t.max_steps > 0 else f"{t.epochs:g} epochs")
                 + (f"; the best checkpoint on the last {s.select.lines} FLORES dev lines per direction"
                    if s.select.lines else "; the last step is the model"))
        evals = (f"{', '.join(label(x, x) for x in e.systems)} on {e.corpus} {e.split}, "
                 f"{len(e.directions)} directions x {e.limit} sentences")
        for stage, what in (("data", data), ("train", train), ("eval", evals)):
            hours = s.hours.get(stage)
            total += hours or 0.0
            unmeasured |= hours is None
            done = "  [done here]" if _done(Path(s.out), stage) is not None else ""
            lines.append(f"  {stage:<5} {'-' if hours is None else f'{hours:.2f} h':>7}  {what}{done}")
    if not any(s.hours for s in steps):
        lines.append("total: not measured (the recipe has no hours:)")
    else:
        lines.append(f"total {total:.2f} h" + ("  (-: not measured on its own)" if unmeasured else ""))
    return lines
