"""Multiple-choice knowledge and reasoning: AGIEval (GaoKao, SAT, LogiQA...), CMMLU, XCOPA, MGSM, and
llm-foundry's compact layouts (ARC, PIQA, BoolQ, WinoGrande, OpenBookQA, COPA, SIQA, CommonsenseQA).

Two ways to answer, as lm-evaluation-harness and BayLing do:
  - log-likelihood: every option is scored as a continuation of the question (sum of token
    log-probabilities, raw and per-character normalised); the best option is the answer.
    Deterministic and batched: options sharing an input are one row, rows of a batch are
    left-padded and run in a single forward pass that keeps only the logits it needs.
  - generative: the model answers in words ("Answer is choice (B)", "答案是选项(B)", or a
    number for MGSM) and the answer is parsed out; an answer that does not parse is counted
    as unparsed (and wrong), never guessed.
Accuracy is reported overall, per subject and per language; `mcnemar` compares two systems
answering the same questions.
"""

from __future__ import annotations

import csv
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from bayling.eval.common import EvalError, mean, progress_bar, read_lines, read_records

__all__ = [
    "LETTERS",
    "LoglikScorer",
    "MCConfig",
    "MCQuestion",
    "evaluate_mc",
    "generative_prompt",
    "load_mc",
    "mcnemar",
    "parse_choice",
    "parse_number",
    "read_agieval",
    "read_cmmlu",
    "read_foundry",
    "read_mgsm",
    "read_xcopa",
    "run",
    "solved",
    "with_shots",
]

LETTERS = "ABCDEFGHIJ"

# lm-evaluation-harness's XCOPA connectors ("cause" -> because, "effect" -> therefore).
XCOPA_CONNECTORS = {
    "en": ("because", "therefore"), "et": ("sest", "seetõttu"), "ht": ("poukisa", "donk sa"),
    "it": ("perché", "quindi"), "id": ("karena", "maka"), "qu": ("imataq", "chaymi"),
    "sw": ("kwa sababu", "kwa hiyo"), "zh": ("因为", "所以"), "ta": ("காரணமாக", "எனவே"),
    "th": ("เพราะ", "ดังนั้น"), "tr": ("çünkü", "bu yüzden"), "vi": ("bởi vì", "vì vậy"),
}

# llm-foundry's compact layouts scored with lm-evaluation-harness's zero-shot prompts, which these
# files allow exactly: (label dropped from the query's start, text put after it); the option follows
# after a space. ARC: "Question: {q}\nAnswer: {option}"; PIQA (query ends in a newline): "Question:
# {goal}\nAnswer: {sol}"; BoolQ: "{passage}\nQuestion: {q}?\nAnswer: no|yes". Files not listed (COPA,
# OpenBookQA, SIQA, CommonsenseQA, WinoGrande) are the query (or context) and the option as they are.
FOUNDRY_PROMPTS = {
    "arc_easy": ("", "\nAnswer:"),
    "arc_challenge": ("", "\nAnswer:"),
    "piqa": ("", "Answer:"),
    "boolq": ("Passage: ", "\nAnswer:"),
}


@dataclass
class MCQuestion:
    id: str  # where it came from, e.g. "cmmlu/test/agronomy.csv:3"
    subject: str
    language: str | None  # FLORES code
    stem: str  # the question (with its passage) as shown to the model
    options: list[str]  # option texts without letters; empty for numeric answers
    answer: Any  # option index, tuple of indices (several correct), or a number (kind "numeric")
    kind: str = "choice"  # "choice" or "numeric"
    context: str | None = None  # log-likelihood context, when not the lettered question (XCOPA)
    continuations: list[str] | None = None  # log-likelihood continuations for `context`
    contexts: list[str] | None = None  # one context per option before the one shared `continuations[0]` (WinoGrande)
    extra: dict = field(default_factory=dict)


# --- loaders ---------------------------------------------------------------------------------

def _lang(name: str) -> str | None:
    from bayling.languages import UnknownLanguage, resolve

    try:
        return resolve(name).code
    except UnknownLanguage:
        return None


