"""The BayLing recipe as one resumable pipeline: data -> train -> eval -> report.

A recipe is a YAML file with `data`, `train` and `eval` sections (see recipes/mini.yaml). Each
stage writes its outputs atomically plus a `<stage>.done.json` marker; a rerun skips finished
stages and resumes an interrupted training run from its last checkpoint.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from dataclasses import asdict, dataclass, field

from bayling.io import atomic_write_json, write_jsonl
from pathlib import Path
from typing import Any
from bayling.errors import ConfigError

__all__ = ["Recipe", "load_recipe_file", "run_recipe", "STAGES"]

STAGES = ("data", "train", "eval")


@dataclass
class DataSource:
    corpus: str  # "sample" = the shipped sample; "flores" = ../shared FLORES-200 when present; or a path
    split: str = "dev"
    langs: list[str] | None = None
    limit: int | None = None


def _build_default(name: str):
    from bayling.data.build import BuildConfig

    return BuildConfig.__dataclass_fields__[name].default  # one home for the data defaults


@dataclass
class DataSection:
    sources: list[DataSource] = field(default_factory=lambda: [DataSource("sample")])
    seed: int = 7
    per_line: int = 1
    max_turns: int = field(default_factory=lambda: _build_default("max_turns"))
    sessions: str = field(default_factory=lambda: _build_default("sessions"))  # refine (v2) or v1
    multi_turn: float = field(default_factory=lambda: _build_default("multi_turn"))
    into_english: float = field(default_factory=lambda: _build_default("into_english"))
    crosslingual: float = field(default_factory=lambda: _build_default("crosslingual"))
    constrained: float = field(default_factory=lambda: _build_default("constrained"))
    temperature: float = field(default_factory=lambda: _build_default("temperature"))  # language sampling
    single_turn: bool = False  # ALMA-style ablation: keep only the first translation turn
    filter: bool = True
    teacher: dict[str, Any] | None = None  # TeacherConfig fields (base_url, model, ...): teacher mode
    # Refine sessions' drafts from a model's own translations (bayling.data.drafts), e.g.
    # {model: base} (the recipe's model, few-shot) or {model: NAME, prompt: chat}; cached in out/drafts.jsonl.
    drafts: dict[str, Any] | None = None


@dataclass
class EvalSection:
    corpus: str = "sample"
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


@dataclass
class SelectSection:
    """Checkpoint selection: the last `lines` lines of FLORES-200 dev, in every eval direction, are
    held out of the training data and score each saved checkpoint (never devtest)."""

    lines: int = 0  # 0: no selection, the last step is the model
    max_new_tokens: int = 64


@dataclass
class Recipe:
    name: str = "mini"
    out: str = "runs/mini"
    model: str = "gemma3-270m"
    data: DataSection = field(default_factory=DataSection)
    train: dict[str, Any] = field(default_factory=dict)
    eval: EvalSection = field(default_factory=EvalSection)
    select: SelectSection = field(default_factory=SelectSection)

    @classmethod
    def from_dict(cls, doc: dict) -> "Recipe":
        doc = dict(doc)
        data = dict(doc.pop("data", {}) or {})
        sources = [DataSource(**s) if isinstance(s, dict) else DataSource(str(s)) for s in data.pop("sources", ["sample"])]
        ev = dict(doc.pop("eval", {}) or {})
        select = dict(doc.pop("select", {}) or {})
        known = {"name", "out", "model", "train"}
        unknown = set(doc) - known
        if unknown:
            raise ConfigError(f"unknown recipe section(s): {', '.join(sorted(unknown))} (known: data, train, eval, select, "
                             f"{', '.join(sorted(known - {'train'}))})")
        try:
            return cls(data=DataSection(sources=sources, **data), eval=EvalSection(**ev), select=SelectSection(**select),
                       **doc)
        except TypeError as err:
            raise ConfigError(f"recipe: {err}") from None


def load_recipe_file(path: str | Path) -> Recipe:
    from bayling.train.trainer import read_recipe_yaml

    return Recipe.from_dict(read_recipe_yaml(path))


def _corpus_path(name: str) -> str | None:
    from bayling.resources import sample_dir, shared_data_dir

    if name == "sample":
        return str(sample_dir())
    if name == "flores":
        shared = shared_data_dir()
        return str(shared / "flores200") if shared else None
    if name.startswith("newstest"):
        shared = shared_data_dir()
        sub = name.partition(":")[2]
        return str(shared / "newstest" / sub) if shared and (shared / "newstest" / sub).exists() else None
    return name


def _mark(out: Path, stage: str, info: dict) -> None:
    atomic_write_json(out / f"{stage}.done.json", info)


def _done(out: Path, stage: str) -> dict | None:
    p = out / f"{stage}.done.json"
    return json.loads(p.read_text()) if p.is_file() else None


def stage_data(r: Recipe, out: Path, console) -> dict:
    from bayling.data.build import BuildConfig, build_conversations
    from bayling.data.filters import FilterReport, apply_filters, default_filters

    used, skipped = [], []
    configs = []
    for src in r.data.sources:
        path = _corpus_path(src.corpus)
        if path is None or not Path(path).exists():
            skipped.append(src.corpus)
            continue
        used.append(src.corpus)
        limit = src.limit
        if r.select.lines and src.corpus == "flores" and src.split == "dev":  # the selection lines stay out
            kept = _flores_lines(path, "dev") - r.select.lines
            limit = kept if limit is None else min(limit, kept)
        configs.append(BuildConfig(corpus=path, split=src.split, langs=src.langs, limit=limit, seed=r.data.seed,
                                   per_line=r.data.per_line, max_turns=r.data.max_turns,
                                   crosslingual=r.data.crosslingual, sessions=r.data.sessions,
                                   multi_turn=r.data.multi_turn, into_english=r.data.into_english,
                                   constrained=r.data.constrained, temperature=r.data.temperature,
                                   mode="teacher" if r.data.teacher else "reference"))
    drafts = _engine_drafts(r, out, configs, console) if r.data.drafts and not r.data.teacher else None

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
    n = write_jsonl(out / "convs.jsonl", stream)
    if n == 0:
        raise ConfigError(f"recipe {r.name}: the data stage produced no conversations (sources: "
                         f"{', '.join(s.corpus for s in r.data.sources)})")
    info = {"conversations": n, "sources": used, "skipped_sources": skipped,
            "filters": report.as_dict() if r.data.filter else None}
    console.print(f"[bold]data[/] {n} conversations from {', '.join(used)}"
                  + (f" (absent, skipped: {', '.join(skipped)})" if skipped else ""))
    return info


def _engine_drafts(r: Recipe, out: Path, configs: list, console):
    from bayling.data.drafts import prepare_drafts

    opts = dict(r.data.drafts)
    unknown = set(opts) - {"model", "prompt", "max_new_tokens", "batch_size"}
    if unknown:
        raise ConfigError(f"recipe data.drafts: unknown option(s) {', '.join(sorted(unknown))} "
                         "(known: model, prompt, max_new_tokens, batch_size)")
    model = r.model if opts.get("model", "base") == "base" else str(opts["model"])
    return prepare_drafts(configs, model, out / "drafts.jsonl", prompt=opts.get("prompt", "few-shot"),
                          chat_format=r.train.get("chat_format"), max_new_tokens=int(opts.get("max_new_tokens", 128)),
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

    root = _corpus_path("flores")
    if not r.select.lines or root is None or not Path(root).exists():
        return []
    first = _flores_lines(root, "dev") - r.select.lines
    pairs = []
    for d in r.eval.directions:
        src, _, tgt = d.partition("-")
        pairs += list(itertools.islice(read_flores(root, "dev", pairs=[(src, tgt)]), first, None))
    return pairs


def stage_train(r: Recipe, out: Path, console) -> dict:
    from bayling.train import TrainConfig, train
    from bayling.train.select import write_select_set

    extra = {}
    pairs = select_pairs(r)
    if pairs:
        write_select_set(out / "select.jsonl", pairs)
        extra = {"select_set": str(out / "select.jsonl"), "select_max_new_tokens": r.select.max_new_tokens}
    elif r.select.lines:
        console.print("[yellow]select: FLORES-200 dev is not here; the last step is the model[/]")
    cfg = TrainConfig.from_dict({"model": r.model, **r.train, **extra, "data": str(out / "convs.jsonl"),
                                 "out": str(out / "model"), "resume": (out / "model" / "checkpoints").is_dir()})
    summary = train(cfg)
    keys = ("global_step", "final_loss", "train_seconds", "packing_efficiency", "data", "selection")
    return {k: summary.get(k) for k in keys}


def _eval_pairs(r: Recipe):
    from bayling.eval.translation import test_and_shots

    root = _corpus_path(r.eval.corpus)
    if root is None:
        raise ConfigError(f"eval corpus {r.eval.corpus!r} is not available here")
    pairs, shots = [], []
    for d in r.eval.directions:
        src, _, tgt = d.partition("-")
        test, shot, _ = test_and_shots(root, src, tgt, r.eval.split, r.eval.limit, r.eval.n_shots, r.eval.shots_split)
        pairs += test
        shots += shot
    return pairs, shots


SOURCE_COPY_CHRF = 60.0  # a translation this close to its source (chrF) hands the source back


def failure_rates(engine, pairs, hyps, max_new_tokens: int) -> dict:
    """Shares of outputs that ran to max_new_tokens (runaway loops) and that copy the source."""
    from sacrebleu.metrics import CHRF

    chrf = CHRF()
    counted = hasattr(engine, "count_tokens")
    runaway = [engine.count_tokens(h) >= max_new_tokens - 1 for h in hyps] if counted else []
    copies = [bool(h.strip()) and chrf.sentence_score(h, [p.src]).score >= SOURCE_COPY_CHRF for p, h in zip(pairs, hyps)]
    return {"max_new_tokens_rate": sum(runaway) / len(runaway) if runaway else None,
            "source_copy_rate": sum(copies) / max(len(copies), 1)}


def evaluate_system(engine, prompt: str, pairs, shots, r: Recipe) -> dict:
    """chrF/BLEU/off-target on held-out sentences, constraint inclusion, and a two-turn refinement check."""
    from bayling.eval.interactive import build_sessions, run_sessions, score_sessions
    from bayling.eval.translation import score_directions, translate

    hyps = translate(engine, pairs, prompt=prompt, shots=shots, n_shots=r.eval.n_shots,
                     max_new_tokens=r.eval.max_new_tokens, chunk=r.eval.batch_size)
    scores = score_directions(pairs, hyps)
    # Refinement: translate, then "make sure the translation uses X", X a word of the reference
    # that the first answer lacks (a real difference to fix).
    per = r.eval.sessions_per_direction
    chosen = pairs if per is None else [p for i, p in enumerate(pairs) if i % r.eval.limit < per]
    sessions = build_sessions(chosen, kinds=["translate", "constraint"], seed=r.data.seed, missing_terms=True)
    replies = run_sessions(engine, sessions, max_new_tokens=r.eval.max_new_tokens)
    inter = score_sessions(sessions, replies)
    constraint = inter["breakdown"]["turn_kind"].get("constraint", {})
    failures = failure_rates(engine, pairs, hyps, r.eval.max_new_tokens)
    result = {
        "chrf": scores["chrf"], "bleu": scores["bleu"], "off_target_rate": scores.get("off_target_rate"),
        **failures,
        "constraint_inclusion": constraint.get("constraint_ok_rate"),
        "refinement_on_target": constraint.get("on_target_rate"),
        "refinement_changed": constraint.get("changed_rate"),
        "prompt": prompt,
        "breakdown": {"direction": {k: {m: v for m, v in d.items()} for k, d in
                                    scores.get("breakdown", {}).get("direction", {}).items()}},
        # Every hypothesis, so runs can be compared sentence by sentence (paired tests).
        "examples": [{"src": p.src, "ref": p.tgt, "hyp": h, "direction": f"{p.src_lang}-{p.tgt_lang}"}
                     for p, h in zip(pairs, hyps)],
        "refinement_examples": [{"turns": [t["user"] for t in s["turns"]], "replies": rs}
                                for s, rs in itertools.islice(zip(sessions, replies), 4)],
    }
    if "breakdown" not in scores:  # a single direction
        result["breakdown"] = {"direction": {scores["direction"]: {"chrf": scores["chrf"], "bleu": scores["bleu"],
                                                                   "off_target_rate": scores.get("off_target_rate")}}}
    return result


def stage_eval(r: Recipe, out: Path, console) -> dict:
    from bayling.infer.backends import load_engine

    pairs, shots = _eval_pairs(r)
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
            model, kw, prompt = r.model, {"chat_format": r.train.get("chat_format")}, "few-shot"
        elif system == "tuned" and r.eval.base_url:  # the tuned model served elsewhere (vLLM)
            model, kw, prompt = None, {"backend": "openai", "base_url": r.eval.base_url}, "chat"
        else:
            model, kw, prompt = str(out / "model") if system == "tuned" else system, {}, "chat"
        engine = load_engine(model, batch_size=r.eval.batch_size, **kw)
        console.print(f"[bold]eval[/] {system} ({prompt}) on {len(pairs)} held-out sentences")
        results[system] = evaluate_system(engine, prompt, pairs, shots, r)
        results[system]["seconds"] = round(time.perf_counter() - t, 1)
        results[system]["backend"] = kw.get("backend", "transformers")  # what produced these answers
        del engine
        atomic_write_json(saved, {"fingerprint": key, "result": results[system]})
    return results


def _system_fingerprint(r: Recipe, system: str, out: Path) -> str:
    """What a system's eval result depends on: its weights and every eval setting."""
    import hashlib

    if system == "tuned":
        weights = out / "model"
        files = sorted(p for p in weights.glob("*.safetensors")) if weights.is_dir() else []
        ident = [f"{p.name}:{hashlib.sha256(p.read_bytes()).hexdigest()}" for p in files] + [r.eval.base_url or ""]
    else:
        ident = [r.model if system == "base" else system, r.train.get("chat_format") or ""]
    # The other systems in the list change nothing about this one's answers.
    settings = {k: v for k, v in asdict(r.eval).items() if k != "systems"}
    doc = {"system": system, "weights": ident, "eval": settings, "seed": r.data.seed}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()



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


