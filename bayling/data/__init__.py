"""Instruction data for BayLing: interactive-translation sessions and cross-lingual tasks.

The pipeline, one module each:
  build.py         corpus lines -> conversation records (BuildConfig, build_conversations)
  sessions.py      interactive translation sessions (plan_session; grounding.py, templates.py, names.py)
  crosslingual.py  BayLing 2 cross-lingual tasks over multi-way lines (plan_crosslingual)
  teacher.py       an OpenAI-compatible model writes the answers (run_teacher; its fake: bayling.testing)
  filters.py       quality filters that count what they drop (apply_filters, default_filters)
  mix.py           mix with Alpaca / ShareGPT / OpenAI-messages data by ratio (mix_records)
  card.py          data card: markdown + PNG (write_card)
  drafts.py        a model's own translations as refine drafts (prepare_drafts; cached, resumable)
  io.py            JSONL reading with file:line errors, `datasets` export (writes: bayling.io)
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
    "FilterReport": "filters", "apply_filters": "filters", "default_filters": "filters",
    "GeneralSource": "mix", "mix_records": "mix", "read_general": "mix",
    "write_card": "card",
    "DataError": "io", "atomic_open": "io", "export_hf_dataset": "io", "read_records": "io", "write_jsonl": "io",
    "language_weights": "sampling",
    "prepare_drafts": "drafts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"bayling.data.{module}"), name)
