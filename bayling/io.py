"""Files that appear only when complete: the one home of atomic writes.

Every output is written to a hidden temp file (or folder) beside its target, with a name unique to
the process and call, fsynced, then renamed over the target, and the rename is made durable: a
killed run leaves either the old file or the new one, never a half-written file that looks done,
and two writers never share a temp file.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator

__all__ = ["atomic_dir", "atomic_open", "atomic_path", "atomic_write_json", "atomic_write_text", "dumps", "fsync_dir",
           "temp_path", "write_jsonl"]


def dumps(record: dict) -> str:
    """One record as a JSON line (UTF-8 text kept readable, key order kept: byte-stable)."""
    return json.dumps(record, ensure_ascii=False)


def temp_path(path: Path) -> Path:
    """Where a write goes before the rename: hidden, beside the target, unique to this process and call."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temp path to write a file at (by any library); it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a file for writing ("w" text, "wb" bytes) that only replaces `path` if the block finishes."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', not {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **({"encoding": "utf-8", "newline": "\n"} if mode == "w" else {})) as f:
            yield f


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=indent, default=str) + "\n")


def write_jsonl(path: str | Path, records: Iterable[dict], progress: Callable[[int], None] | None = None,
                every: int = 1000) -> int:
    """Write records as JSON lines, atomically; call `progress(n_written)` every `every` records. Returns the count."""
    n = 0
    with atomic_open(path) as f:
        write = f.write
        for n, record in enumerate(records, 1):
            write(dumps(record) + "\n")
            if progress is not None and n % every == 0:
                progress(n)
    if progress is not None:
        progress(n)
    return n


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """A temp folder to fill; it replaces the folder `path` (old contents removed) only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    tmp.mkdir()
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                _fsync_file(f)
        if path.exists():
            old = temp_path(path)
            os.replace(path, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