def _summary(res: dict) -> dict:
    """A system's scores without its examples."""
    return {k: v for k, v in res.items() if k not in ("examples", "refinement_examples")}


def write_results(r: Recipe, out: Path, results: dict, timings: dict) -> None:
    from bayling.eval.report import write_report

    paired = _paired_tests({name: res for name, res in results.items()}) if "base" in results else None
    doc = {**results, "recipe": r.name, "model": r.model, "timings_seconds": timings, "paired_chrf": paired,
           "reference_off_target": reference_off_target(next(iter(results.values()))["examples"]) if results else None,
           "eval_set": {"corpus": r.eval.corpus, "split": r.eval.split, "directions": r.eval.directions,
                        "sentences_per_direction": r.eval.limit}}
    atomic_write_json(out / "results.json", doc)
    runs = [(name, _summary(res)) for name, res in results.items()]
    write_report(runs, html_path=str(out / "report.html"), markdown_path=str(out / "report.md"),
                 title=f"BayLing recipe {r.name}: {r.model}")
    _plot_before_after(results, out / "results.png", r)


def _plot_before_after(results: dict, path: Path, r: Recipe) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayling.train.select import read_curve

    systems = list(results)
    dirs = list(next(iter(results.values()))["breakdown"]["direction"])
    curve = read_curve(path.parent / "model")
    fig, axes = plt.subplots(1, 3 if curve else 2, figsize=(16 if curve else 11, 3.8))
    if curve:  # checkpoint selection on held-out dev: which step became the model
        steps, chrf = [p["step"] for p in curve], [p["chrf"] for p in curve]
        best = max(curve, key=lambda p: (p["chrf"], -p["step"]))
        axes[2].plot(steps, chrf, marker="o")
        axes[2].scatter([best["step"]], [best["chrf"]], s=120, facecolors="none", edgecolors="red", label="kept")
        axes[2].set_xlabel("training step")
        axes[2].set_ylabel("chrF (held-out dev slice)")
        axes[2].set_title(f"checkpoint selection ({best['n']} dev pairs)")
        axes[2].legend()
    width = 0.8 / len(systems)
    for i, s in enumerate(systems):
        vals = [results[s]["breakdown"]["direction"][d]["chrf"] for d in dirs]
        axes[0].bar([x + i * width for x in range(len(dirs))], vals, width, label=s)
    axes[0].set_xticks([x + width * (len(systems) - 1) / 2 for x in range(len(dirs))])
    axes[0].set_xticklabels([d.replace("_Latn", "").replace("_Hans", "") for d in dirs], rotation=20)
    axes[0].set_ylabel("chrF")
    axes[0].set_title("chrF per direction (held-out)")
    axes[0].legend()
    metrics = ["off_target_rate", "constraint_inclusion", "refinement_on_target"]
    for i, s in enumerate(systems):
        axes[1].bar([x + i * width for x in range(len(metrics))], [results[s].get(m) or 0 for m in metrics],
                    width, label=s)
    axes[1].set_xticks([x + width * (len(systems) - 1) / 2 for x in range(len(metrics))])
    axes[1].set_xticklabels(["off-target", "constraint incl.", "refine on-target"])
    axes[1].set_ylim(0, 1)
    axes[1].set_title("rates")
    fig.suptitle(f"{r.model}: " + " vs ".join(systems))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


