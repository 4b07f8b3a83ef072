"""What a model reference is, worked out once: `resolve_model(ref) -> ModelSpec`.

A reference is an embedded name (gemma3-270m), a shipped adapter (bayling-mini), a local folder (a
model, a LoRA adapter, a `bayling train` run, an official checkpoint), a .gguf file (llama.cpp) or
a hub id. Every backend takes the spec and reads nothing more from the reference. Resolving is
cheap: only `weights` does heavy work (an embedded model converts once), and only when read;
`fingerprint` (what the spec loads, by content) hashes the weight files, also only when read.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bayling.infer.official import OfficialModel

__all__ = ["ModelSpec", "content_fingerprint", "resolve_model"]

# The files of a model folder whose bytes decide what it generates: weights, adapter, configs, tokenizer.
_CONTENT = ("*.safetensors", "*.bin", "*.gguf", "config.json", "generation_config.json", "adapter_config.json",
            "tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
            "chat_template.jinja", "bayling.json")
_NOT_CONTENT = {"training_args.bin"}  # the Trainer's arguments (a dated logging dir): no weights


@dataclass(frozen=True)
class ModelSpec:
    """What every backend loads: weights (and adapter), chat format, official flavour, display name."""

    ref: str  # the reference as given (the default model when none)
    base: str  # where the weights come from: embedded name, folder or hub id
    adapter: str | None  # a LoRA adapter folder applied on top of `base`
    chat_format: str  # "auto": the tokenizer's own chat template
    official: OfficialModel | None  # a released BayLing checkpoint: its stop ids and name placeholders
    name: str  # what users and API clients see
    run: Path | None  # the folder of a model trained here (it holds bayling.json)

    @cached_property
    def weights(self) -> str:
        """`base` as `from_pretrained` reads it offline; an embedded model converts on first read."""
        from bayling.models import resolve_model_path

        return resolve_model_path(self.base)

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of what this spec loads, by content: the base weights and the adapter. A hub id
        (nothing local to read) counts by its name."""
        parts = [content_fingerprint(p) if Path(p).expanduser().exists() else f"hub:{p}"
                 for p in (self.weights, self.adapter) if p is not None]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    @property
    def stop_token_ids(self) -> tuple[int, ...]:
        """Token ids that end a reply besides eos (an official checkpoint's end-of-turn)."""
        return self.official.stop_token_ids if self.official else ()

    @property
    def replacements(self) -> dict[str, str]:
        """Name placeholders to fill in replies ([NAME] -> BayLing for official checkpoints)."""
        return self.official.replacements if self.official else {}


def resolve_model(ref: str | os.PathLike | ModelSpec | None = None, adapter: str | os.PathLike | None = None,
                  chat_format: str | None = None) -> ModelSpec:
    """The spec of `ref` (with a LoRA `adapter` on top and a `chat_format` override, if given).

    A LoRA folder names its base in adapter_config.json. The chat format is the override, else the one
    the model was trained with, else an official checkpoint's, else "auto". A spec passes through.
    """
    if isinstance(ref, ModelSpec):
        if adapter is not None or chat_format is not None:
            raise ValueError("resolve the reference with its adapter and chat format, not a spec already resolved")
        return ref
    from bayling.infer.official import _config_of, detect_official
    from bayling.models import DEFAULT_MODEL, _shipped_path, default_chat_format

    ref = str(ref or DEFAULT_MODEL)
    own = str(adapter) if adapter else ref  # what was trained (and is named), if anything was
    folder = _shipped_path(own) or Path(own).expanduser()
    base = ref
    if adapter is None and (folder / "adapter_config.json").is_file():
        base_of_lora = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path")
        if base_of_lora is not None:
            base, adapter = base_of_lora, str(folder)
    # A .gguf file is no Hugging Face checkpoint: the names of our own exports (bayling-mini-q8_0) say nothing.
    official = None if folder.suffix == ".gguf" else detect_official(own, _config_of(Path(base).expanduser()))
    if not chat_format:
        trained = default_chat_format(own)
        chat_format = trained if trained != "auto" else official.chat_format if official else "auto"
    return ModelSpec(ref=ref, base=base, adapter=adapter, chat_format=chat_format, official=official,
                     name=folder.name if folder.exists() else own,
                     run=folder if (folder / "bayling.json").is_file() else None)


def content_fingerprint(path: str | os.PathLike) -> str:
    """sha256 of a model file, or of a model folder's weight, config and tokenizer files (names and
    bytes, streamed): the same for a copy, different for other weights at the same path."""
    path = Path(path).expanduser()
    if path.is_file():
        files = {"": path}
    else:
        files = {f.name: f for pattern in _CONTENT for f in path.glob(pattern)
                 if f.is_file() and f.name not in _NOT_CONTENT}
    digest = hashlib.sha256()
    for name in sorted(files):
        one = hashlib.sha256()
        with open(files[name], "rb") as f:
            while chunk := f.read(1 << 20):
                one.update(chunk)
        digest.update(f"{name}\0{one.hexdigest()}\n".encode())
    return digest.hexdigest()
