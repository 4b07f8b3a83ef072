"""What the machine's processor can do fast: one home for the bf16 decision.

bf16 pays on GPUs that support it and on CPUs with AVX-512 BF16 or AMX (measured on 2 Zen 5
cores: a 1536x640 @ 640x2048 matmul runs 193 GFLOP/s in fp32 and 898 in bf16); elsewhere a CPU
emulates bf16 and it is slower than fp32.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from bayling.errors import ConfigError

__all__ = ["cpu_has_fast_bf16", "fast_bf16", "resolve_bf16"]

_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@cache
def cpu_has_fast_bf16() -> bool:
    """True when this CPU has bf16 instructions that torch's kernels use (AVX-512 BF16 or AMX)."""
    import torch

    if torch.backends.cpu.get_cpu_capability() not in ("AVX512", "AMX"):  # torch's dispatch level
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux: trust torch's mkldnn check
        return bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)())
    return any(flag in flags for flag in _BF16_FLAGS)


def fast_bf16() -> bool:
    """bf16 is faster than fp32 here: a bf16-capable CUDA device, else a bf16-capable CPU."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cpu_has_fast_bf16()


def resolve_bf16(setting: bool | str | None) -> bool:
    """A config's `bf16` (true, false, "auto" or None = auto) -> whether to use it."""
    if setting is None or setting == "auto":
        return fast_bf16()
    if isinstance(setting, str):
        lowered = setting.lower()
        if lowered not in ("true", "false"):
            raise ConfigError(f"bf16 must be true, false or auto, got {setting!r}")
        return lowered == "true"
    return bool(setting)
