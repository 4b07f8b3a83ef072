"""Multi-turn instruction following, judged by an LLM (MT-bench style), through any
OpenAI-compatible judge endpoint.

Questions: MT-bench's {question_id, category, turns} or BayLing-80's {question_id, text,
category}. Judge prompts are data: MT-bench's judge_prompts.jsonl (name, type, system_prompt,
prompt_template, output_format). Two modes, as MT-bench runs them:
  - single: each answer turn graded 1-10 ("[[rating]]");
  - pairwise: model vs baseline ("[[A]]"/"[[B]]"/"[[C]]"), judged in both orders; a win counts
    only when both orders agree, otherwise it is a tie.
Math, reasoning and coding questions are judged against a reference answer when one is given.
A reply that does not parse is asked again (`retries`), then counted as unparsed — never guessed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from bayling.eval.common import EvalError, mean, read_records

__all__ = [
    "Judge",
    "JudgeConfig",
    "JudgePrompt",
    "NEED_REF_CATEGORIES",
    "Question",
    "answer_records",
    "generate_answers",
    "load_answers",
    "load_judge_prompts",
    "load_questions",
    "parse_rating",
    "parse_verdict",
    "run",
    "summarize_pairwise",
    "summarize_single",
]

NEED_REF_CATEGORIES = ("math", "reasoning", "coding")
# (mode, with reference, second turn) -> MT-bench's judge prompt name
DEFAULT_PROMPTS = {
    ("single", False, False): "single-v1",
    ("single", True, False): "single-math-v1",
    ("single", False, True): "single-v1-multi-turn",
    ("single", True, True): "single-math-v1-multi-turn",
    ("pairwise", False, False): "pair-v2",
    ("pairwise", True, False): "pair-math-v1",
    ("pairwise", False, True): "pair-v2-multi-turn",
    ("pairwise", True, True): "pair-math-v1-multi-turn",
}
_RATING = re.compile(r"\[\[(\d+(?:\.\d+)?)\]\]")
_RATING_BACKUP = re.compile(r"\[(\d+(?:\.\d+)?)\]")


@dataclass(frozen=True)
class JudgePrompt:
    name: str
    type: str  # "single" or "pairwise"
    system_prompt: str
    prompt_template: str
    output_format: str  # "[[rating]]" or "[[A]]"
    category: str = "general"
    description: str = ""


@dataclass
class Question:
    question_id: Any
    category: str
    turns: list[str]
    reference: list[str] | None = None
    language: str | None = None
    extra: dict = field(default_factory=dict)


def load_judge_prompts(path: str) -> dict[str, JudgePrompt]:
    prompts = {}
    for where, r in read_records(path):
        missing = [k for k in ("name", "type", "system_prompt", "prompt_template", "output_format") if k not in r]
        if missing:
            raise EvalError(f"{where}: judge prompt lacks {', '.join(missing)}")
        if r["output_format"] not in ("[[rating]]", "[[A]]"):
            raise EvalError(f"{where}: output_format {r['output_format']!r} is not supported (use [[rating]] or [[A]])")
        prompts[r["name"]] = JudgePrompt(r["name"], r["type"], r["system_prompt"], r["prompt_template"],
                                         r["output_format"], r.get("category", "general"), r.get("description", ""))
    if not prompts:
        raise EvalError(f"{path}: no judge prompts")
    return prompts


def load_questions(path: str, language: str | None = None) -> list[Question]:
    """MT-bench ({turns}) or BayLing-80 ({text}) question files. The language is the record's
    "language" field, else `language`, else detected from the first turn."""
    from bayling.languages import detect_language, resolve

    fixed = resolve(language).code if language else None
    questions = []
    for where, r in read_records(path):
        turns = r.get("turns", r.get("text"))
        if isinstance(turns, str):
            turns = [turns]
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) for t in turns):
            raise EvalError(f"{where}: a question needs 'turns' (MT-bench) or 'text' (BayLing-80): a list of strings")
        if "question_id" not in r:
            raise EvalError(f"{where}: missing 'question_id'")
        lang = r.get("language") or r.get("lang")
        lang = resolve(lang).code if lang else fixed or detect_language(turns[0])[0]
        ref = r.get("reference")
        questions.append(Question(r["question_id"], str(r.get("category", "general")), turns,
                                  ref if isinstance(ref, list) else None, lang))
    if not questions:
        raise EvalError(f"{path}: no questions")
    ids = [q.question_id for q in questions]
    if len(set(map(str, ids))) != len(ids):
        raise EvalError(f"{path}: duplicate question_id")
    return questions


def load_answers(path: str) -> dict[str, list[str]]:
    """question_id (as str) -> answer turns, from FastChat's answer format ({question_id, choices:
    [{turns}]}, as MT-bench's reference_answer/gpt-4.jsonl) or a plain {question_id, turns}."""
    answers = {}
    for where, r in read_records(path):
        if "question_id" not in r:
            raise EvalError(f"{where}: missing 'question_id'")
        if "choices" in r:
            try:
                turns = r["choices"][0]["turns"]
            except (KeyError, IndexError, TypeError):
                raise EvalError(f"{where}: 'choices' should be [{{'turns': [...]}}]") from None
        else:
            turns = r.get("turns", r.get("answers"))
        if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
            raise EvalError(f"{where}: answer turns should be a list of strings")
        answers[str(r["question_id"])] = turns
    return answers


