"""Choose a reply-only loop guard for bayling-mini v3 on the held-out FLORES dev selection slice,
translation and one refinement session per pair (never devtest).

Run from the repository root after `bayling recipe run experiments/mini-self-sel/mini-self-sel.yaml`:
    PYTHONPATH=. python experiments/mini-self-rguard/mini-self-rguard-dev.py [SETTING ...]
Writes /tmp/guard/dev2-SETTING.json; experiments/mini-self-rguard/mini-self-rguard-dev.json holds the scores.
"""
import json, os, sys, time
from bayling.infer.backends import load_engine
from bayling.train.select import read_select_set
from bayling.eval.suite import SuiteConfig, evaluate_system, summary
os.makedirs("/tmp/guard", exist_ok=True)
pairs = read_select_set("runs/mini-self-sel/select.jsonl")
dirs = list(dict.fromkeys(f"{p.src_lang}-{p.tgt_lang}" for p in pairs))
cfg = SuiteConfig(corpus="flores", split="dev", directions=dirs, limit=12, sessions_per_direction=12, max_new_tokens=160)
settings = {"greedy": {}, "nrng3": {"no_repeat_ngram_size": 3}, "rnr2": {"reply_no_repeat_ngram_size": 2},
            "rnr3": {"reply_no_repeat_ngram_size": 3}, "rnr4": {"reply_no_repeat_ngram_size": 4},
            "rnr6": {"reply_no_repeat_ngram_size": 6}}
for name in sys.argv[1:] or settings:
    t = time.perf_counter()
    engine = load_engine("runs/mini-self-sel/model", batch_size=32, decoding=settings[name])
    r = evaluate_system(engine, "chat", pairs, [], cfg, seed=7)
    r["seconds"] = round(time.perf_counter() - t, 1)
    json.dump({"setting": name, "decoding": settings[name], **r}, open(f"/tmp/guard/dev2-{name}.json", "w"), ensure_ascii=False)
    print(name, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in summary(r).items() if k not in ("breakdown", "prompt")}, flush=True)
    del engine
