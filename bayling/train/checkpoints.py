"""Checkpoints that a kill cannot spoil: completion markers, config fingerprints, the resume point.

The transformers Trainer writes a checkpoint file by file; a kill in the middle leaves a folder
that `get_last_checkpoint` still picks and that no resume can read. Here a checkpoint counts only
once `bayling-checkpoint.json` is in it, written atomically by the last callback of a save (after
the selection score, so a resumed run's curve is the uninterrupted one), and it names the
fingerprint of the training config that made it. A resume takes the newest complete checkpoint of
the same fingerprint; partial folders and another config's checkpoints are removed, so a changed
config, like a run without `resume`, trains from step 0.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from bayling.io import atomic_write_json, atomic_write_text
from bayling.models.spec import content_fingerprint

__all__ = ["MARKER", "completion_callback", "finished", "resume_point", "training_fingerprint"]

MARKER = "bayling-checkpoint.json"
# Settings that change neither the weights nor the curve of a run.
NOT_TRAINING = ("out", "resume", "torch_threads", "tensorboard", "logging_steps", "save_steps", "save_total_limit")


def training_fingerprint(cfg: Any) -> str:
    """What a run's checkpoints depend on: every training setting, and the contents of its data,
    selection set and starting adapter (the same path can hold other data after a --force)."""
    doc = {k: v for k, v in asdict(cfg).items() if k not in NOT_TRAINING}
    for key in ("data", "select_set", "init_adapter", "model"):  # a folder (an earlier step's model) by content
        if doc.get(key) and Path(doc[key]).exists():
            doc[key] = content_fingerprint(doc[key])
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def completion_callback(fingerprint: str):
    """The last callback of a save: marks the checkpoint complete (every file and score are in)."""
    from transformers import TrainerCallback

    class MarkComplete(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and folder.is_dir():
                atomic_write_json(folder / MARKER, {"fingerprint": fingerprint, "global_step": state.global_step})

    return MarkComplete()


def _step(folder: Path) -> int:
    return int(folder.name.rpartition("-")[2]) if folder.name.rpartition("-")[2].isdigit() else -1


def resume_point(ckpt_dir: Path, fingerprint: str, resume: bool, log: Callable[[str], None],
                 curve: Path | None = None) -> Path | None:
    """The checkpoint to resume from, or None (train from step 0). Removes what cannot be resumed:
    partial checkpoints, another config's, and all of them when `resume` is off; trims the
    selection curve to the steps that are kept."""
    if not ckpt_dir.is_dir():
        return None
    folders = sorted((p for p in ckpt_dir.glob("checkpoint-*") if p.is_dir() and _step(p) >= 0), key=_step)
    keep: list[Path] = []
    for folder in folders:
        marker = folder / MARKER
        mark = json.loads(marker.read_text()) if marker.is_file() else None
        if resume and mark is not None and mark.get("fingerprint") == fingerprint:
            keep.append(folder)
            continue
        why = ("not resuming" if not resume else "incomplete (killed while it was written)" if mark is None
               else "made with another training config")
        log(f"checkpoint {folder.name}: {why}, removed")
        shutil.rmtree(folder)
    point = keep[-1] if keep else None
    if curve is not None and curve.is_file():
        last = _step(point) if point else 0
        lines = [ln for ln in curve.read_text(encoding="utf-8").splitlines() if _curve_step(ln) is not None
                 and _curve_step(ln) <= last]
        atomic_write_text(curve, "".join(ln + "\n" for ln in lines))
    return point


def _curve_step(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):  # a torn last line
        return None


def finished(checkpoint: Path) -> bool:
    """The checkpoint is the run's last step: resuming from it must not train another step."""
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return state.get("max_steps", 0) > 0 and state["global_step"] >= state["max_steps"]
