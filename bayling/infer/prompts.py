"""Prompts for translation: few-shot for base models, an instruction for tuned ones."""

from __future__ import annotations

from typing import Sequence

__all__ = [
    "FEW_SHOT_STOP",
    "constrained_instruction",
    "constraint_request",
    "few_shot_prompt",
    "sample_shots",
    "translation_instruction",
]

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


def constrained_instruction(source: str, src_name: str, tgt_name: str, terms: Sequence[str]) -> str:
    """The translation request with terms the translation must contain (lexically constrained MT)."""
    return translation_instruction(source, src_name, tgt_name) + "\n\n" + constraint_request(terms, first=True)


def constraint_request(terms: Sequence[str], first: bool = False) -> str:
    listed = ", ".join(f'"{t}"' for t in terms)
    if first:
        return f"The translation must contain these terms: {listed}."
    return f"The translation must contain these terms: {listed}. Please revise it."


def sample_shots(src_code: str, tgt_code: str, k: int = 3) -> list[tuple[str, str]]:
    """k solved pairs from the shipped sample (dev split), or [] when it lacks either language."""
    import itertools

    from bayling.corpus import flores_languages, read_flores
    from bayling.resources import sample_dir

    have = set(flores_languages(sample_dir(), "dev"))
    if src_code not in have or tgt_code not in have or src_code == tgt_code:
        return []
    return [(p.src, p.tgt) for p in itertools.islice(read_flores(sample_dir(), "dev", pairs=[(src_code, tgt_code)]), k)]