def _majority_language(texts: Sequence[str]) -> str | None:
    from collections import Counter

    from bayling.languages import detect_language

    found = Counter(detect_language(t)[0] for t in texts[:20])
    found.pop(None, None)
    return found.most_common(1)[0][0] if found else None


def read_agieval(path: str | Path) -> list[MCQuestion]:
    """AGIEval JSONL ({passage, question, options: ["(A)...", ...], label: "B" or ["A","C"]});
    cloze items (no options) are skipped."""
    path = Path(path)
    out = []
    for where, r in read_records(path):
        options = r.get("options")
        if not options:
            continue
        label = r.get("label")
        labels = [label] if isinstance(label, str) else label
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x.strip()[:1] in LETTERS for x in labels):
            raise EvalError(f"{where}: 'label' should be a letter or a list of letters, found {label!r}")
        idx = tuple(LETTERS.index(x.strip()[0]) for x in labels)
        if max(idx) >= len(options):
            raise EvalError(f"{where}: label {label!r} but only {len(options)} options")
        texts = [re.sub(r"^\s*\(?[A-J][\)\.．:：]\s*", "", str(o)) for o in options]
        stem = "\n".join(x for x in (r.get("passage") or "", r.get("question") or "") if x.strip())
        out.append(MCQuestion(where, path.stem, None, stem, texts, idx[0] if len(idx) == 1 else idx))
    lang = _majority_language([q.stem for q in out])
    for q in out:
        q.language = lang
    return out


def read_cmmlu(path: str | Path) -> list[MCQuestion]:
    """One CMMLU subject CSV (",Question,A,B,C,D,Answer")."""
    path = Path(path)
    lines = read_lines(path)
    rows = list(csv.reader([line for line in lines if line.strip()]))  # no multi-line cells in CMMLU
    if not rows:
        raise EvalError(f"{path}: empty")
    header = [h.strip() for h in rows[0]]
    need = ["Question", "A", "B", "C", "D", "Answer"]
    if not all(h in header for h in need):
        raise EvalError(f"{path}:1: CMMLU header should have {','.join(need)}, found {','.join(header)}")
    col = {h: header.index(h) for h in need}
    out = []
    for i, row in enumerate(rows[1:], 2):
        if len(row) < len(header):
            raise EvalError(f"{path}:{i}: {len(row)} cells, the header has {len(header)}")
        ans = row[col["Answer"]].strip()
        if ans not in "ABCD" or not ans:
            raise EvalError(f"{path}:{i}: Answer should be A-D, found {ans!r}")
        out.append(MCQuestion(f"{path}:{i}", path.stem, "zho_Hans", row[col["Question"]].strip(),
                              [row[col[x]].strip() for x in "ABCD"], "ABCD".index(ans)))
    return out


def read_xcopa(path: str | Path) -> list[MCQuestion]:
    """One XCOPA JSONL file (premise, choice1, choice2, question: cause/effect, label); the
    language comes from the file name (val.zh.jsonl)."""
    path = Path(path)
    iso = path.name.split(".")[-2] if path.name.count(".") >= 2 else path.parent.name
    cause, effect = XCOPA_CONNECTORS.get(iso, XCOPA_CONNECTORS["en"])
    out = []
    for where, r in read_records(path):
        try:
            premise, c1, c2, kind, label = r["premise"], r["choice1"], r["choice2"], r["question"], int(r["label"])
        except (KeyError, ValueError, TypeError):
            raise EvalError(f"{where}: XCOPA records need premise, choice1, choice2, question, label") from None
        if kind not in ("cause", "effect") or label not in (0, 1):
            raise EvalError(f"{where}: question should be cause/effect and label 0/1")
        ask = "What was the cause?" if kind == "cause" else "What happened as a result?"
        context = premise.strip()[:-1] + " " + (cause if kind == "cause" else effect)  # drop the final period
        conts = [" " + c[0].lower() + c[1:] for c in (c1, c2)]
        out.append(MCQuestion(where, f"xcopa-{iso}", _lang(iso), f"{premise}\n{ask}", [c1, c2], label,
                              context=context, continuations=conts))
    return out


