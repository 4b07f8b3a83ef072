"""Prompts for translation: few-shot for base models, an instruction for tuned ones."""

from __future__ import annotations

from typing import Sequence

__all__ = ["few_shot_prompt", "translation_instruction", "FEW_SHOT_STOP"]

FEW_SHOT_STOP = ("\n",)


def few_shot_prompt(
    source: str, src_name: str, tgt_name: str, examples: Sequence[tuple[str, str]], bos: str = ""
) -> str:
    """The classic prompt for a base LM: k solved pairs, then the source; the answer ends at a newline."""
    shots = "".join(f"{src_name}: {s}\n{tgt_name}: {t}\n\n" for s, t in examples)
    return f"{bos}{shots}{src_name}: {source}\n{tgt_name}:"


def translation_instruction(source: str, src_name: str, tgt_name: str) -> str:
    """The single-turn request a tuned model gets (the data builder's canonical English phrasing)."""
    return f"Translate the following {src_name} text into {tgt_name}.\n\n{source}"
