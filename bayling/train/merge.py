"""Fold a LoRA adapter into full weights; a small shippable copy of an adapter. (GGUF: bayling.export.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from bayling.errors import ConfigError

__all__ = ["merge_adapter", "pack_adapter"]


def merge_adapter(adapter_dir: str | Path, out: str | Path) -> Path:
    """Write base + adapter as one plain model folder (tokenizer, chat format and card kept)."""
    from bayling.models import load_model

    adapter_dir, out = Path(adapter_dir), Path(out)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ConfigError(f"{adapter_dir}: not a LoRA adapter folder (no adapter_config.json)")
    model, tokenizer = load_model(str(adapter_dir), dtype="float32", device="cpu", merge=False)  # fold in full precision
    merged = model.merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    for name in ("bayling.json", "README.md"):
        if (adapter_dir / name).is_file():
            shutil.copy(adapter_dir / name, out / name)
    meta = out / "bayling.json"
    if meta.is_file():
        info = json.loads(meta.read_text())
        info.update(method="merged", merged_from=str(adapter_dir))
        meta.write_text(json.dumps(info, indent=2))
    return out


def pack_adapter(adapter_dir: str | Path, out: str | Path) -> Path:
    """A small, shippable copy of a LoRA adapter: bf16 weights, config, chat format and card.

    The tokenizer is left out (the base model's is used; the chat format comes from bayling.json),
    which keeps a Gemma adapter at a few MB instead of 40.
    """
    import torch
    from safetensors.torch import load_file, save_file

    adapter_dir, out = Path(adapter_dir), Path(out)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ConfigError(f"{adapter_dir}: not a LoRA adapter folder (no adapter_config.json)")
    out.mkdir(parents=True, exist_ok=True)
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in weights.items()},
              str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    for name in ("adapter_config.json", "bayling.json", "README.md"):
        if (adapter_dir / name).is_file():
            shutil.copy(adapter_dir / name, out / name)
    return out