def read_foundry(path: str | Path) -> list[MCQuestion]:
    """One llm-foundry JSONL file: {query, choices, gold} (options scored after the query, see
    FOUNDRY_PROMPTS) or WinoGrande's {context_options, continuation, gold} (the one continuation
    scored after each context, as lm-evaluation-harness does); the file's stem names the task."""
    path = Path(path)
    drop, after = FOUNDRY_PROMPTS.get(path.stem, ("", ""))
    out = []
    for where, r in read_records(path):
        gold = r.get("gold")
        if "context_options" in r:
            ctxs, cont = r["context_options"], r.get("continuation")
            if not _texts(ctxs) or len(ctxs) < 2 or not isinstance(cont, str) or not cont.strip():
                raise EvalError(f"{where}: WinoGrande layout needs context_options (two or more texts) and a continuation")
            n = len(ctxs)
        elif "choices" in r and "query" in r:
            query, choices = r["query"], r["choices"]
            if not isinstance(query, str) or not _texts(choices) or len(choices) < 2:
                raise EvalError(f"{where}: 'query' should be text and 'choices' two or more texts")
            n = len(choices)
        elif "context" in r and "continuation" in r:
            raise EvalError(f"{where}: a language-modelling record (context, continuation), not multiple choice")
        else:
            raise EvalError(f"{where}: llm-foundry records need query, choices, gold (or context_options, continuation, gold)")
        if isinstance(gold, bool) or not isinstance(gold, int) or not 0 <= gold < n:
            raise EvalError(f"{where}: 'gold' should be an option index 0-{n - 1}, found {gold!r}")
        if "context_options" in r:
            out.append(MCQuestion(where, path.stem, "eng_Latn", cont.strip(), [c.strip() for c in ctxs], gold,
                                  contexts=[c.rstrip() for c in ctxs], continuations=[" " + cont.strip()]))
            continue
        text = query[len(drop):] if drop and query.startswith(drop) else query
        context = text + after
        out.append(MCQuestion(where, path.stem, "eng_Latn", text.strip(), [c.strip() for c in choices], gold,
                              context=context.rstrip(" "), continuations=[" " + c.strip() for c in choices]))
    return out


def _texts(x: Any) -> bool:
    return isinstance(x, list) and all(isinstance(t, str) and t.strip() for t in x)


def read_mgsm(path: str | Path) -> list[MCQuestion]:
    """One MGSM TSV (question TAB numeric answer); the language comes from the file name (mgsm_zh.tsv)."""
    path = Path(path)
    iso = path.stem.split("_")[-1]
    out = []
    for i, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise EvalError(f"{path}:{i}: expected question TAB answer")
        q, a = line.rsplit("\t", 1)
        number = parse_number(a)
        if number is None:
            raise EvalError(f"{path}:{i}: answer {a!r} is not a number")
        out.append(MCQuestion(f"{path}:{i}", f"mgsm-{iso}", _lang(iso), q.strip(), [], number, kind="numeric"))
    return out


def load_mc(path: str | Path, kind: str = "auto", *, split: str | None = None, langs: Sequence[str] | None = None,
            subjects: Sequence[str] | None = None, limit: int | None = None) -> list[MCQuestion]:
    """Questions from a file or a folder in one of the known layouts; `limit` keeps the first N
    of each subject (small, deterministic slices)."""
    path = Path(path)
    if not path.exists():
        raise EvalError(f"{path}: no such file or folder")
    kind = _detect_kind(path) if kind == "auto" else kind
    readers = {"agieval": read_agieval, "cmmlu": read_cmmlu, "xcopa": read_xcopa, "mgsm": read_mgsm,
               "foundry": read_foundry}
    if kind not in readers:
        raise EvalError(f"unknown kind {kind!r}: choose from {', '.join(readers)}")
    files = [path] if path.is_file() else _files(path, kind, split)
    if langs:
        wanted = {_lang(x) or x for x in langs}
        files = [f for f in files if _file_lang(f, kind) in wanted]
    if subjects:
        files = [f for f in files if f.stem in subjects or f.stem.split(".")[0] in subjects]
    if not files:
        raise EvalError(f"{path}: no {kind} files match (split={split}, langs={langs}, subjects={subjects})")
    out = []
    for f in files:
        qs = readers[kind](f)
        out += qs[:limit] if limit else qs
    return out


