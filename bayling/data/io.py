"""JSON lines in and out. Outputs appear only when complete: written to a hidden temp file
beside the target, fsynced, then renamed over it, so a killed run leaves no file that looks done.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator

__all__ = ["ON_ERROR", "DataError", "atomic_open", "dumps", "export_hf_dataset", "read_records", "skip_or_raise",
           "temp_path", "write_jsonl"]


class DataError(ValueError):
    """Unusable data input; the message starts with file:line."""


def dumps(record: dict) -> str:
    """One record as a JSON line (UTF-8 text kept readable, key order kept: byte-stable)."""
    return json.dumps(record, ensure_ascii=False)


def temp_path(path: Path) -> Path:
    """Where `atomic_open` writes before the rename: hidden, beside the target, per process."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


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


@contextmanager
def atomic_open(path: str | Path) -> Iterator[IO[str]]:
    """Open a text file for writing that only replaces `path` if the block finishes without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    f = open(tmp, "w", encoding="utf-8", newline="\n")
    try:
        yield f
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        f.close()
        tmp.unlink(missing_ok=True)
        raise


def write_jsonl(path: str | Path, records: Iterable[dict], progress: Callable[[int], None] | None = None,
                every: int = 1000) -> int:
    """Write records atomically; call `progress(n_written)` every `every` records. Returns the count."""
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


def read_records(path: str | Path, on_error: str = "fail",
                 report: Callable[[str], None] | None = None) -> Iterator[tuple[str, dict]]:
    """(origin "file:line", record) for each non-blank line of a JSONL file.

    A line that is not a JSON object raises DataError naming file:line, or with on_error="skip"
    is passed to `report(message)` and skipped.
    """
    check_on_error(on_error)
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with open(path, "rb") as f:
        for no, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
                if not isinstance(record, dict):
                    raise DataError(f"{path}:{no}: a line must be a JSON object, got {type(record).__name__}")
            except UnicodeDecodeError as e:
                problem = DataError(f"{path}:{no}: invalid UTF-8 ({e.reason} at byte {e.start})")
            except json.JSONDecodeError as e:
                problem = DataError(f"{path}:{no}: invalid JSON ({e.msg} at column {e.colno})")
            except DataError as e:
                problem = e
            else:
                yield f"{path}:{no}", record
                continue
            skip_or_raise(problem, on_error, report)


ON_ERROR = ("skip", "fail")


def check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")


def skip_or_raise(problem: DataError, on_error: str, report: Callable[[str], None] | None) -> None:
    """What --on-error means: raise the problem, or hand its message to `report` and go on."""
    if on_error == "fail":
        raise problem
    if report is not None:
        report(str(problem))


def export_hf_dataset(path: str | Path, out_dir: str | Path) -> Path:
    """Save a JSONL of records as a Hugging Face `datasets` folder (load_from_disk), atomically.

    Columns: `messages` (list of {role, content}) and `meta` (the meta object as a JSON string,
    since its keys differ between tasks).
    """
    import shutil
    import tempfile

    from datasets import Dataset, Features, Value

    path, out_dir = Path(path), Path(out_dir)
    features = Features({"messages": [{"role": Value("string"), "content": Value("string")}], "meta": Value("string")})

    def rows() -> Iterator[dict]:
        for _, record in read_records(path):
            yield {"messages": [{"role": m["role"], "content": m["content"]} for m in record["messages"]],
                   "meta": json.dumps(record.get("meta") or {}, ensure_ascii=False)}

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.cache-") as cache:
        Dataset.from_generator(rows, features=features, cache_dir=cache).save_to_disk(str(tmp))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir
