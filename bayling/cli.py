"""The `bayling` command: one thin subcommand per pipeline stage."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bayling.errors import BaylingError, run_cli

app = typer.Typer(
    help="BayLing, complete: multilingual instruction tuning through interactive translation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(help="Embedded and local models.", no_args_is_help=True)
corpus_app = typer.Typer(help="Parallel corpora (FLORES-200, WMT, Moses, TSV, JSONL).", no_args_is_help=True)
app.add_typer(models_app, name="models")

from bayling.train.cli import merge_command, train_command  # noqa: E402  (light: heavy imports inside)

app.command("train")(train_command)

from bayling.data.cli import app as data_app  # noqa: E402
from bayling.infer.cli import chat_command, delta_app, translate_command  # noqa: E402
from bayling.serve.cli import serve_command  # noqa: E402

app.command("chat")(chat_command)
app.command("translate")(translate_command)
app.command("serve")(serve_command)
app.add_typer(delta_app, name="delta", help="BayLing v1 delta weights: apply or make.")
from bayling.eval.cli import app as eval_app  # noqa: E402

app.add_typer(data_app, name="data", help="Build, filter, mix and describe instruction data.")
app.add_typer(eval_app, name="eval", help="Evaluation: translation, off-target, constraints, judge, exams.")
app.command("merge")(merge_command)
app.add_typer(corpus_app, name="corpus")


class UsageError(BaylingError, ValueError):
    """Bad arguments that no module caught earlier."""


@app.command()
def languages(
    query: Optional[str] = typer.Argument(None, help="Show only the language this name resolves to."),
) -> None:
    """List the 204 FLORES-200 languages (code, English name, native name, script, ISO codes)."""
    from bayling.languages import language_table

    for row in language_table(query, header=False):
        typer.echo("\t".join(row))


@models_app.command("list")
def models_list() -> None:
    """List the embedded models and where their converted copies are cached."""
    from bayling.models import EMBEDDED, cache_dir

    for m in EMBEDDED.values():
        cached = (cache_dir() / "models" / m.name).exists()
        typer.echo(f"{m.name}\t{m.chat_format}\t{'cached' if cached else 'not converted yet'}\t{m.description}")


@models_app.command("prepare")
def models_prepare(name: str = typer.Argument("gemma3-270m", help="Embedded model name.")) -> None:
    """Convert an embedded GGUF model once into a cached safetensors folder (about a minute)."""
    from bayling.models import resolve_model_path

    typer.echo(resolve_model_path(name))


@corpus_app.command("head")
def corpus_head(
    spec: str = typer.Argument(..., help="FLORES dir, newstest dir, a.en,a.zh, .tsv or .jsonl"),
    src_lang: Optional[str] = typer.Option(None, "--src-lang", "-s"),
    tgt_lang: Optional[str] = typer.Option(None, "--tgt-lang", "-t"),
    split: Optional[str] = typer.Option(None, help="FLORES split: dev or devtest [default: dev]"),
    n: int = typer.Option(5, "-n", help="How many pairs to print."),
) -> None:
    """Print the first pairs a corpus yields, as JSON lines."""
    import dataclasses
    import itertools
    import json

    from bayling.corpus import open_pairs

    pairs = open_pairs(spec, src_lang=src_lang, tgt_lang=tgt_lang, split=split)
    for p in itertools.islice(pairs, n):
        typer.echo(json.dumps(dataclasses.asdict(p), ensure_ascii=False))


@corpus_app.command("count")
def corpus_count(
    spec: str = typer.Argument(..., help="FLORES dir, newstest dir, a.en,a.zh, .tsv or .jsonl"),
    src_lang: Optional[str] = typer.Option(None, "--src-lang", "-s"),
    tgt_lang: Optional[str] = typer.Option(None, "--tgt-lang", "-t"),
    split: Optional[str] = typer.Option(None, help="FLORES split: dev or devtest [default: dev]"),
) -> None:
    """Stream a whole corpus, checking every line, and print how many pairs it has per direction."""
    from collections import Counter

    from bayling.corpus import open_pairs

    counts: Counter[str] = Counter()
    for p in open_pairs(spec, src_lang=src_lang, tgt_lang=tgt_lang, split=split):
        counts[f"{p.src_lang}-{p.tgt_lang}"] += 1
    for k, v in sorted(counts.items()):
        typer.echo(f"{k}\t{v}")


@app.command()
def quickstart(
    out: Optional[Path] = typer.Option(None, help="Where data, model, results and report go (default: the recipe's, "
                                                  "bayling-quickstart)."),
    model: Optional[str] = typer.Option(None, help="Base model: embedded name, local folder or hub id (default: "
                                                   "gemma3-270m)."),
    steps: Optional[int] = typer.Option(None, help="LoRA training steps (default: 120)."),
    eval_sentences: Optional[int] = typer.Option(
        None, help="Held-out sentences per direction (default: 24, the sample's whole devtest)."),
    flores_lines: Optional[int] = typer.Option(
        None, help="FLORES-200 dev lines to build data from (when ../shared is present; default: all but the held-out ones)."),
    news_lines: Optional[int] = typer.Option(
        None, help="WMT newstest en-zh/en-de pairs per source (when ../shared is present; 0: none) (default: 150)."),
    max_new_tokens: Optional[int] = typer.Option(None, help="Longest generated answer in the eval (default: 96)."),
    force: bool = typer.Option(False, "--force", help="Redo finished stages instead of resuming."),
) -> None:
    """Run the whole BayLing recipe offline on this CPU (recipes/quickstart.yaml; the options override it):
    data -> LoRA -> the base, your tuned model and the shipped bayling-mini on the same sentences -> report."""
    from bayling.quickstart import run_quickstart

    run_quickstart(out=out, model=model, steps=steps, eval_sentences=eval_sentences,
                   flores_lines=flores_lines, force=force, max_new_tokens=max_new_tokens, news_lines=news_lines)


export_app = typer.Typer(help="Export trained runs for other runtimes.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("gguf")
def export_gguf_command(
    run: str = typer.Argument(..., help="A `bayling train` output (LoRA adapter or full model), or bayling-mini."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="GGUF file to write (default: RUN-QUANT.gguf)."),
    quant: str = typer.Option("q8_0", help="Type of the tensors training changed: q8_0, f16 or f32 (the others "
                                           "keep the base GGUF's own quantization)."),
    converter: Optional[str] = typer.Option(None, help="llama.cpp's convert_hf_to_gguf.py, for runs whose base is "
                                                       "not an embedded GGUF model."),
) -> None:
    """Write a trained run as one GGUF (chat template inside) for llama.cpp, Ollama and LM Studio."""
    from bayling.export import export_gguf
    from bayling.models import _shipped_path

    path = _shipped_path(run) or Path(run)
    written = export_gguf(path, out or Path(f"{path.name}-{quant}.gguf"), quant=quant, converter=converter)
    typer.echo(f"GGUF written to {written} ({written.stat().st_size / 1e6:.0f} MB); try: "
               f"bayling chat --backend llamacpp --model {written}")


recipe_app = typer.Typer(help="Run a whole recipe (data -> train -> eval) from one YAML file.", no_args_is_help=True)
app.add_typer(recipe_app, name="recipe")


@recipe_app.command("run")
def recipe_run(
    recipe: Path = typer.Argument(..., help="Recipe YAML (recipes/bayling-mini.yaml, recipes/8b-lora.yaml, ...)."),
    force: bool = typer.Option(False, "--force", help="Redo finished stages (and steps)."),
    stop_after: Optional[str] = typer.Option(
        None, help="Stop after this stage (data, train or eval), or after this step of a multi-step recipe."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the steps and stages, what each does and the hours "
                                                          "each took when measured; run nothing."),
) -> None:
    """Execute data -> train -> eval (for each step of a multi-step recipe, in order); a rerun skips
    finished stages and steps and resumes an interrupted one."""
    from bayling.errors import ConfigError
    from bayling.recipe import STAGES, RecipeSteps, check_recipe, describe_recipe, load_recipe_file, run_recipe, run_steps

    if dry_run:
        r = load_recipe_file(recipe, check=False)
        for line in describe_recipe(r):
            typer.echo(line)
        try:
            check_recipe(r)
        except BaylingError as err:
            typer.echo(f"not ready to run here: {err}")
        return
    r = load_recipe_file(recipe)
    if isinstance(r, RecipeSteps):
        if stop_after and stop_after not in r.models:
            raise UsageError(f"--stop-after {stop_after!r}: {recipe} is a multi-step recipe; name one of its steps "
                             f"({', '.join(r.models)})")
        runs = run_steps(r, force=force, stop_after=stop_after)["steps"]
        typer.echo(f"done: {r.out} (" + "; ".join(f"{name}: " + ", ".join(f"{k} {v:.0f} s" for k, v in run["timings"].items())
                                                  for name, run in runs.items()) + ")")
        return
    if stop_after and stop_after not in STAGES:
        raise UsageError(f"--stop-after {stop_after!r}: choose one of {', '.join(STAGES)}")
    run = run_recipe(r, force=force, stop_after=stop_after)
    typer.echo(f"done: {r.out} ({', '.join(f'{k} {v:.0f} s' for k, v in run['timings'].items())})")


@recipe_app.command("compare")
def recipe_compare(
    system: list[str] = typer.Option(..., "--system", help="LABEL=RUN_DIR:SYSTEM, e.g. 'BayLing SFT=runs/mini:tuned' (repeat)."),
    out: Path = typer.Option(Path("compare"), help="Output stem: writes OUT.md, OUT.png and OUT.json."),
) -> None:
    """Compare systems from several recipe runs: per-direction table and plot, and a paired bootstrap
    of pooled chrF against the first system when the runs scored the same sentences."""
    from bayling.eval.report import compare_systems

    specs = []
    for spec in system:
        label, eq, rest = spec.partition("=")
        run, colon, name = rest.rpartition(":")
        if not eq or not colon or not label or not run or not name:
            raise UsageError(f"--system {spec!r}: expected LABEL=RUN_DIR:SYSTEM")
        specs.append((label, run, name))
    typer.echo(compare_systems(specs, out))


def main(argv: list[str] | None = None) -> None:
    run_cli(app, argv, "bayling")


if __name__ == "__main__":
    main()