def _detect_kind(path: Path) -> str:
    if path.is_file():
        if path.suffix == ".csv":
            return "cmmlu"
        if path.suffix == ".tsv":
            return "mgsm"
        for _, r in read_records(path):
            if "premise" in r:
                return "xcopa"
            foundry = ("query" in r and "choices" in r) or "context_options" in r or ("context" in r and "continuation" in r)
            return "foundry" if foundry else "agieval"
        raise EvalError(f"{path}: empty")
    names = [p.name for p in path.rglob("*") if p.is_file()]
    if any(n.startswith("mgsm_") and n.endswith(".tsv") for n in names):
        return "mgsm"
    if any(n.endswith(".csv") for n in names):
        return "cmmlu"
    jsonl = sorted(path.rglob("*.jsonl"))
    if jsonl:
        return _detect_kind(jsonl[0])
    raise EvalError(f"{path}: no CMMLU .csv, XCOPA/AGIEval .jsonl or MGSM .tsv files found")


def _files(root: Path, kind: str, split: str | None) -> list[Path]:
    if kind == "cmmlu":
        base = root / "data" if (root / "data").is_dir() else root
        base = base / (split or "test") if (base / (split or "test")).is_dir() else base
        return sorted(base.glob("*.csv"))
    if kind == "xcopa":
        return sorted(p for p in root.rglob("*.jsonl") if p.name.startswith((split or "test") + "."))
    if kind == "mgsm":
        return sorted(root.rglob("mgsm_*.tsv"))
    if kind == "foundry":  # LAMBADA lies beside the choice sets: language modelling, not multiple choice
        return sorted(p for p in root.rglob("*.jsonl") if not _language_modelling(p))
    return sorted(root.rglob("*.jsonl"))


def _language_modelling(path: Path) -> bool:
    """llm-foundry's LAMBADA-style file: {context, continuation} records, no options to choose from."""
    for _, r in read_records(path):
        return "continuation" in r and "context_options" not in r and "choices" not in r
    return False


def _file_lang(f: Path, kind: str) -> str | None:
    if kind == "xcopa":
        return _lang(f.name.split(".")[-2])
    if kind == "mgsm":
        return _lang(f.stem.split("_")[-1])
    if kind == "cmmlu":
        return "zho_Hans"
    if kind == "foundry":
        return "eng_Latn"
    return None


# --- log-likelihood --------------------------------------------------------------------------

