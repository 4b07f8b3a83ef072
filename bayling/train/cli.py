"""`bayling train`: options override a YAML recipe, which overrides the defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def train_command(
    recipe: Optional[Path] = typer.Argument(None, help="YAML recipe (its `train:` section, or the whole file)."),
    data: Optional[str] = typer.Option(None, help="Conversations: JSONL (builder, OpenAI, ShareGPT, Alpaca) or a datasets folder."),
    out: Optional[str] = typer.Option(None, help="Output folder (adapter/weights, tokenizer, model card, log)."),
    model: Optional[str] = typer.Option(None, help="Base model: embedded name, local folder or hub id. [default: gemma3-270m]"),
    chat_format: Optional[str] = typer.Option(None, help="bayling-v1, bayling2-llama3, gemma, chatml, auto. [default: the model's]"),
    method: Optional[str] = typer.Option(None, help="lora, qlora or full. [default: lora]"),
    max_steps: Optional[int] = typer.Option(None, help="Stop after this many optimiser steps."),
    epochs: Optional[float] = typer.Option(None, help="Passes over the data (when --max-steps is not set)."),
    max_len: Optional[int] = typer.Option(None, help="Longest packed row / conversation in tokens. [default: 512]"),
    batch_size: Optional[int] = typer.Option(None, help="Rows per device per step. [default: 4]"),
    grad_accum: Optional[int] = typer.Option(None, help="Gradient accumulation steps."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate. [default: 2e-4]"),
    lora_r: Optional[int] = typer.Option(None, help="LoRA rank. [default: 16]"),
    packing: Optional[bool] = typer.Option(None, "--packing/--no-packing", help="Pack conversations into full rows."),
    save_steps: Optional[int] = typer.Option(None, help="Checkpoint every N steps."),
    term_weight: Optional[float] = typer.Option(None, help="Loss weight of answer tokens that spell a word the user asked for "
                                                "(the builder's meta.expect terms). [default: 1]"),
    unlikelihood: Optional[float] = typer.Option(None, help="Unlikelihood coefficient on the repeated 4-grams of "
                                                 "untrained (weight 0) draft answers. [default: 0: off]"),
    objective: Optional[str] = typer.Option(None, help="sft (conversations) or dpo (preference pairs from "
                                            "`bayling data prefs`). [default: sft]"),
    dpo_beta: Optional[float] = typer.Option(None, help="DPO: strength of the pull away from the starting weights. [default: 0.1]"),
    sft_weight: Optional[float] = typer.Option(None, help="DPO: weight of the chosen answers' cross-entropy (RPO). [default: 0]"),
    init_adapter: Optional[str] = typer.Option(None, help="Start from this LoRA adapter (folder or bayling-mini); "
                                               "for dpo also the reference."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in OUT."),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Also log to TensorBoard."),
    seed: Optional[int] = typer.Option(None),
) -> None:
    """Instruction-tune a model on multi-turn conversations (loss on every assistant turn), or
    preference-tune it on pairs (--objective dpo)."""
    from bayling.train import TrainConfig, load_recipe, train

    base = load_recipe(recipe) if recipe else {}
    given = {k: v for k, v in dict(
        data=data, out=out, model=model, chat_format=chat_format, method=method, max_steps=max_steps,
        epochs=epochs, max_len=max_len, batch_size=batch_size, grad_accum=grad_accum, lr=lr, lora_r=lora_r,
        packing=packing, save_steps=save_steps, seed=seed, term_weight=term_weight,
        unlikelihood=unlikelihood, objective=objective, dpo_beta=dpo_beta, sft_weight=sft_weight,
        init_adapter=init_adapter,
    ).items() if v is not None}
    if resume:
        given["resume"] = True
    if tensorboard:
        given["tensorboard"] = True
    cfg = TrainConfig.from_dict({**base, **given})
    summary = train(cfg)
    typer.echo(f"saved to {cfg.out} (steps {summary['global_step']}, final loss {summary['final_loss']})")


def merge_command(
    adapter: Path = typer.Argument(..., help="A LoRA output folder of `bayling train`."),
    out: Path = typer.Argument(..., help="Where the merged full model goes."),
    gguf: Optional[Path] = typer.Option(None, help="Also export this GGUF file (as `bayling export gguf`)."),
    converter: Optional[str] = typer.Option(None, help="llama.cpp's convert_hf_to_gguf.py, for non-embedded bases."),
) -> None:
    """Fold a LoRA adapter into full weights (and optionally export GGUF for llama.cpp)."""
    from bayling.export import export_gguf
    from bayling.train.merge import merge_adapter

    merged = merge_adapter(adapter, out)
    typer.echo(f"merged model written to {merged}")
    if gguf:
        typer.echo(f"GGUF written to {export_gguf(merged, gguf, converter=converter)}")
