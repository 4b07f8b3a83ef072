"""Delta weights, the BayLing v1 release format: delta = target - base, tensor by tensor.

`apply_delta` adds a delta onto its base (LLaMA for BayLing-7B/13B v1.0) to give the tuned model;
`make_delta` does the reverse. Both go one shard at a time (weights memory-mapped where the files
allow), so a 13B model needs about one shard of memory, not two whole models. Output weights are
safetensors; config and tokenizer files come from the delta (apply) or the target (make).
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Callable
from bayling.errors import BaylingError

__all__ = ["DeltaError", "apply_delta", "make_delta"]


class DeltaError(BaylingError, ValueError):
    """Base and delta/target do not fit together (missing tensors, other shapes, no weights)."""


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


class _Weights:
    """The tensors of a model folder, by name, loaded lazily from their shard files."""

    def __init__(self, folder: str | Path, role: str):
        self.folder = Path(folder)
        self.role = role
        if not self.folder.is_dir():
            raise DeltaError(f"{role} {self.folder}: not a folder")
        files = sorted(self.folder.glob("*.safetensors")) or sorted(self.folder.glob("pytorch_model*.bin"))
        if not files:
            raise DeltaError(f"{role} {self.folder}: no *.safetensors or pytorch_model*.bin weights")
        self.files = files
        self._loaded: dict[Path, object] = {}
        self.where: dict[str, Path] = {}
        for f in files:
            for name in self._keys(f):
                self.where[name] = f

    def _open(self, f: Path):
        if f not in self._loaded:
            if f.suffix == ".safetensors":
                from safetensors import safe_open

                self._loaded[f] = safe_open(str(f), framework="pt", device="cpu")
            else:
                import torch

                self._loaded[f] = torch.load(str(f), map_location="cpu", mmap=True, weights_only=True)
        return self._loaded[f]

    def _keys(self, f: Path) -> list[str]:
        h = self._open(f)
        return list(h.keys())

    def get(self, name: str):
        f = self.where[name]
        h = self._open(f)
        return h.get_tensor(name) if f.suffix == ".safetensors" else h[name]

    def shape(self, name: str) -> tuple[int, ...]:
        f = self.where[name]
        h = self._open(f)
        if f.suffix == ".safetensors":
            return tuple(h.get_slice(name).get_shape())
        return tuple(h[name].shape)

    def release(self, f: Path) -> None:
        self._loaded.pop(f, None)


def _check(base: _Weights, other: _Weights) -> None:
    missing = [n for n in other.where if n not in base.where]
    if missing:
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        raise DeltaError(
            f"{len(missing)} tensor(s) of the {other.role} are not in the base {base.folder}: "
            + ", ".join(missing[:5]) + more + " — is this the right base model?"
        )
    for n in other.where:
        a, b = base.shape(n), other.shape(n)
        if a != b:
            raise DeltaError(
                f"tensor {n}: shape {list(b)} in the {other.role} but {list(a)} in the base "
                f"{base.folder} — is this the right base model (size, vocabulary)?"
            )


def _shard_name(f: Path, n_files: int) -> str:
    if n_files == 1:
        return "model.safetensors"
    stem = f.name
    for s in _WEIGHT_SUFFIXES:
        stem = stem.removesuffix(s)
    return stem.replace("pytorch_model", "model") + ".safetensors"


def _combine(base_dir, other_dir, out, role: str, op: Callable) -> Path:
    import torch
    from safetensors.torch import save_file

    base, other = _Weights(base_dir, "base"), _Weights(other_dir, role)
    _check(base, other)
    out = Path(out)
    if out.resolve() in (base.folder.resolve(), other.folder.resolve()):
        raise DeltaError(f"--out {out} must differ from the input folders")
    out.mkdir(parents=True, exist_ok=True)
    by_file: dict[Path, list[str]] = defaultdict(list)
    for name, f in other.where.items():
        by_file[f].append(name)
    index: dict[str, str] = {}
    total = 0
    for f in other.files:
        shard = {}
        for name in by_file.get(f, []):
            b = other.get(name)
            a = base.get(name)
            # fp32 arithmetic, stored in the dtype the delta/target came in
            shard[name] = op(a.to(torch.float32), b.to(torch.float32)).to(b.dtype).contiguous()
            total += shard[name].numel() * shard[name].element_size()
        out_name = _shard_name(f, len(other.files))
        save_file(shard, str(out / out_name), metadata={"format": "pt"})
        index.update({n: out_name for n in shard})
        other.release(f)
        del shard
    if len(other.files) > 1:
        (out / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": dict(sorted(index.items()))}, indent=2)
        )
    for p in other.folder.iterdir():
        is_weights = p.suffix in _WEIGHT_SUFFIXES or p.name.endswith(".index.json")
        if p.is_file() and not is_weights and p.name != "bayling-complete.json":
            shutil.copy2(p, out / p.name)
    return out


def apply_delta(base: str | Path, delta: str | Path, out: str | Path) -> Path:
    """Write base + delta to `out` (a model folder `from_pretrained` reads)."""
    return _combine(base, delta, out, "delta", lambda a, d: a + d)


def make_delta(base: str | Path, target: str | Path, out: str | Path) -> Path:
    """Write target - base to `out`, in the layout `apply_delta` reads back."""
    return _combine(base, target, out, "target", lambda a, t: t - a)
