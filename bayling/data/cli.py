"""`bayling data ...`: build, filter, mix and describe instruction data (thin wrappers over the API).

Mounted by bayling/cli.py as `app.add_typer(data_app, name="data")`; also runs alone as
`python -m bayling.data.cli build ...` (what the kill-and-resume test does).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

from bayling.progress import progress_bar

from bayling.data.build import BuildConfig as _DEFAULTS  # light (no model code): option defaults live in one place
from bayling.errors import ConfigError

app = typer.Typer(help="Instruction data: interactive-translation sessions, cross-lingual tasks, filters, mixing, "
                       "data cards.", no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


@app.command()
def build(
    corpus: str = typer.Option(..., help="FLORES-200 folder (multi-way), or any corpus `bayling corpus head` reads."),
    out: Path = typer.Option(..., help="Output JSONL (written atomically)."),
    split: str = typer.Option("dev", help="FLORES split: dev or devtest."),
    langs: Optional[str] = typer.Option(None, help="Comma-separated languages (codes or names); 'all' or unset: "
                                                   "every language in the folder. For a bilingual corpus: src,tgt."),
    limit: Optional[int] = typer.Option(None, min=1, help="Use the first N corpus units (line x per-line), before sharding."),
    seed: int = typer.Option(0, help="Same seed and arguments give a byte-identical file."),
    mode: str = typer.Option("reference", help="reference (answers from the corpus, offline) or teacher (an "
                                               "OpenAI-compatible endpoint writes them)."),
    per_line: int = typer.Option(1, min=1, help="Conversations per corpus line (each with its own random choices)."),
    max_turns: int = typer.Option(_DEFAULTS.max_turns, min=1, max=5, help="Most user turns per conversation (1-5)."),
    sessions: str = typer.Option(_DEFAULTS.sessions, help="Reference mode: refine (a flawed draft, weight 0, then the "
                                                          "user's correction; no copy shortcuts) or v1 (first recipe)."),
    multi_turn: float = typer.Option(_DEFAULTS.multi_turn, min=0.0, max=1.0, help="refine: share of multi-turn sessions."),
    constrained: float = typer.Option(_DEFAULTS.constrained, min=0.0, max=1.0,
                                      help="refine: share of single-turn requests that also name reference terms."),
    term_edits: bool = typer.Option(_DEFAULTS.term_edits, "--term-edits/--no-term-edits",
                                    help="refine: answer a terminology request about a model's draft with that draft "
                                         "post-edited to use the terms where it aligns with the reference."),
    into_english: float = typer.Option(_DEFAULTS.into_english, min=0.0, max=1.0,
                                       help="refine: share of English-centric pairs translated into English."),
    crosslingual: float = typer.Option(_DEFAULTS.crosslingual, min=0.0, max=1.0,
                                       help="Share of units that become cross-lingual tasks (multi-way only)."),
    temperature: float = typer.Option(_DEFAULTS.temperature, help="Language sampling temperature: 1 = by data size, higher = flatter."),
    lang_sizes: Optional[Path] = typer.Option(None, help="TSV language<TAB>size for the sampling weights."),
    system: str = typer.Option("", help="System message to put first in every conversation."),
    shard: Optional[str] = typer.Option(None, help="i/N: build only shard i of N (shards partition the run)."),
    teacher_url: Optional[str] = typer.Option(None, help="Teacher base URL, e.g. http://127.0.0.1:8000/v1."),
    teacher_model: str = typer.Option("teacher", help="Model name sent to the teacher."),
    api_key: Optional[str] = typer.Option(None, help="Teacher API key [default: $OPENAI_API_KEY]."),
    concurrency: int = typer.Option(16, min=1, help="Teacher conversations in flight."),
    max_retries: int = typer.Option(8, help="Retries per teacher request (429, 5xx, timeouts, dropped connections)."),
    timeout: float = typer.Option(120.0, help="Seconds per teacher request."),
    gen_temperature: float = typer.Option(0.7, help="Teacher sampling temperature."),
    max_tokens: int = typer.Option(512, help="Teacher max tokens per reply."),
    teacher_writes_users: bool = typer.Option(False, help="Let the teacher also write the style/length/... follow-ups."),
    cache: Optional[Path] = typer.Option(None, help="Teacher response cache (SQLite) [default: OUT.cache.sqlite]."),
    drafts_model: Optional[str] = typer.Option(None, help="refine: drafts are this model's own translations (e.g. "
                                                          "gemma3-270m; cached, resumable) instead of reference-made flaws."),
    drafts_prompt: str = typer.Option("few-shot", help="How the drafts model is asked: few-shot (base) or chat."),
    drafts_cache: Optional[Path] = typer.Option(None, help="Draft cache (JSONL) [default: OUT.drafts.jsonl]."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar [default: on a TTY]."),
) -> None:
    """Build interactive-translation and cross-lingual conversations from a parallel corpus."""
    import dataclasses
    import hashlib
    import json

    from bayling.data.build import BuildConfig, build_conversations, parse_shard, plan_conversations
    from bayling.data.io import write_jsonl
    from bayling.data.sampling import read_lang_sizes

    cfg = BuildConfig(
        corpus=corpus, split=split, langs=None if langs in (None, "", "all") else langs.split(","), limit=limit,
        seed=seed, mode=mode, per_line=per_line, max_turns=max_turns, crosslingual=crosslingual,
        sessions=sessions, multi_turn=multi_turn, into_english=into_english, constrained=constrained, term_edits=term_edits, temperature=temperature, lang_sizes=read_lang_sizes(lang_sizes) if lang_sizes else None, system=system,
        shard=parse_shard(shard) if shard else (0, 1),
    )
    start = time.perf_counter()
    with progress_bar(progress, limit if not shard else None, "building", unit="conv", transient=False) as bar:
        if mode == "reference":
            drafts = None
            if drafts_model:
                from bayling.data.drafts import prepare_drafts

                drafts = prepare_drafts([cfg], drafts_model, drafts_cache or out.with_name(out.name + ".drafts.jsonl"),
                                        prompt=drafts_prompt, log=lambda m: typer.echo(m, err=True),
                                        progress=bool(progress) if progress is not None else sys.stderr.isatty())
            n = write_jsonl(out, build_conversations(cfg, drafts), progress=bar.set, every=2000)
            extra = ""
        else:
            from bayling.data.teacher import TeacherConfig, teacher_build

            if not teacher_url:
                raise ConfigError("--mode teacher needs --teacher-url (an OpenAI-compatible base URL ending in /v1)")
            tcfg = TeacherConfig(base_url=teacher_url, model=teacher_model, api_key=api_key, concurrency=concurrency,
                                 max_retries=max_retries, timeout=timeout, temperature=gen_temperature,
                                 max_tokens=max_tokens, write_users=teacher_writes_users,
                                 cache=str(cache) if cache else None)
            key = hashlib.sha256(json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str).encode()).hexdigest()
            stats = teacher_build(plan_conversations(cfg), out, tcfg, key, progress=bar.set)
            n = stats.resumed + stats.written
            extra = (f"; {stats.resumed} resumed, {stats.requests} requests, {stats.cache_hits} cache hits, "
                     f"{stats.retries} retries {dict(stats.errors) or ''}")
    seconds = time.perf_counter() - start
    typer.echo(f"wrote {n} conversations to {out} in {seconds:.1f}s ({n / max(seconds, 1e-9):,.0f}/s){extra}", err=True)


@app.command("filter")
def filter_command(
    data: Path = typer.Argument(..., help="Conversations JSONL (from build, or any OpenAI-messages JSONL)."),
    out: Path = typer.Option(..., help="Where the kept records go (written atomically)."),
    report: Optional[Path] = typer.Option(None, help="Drop counts as JSON [default: OUT.filters.json]."),
    min_ratio: float = typer.Option(0.4, help="Lowest output/source length ratio (English-equivalent bytes)."),
    max_ratio: float = typer.Option(2.5, help="Highest output/source length ratio."),
    near_distance: int = typer.Option(3, help="Near-duplicate SimHash distance in bits; -1 turns it off."),
    langid: bool = typer.Option(True, "--langid/--no-langid", help="Check each assistant turn's language."),
    on_error: str = typer.Option("fail", help="Malformed input line: fail (stop with file:line) or skip."),
) -> None:
    """Drop empty/truncated turns, unmet constraints, bad length ratios, duplicates and off-language turns."""
    import json

    from bayling.data.filters import FilterReport, apply_filters, default_filters
    from bayling.data.io import atomic_open, read_records, write_jsonl

    skipped: list[str] = []
    result = FilterReport()
    records = (r for _, r in read_records(data, on_error, skipped.append))
    write_jsonl(out, apply_filters(records, default_filters(min_ratio, max_ratio, near_distance, langid), result))
    summary = {**result.as_dict(), "malformed_skipped": len(skipped)}
    report = report or Path(f"{out}.filters.json")
    with atomic_open(report) as f:
        json.dump(summary, f, indent=1)
    drops = ", ".join(f"{k} {v}" for k, v in result.dropped.items())
    typer.echo(f"kept {result.kept} of {result.read} ({drops}); report: {report}", err=True)
    for msg in skipped[:5]:
        typer.echo(f"skipped: {msg}", err=True)


@app.command("prefs")
def prefs_command(
    transcripts: Path = typer.Argument(..., help="Transcripts of `bayling eval interactive --kinds translate,constraint "
                                                 "--missing-terms` (its --transcript-out), on non-test lines."),
    out: Path = typer.Option(..., help="Preference pairs JSONL, TRL's conversational layout (written atomically)."),
    rejected: str = typer.Option("without_term,unchanged,first_answer", help="Kinds of rejected answer to keep: "
                                 "without_term (a rewrite without the word), unchanged (the first answer handed back), "
                                 "first_answer (the model did use the word; its first answer is rejected)."),
    chosen: str = typer.Option("reference", help="reference, or own: the model's own answer with the word (on-policy "
                                                 "pairs; needs --samples, or transcripts that hold 'samples')."),
    model: Optional[str] = typer.Option(None, help="The model that played the transcripts, to draw --samples from."),
    samples: int = typer.Option(0, help="Answers to draw per term request (with --model); the transcripts with them "
                                        "are written beside --out as *.samples.jsonl."),
    temperature: float = typer.Option(0.7, help="Sampling temperature for --samples."),
    max_new_tokens: int = typer.Option(160),
    batch_size: int = typer.Option(32),
) -> None:
    """Preference pairs for term requests: chosen = the reference (it has the word) or the model's own
    answer that has it, rejected = the model's answer without it, or its first answer handed back (for
    `bayling train --objective dpo`)."""
    from collections import Counter

    from bayling.data.io import read_records, write_jsonl
    from bayling.data.preferences import check_transcript, preference_pairs, sample_replies

    records = read_records(transcripts)
    if samples:
        if not model:
            raise ConfigError("--samples needs --model (the model that played the transcripts)")
        from bayling.infer.backends import load_engine

        transcripts_read = [check_transcript(origin, t) for origin, t in records]
        drawn = sample_replies(load_engine(model, batch_size=batch_size), transcripts_read, samples,
                               temperature=temperature, max_new_tokens=max_new_tokens)
        sampled = out.with_suffix(".samples.jsonl")
        write_jsonl(sampled, drawn)
        records = read_records(sampled)
    counts: Counter = Counter()
    keep = [k.strip() for k in rejected.split(",") if k.strip()]
    n = write_jsonl(out, preference_pairs(records, counts, keep=keep, chosen=chosen))
    if n == 0:
        raise ConfigError(f"{transcripts}: no preference pairs ({dict(counts)})")
    typer.echo(f"wrote {n} pairs to {out}; " + ", ".join(f"{k} {v}" for k, v in counts.most_common()), err=True)


@app.command()
def mix(
    built: List[Path] = typer.Argument(..., help="Built conversations JSONL file(s)."),
    out: Path = typer.Option(..., help="Mixed JSONL (written atomically)."),
    general: List[str] = typer.Option([], help="General instruction data: Alpaca, ShareGPT or OpenAI-messages "
                                               "JSONL (or an Alpaca .json array); PATH or PATH:WEIGHT; repeatable."),
    ratio: Optional[float] = typer.Option(None, help="General records per built record [default: all general data]."),
    seed: int = typer.Option(0),
    on_error: str = typer.Option("skip", help="Malformed general line: skip (reported as file:line) or fail."),
    hf_dataset: Optional[Path] = typer.Option(None, help="Also save the mix as a `datasets` folder (load_from_disk)."),
) -> None:
    """Mix built conversations with general instruction data by ratio, randomly interleaved."""
    from bayling.data.io import export_hf_dataset, write_jsonl
    from bayling.data.mix import MixReport, mix_records, parse_general

    result = MixReport()
    n = write_jsonl(out, mix_records(list(built), [parse_general(g) for g in general], ratio, seed, on_error, result))
    taken = ", ".join(f"{Path(p).name} {k}/{result.available[p]}" for p, k in result.general.items())
    typer.echo(f"wrote {n} records to {out}: {result.built} built + general ({taken or 'none'})", err=True)
    for msg in result.problems[:10]:
        typer.echo(f"skipped: {msg}", err=True)
    if sum(result.skipped.values()) > len(result.problems[:10]):
        typer.echo(f"skipped {sum(result.skipped.values())} malformed general records in all", err=True)
    if hf_dataset:
        typer.echo(f"datasets folder: {export_hf_dataset(out, hf_dataset)}", err=True)


@app.command()
def card(
    data: Path = typer.Argument(..., help="Conversations JSONL."),
    out: Optional[Path] = typer.Option(None, help="Markdown card [default: DATA with .card.md]; the PNG goes beside it."),
    filter_report: Optional[Path] = typer.Option(None, help="A filter report [default: DATA.filters.json if present]."),
) -> None:
    """Counts per language pair, turn kind, instruction language, turns and filter drops (markdown + PNG)."""
    from bayling.data.card import write_card

    md, png, stats = write_card(data, out or data.with_suffix(".card.md"), filter_report)
    t = stats.trained.as_dict()
    typer.echo(f"{stats.conversations} conversations: copy share {t['copy_share']:.1%}, reused share "
               f"{t['reused_share']:.1%}, repeated follow-ups "
               f"{t['repeated_followup_share']:.1%}, into/out-of English {t['into_out_of_english_ratio']:.2f}, "
               f"translation answers {t['translation_share']:.1%}, multi-turn "
               f"{t['multi_turn_conversations'] / max(stats.conversations, 1):.1%}")
    typer.echo(f"{md}\n{png}")


def main(argv: list[str] | None = None) -> None:
    """Run this app alone, reporting user errors in one line like `bayling` does."""
    from bayling.errors import run_cli

    run_cli(app, argv, "bayling data")


if __name__ == "__main__":
    main()