def answer_records(questions: Sequence[Question], answers: dict[str, list[str]], model_id: str) -> list[dict]:
    """Answers in FastChat's model_answer format, so other MT-bench tools read them."""
    import time
    import uuid

    return [{"question_id": q.question_id, "answer_id": uuid.uuid4().hex, "model_id": model_id,
             "choices": [{"index": 0, "turns": answers[str(q.question_id)]}], "tstamp": time.time()}
            for q in questions if str(q.question_id) in answers]


def generate_answers(engine: Any, questions: Sequence[Question], *, max_new_tokens: int = 1024,
                     progress: bool = True) -> dict[str, list[str]]:
    """Answer every question turn by turn (greedy), each turn seeing the conversation so far."""
    from bayling.eval.engines import chat_turns
    from bayling.infer.engine import GenerationConfig

    replies = chat_turns(engine, [q.turns for q in questions], GenerationConfig(max_new_tokens=max_new_tokens),
                         progress=progress, label="answering")
    return {str(q.question_id): r for q, r in zip(questions, replies)}


def parse_rating(text: str) -> float | None:
    """The 1-10 rating in "[[7]]" (or "[7]" as MT-bench's backup); None if absent or out of range."""
    m = _RATING.search(text) or _RATING_BACKUP.search(text)
    if not m:
        return None
    value = float(m.group(1))
    return value if 1 <= value <= 10 else None


def parse_verdict(text: str) -> str | None:
    """"A", "B" or "tie" from "[[A]]"/"[[B]]"/"[[C]]"; None if none or several different ones appear."""
    found = {v for v in ("A", "B", "C") if f"[[{v}]]" in text}
    if len(found) != 1:
        return None
    v = found.pop()
    return "tie" if v == "C" else v


