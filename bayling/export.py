"""`bayling export gguf`: a trained run as one GGUF file for llama.cpp, Ollama and LM Studio.

A run trained from an embedded model (a GGUF underneath) is exported by *patching* that GGUF: every
tensor the training changed (LoRA merged into the attention and MLP projections; all blocks after
full fine-tuning) is written anew — Q8_0 by default — and every other tensor keeps the base file's
bytes and quantization, so the tokenizer, the frozen embedding and all llama.cpp metadata are
exactly the base's. The trained chat template goes into `tokenizer.chat_template`, which
llama.cpp and Ollama read. Before a tensor is replaced, the base GGUF's copy is dequantized and
compared with the weights transformers loaded from it, which tells the layout (and Gemma's +1 on
norm weights) instead of assuming it; a tensor whose mapping cannot be confirmed stops the export.

A run on any other base (a hub checkpoint) needs llama.cpp's own converter: merge, then
`convert_hf_to_gguf.py` (`--converter`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from bayling.io import atomic_path, remove_stale_temps, temp_path
from bayling.errors import BaylingError

__all__ = ["CHAT_FORMAT_KEY", "QUANTS", "ExportError", "export_gguf", "base_gguf_of"]

QUANTS = ("q8_0", "f16", "f32")
# GGUF metadata key naming the bayling chat format the run was trained with (llama.cpp ignores it).
CHAT_FORMAT_KEY = "bayling.chat_format"


class ExportError(BaylingError, ValueError):
    """A run that cannot be exported as asked (and why)."""


def base_gguf_of(run: Path) -> tuple[str, Path] | None:
    """(embedded model name, its GGUF) for a run trained from an embedded model, else None."""
    from bayling.models import EMBEDDED

    for name in ("bayling.json", "adapter_config.json"):
        f = run / name
        if f.is_file():
            doc = json.loads(f.read_text())
            base = doc.get("base_model") or doc.get("base_model_name_or_path")
            if base in EMBEDDED:
                return base, EMBEDDED[base].gguf()
    return None


def export_gguf(run: str | Path, out: str | Path | None = None, quant: str = "q8_0",
                converter: str | None = None) -> Path:
    """Write `run` (a `bayling train` output: LoRA adapter or full model) as one GGUF file."""
    run = Path(run)
    if quant not in QUANTS:
        raise ExportError(f"--quant {quant!r}: use one of {', '.join(QUANTS)} (the untouched tensors keep the "
                          "base's own quantization, e.g. Q4_K_M for the embedded Gemma)")
    if not (run / "bayling.json").is_file() and not (run / "adapter_config.json").is_file():
        raise ExportError(f"{run}: not a `bayling train` output (no bayling.json or adapter_config.json)")
    out = Path(out) if out else run.with_name(run.name + f"-{quant}.gguf")
    base = base_gguf_of(run)
    if base is None:
        return _convert_with_llamacpp(run, out, converter)
    name, gguf_path = base
    return _patch_base(run, name, gguf_path, out, quant)


def _patch_base(run: Path, name: str, gguf_path: Path, out: Path, quant: str) -> Path:
    import gguf
    import numpy as np
    import torch
    from safetensors.torch import load_file

    from bayling.models import load_model, resolve_model_path

    base_dir = Path(resolve_model_path(name))
    base_state = {}
    for shard in sorted(base_dir.glob("model*.safetensors")):
        base_state.update(load_file(str(shard)))
    model, tokenizer = load_model(str(run), dtype="float32", device="cpu")
    trained = {k: v.detach().float() for k, v in model.state_dict().items()}

    reader = gguf.GGUFReader(str(gguf_path))
    arch = str(reader.fields[gguf.Keys.General.ARCHITECTURE].contents())
    n_blocks = int(reader.fields[f"{arch}.block_count"].contents())
    names = gguf.TensorNameMap(next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch), n_blocks)
    by_name = {t.name: t for t in reader.tensors}

    replaced: dict[str, np.ndarray] = {}
    for key, new in trained.items():
        old = base_state.get(key)
        if old is None or torch.equal(old.float(), new):
            continue
        stem = key[: -len(".weight")] if key.endswith(".weight") else key
        target = names.get_name(stem)
        if target is None or f"{target}.weight" not in by_name:
            raise ExportError(f"{key}: changed by training but has no tensor in {gguf_path.name}")
        tensor = by_name[f"{target}.weight"]
        offset = _layout_offset(gguf, tensor, old.float().numpy())
        if offset is None:
            raise ExportError(f"{key}: {tensor.name} in {gguf_path.name} does not match the weights loaded from it; "
                              "refusing to guess its layout")
        replaced[tensor.name] = new.numpy().astype(np.float32) + offset
    if not replaced:
        raise ExportError(f"{run}: no weight differs from the base {name}: nothing to export")

    qtype = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "f16": gguf.GGMLQuantizationType.F16,
             "f32": gguf.GGMLQuantizationType.F32}[quant]
    with atomic_path(out) as tmp:
        _write_patched(gguf, reader, tmp, arch, run, name, tokenizer, replaced, qtype)
    return out


def _write_patched(gguf, reader, tmp: Path, arch: str, run: Path, name: str, tokenizer, replaced: dict, qtype) -> None:
    writer = gguf.GGUFWriter(str(tmp), arch=arch, endianess=reader.endianess)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF.") \
                or field.name in (gguf.Keys.Tokenizer.CHAT_TEMPLATE, gguf.Keys.General.NAME):
            continue
        kind = field.types[0]
        writer.add_key_value(field.name, field.contents(), kind,
                             sub_type=field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None)
    writer.add_name(f"{run.name} (bayling, from {name})")
    template, end_of_turn, fmt_name = _plain_template(run, tokenizer)
    writer.add_chat_template(template)
    if fmt_name is not None:
        writer.add_string(CHAT_FORMAT_KEY, fmt_name)  # bayling reads the trained format back exactly
    if end_of_turn is not None and gguf.Keys.Tokenizer.EOT_ID not in reader.fields:
        writer.add_eot_token_id(end_of_turn)  # llama.cpp stops a chat turn here
    payloads = []
    for t in reader.tensors:
        if t.name in replaced:
            data = replaced[t.name]
            # Blocks of 32 along rows: a row length that does not divide stays in F16.
            kind = qtype if qtype != gguf.GGMLQuantizationType.Q8_0 or data.shape[-1] % 32 == 0 \
                else gguf.GGMLQuantizationType.F16
            data = gguf.quants.quantize(data, kind) if kind != gguf.GGMLQuantizationType.F32 else data
            writer.add_tensor_info(t.name, data.shape, data.dtype, data.nbytes,
                                   kind if kind != gguf.GGMLQuantizationType.F32 else None)
        else:
            data = t.data
            writer.add_tensor_info(t.name, data.shape, data.dtype, data.nbytes, t.tensor_type)
        payloads.append(data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for data in payloads:
        writer.write_tensor_data(data)
    writer.close()


def _plain_template(run: Path, tokenizer) -> tuple[str, int | None, str | None]:
    """The run's chat format as a plain Jinja template (llama.cpp and Ollama know no {% generation %}),
    the token that ends an assistant turn when it is a single token, and the format's name when it
    is one of bayling's."""
    import re

    from bayling.chat_formats import FORMATS, get_format
    from bayling.models import default_chat_format

    fmt = get_format(default_chat_format(str(run)), tokenizer)
    template = re.sub(r"{%-?\s*(end)?generation\s*-?%}", "", fmt.full_template())
    ids = tokenizer(fmt.stop[0], add_special_tokens=False)["input_ids"] if fmt.stop else []
    return template, ids[0] if len(ids) == 1 else None, fmt.name if fmt.name in FORMATS else None


