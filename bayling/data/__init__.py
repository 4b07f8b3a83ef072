"""Instruction data for BayLing: interactive-translation sessions and cross-lingual tasks.

The pipeline, one module each:
  build.py         corpus lines -> conversation records (BuildConfig, build_conversations)
  sessions.py      interactive translation sessions (plan_session; grounding.py, templates.py, names.py)
  crosslingual.py  BayLing 2 cross-lingual tasks over multi-way lines (plan_crosslingual)
  teacher.py       an OpenAI-compatible model writes the answers (run_teacher; fake_teacher.py for tests)
  filters.py       quality filters that count what they drop (apply_filters, default_filters)
  mix.py           mix with Alpaca / ShareGPT / OpenAI-messages data by ratio (mix_records)
  card.py          data card: markdown + PNG (write_card)
  io.py            atomic JSONL writing, reading with file:line errors, `datasets` export
  cli.py           `bayling data build|filter|mix|card`

Names below load their module on first use, so `import bayling.data` stays instant.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BuildConfig": "build", "build_conversations": "build", "plan_conversations": "build", "read_units": "build",
    "plan_session": "sessions", "plan_crosslingual": "crosslingual",
    "Plan": "records", "Turn": "records", "Unit": "records", "to_record": "records",
    "TeacherConfig": "teacher", "TeacherError": "teacher", "run_teacher": "teacher", "teacher_build": "teacher",
    "FakeTeacher": "fake_teacher", "FakeTeacherConfig": "fake_teacher",
    "FilterReport": "filters", "apply_filters": "filters", "default_filters": "filters",
    "GeneralSource": "mix", "mix_records": "mix", "read_general": "mix",
    "write_card": "card",
    "DataError": "io", "atomic_open": "io", "export_hf_dataset": "io", "read_records": "io", "write_jsonl": "io",
    "language_weights": "sampling",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"bayling.data.{module}"), name)
