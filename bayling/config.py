"""Config sections from YAML mappings: typed and checked when they are read, errors naming the field.

A recipe's sections are the stages' own dataclasses (BuildConfig, TrainConfig, SuiteConfig, ...).
`parse_section` builds one from a mapping with pydantic's validation of the dataclass's type hints,
so `max_steps: "two"`, `batch_size: 2.5` or `langs: eng_Latn` (a string where a list belongs) are
refused before any stage runs, one problem per field, instead of a TypeError hours later.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

from bayling.errors import ConfigError

__all__ = ["parse_section"]

T = TypeVar("T")


def parse_section(cls: type[T], doc: Any, where: str) -> T:
    """`cls` (a dataclass) from the mapping `doc`; ConfigError listing every problem as `where.field: ...`."""
    from pydantic import TypeAdapter, ValidationError

    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: a mapping of options (key: value), not {type(doc).__name__} {_shown(doc)}")
    try:
        return TypeAdapter(cls).validate_python(doc)
    except ValidationError as err:
        raise ConfigError("; ".join(_problem(cls, e, where) for e in err.errors())) from None


def _problem(cls: type, e: dict, where: str) -> str:
    loc = [p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    field = ".".join([where, *map(str, loc)])
    if e["type"] == "value_error":  # a __post_init__'s own one-line ConfigError
        return f"{field}: {e['ctx']['error']}"
    if e["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        known = [f.name for f in dataclasses.fields(_dataclass_at(cls, loc[:-1]))]
        return f"{field}: unknown option (known: {', '.join(known)})"
    if e["type"] == "missing_argument":
        return f"{field}: missing (required)"
    msg = e["msg"][0].lower() + e["msg"][1:]
    return f"{field}: {msg} ({_shown(e['input'])})"


def _dataclass_at(cls: type, loc: list) -> type:
    """The dataclass that holds the field at `loc` (list indices and optional types stepped through)."""
    for part in loc:
        if isinstance(part, int):
            continue
        hint = typing.get_type_hints(cls)[part]
        nested = [t for t in (typing.get_args(hint) or (hint,)) for t in (typing.get_args(t) or (t,))
                  if dataclasses.is_dataclass(t)]
        cls = nested[0] if nested else cls
    return cls


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
