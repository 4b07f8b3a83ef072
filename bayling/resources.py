"""Where shipped and shared files live."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

__all__ = ["sample_dir", "shared_data_dir", "gemma_notice"]


def sample_dir() -> Path:
    """The small multi-way sample (FLORES layout: dev/ and devtest/) this project ships."""
    return Path(str(files("bayling").joinpath("assets", "sample")))


def gemma_notice() -> str:
    return files("bayling").joinpath("assets", "GEMMA_NOTICE").read_text(encoding="utf-8")


def shared_data_dir() -> Path | None:
    """../shared/data beside the checkout (or $BAYLING_SHARED_DATA), when present."""
    candidates = []
    if os.environ.get("BAYLING_SHARED_DATA"):
        candidates.append(Path(os.environ["BAYLING_SHARED_DATA"]))
    candidates += [Path.cwd().parent / "shared" / "data", Path(__file__).resolve().parents[2] / "shared" / "data"]
    for c in candidates:
        if (c / "flores200").is_dir():
            return c
    return None