class LoglikScorer:
    """Sum of log p(continuation | context) for (context, continuation) requests, batched.

    Requests whose model input is identical (e.g. the four one-token answers " A".." D" after the
    same question) share one row. Rows are sorted by length, left-padded with explicit position
    ids, and each batch runs one forward pass keeping only the last positions' logits.
    """

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 16, max_length: int | None = None,
                 logit_budget: int = 1 << 27) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = max(1, batch_size)
        cfg = getattr(model, "config", None)
        self.max_length = max_length or getattr(cfg, "max_position_embeddings", None) or 2048
        self.logit_budget = logit_budget  # logits kept per batch (floats), bounds memory for big vocabularies

    def _encode(self, requests: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
        """(context ids, continuation ids) per request, the way lm-evaluation-harness splits them."""
        tok = self.tokenizer
        bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
        moved = []
        for ctx, cont in requests:
            n = len(ctx) - len(ctx.rstrip(" "))  # trailing spaces belong to the continuation
            moved.append((ctx[: len(ctx) - n], ctx[len(ctx) - n :] + cont) if n else (ctx, cont))
        ctx_ids = tok([c for c, _ in moved], add_special_tokens=False)["input_ids"]
        whole_ids = tok([c + x for c, x in moved], add_special_tokens=False)["input_ids"]
        out = []
        for (c, x), cids, wids in zip(moved, ctx_ids, whole_ids):
            cont = wids[len(cids):]
            if not cont or wids[: len(cids)] != cids:  # the boundary merged: encode the sides apart
                cont = tok(x, add_special_tokens=False)["input_ids"]
                wids = cids + cont
            if not cont:
                raise EvalError(f"empty continuation after tokenization: {x!r}")
            ids = bos + wids
            keep = self.max_length + 1
            if len(ids) > keep:  # cut the context from the left, keep the whole continuation
                ids = ids[-keep:]
            if len(ids) == len(cont):
                raise EvalError(f"nothing to condition on: empty context before {x!r} (and no BOS token)")
            out.append((ids[: len(ids) - len(cont)], cont))
        return out

    def score(self, requests: Sequence[tuple[str, str]], *, progress: bool = False) -> list[tuple[float, int]]:
        """(sum of log-probabilities, number of continuation tokens) per request, in order."""
        import torch

        encoded = self._encode(requests)
        rows: dict[tuple[int, ...], list[int]] = {}  # model input -> requests reading it
        for i, (ctx, cont) in enumerate(encoded):
            rows.setdefault(tuple(ctx + cont[:-1]), []).append(i)
        order = sorted(rows, key=lambda r: (-len(r), r))
        vocab = self._vocab_size()
        results: list[tuple[float, int]] = [(0.0, 0)] * len(requests)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        device = next(self.model.parameters()).device
        with progress_bar(progress, len(order), "scoring options") as advance, torch.inference_mode():
            start = 0
            while start < len(order):
                batch, keep = [], 1
                while start + len(batch) < len(order) and len(batch) < self.batch_size:
                    row = order[start + len(batch)]
                    need = max(len(encoded[i][1]) for i in rows[row])
                    if batch and (len(batch) + 1) * max(keep, need) * vocab > self.logit_budget:
                        break
                    batch.append(row)
                    keep = max(keep, need)
                width = max(len(r) for r in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for b, row in enumerate(batch):
                    ids[b, width - len(row):] = torch.tensor(row)
                    mask[b, width - len(row):] = 1
                pos = (mask.cumsum(-1) - 1).clamp(min=0)
                logits = self._forward(ids.to(device), mask.to(device), pos.to(device), keep)
                logprobs = torch.log_softmax(logits.float(), dim=-1)  # [B, keep, V]
                for b, row in enumerate(batch):
                    for i in rows[row]:
                        cont = encoded[i][1]
                        lp = logprobs[b, keep - len(cont):]
                        taken = lp[torch.arange(len(cont)), torch.tensor(cont, device=lp.device)]
                        results[i] = (float(taken.sum()), len(cont))
                start += len(batch)
                advance(len(batch))
        return results

    def _vocab_size(self) -> int:
        cfg = self.model.config
        cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
        return int(getattr(cfg, "vocab_size", None) or len(self.tokenizer))

    def _forward(self, ids, mask, pos, keep: int):
        try:
            return self.model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=keep).logits
        except TypeError:  # models without logits_to_keep
            return self.model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -keep:]


def _lettered(q: MCQuestion) -> str:
    answer_word = "答案：" if q.language in ("zho_Hans", "zho_Hant") else "Answer:"
    opts = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(q.options))
    return f"{q.stem}\n{opts}\n{answer_word}"


def loglik_requests(q: MCQuestion, continuations: str = "letters") -> list[tuple[str, str]]:
    """(context, continuation) per option: the question's own (XCOPA), the letters " A".." D"
    after the lettered question, or the option texts after it ("text")."""
    if q.contexts is not None and q.continuations:
        return [(c, q.continuations[0]) for c in q.contexts]
    if q.context is not None and q.continuations is not None:
        return [(q.context, c) for c in q.continuations]
    ctx = _lettered(q)
    if continuations == "text":
        return [(ctx, " " + o) for o in q.options]
    return [(ctx, " " + LETTERS[i]) for i in range(len(q.options))]


