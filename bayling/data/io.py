"""JSON lines in and out for the data stage. Writes go through bayling.io (atomic: a killed run
leaves no file that looks done); reads name file:line for every bad line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator

from bayling.io import atomic_dir, atomic_open, dumps, temp_path, write_jsonl
from bayling.errors import BaylingError

__all__ = ["ON_ERROR", "DataError", "atomic_open", "dumps", "export_hf_dataset", "read_records", "skip_or_raise",
           "temp_path", "write_jsonl"]


class DataError(BaylingError, ValueError):
    """Unusable data input; the message starts with file:line."""


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
    import tempfile

    from datasets import Dataset, Features, Value

    path, out_dir = Path(path), Path(out_dir)
    features = Features({"messages": [{"role": Value("string"), "content": Value("string")}], "meta": Value("string")})

    def rows() -> Iterator[dict]:
        for _, record in read_records(path):
            yield {"messages": [{"role": m["role"], "content": m["content"]} for m in record["messages"]],
                   "meta": json.dumps(record.get("meta") or {}, ensure_ascii=False)}

    with atomic_dir(out_dir) as tmp, tempfile.TemporaryDirectory(dir=out_dir.parent,
                                                                  prefix=f".{out_dir.name}.cache-") as cache:
        Dataset.from_generator(rows, features=features, cache_dir=cache).save_to_disk(str(tmp))
    return out_dir
