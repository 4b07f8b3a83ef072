"""The official BayLing checkpoints: which template each was trained with, and how to spot them.

FastChat-style loaders pick a template by substring ("bayling" in the path -> the v1
"### Instruction:" template), which is wrong for BayLing-2-Llama-3-8B: it was tuned in the Llama-3
chat format and ends turns with <|eot_id|> (128009), while its generation config stops only on
<|end_of_text|> (128001). `detect_official` checks the Llama-3 signs first, so that model gets
the right format and both stop ids.

Checked against released sources (tests/test_infer_official.py): the v1 template (ictnlp/BayLing
conversation.py) and the Llama 3 token ids. Unverified: the BayLing-2-7B/13B template (assumed
v1's), the BayLing-2-llama-3-8B system prompt, and that its generation config lists 128001 only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayling.chat_formats import NAME_PLACEHOLDERS

__all__ = ["OFFICIAL", "OfficialModel", "detect_official"]

LLAMA3_STOP_IDS = (128001, 128009)  # <|end_of_text|>, <|eot_id|>
LLAMA3_VOCAB = 128256


@dataclass(frozen=True)
class OfficialModel:
    name: str
    hub_id: str
    chat_format: str
    base: str  # the foundation model it was tuned from
    delta: bool = False  # released as delta weights: run `bayling delta apply` on the base first
    stop_token_ids: tuple[int, ...] = ()
    replacements: dict[str, str] = field(default_factory=lambda: dict(NAME_PLACEHOLDERS))
    note: str = ""


OFFICIAL: dict[str, OfficialModel] = {
    m.name: m
    for m in (
        OfficialModel("BayLing-7B-v1.0", "ICTNLP/bayling-7b-diff", "bayling-v1", "LLaMA-7B", delta=True),
        OfficialModel("BayLing-13B-v1.0", "ICTNLP/bayling-13b-diff", "bayling-v1", "LLaMA-13B", delta=True),
        OfficialModel("BayLing-13B-v1.1", "ICTNLP/bayling-13b-v1.1", "bayling-v1", "LLaMA-13B"),
        # Assumed: the v1 template; not confirmed against the released tokenizer config.
        OfficialModel("BayLing-2-7B", "ICTNLP/BayLing-2-7B", "bayling-v1", "Llama-2-7B",
                      note="template assumed to be v1's"),
        OfficialModel("BayLing-2-13B", "ICTNLP/BayLing-2-13B", "bayling-v1", "Llama-2-13B",
                      note="template assumed to be v1's"),
        OfficialModel("BayLing-2-llama-3-8B", "ICTNLP/BayLing-2-llama-3-8B", "bayling2-llama3", "Llama-3-8B",
                      stop_token_ids=LLAMA3_STOP_IDS),
    )
}

_LLAMA3_NAME = re.compile(r"llama[-_ ]?3")
_BAYLING2 = re.compile(r"bayling[-_ ]?2")
_SIZE = re.compile(r"(\d+)b")


def _config_of(path: str) -> dict[str, Any]:
    cfg = Path(path) / "config.json"
    try:
        return json.loads(cfg.read_text()) if cfg.is_file() else {}
    except (OSError, ValueError):
        return {}


def detect_official(name_or_path: str | None, config: Any = None) -> OfficialModel | None:
    """The official checkpoint a model name, hub id or folder is, or None.

    `config` (a transformers config or dict) settles a renamed folder: a 128256-token vocabulary
    means the Llama-3 model whatever the name says.
    """
    if not name_or_path:
        return None
    from bayling.models import SHIPPED_ADAPTERS

    raw = str(name_or_path).rstrip("/")
    if raw in SHIPPED_ADAPTERS or (Path(raw) / "bayling.json").is_file():
        return None  # trained here: its own bayling.json says how to serve it
    name = raw.replace("\\", "/").split("/")[-1].lower()  # the folder or repo name, not its parents
    if "bayling" not in name:
        return None
    cfg = config if isinstance(config, dict) else (config.to_dict() if config is not None else _config_of(name_or_path))
    vocab = cfg.get("vocab_size")
    if _LLAMA3_NAME.search(name) or vocab == LLAMA3_VOCAB:
        return OFFICIAL["BayLing-2-llama-3-8B"]
    size = _SIZE.search(name)
    big = bool(size and size.group(1) == "13")
    if _BAYLING2.search(name):
        return OFFICIAL["BayLing-2-13B" if big else "BayLing-2-7B"]
    if "v1.1" in name:
        return OFFICIAL["BayLing-13B-v1.1"]
    return OFFICIAL["BayLing-13B-v1.0" if big else "BayLing-7B-v1.0"]