class Judge:
    """Asks the judge model through a ChatClient, with MT-bench's prompts and parsing."""

    def __init__(
        self,
        client: Any,
        prompts: dict[str, JudgePrompt],
        *,
        retries: int = 2,
        ref_categories: Sequence[str] = NEED_REF_CATEGORIES,
        prompt_names: dict | None = None,
        max_tokens: int = 2048,
        retry_temperature: float = 0.7,
        concurrency: int = 4,
    ) -> None:
        self.client = client
        self.prompts = prompts
        self.retries = retries
        self.ref_categories = set(ref_categories)
        self.prompt_names = {**DEFAULT_PROMPTS, **(prompt_names or {})}
        self.max_tokens = max_tokens
        self.retry_temperature = retry_temperature
        self.concurrency = max(1, concurrency)

    def _prompt(self, mode: str, with_ref: bool, multi: bool) -> JudgePrompt:
        name = self.prompt_names[(mode, with_ref, multi)]
        if name not in self.prompts:
            raise EvalError(f"judge prompt {name!r} is not in the judge prompts file (have: {', '.join(self.prompts)})")
        return self.prompts[name]

    def ask(self, prompt: JudgePrompt, fields: dict[str, str], parse: Callable[[str], Any]) -> dict[str, Any]:
        """Render, ask, parse; ask again while the reply does not parse. Never guesses."""
        try:
            user = prompt.prompt_template.format(**fields)
        except KeyError as e:
            raise EvalError(f"judge prompt {prompt.name!r}: its template needs {{{e.args[0]}}}, "
                            f"which {prompt.type} judging does not provide") from None
        messages = [{"role": "system", "content": prompt.system_prompt}, {"role": "user", "content": user}]
        replies = []
        for attempt in range(1 + self.retries):
            try:
                text = self.client.chat(messages, temperature=0.0 if attempt == 0 else self.retry_temperature,
                                        max_tokens=self.max_tokens)
            except Exception as e:  # the endpoint failed even after the client's own retries
                return {"verdict": None, "judgments": replies, "attempts": attempt + 1,
                        "error": f"{type(e).__name__}: {e}"}
            replies.append(text)
            parsed = parse(text)
            if parsed is not None:
                return {"verdict": parsed, "judgments": replies, "attempts": attempt + 1}
        return {"verdict": None, "judgments": replies, "attempts": len(replies)}

    def _map(self, fn: Callable, items: list) -> list:
        if self.concurrency == 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(fn, items))

    def _tasks(self, questions: Sequence[Question], answer_sets: Sequence[dict], references: dict | None):
        for q in questions:
            qid = str(q.question_id)
            if any(qid not in a for a in answer_sets):
                continue
            ref = (references or {}).get(qid) or q.reference
            with_ref = q.category in self.ref_categories and bool(ref)
            for turn in range(1, min(2, len(q.turns)) + 1):
                yield q, turn, (ref if with_ref else None)

    def grade_single(self, questions: Sequence[Question], answers: dict[str, list[str]], model: str,
                     references: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        """One 1-10 grade per question and turn (the first two turns, as MT-bench)."""
        tasks = list(self._tasks(questions, [answers], references))

        def one(task) -> dict[str, Any]:
            q, turn, ref = task
            a = answers[str(q.question_id)]
            prompt = self._prompt("single", ref is not None, turn == 2)
            fields = {"question": q.turns[0], "answer": _at(a, 0), "question_1": q.turns[0],
                      "question_2": _at(q.turns, 1), "answer_1": _at(a, 0), "answer_2": _at(a, 1),
                      "ref_answer_1": _at(ref, 0), "ref_answer_2": _at(ref, 1)}
            out = self.ask(prompt, fields, parse_rating)
            return {"question_id": q.question_id, "category": q.category, "language": q.language, "turn": turn,
                    "model": model, "judge": prompt.name, "score": out.pop("verdict"), **out}

        return self._map(one, tasks)

    def grade_pairwise(self, questions: Sequence[Question], answers: dict[str, list[str]],
                       baseline: dict[str, list[str]], model: str, baseline_model: str,
                       references: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        """Model vs baseline per question and turn, in both positions; the result is a win or
        loss only when both orders agree, else a tie (and `consistent` is False)."""
        tasks = list(self._tasks(questions, [answers, baseline], references))

        def one(task) -> dict[str, Any]:
            q, turn, ref = task
            prompt = self._prompt("pairwise", ref is not None, turn == 2)
            mine, theirs = answers[str(q.question_id)], baseline[str(q.question_id)]
            games = []
            for a, b in ((mine, theirs), (theirs, mine)):
                fields = {"question": q.turns[0], "question_1": q.turns[0], "question_2": _at(q.turns, 1),
                          "answer_a": _at(a, 0), "answer_b": _at(b, 0), "answer_a_1": _at(a, 0),
                          "answer_a_2": _at(a, 1), "answer_b_1": _at(b, 0), "answer_b_2": _at(b, 1),
                          "ref_answer_1": _at(ref, 0), "ref_answer_2": _at(ref, 1)}
                games.append(self.ask(prompt, fields, parse_verdict))
            # who won each game, from the model's point of view
            w1 = {"A": "win", "B": "loss", "tie": "tie", None: None}[games[0]["verdict"]]
            w2 = {"A": "loss", "B": "win", "tie": "tie", None: None}[games[1]["verdict"]]
            if w1 is None or w2 is None:
                result, consistent = None, None
            else:
                result, consistent = (w1 if w1 == w2 else "tie"), w1 == w2
            return {"question_id": q.question_id, "category": q.category, "language": q.language, "turn": turn,
                    "model": model, "baseline": baseline_model, "judge": prompt.name, "result": result,
                    "consistent": consistent, "games": games}

        return self._map(one, tasks)


def _at(seq: Sequence[str] | None, i: int) -> str:
    return seq[i] if seq is not None and i < len(seq) else ""


def _breakdown(records: Sequence[dict], row: Callable[[list[dict]], dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for dim in ("category", "language", "turn"):
        groups: dict[str, list[dict]] = defaultdict(list)
        for r in records:
            groups[str(r.get(dim))].append(r)
        out[dim] = {k: row(v) for k, v in sorted(groups.items())}
    return out


def summarize_single(records: Sequence[dict]) -> dict[str, Any]:
    """Mean grade overall and per category, language and turn; unparsed and failed replies counted apart."""
    def row(rs: list[dict]) -> dict:
        return {"score": mean(r["score"] for r in rs), "n": sum(r["score"] is not None for r in rs)}

    models = sorted({r["model"] for r in records})
    return {
        "task": "mt-bench",
        "mode": "single",
        "model": models[0] if len(models) == 1 else models,
        "score": mean(r["score"] for r in records),
        "judged": sum(r["score"] is not None for r in records),
        "unparsed": sum(r["score"] is None and "error" not in r for r in records),
        "failed": sum("error" in r for r in records),
        "retried": sum(r["attempts"] > 1 for r in records),
        "breakdown": _breakdown(records, row),
        "judgments": list(records),
    }


def summarize_pairwise(records: Sequence[dict]) -> dict[str, Any]:
    """Wins, losses and ties of the model against the baseline; win rate counts a tie as half."""
    def row(rs: list[dict]) -> dict:
        valid = [r for r in rs if r["result"] is not None]
        n = len(valid)
        wins = sum(r["result"] == "win" for r in valid)
        losses = sum(r["result"] == "loss" for r in valid)
        ties = n - wins - losses
        return {"win_rate": wins / n if n else None, "loss_rate": losses / n if n else None,
                "tie_rate": ties / n if n else None, "win_rate_adjusted": (wins + 0.5 * ties) / n if n else None,
                "wins": wins, "losses": losses, "ties": ties, "n": n}

    overall = row(list(records))
    return {
        "task": "mt-bench",
        "mode": "pairwise",
        "model": records[0]["model"] if records else None,
        "baseline": records[0]["baseline"] if records else None,
        **overall,
        "inconsistent": sum(r["consistent"] is False for r in records),
        "unparsed": sum(r["result"] is None and not any("error" in g for g in r["games"]) for r in records),
        "failed": sum(any("error" in g for g in r["games"]) for r in records),
        "breakdown": _breakdown(records, row),
        "judgments": list(records),
    }


@dataclass
class JudgeConfig:
    """MT-bench / BayLing-80: questions, the judge endpoint, and where answers come from (`answers`
    file, else the engine answers). Judge prompts and reference answers default to MT-bench's files
    beside the questions."""

    questions: str
    judge_base_url: str
    judge_model: str = "gpt-4"
    judge_api_key: str | None = None
    judge_prompts: str | None = None
    references: str | None = None
    answers: str | None = None
    answers_out: str | None = None  # where generated answers are written (FastChat model_answer JSONL)
    model_name: str = "model"
    mode: str = "single"  # single (grade 1-10) or pairwise (against baseline_answers)
    baseline_answers: str | None = None
    baseline_name: str | None = None
    retries: int = 2
    concurrency: int = 4
    language: str | None = None
    limit: int | None = None
    max_new_tokens: int = 1024
    progress: bool = True


def run(engine: Any, config: JudgeConfig) -> dict[str, Any]:
    """Answer (unless answers are given) and judge; `answers` holds generated answers in FastChat's
    format (also written to `answers_out` before the judge is asked)."""
    from pathlib import Path

    from bayling.eval.engines import ChatClient

    if config.mode not in ("single", "pairwise"):
        raise EvalError(f"--mode {config.mode!r}: use single or pairwise")
    questions = Path(config.questions)
    qs = load_questions(config.questions, config.language)[: config.limit]
    prompts = Path(config.judge_prompts) if config.judge_prompts else questions.parent / "judge_prompts.jsonl"
    if not prompts.is_file():
        raise EvalError(f"{prompts}: no judge prompts; give --judge-prompts (MT-bench's judge_prompts.jsonl)")
    references = config.references
    if references is None and (questions.parent / "reference_answer" / "gpt-4.jsonl").is_file():
        references = str(questions.parent / "reference_answer" / "gpt-4.jsonl")
    refs = load_answers(references) if references else None
    generated = None
    if config.answers:
        ans = load_answers(config.answers)
    else:
        if engine is None:
            raise EvalError("give --answers or a model to answer with (--model, --base-url)")
        ans = generate_answers(engine, qs, max_new_tokens=config.max_new_tokens, progress=config.progress)
        generated = answer_records(qs, ans, config.model_name)
        if config.answers_out:  # kept before judging: a judge that fails loses no answers
            from bayling.eval.common import write_jsonl

            write_jsonl(config.answers_out, generated)
    missing = [q.question_id for q in qs if str(q.question_id) not in ans]
    if missing:
        raise EvalError(f"{config.answers}: no answer for question_id {missing[0]} ({len(missing)} missing)")
    judge = Judge(ChatClient(config.judge_base_url, config.judge_model, config.judge_api_key),
                  load_judge_prompts(str(prompts)), retries=config.retries, concurrency=config.concurrency)
    if config.mode == "single":
        result = summarize_single(judge.grade_single(qs, ans, config.model_name, refs))
    else:
        if not config.baseline_answers:
            raise EvalError("--mode pairwise needs --baseline-answers")
        base = load_answers(config.baseline_answers)
        name = config.baseline_name or Path(config.baseline_answers).stem
        result = summarize_pairwise(judge.grade_pairwise(qs, ans, base, config.model_name, name, refs))
    result.update(questions=config.questions, judge=config.judge_model)
    if generated is not None:
        result["answers"] = generated
    return result