MAIN_ONLY = ("data", "eval")  # under a multi-process launch: one rank builds and scores, the rest wait


def _ranks() -> tuple[bool, Any]:
    """(is this the main process, a barrier) — under `accelerate launch`/torchrun every rank runs
    the recipe, but only training is shared work."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return True, lambda: None
    from accelerate import PartialState

    state = PartialState()
    return state.is_main_process, state.wait_for_everyone


def run_recipe(r: Recipe, *, force: bool = False, stop_after: str | None = None) -> dict:
    from rich.console import Console

    console = Console(stderr=True)
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
            outputs[stage] = stages[stage](r, out, console)
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



def _paired_tests(loaded: dict[str, dict]) -> dict | None:
    """chrF of every system against the first, pooled over all sentences, by paired bootstrap —
    when each run kept all its hypotheses for the same sentences (else None)."""
    from bayling.eval.translation import paired_significance

    examples = [r.get("examples") or [] for r in loaded.values()]
    keys = [[(e["direction"], e["src"]) for e in ex] for ex in examples]
    if len(loaded) < 2 or len(keys[0]) < 20 or any(k != keys[0] for k in keys[1:]):
        return None
    labels = list(loaded)
    refs = [e["ref"] for e in examples[0]]
    base = [e["hyp"] for e in examples[0]]
    out: dict[str, Any] = {"sentences": len(refs), "systems": {}}
    for label, ex in zip(labels[1:], examples[1:]):
        test = paired_significance(base, [e["hyp"] for e in ex], refs, method="bs", metrics=("chrf",))
        chrf = test["metrics"]["chrf"]
        out["baseline"] = chrf["baseline"]
        out["systems"][label] = {k: chrf[k] for k in ("system", "delta", "p_value", "significant")}
    return out


def compare_systems(systems: list[tuple[str, str, str]], out: str | Path) -> str:
    """Side-by-side table and plot of systems from several runs: (label, run dir, system name).

    Writes OUT.md, OUT.png and OUT.json; returns the markdown.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    loaded = {}
    for label, run, system in systems:
        path = Path(run) / "results.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no results (run the recipe first)")
        res = json.loads(path.read_text(encoding="utf-8"))
        if system not in res:
            raise ConfigError(f"{path}: no system {system!r} (has: {', '.join(k for k in res if isinstance(res[k], dict) and 'chrf' in res[k])})")
        loaded[label] = res[system]
    labels = list(loaded)
    dirs = list(next(iter(loaded.values()))["breakdown"]["direction"])
    lines = ["| direction | " + " | ".join(f"{l} chrF / BLEU / off-target" for l in labels) + " |",
             "|---|" + "---|" * len(labels)]

    def cell(d: dict) -> str:
        ot = d.get("off_target_rate")
        return f"{d['chrf']:.1f} / {d['bleu']:.1f} / {'-' if ot is None else f'{ot:.2f}'}"

    for d in dirs:
        lines.append(f"| {d} | " + " | ".join(cell(loaded[l]["breakdown"]["direction"].get(d, {})) for l in labels) + " |")
    lines.append("| **mean** | " + " | ".join(cell(loaded[l]) for l in labels) + " |")
    lines += ["", "| | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for key, name in (("off_target_rate", "off-target (mean over directions)"),
                      ("max_new_tokens_rate", "ran to max_new_tokens"),
                      ("source_copy_rate", "copied the source"),
                      ("constraint_inclusion", "constraint inclusion (2nd turn)"),
                      ("refinement_on_target", "2nd turn in the target language"),
                      ("refinement_changed", "2nd turn changed the translation")):
        vals = [loaded[l].get(key) for l in labels]
        lines.append(f"| {name} | " + " | ".join("-" if v is None else f"{v:.2f}" for v in vals) + " |")
    paired = _paired_tests(loaded)
    if paired:
        base = labels[0]
        lines += ["", f"Paired bootstrap against {base} (sacreBLEU, 1,000 resamples) on chrF pooled over all "
                  f"{paired['sentences']} sentences:", "",
                  "| system | pooled chrF | Δ vs " + base + " | p |", "|---|---|---|---|",
                  f"| {base} | {paired['baseline']:.1f} | | |"]
        for l, t in paired["systems"].items():
            lines.append(f"| {l} | {t['system']:.1f} | {t['delta']:+.1f} | {t['p_value']:.3f}"
                         + (" (significant)" if t["significant"] else "") + " |")
    elif len(labels) > 1:
        lines += ["", "(No paired test: the runs did not keep hypotheses for the same sentences — "
                  "re-run their eval stage.)"]
    md = "\n".join(lines)
    (out.with_suffix(".md")).write_text(md + "\n", encoding="utf-8")
    (out.with_suffix(".json")).write_text(json.dumps(
        {"systems": {l: _summary(r) for l, r in loaded.items()}, "paired_chrf": paired},
        indent=2, ensure_ascii=False))

    fig, ax = plt.subplots(figsize=(max(8, len(dirs) * 0.9), 4))
    width = 0.8 / len(labels)
    for i, l in enumerate(labels):
        ax.bar([x + i * width for x in range(len(dirs))],
               [loaded[l]["breakdown"]["direction"].get(d, {}).get("chrf", 0) for d in dirs], width, label=l)
    ax.set_xticks([x + width * (len(labels) - 1) / 2 for x in range(len(dirs))])
    ax.set_xticklabels([d.replace("_", " ").replace("-", "→\n") for d in dirs], fontsize=7)
    ax.set_ylabel("chrF (FLORES-200 devtest)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    plt.close(fig)
    return md