def solved(q: MCQuestion, continuations: str = "letters") -> str:
    """The question as a worked example: its log-likelihood context followed by the right answer."""
    if q.kind != "choice" or isinstance(q.answer, tuple):
        raise EvalError(f"{q.id}: only single-answer choice questions can be shown as examples")
    ctx, cont = loglik_requests(q, continuations)[q.answer]
    return ctx + cont


def with_shots(q: MCQuestion, shots: Sequence[MCQuestion], continuations: str = "letters",
               delimiter: str = "\n\n") -> MCQuestion:
    """`q` with worked examples before every context, joined as lm-evaluation-harness does ("\n\n")."""
    if not shots:
        return q
    prefix = "".join(solved(s, continuations) + delimiter for s in shots)
    if q.contexts is not None:
        return replace(q, contexts=[prefix + c for c in q.contexts])
    reqs = loglik_requests(q, continuations)
    return replace(q, context=prefix + reqs[0][0], continuations=[c for _, c in reqs])


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> dict[str, Any]:
    """McNemar's exact test: do two systems answering the same questions differ in accuracy?
    Two-sided binomial test on the questions only one of them got right."""
    if len(a) != len(b):
        raise EvalError(f"misaligned inputs: the baseline has {len(a)} answers, the system {len(b)}")
    only_a = sum(1 for x, y in zip(a, b) if x and not y)
    only_b = sum(1 for x, y in zip(a, b) if y and not x)
    n = only_a + only_b
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1))
    p = min(1.0, 2 * tail / 2 ** n) if n else 1.0
    base, system = (mean(a) if a else None), (mean(b) if b else None)
    return {"n": len(a), "baseline": base, "system": system,
            "delta": system - base if a else None, "baseline_only": only_a, "system_only": only_b,
            "p_value": p, "significant": p < 0.05}


# --- generative --------------------------------------------------------------------------------

def generative_prompt(q: MCQuestion) -> str:
    """BayLing's exam prompt: the question, the lettered choices, and the answer format to use."""
    zh = q.language in ("zho_Hans", "zho_Hant")
    if q.kind == "numeric":
        return (f"{q.stem}\n\nSolve the problem step by step, then give the final number in this format: "
                "\"The answer is N\".")
    opts = "\n".join(f"({LETTERS[i]}){o}" for i, o in enumerate(q.options))
    if zh:
        return f"{q.stem}\n选项：\n{opts}\n\n答案：\n请按照“答案是选项()”的格式输出正确答案。"
    return f"{q.stem}\nChoices:\n{opts}\n\nAnswer:\nOutput the correct answer in this format: \"Answer is choice ()\""


_LETTER = r"[A-J](?![A-Za-z])[\)）]?"  # a letter, not the start of a word ("Answer is Because")
_CHOICE_PATTERNS = [
    re.compile(rf"(?i:answer\s+is)\s*(?i:choice|option)?\s*[:：]?\s*[\(（\[]?\s*({_LETTER}(?:\s*[,、和&]?\s*[\(（]?{_LETTER})*)"),
    re.compile(rf"答案(?:是|为|：|:)\s*(?:选项)?\s*[:：]?\s*[\(（]?\s*({_LETTER}(?:\s*[,、和]?\s*[\(（]?{_LETTER})*)"),
    re.compile(r"^\s*[\(（]?([A-J])[\)）\.．:：]?(?:\s|$)"),
    re.compile(r"[\(（]([A-J])[\)）]"),
]


def parse_choice(text: str, n_options: int) -> tuple[int, ...] | None:
    """Option indices from an answer like "Answer is choice (B)", "答案是选项(B)", "(B)" or "B."; None if absent."""
    for pat in _CHOICE_PATTERNS:
        m = pat.search(text)
        if m:
            letters = [c for c in re.findall(r"[A-J]", m.group(1).upper())]
            idx = tuple(sorted({LETTERS.index(c) for c in letters}))
            if idx and max(idx) < n_options:
                return idx
    return None


