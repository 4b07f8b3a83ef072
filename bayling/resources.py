"""Where shipped and shared files live."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

__all__ = ["gemma_notice", "named_corpus", "sample_dir", "shared_data_dir"]


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


def named_corpus(name: str) -> str | None:
    """A recipe's corpus name as a path: "sample" (shipped), "flores", "newstest:YEAR/xx-yy" and
    "instructions:FILE" (../shared, None when absent); anything else is a path already."""
    if name == "sample":
        return str(sample_dir())
    shared = shared_data_dir()
    if name == "flores":
        return str(shared / "flores200") if shared else None
    if name.startswith("instructions:"):  # a general-instruction file of ../shared/data/instructions
        path = shared / "instructions" / name.partition(":")[2] if shared else None
        return str(path) if path is not None and path.exists() else None
    if name.startswith("newstest"):
        sub = name.partition(":")[2]
        return str(shared / "newstest" / sub) if shared and (shared / "newstest" / sub).exists() else None
    return name
