"""`bayling chat`, `bayling translate`, `bayling delta apply|make`: thin wrappers over bayling.infer.

Mounted by bayling/cli.py:
    app.command("chat")(chat_command); app.command("translate")(translate_command)
    app.add_typer(delta_app, name="delta")
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from bayling.infer.engine import GUARDS

__all__ = ["chat_command", "decoding_options", "delta_app", "engine_from_options", "translate_command"]

# Engine options shared by chat, translate and serve.
MODEL = typer.Option(None, "--model", "-m", help="Embedded name (gemma3-270m, smollm2-135m), model or `bayling train` "
                     "output folder, hub id, .gguf (llamacpp) or the remote model's name. [default: gemma3-270m]")
ADAPTER = typer.Option(None, "--adapter", help="A LoRA adapter folder to load on top of --model.")
CHAT_FORMAT = typer.Option(None, "--chat-format", help="bayling-v1, bayling2-llama3, llama3, gemma, chatml or auto. "
                           "[default: what the model was trained with]")
BACKEND = typer.Option("transformers", "--backend", help="transformers, llamacpp or openai.")
BASE_URL = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint for --backend openai, e.g. http://127.0.0.1:8000/v1")
REMOTE_KEY = typer.Option(None, "--api-key", envvar="OPENAI_API_KEY", help="API key of the --base-url endpoint.")
# Loop guards (bayling.infer.engine.GUARDS), for every generation the engine runs.
NO_REPEAT = typer.Option(0, "--no-repeat-ngram-size", help="Loop guard (transformers'): never generate an n-gram of "
                         "this many tokens that the prompt or reply already holds (0: off; not with llamacpp).")
REPLY_NO_REPEAT = typer.Option(0, "--reply-no-repeat-ngram-size", help="Loop guard: never repeat an n-gram of this many "
                               "tokens within the reply; the prompt's may be reused (0: off; not with llamacpp).")
REPETITION_PENALTY = typer.Option(1.0, "--repetition-penalty", help="Loop guard: scale down the logits of tokens "
                                  "already in the text by this factor (1: off).")


def decoding_options(no_repeat_ngram_size: int = 0, repetition_penalty: float = 1.0,
                     reply_no_repeat_ngram_size: int = 0) -> dict:
    """The loop-guard options as `load_engine(decoding=...)` takes them: only those that are on."""
    chosen = {"no_repeat_ngram_size": no_repeat_ngram_size, "repetition_penalty": repetition_penalty,
              "reply_no_repeat_ngram_size": reply_no_repeat_ngram_size}
    return {k: v for k, v in chosen.items() if v != GUARDS[k]}


def engine_from_options(model, adapter, chat_format, backend, base_url, api_key, batch_size: int = 8,
                        decoding: dict | None = None):
    """Load an engine as the CLI options describe it (with a status line on stderr)."""
    from rich.console import Console

    from bayling.infer.backends import load_engine

    with Console(stderr=True).status(f"loading {model or 'gemma3-270m'} ({backend})"):
        return load_engine(model, backend=backend, adapter=adapter, chat_format=chat_format,
                           base_url=base_url, api_key=api_key, batch_size=batch_size, decoding=decoding)


def chat_command(
    model: Optional[str] = MODEL,
    adapter: Optional[str] = ADAPTER,
    chat_format: Optional[str] = CHAT_FORMAT,
    backend: str = BACKEND,
    base_url: Optional[str] = BASE_URL,
    api_key: Optional[str] = REMOTE_KEY,
    system: Optional[str] = typer.Option(None, "--system", help="System message to start with."),
    max_new_tokens: int = typer.Option(256, help="Longest reply in tokens."),
    temperature: float = typer.Option(0.0, help="0 = greedy."),
    no_repeat_ngram_size: int = NO_REPEAT,
    reply_no_repeat_ngram_size: int = REPLY_NO_REPEAT,
    repetition_penalty: float = REPETITION_PENALTY,
) -> None:
    """Chat in the terminal, replies streamed. Commands: /reset, /system TEXT, /save FILE, /help, /exit."""
    from bayling.infer.chat import run_chat
    from bayling.infer.engine import GenerationConfig

    engine = engine_from_options(model, adapter, chat_format, backend, base_url, api_key,
                                 decoding=decoding_options(no_repeat_ngram_size, repetition_penalty,
                                                           reply_no_repeat_ngram_size))
    interactive = sys.stdin.isatty()

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def lines():
        if not interactive:
            yield from sys.stdin
            return
        while True:
            try:
                yield input()
            except EOFError:
                return

    if interactive:
        typer.echo(f"chatting with {engine.name} — /help for commands, /exit or Ctrl-D to leave", err=True)
    run_chat(engine, lines(), write, config=GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature),
             system=system, prompt=(lambda: write("you> ")) if interactive else None)


def translate_command(
    input: str = typer.Argument(..., help="A file of lines, .tsv (source[, reference]), .jsonl ({\"src\": ...}) or a FLORES-200 folder."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output: .jsonl for records, else one translation per line. "
                                       "Resumable: a rerun reuses the translations of unchanged lines (matched by text and settings, never by position; "
                                       "a text output keeps its records in OUT.records.jsonl). [default: stdout]"),
    src_lang: Optional[str] = typer.Option(None, "--src-lang", "-s", help="Source language: any name or code (en, German, 中文, zho_Hans)."),
    tgt_lang: Optional[str] = typer.Option(None, "--tgt-lang", "-t", help="Target language, likewise."),
    model: Optional[str] = MODEL,
    adapter: Optional[str] = ADAPTER,
    chat_format: Optional[str] = CHAT_FORMAT,
    backend: str = BACKEND,
    base_url: Optional[str] = BASE_URL,
    api_key: Optional[str] = REMOTE_KEY,
    prompt: Optional[str] = typer.Option(None, "--prompt", help="few-shot (base models) or chat (tuned models). "
                                         "[default: few-shot for the embedded base gemma3-270m, else chat]"),
    constraints: Optional[List[str]] = typer.Option(None, "--constraints", "-c", help="Terms the translation must contain; "
                                                    "repeat the option or separate with ';'."),
    refine: Optional[str] = typer.Option(None, "--refine", help="A second turn on each result, e.g. \"make it more formal\"."),
    language_guard: int = typer.Option(0, "--language-guard", min=0,
                                       help="Draw an answer in the wrong language (language ID) again, up to N times."),
    split: str = typer.Option("devtest", help="FLORES split: dev or devtest."),
    field: str = typer.Option("src", help="JSONL field holding the source text."),
    batch_size: int = typer.Option(8, help="Sentences per generation batch."),
    max_new_tokens: int = typer.Option(256, help="Longest translation in tokens."),
    no_repeat_ngram_size: int = NO_REPEAT,
    reply_no_repeat_ngram_size: int = REPLY_NO_REPEAT,
    repetition_penalty: float = REPETITION_PENALTY,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr."),
) -> None:
    """Translate a file or FLORES folder, batched and resumable; optionally constrained and refined."""
    from bayling.progress import progress_bar

    from bayling.infer.engine import GenerationConfig
    from bayling.infer.translate import PROMPT_MODES, TranslateError, default_prompt_mode, read_items, translate_file

    mode = prompt or default_prompt_mode(model, adapter, backend)
    if mode not in PROMPT_MODES:
        raise TranslateError(f"--prompt {mode!r}: choose one of {', '.join(PROMPT_MODES)}")
    terms = [t.strip() for c in (constraints or []) for t in c.split(";") if t.strip()]
    items = list(read_items(input, src_lang, tgt_lang, split=split, field=field, constraints=terms))
    engine = engine_from_options(model, adapter, chat_format, backend, base_url, api_key, batch_size,
                                 decoding=decoding_options(no_repeat_ngram_size, repetition_penalty,
                                                           reply_no_repeat_ngram_size))
    config = GenerationConfig(max_new_tokens=max_new_tokens)

    def emit(rec: dict) -> None:
        typer.echo(" ".join(rec["hyp"].split("\n")))

    with progress_bar(progress, len(items), "translating", unit="lines", transient=False) as bar:
        summary = translate_file(engine, items, out, mode=mode, config=config, refine=refine, batch_size=batch_size,
                                 language_guard=language_guard,
                                 on_progress=lambda done, total: bar.set(done), emit=emit)
    note = f"{summary.translated} translated, {summary.resumed} already done"
    if summary.constraints_met is not None:
        note += f", constraints met in {summary.constraints_met:.0%}"
    typer.echo(f"{note}{f' -> {out}' if out else ''} ({mode} prompt)", err=True)


delta_app = typer.Typer(help="Delta weights (the BayLing v1 release format: delta = tuned - base).", no_args_is_help=True)


@delta_app.command("apply")
def delta_apply(
    base: Path = typer.Option(..., "--base", help="The base model folder (e.g. LLaMA-13B in Hugging Face format)."),
    delta: Path = typer.Option(..., "--delta", help="The delta folder (e.g. bayling-13b-diff)."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the tuned model."),
) -> None:
    """Add a delta onto its base model: out = base + delta, tensor by tensor."""
    from bayling.infer.delta import apply_delta

    typer.echo(str(apply_delta(base, delta, out)))


@delta_app.command("make")
def delta_make(
    base: Path = typer.Option(..., "--base", help="The base model folder."),
    target: Path = typer.Option(..., "--target", help="The tuned model folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the delta."),
) -> None:
    """Make a delta for release: out = target - base, tensor by tensor."""
    from bayling.infer.delta import make_delta

    typer.echo(str(make_delta(base, target, out)))

