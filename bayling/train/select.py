"""Checkpoint selection on held-out dev sentences: score each saved checkpoint, keep the best.

Longer fine-tuning can make translation worse (ALMA's users saw en->zh drop after 2 epochs), so
the run's model is the checkpoint with the best chrF on a fixed dev slice the training data
never contains (never devtest: that is for the final evaluation). The curve is appended to
`<out>/select_curve.jsonl` as each checkpoint is scored, so a resumed run keeps it and knows the
best so far; `train_summary.json` and the recipe's report carry it.

The dev slice is JSONL, one pair a line: {"src", "tgt", "src_lang", "tgt_lang"} (FLORES codes).
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["read_curve", "best_point", "selection_callback", "write_select_set"]

CURVE = "select_curve.jsonl"
BATCH = 32  # rows of continuous batching while scoring (the recipes' eval batch)


def write_select_set(path: str | Path, pairs) -> int:
    """Write `Pair`s as the JSONL a run selects on; returns how many."""
    from bayling.data.io import write_jsonl

    return write_jsonl(Path(path), ({"src": p.src, "tgt": p.tgt, "src_lang": p.src_lang, "tgt_lang": p.tgt_lang}
                                    for p in pairs))


def read_select_set(path: str | Path) -> list:
    from bayling.corpus import read_jsonl

    return list(read_jsonl(path, src_lang_field="src_lang", tgt_lang_field="tgt_lang"))


def read_curve(out: str | Path) -> list[dict]:
    path = Path(out) / CURVE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def best_point(curve: list[dict]) -> dict | None:
    """The highest chrF; ties go to the earlier step (fewer updates, same score)."""
    return max(curve, key=lambda p: (p["chrf"], -p["step"])) if curve else None


def selection_callback(select_set: str | Path, out: str | Path, tokenizer, fmt, bf16: bool, max_new_tokens: int = 96,
                       batch_size: int = BATCH):
    """A TrainerCallback that scores every saved checkpoint on `select_set` (greedy, chat prompt)."""
    from transformers import TrainerCallback

    from bayling.errors import ConfigError

    pairs = read_select_set(select_set)
    if not pairs:
        raise ConfigError(f"{select_set}: no pairs to select checkpoints on")
    out = Path(out)

    class SelectOnDev(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            best = best_point([p for p in read_curve(out) if p["step"] <= state.global_step])
            if best is not None:  # resumed: the checkpoint's state predates its own score
                state.best_metric, state.best_model_checkpoint = best["chrf"], best["checkpoint"]

        def on_save(self, args, state, control, model=None, **kw):
            if not state.is_world_process_zero:
                return
            point = score_model(model, tokenizer, fmt, pairs, bf16, max_new_tokens, batch_size)
            point.update(step=state.global_step, checkpoint=str(Path(args.output_dir) / f"checkpoint-{state.global_step}"))
            with (out / CURVE).open("a", encoding="utf-8") as f:
                f.write(json.dumps(point) + "\n")
            if state.best_metric is None or point["chrf"] > state.best_metric:
                # The Trainer's checkpoint rotation never deletes state.best_model_checkpoint.
                state.best_metric, state.best_model_checkpoint = point["chrf"], point["checkpoint"]
            off, loops = point["off_target_rate"], point.get("max_new_tokens_rate")
            print(f"select: step {point['step']} chrF {point['chrf']:.1f} off-target {'-' if off is None else f'{off:.2f}'} "
                  f"runaways {'-' if loops is None else f'{loops:.2f}'} "
                  f"(best {state.best_metric:.1f} at {Path(state.best_model_checkpoint).name})", flush=True)

    return SelectOnDev()


def score_model(model, tokenizer, fmt, pairs, bf16: bool, max_new_tokens: int, batch_size: int = BATCH) -> dict:
    """chrF, off-target and runaway rates of the model as it is now, translating `pairs` zero-shot in
    chat (runaways: outputs that ran to `max_new_tokens`, counted as the eval counts them; recorded
    on the curve, not used to choose).

    Decoded the way the eval decodes a saved run (`bayling.models.load_model` with merge): on a copy
    with any LoRA adapter merged, cast to bf16 when `bf16`, with continuous batching. The trained
    model itself is left as it was."""
    import torch

    from bayling.eval.translation import failure_rates, score_directions, translate
    from bayling.infer.engine import TransformersEngine

    engine = TransformersEngine(_decoding_copy(model, torch.bfloat16 if bf16 else None), tokenizer, fmt,
                                batch_size=batch_size, name="select")
    hyps = translate(engine, pairs, prompt="chat", max_new_tokens=max_new_tokens, progress=False)
    scores = score_directions(pairs, hyps)
    runaways = failure_rates(engine, pairs, hyps, max_new_tokens)["max_new_tokens_rate"]
    return {"chrf": round(scores["chrf"], 2), "off_target_rate": scores.get("off_target_rate"),
            "max_new_tokens_rate": runaways, "n": len(pairs)}


def _decoding_copy(model, dtype):
    """A detached inference copy of `model`: adapter merged, in `dtype` (None: as trained)."""
    import copy

    import torch

    with torch.no_grad():
        decoder = copy.deepcopy(model)
        if hasattr(decoder, "merge_and_unload"):
            decoder = decoder.merge_and_unload()
        if dtype is not None:
            decoder.to(dtype)
    decoder.eval()
    decoder.config.use_cache = True
    return decoder


def load_checkpoint_weights(model, checkpoint: str | Path) -> None:
    """Put a checkpoint's trained weights (LoRA adapter or full model) into `model` in place."""
    from safetensors.torch import load_file

    from bayling.models import ModelError

    checkpoint = Path(checkpoint)
    adapter = checkpoint / "adapter_model.safetensors"
    if adapter.is_file():
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(str(adapter)))
        return
    shards = sorted(checkpoint.glob("model*.safetensors"))
    if not shards:
        raise FileNotFoundError(f"{checkpoint}: no adapter_model.safetensors or model*.safetensors to load")
    state = {}
    for shard in shards:
        state.update(load_file(str(shard)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise ModelError(f"{checkpoint}: weights the model does not have: {unexpected[:3]}")
