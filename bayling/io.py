"""Files that appear only when complete: the one home of atomic writes.

Every output is written to a hidden temp file (or folder) beside its target, with a name unique to
the process and call, fsynced, then renamed over the target, and the rename is made durable: a
killed run leaves either the old file or the new one, never a half-written file that looks done,
and two writers never share a temp file. A file that only grows (a resumable cache) takes whole
lines with `append_jsonl`.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator

__all__ = ["append_jsonl", "atomic_dir", "atomic_open", "atomic_path", "atomic_write_json", "atomic_write_text",
           "dumps", "fsync_dir", "remove_stale_temps", "temp_path", "write_jsonl"]


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
    remove_stale_temps(path)
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
    remove_stale_temps(path)
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


def append_jsonl(path: str | Path, records: Iterable[dict]) -> int:
    """Append records as JSON lines to a file that only grows (a resumable cache), fsynced. Returns the count.

    A last line torn by a kill is closed off first: the new records start on a line of their own
    (readers skip the fragment) instead of being glued onto it and lost.
    """
    path = Path(path)
    lines = [dumps(record) + "\n" for record in records]
    if not lines:
        return 0
    data = "".join(lines).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        end = f.seek(0, os.SEEK_END)
        if end:
            f.seek(end - 1)
            if f.read(1) != b"\n":
                data = b"\n" + data
        f.write(data)  # append mode: written at the end whatever the position
        f.flush()
        os.fsync(f.fileno())
    return len(lines)


def remove_stale_temps(path: str | Path) -> int:
    """Remove what killed runs left beside `path`: `temp_path` files and folders of processes that are
    gone (never a live process's; PIDs are this machine's). Returns how many were removed."""
    path = Path(path)
    prefix = f".{path.name}.tmp-"
    removed = 0
    try:
        entries = [e for e in os.scandir(path.parent) if e.name.startswith(prefix)]  # one listing: cheap
    except OSError:
        return 0
    for entry in entries:
        pid = entry.name[len(prefix):].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            Path(entry.path).unlink(missing_ok=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # on Windows os.kill(pid, 0) would end the process
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # exists, but another user's (PermissionError), or cannot tell: keep its files
        return True
    return True
