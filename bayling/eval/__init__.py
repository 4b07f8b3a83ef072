"""Evaluation: every number BayLing reports, from one tool (`bayling eval ...`) and this API.

One small module per task; models come through the engine interface (local) or any
OpenAI-compatible endpoint (engines.py):
  translation.py      sacreBLEU BLEU/chrF/chrF++/TER, signatures, bootstrap CIs, paired tests, COMET
  offtarget.py        share of outputs not in the target language, per language
  breadth.py          English to and from every FLORES-200 language, cached per system, compared
  constrained.py      inclusion rate of required terms
  interactive.py      scripted multi-turn translation sessions scored per turn
  judge.py            MT-bench / BayLing-80 with an LLM judge (single grades, pairwise with swap)
  multiple_choice.py  AGIEval, CMMLU, XCOPA, MGSM, llm-foundry layouts: log-likelihood and generative answering
  knowledge.py        a fixed knowledge battery (ARC, PIQA, WinoGrande, BoolQ, XCOPA, CMMLU), McNemar, model-card calibration
  ifeval.py           IFEval / M-IFEval / Multi-IF instruction following (strict, loose, echo rate)
  answer_language.py  does the answer come in the language asked for, over 100+ languages
  report.py           JSON -> markdown tables and an HTML page with plots
  cli.py              the `bayling eval` commands
Importing this package loads nothing heavy; each function imports what it needs.
"""

from bayling.eval.common import EvalError
from bayling.eval.constrained import read_constrained, score_constraints
from bayling.eval.interactive import build_sessions, run_sessions, score_sessions
from bayling.eval.judge import Judge, load_judge_prompts, load_questions
from bayling.eval.multiple_choice import LoglikScorer, evaluate_mc, load_mc
from bayling.eval.offtarget import offtarget_rate
from bayling.eval.report import to_html, to_markdown
from bayling.eval.translation import paired_significance, score_translation, translate

__all__ = [
    "EvalError",
    "Judge",
    "LoglikScorer",
    "build_sessions",
    "evaluate_mc",
    "load_judge_prompts",
    "load_mc",
    "load_questions",
    "offtarget_rate",
    "paired_significance",
    "read_constrained",
    "run_sessions",
    "score_constraints",
    "score_sessions",
    "score_translation",
    "to_html",
    "to_markdown",
    "translate",
]
