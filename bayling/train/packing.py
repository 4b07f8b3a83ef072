"""Packing short conversations into full rows without attention leaking between them.

Each packed row carries `position_ids` that restart at 0 for every conversation and no attention
mask: transformers (>= 4.53) then builds a block-diagonal causal mask from the position ids for
eager/SDPA attention, and flash-attention kernels use them as varlen boundaries. The test suite
checks that a packed row gives the same logits as its conversations run one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from bayling.train.dataset import IGNORE, Example

__all__ = ["PackedRow", "pack", "Collator", "PairCollator", "packing_efficiency"]


@dataclass
class PackedRow:
    examples: list[Example]

    def __len__(self) -> int:
        return sum(len(e) for e in self.examples)


def pack(examples: Sequence[Example], max_len: int) -> list[PackedRow]:
    """Best-fit decreasing bin packing: few rows, each as full as possible."""
    import bisect

    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]))
    rows: list[PackedRow] = []
    # (free space, row index), kept sorted so the tightest fitting row is found by bisection
    free: list[tuple[int, int]] = []
    for i in order:
        ex = examples[i]
        need = len(ex)
        k = bisect.bisect_left(free, (need, -1))
        if k < len(free):
            space, r = free.pop(k)
            rows[r].examples.append(ex)
            bisect.insort(free, (space - need, r))
        else:
            rows.append(PackedRow([ex]))
            bisect.insort(free, (max_len - need, len(rows) - 1))
    return rows


def packing_efficiency(rows: Sequence[PackedRow], batch_size: int) -> float:
    """Real tokens / all tokens the model processes, padding included, batching rows in order."""
    real = total = 0
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        width = max(len(r) for r in batch)
        real += sum(len(r) for r in batch)
        total += width * len(batch)
    return real / total if total else 0.0


class Collator:
    """Rows (packed or single examples) -> padded tensors with per-conversation position ids."""

    def __init__(self, pad_id: int, packed: bool = True):
        self.pad_id = pad_id
        self.packed = packed

    def __call__(self, rows: list) -> dict:
        import torch

        ids, labels, pos, weights = [], [], [], []
        for row in rows:
            exs = row.examples if isinstance(row, PackedRow) else [row]
            ids.append([t for e in exs for t in e.input_ids])
            labels.append([t for e in exs for t in e.labels])
            pos.append([p for e in exs for p in range(len(e))])
            weights.append([w for e in exs for w in (e.weights or [1.0] * len(e))])
        width = max(len(r) for r in ids)
        batch = {
            "input_ids": torch.tensor([r + [self.pad_id] * (width - len(r)) for r in ids]),
            "labels": torch.tensor([r + [IGNORE] * (width - len(r)) for r in labels]),
        }
        if any(e.weights for row in rows for e in (row.examples if isinstance(row, PackedRow) else [row])):
            # Per-token loss weights (Example.weights), read by the trainer's loss, never by the model.
            batch["loss_weights"] = torch.tensor([r + [0.0] * (width - len(r)) for r in weights])
        if self.packed:
            # Padding continues as one more "sequence" so it never joins a real one.
            batch["position_ids"] = torch.tensor([r + list(range(width - len(r))) for r in pos])
        else:
            batch["attention_mask"] = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in ids])
        return batch


class PairCollator:
    """Preference pairs (dataset.PairExample) -> one padded batch: the chosen answers, then the
    rejected ones in the same order, and `ref_logps` (pairs x 2) once they are computed."""

    def __init__(self, pad_id: int):
        self.rows = Collator(pad_id, packed=False)

    def __call__(self, pairs: list) -> dict:
        import torch

        batch = self.rows([p.chosen for p in pairs] + [p.rejected for p in pairs])
        if all(p.ref_logps is not None for p in pairs):
            batch["ref_logps"] = torch.tensor([p.ref_logps for p in pairs], dtype=torch.float32)
        return batch