def _layout_offset(gguf, tensor, hf: "np.ndarray") -> float | None:
    """0.0 when the GGUF tensor holds the weights as transformers loaded them, 1.0 for Gemma-style
    norms stored as 1 + w; None when neither (a permuted or otherwise transformed tensor)."""
    import numpy as np

    stored = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32).reshape(hf.shape) \
        if tensor.data.size else None
    if stored is None:
        return None
    scale = float(np.abs(hf).max()) or 1.0
    for offset in (0.0, 1.0):
        if float(np.abs(stored - (hf + offset)).max()) <= 1e-2 * max(scale, 1.0):
            return offset
    return None


def _convert_with_llamacpp(run: Path, out: Path, converter: str | None) -> Path:
    conv = converter or shutil.which("convert_hf_to_gguf.py") or shutil.which("convert-hf-to-gguf")
    if not conv:
        raise ExportError(f"{run}: its base is not an embedded GGUF model, so it needs llama.cpp's converter: pass "
                          "--converter PATH/TO/convert_hf_to_gguf.py (in a llama.cpp checkout)")
    if not Path(conv).is_file() and shutil.which(conv) is None:
        raise ExportError(f"{conv}: no such converter (--converter: llama.cpp's convert_hf_to_gguf.py)")
    merged = None
    try:
        source = run
        if (run / "adapter_config.json").is_file():
            from bayling.train.merge import merge_adapter

            # A hidden temp folder: the merge is only the converter's input, never left behind (nor a killed export's).
            name = run.with_name(run.name + "-merged")
            remove_stale_temps(name)
            source = merged = merge_adapter(run, temp_path(name))
        with atomic_path(out) as tmp:
            cmd = ([sys.executable, conv] if conv.endswith(".py") else [conv]) + [str(source), "--outfile", str(tmp)]
            code = subprocess.run(cmd, check=False).returncode
            if code != 0:
                raise ExportError(f"{conv} failed (exit {code}) converting {run}; its messages are above")
    finally:
        if merged is not None:
            shutil.rmtree(merged, ignore_errors=True)
    return out