_NUMBER = r"-?\d[\d,]*(?:\.\d+)?"


def parse_number(text: str) -> float | None:
    """The final number: after "answer is" / "答案是" when present, else the last number in the text."""
    m = re.search(rf"(?:answer\s+is|答案是|答案为|答案：)\s*[:：]?\s*\$?\s*({_NUMBER})", text, re.I)
    found = m.group(1) if m else (re.findall(_NUMBER, text) or [None])[-1]
    if found is None:
        return None
    try:
        return float(found.replace(",", ""))
    except ValueError:
        return None


# --- evaluation ----------------------------------------------------------------------------------

def evaluate_mc(
    questions: Sequence[MCQuestion],
    engine: Any = None,
    *,
    method: str = "loglik",
    continuations: str = "letters",
    batch_size: int = 16,
    prompt: str = "chat",
    max_new_tokens: int = 64,
    outputs: Sequence[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Answer and score `questions`. method: loglik, generate or both; `outputs` scores ready-made
    generative answers instead of asking the engine."""
    if method not in ("loglik", "generate", "both"):
        raise EvalError(f"--method {method!r}: use loglik, generate or both")
    if not questions:
        raise EvalError("no questions to evaluate")
    preds: list[dict[str, Any]] = [{"id": q.id, "subject": q.subject, "language": q.language,
                                   "gold": _gold(q)} for q in questions]
    notes = []
    if method in ("loglik", "both"):
        choice = [i for i, q in enumerate(questions) if q.kind == "choice"]
        if len(choice) < len(questions):
            notes.append(f"{len(questions) - len(choice)} numeric questions (MGSM) have no options: answered generatively only")
        if choice:
            if getattr(engine, "model", None) is None:
                raise EvalError("log-likelihood scoring needs a local model; use --method generate for an endpoint")
            scorer = LoglikScorer(engine.model, engine.tokenizer, batch_size=batch_size)
            reqs, owner = [], []
            for i in choice:
                for r in loglik_requests(questions[i], continuations):
                    reqs.append(r)
                    owner.append(i)
            scores = scorer.score(reqs, progress=progress)
            per_q: dict[int, list[tuple[float, int, str]]] = defaultdict(list)
            for i, (ctx, cont), (lp, _) in zip(owner, reqs, scores):
                per_q[i].append((lp, len(cont.strip()) or 1, cont))
            for i, opts in per_q.items():
                raw = [lp for lp, _, _ in opts]
                norm = [lp / n for lp, n, _ in opts]
                q = questions[i]
                p = preds[i]
                p["loglik"] = raw
                p["pred"] = raw.index(max(raw))
                p["pred_norm"] = norm.index(max(norm))
                p["correct"] = _is_correct(q, (p["pred"],))
                p["correct_norm"] = _is_correct(q, (p["pred_norm"],))
    gen = [i for i, q in enumerate(questions) if method != "loglik" or q.kind == "numeric"]
    if gen:
        if outputs is not None:
            if len(outputs) != len(questions):
                raise EvalError(f"{len(questions)} questions but {len(outputs)} ready answers")
            texts = [outputs[i] for i in gen]
        else:
            texts = _generate(engine, [questions[i] for i in gen], prompt, max_new_tokens, progress)
        for i, text in zip(gen, texts):
            q, p = questions[i], preds[i]
            parsed: Any = parse_number(text) if q.kind == "numeric" else parse_choice(text, len(q.options))
            p["output"] = text
            p["pred_generate"] = list(parsed) if isinstance(parsed, tuple) else parsed
            p["parsed"] = parsed is not None
            p["correct_generate"] = parsed is not None and _is_correct(q, parsed)
    return _summarize(questions, preds, method, notes)


def _gold(q: MCQuestion) -> Any:
    return list(q.answer) if isinstance(q.answer, tuple) else q.answer


def _is_correct(q: MCQuestion, pred: Any) -> bool:
    if q.kind == "numeric":
        return pred is not None and math.isclose(float(pred), float(q.answer), rel_tol=0, abs_tol=1e-6)
    gold = q.answer if isinstance(q.answer, tuple) else (q.answer,)
    return tuple(sorted(pred)) == tuple(sorted(gold))


def _generate(engine: Any, questions: Sequence[MCQuestion], prompt: str, max_new_tokens: int, progress: bool) -> list[str]:
    from bayling.infer.engine import GenerationConfig

    if engine is None:
        raise EvalError("generative answering needs a model (--model or --base-url) or ready answers")
    if prompt not in ("chat", "plain"):
        raise EvalError(f"--prompt {prompt!r}: use chat (tuned models) or plain (base models)")
    numeric = any(q.kind == "numeric" for q in questions)
    config = GenerationConfig(max_new_tokens=max(max_new_tokens, 256) if numeric else max_new_tokens)
    out: list[str] = []
    chunk = 32
    with progress_bar(progress, len(questions), "answering") as advance:
        for start in range(0, len(questions), chunk):
            batch = [generative_prompt(q) for q in questions[start : start + chunk]]
            if prompt == "chat":
                out += engine.chat([[{"role": "user", "content": b}] for b in batch], config)
            else:
                bos = getattr(getattr(engine, "tokenizer", None), "bos_token", None) or ""
                out += [o.strip() for o in engine.complete([bos + b + "\n" for b in batch], config)]
            advance(len(batch))
    return out


def _summarize(questions: Sequence[MCQuestion], preds: list[dict], method: str, notes: list[str]) -> dict[str, Any]:
    metrics = {"accuracy": "correct", "accuracy_norm": "correct_norm", "accuracy_generate": "correct_generate"}

    def row(ps: list[dict]) -> dict[str, Any]:
        r: dict[str, Any] = {"n": len(ps)}
        for name, key in metrics.items():
            vals = [p[key] for p in ps if key in p]
            if vals:
                r[name] = mean(vals)
        gen = [p for p in ps if "parsed" in p]
        if gen:
            r["unparsed"] = sum(not p["parsed"] for p in gen)
        return r

    overall = row(preds)
    breakdown: dict[str, dict[str, Any]] = {}
    for dim in ("subject", "language"):
        groups: dict[str, list[dict]] = defaultdict(list)
        for p in preds:
            groups[str(p[dim])].append(p)
        breakdown[dim] = {k: row(v) for k, v in sorted(groups.items())}
    result: dict[str, Any] = {"task": "mc", "method": method, **overall}
    for name in metrics:
        vals = [r.get(name) for r in breakdown["subject"].values()]
        if any(v is not None for v in vals):
            result[f"macro_{name}"] = mean(vals)
    result["breakdown"] = breakdown
    if notes:
        result["notes"] = notes
    result["predictions"] = preds
    return result


@dataclass
class MCConfig:
    """A multiple-choice set (file or folder, see load_mc) and how to answer it."""

    data: str
    kind: str = "auto"
    split: str | None = None
    langs: Sequence[str] | None = None
    subjects: Sequence[str] | None = None
    limit: int | None = None
    method: str = "loglik"  # loglik, generate or both
    continuations: str = "letters"
    prompt: str = "chat"
    outputs: str | Sequence[str] | None = None  # ready generative answers: a file (one a line) or a list
    max_new_tokens: int = 64
    batch_size: int = 16
    progress: bool = True


def run(engine: Any, config: MCConfig) -> dict[str, Any]:
    """Accuracy per subject and language for the config's questions."""
    qs = load_mc(config.data, config.kind, split=config.split, langs=config.langs or None,
                 subjects=config.subjects or None, limit=config.limit)
    ready = read_lines(config.outputs) if isinstance(config.outputs, str) else config.outputs
    if engine is None and (config.method != "generate" or ready is None):
        raise EvalError("give a model (--model, or --base-url for --method generate) or --outputs with --method generate")
    result = evaluate_mc(qs, engine, method=config.method, continuations=config.continuations,
                         batch_size=config.batch_size, prompt=config.prompt, max_new_tokens=config.max_new_tokens,
                         outputs=ready, progress=config.progress)
    result["data"] = config.data
    return result
