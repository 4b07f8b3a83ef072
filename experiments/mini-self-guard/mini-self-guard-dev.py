"""Choose a loop guard for bayling-mini v3 on the held-out FLORES dev selection slice (never devtest).

Run from the repository root after `bayling recipe run experiments/mini-self-sel/mini-self-sel.yaml`:
    PYTHONPATH=. python experiments/mini-self-guard/mini-self-guard-dev.py [SETTING ...]
Writes /tmp/guard/SETTING.json (scores and hypotheses); experiments/mini-self-guard/mini-self-guard-dev.json holds the scores.
"""
import json, os, sys, time
from bayling.infer.backends import load_engine
from bayling.train.select import read_select_set
from bayling.eval.translation import translate, score_directions, failure_rates

os.makedirs("/tmp/guard", exist_ok=True)
pairs = read_select_set("runs/mini-self-sel/select.jsonl")
settings = {"greedy": {}, "static": None, "nrng3": {"no_repeat_ngram_size": 3}, "nrng4": {"no_repeat_ngram_size": 4},
            "nrng6": {"no_repeat_ngram_size": 6}, "rp1.1": {"repetition_penalty": 1.1}, "rp1.2": {"repetition_penalty": 1.2}}
for name in sys.argv[1:] or settings:
    out = f"/tmp/guard/{name}.json"
    t = time.perf_counter()
    engine = load_engine("runs/mini-self-sel/model", batch_size=32, decoding=settings[name] or {})
    if settings[name] is None:  # greedy on the static path: the guards' batching, without a guard
        engine.batching = "static"
    hyps = translate(engine, pairs, prompt="chat", max_new_tokens=160, progress=False)
    s = score_directions(pairs, hyps)
    f = failure_rates(engine, pairs, hyps, 160)
    doc = {"setting": name, "decoding": settings[name], "n": len(pairs), "chrf": s["chrf"],
           "off_target_rate": s.get("off_target_rate"), **f, "seconds": round(time.perf_counter() - t, 1),
           "per_direction": {k: v.get("chrf") for k, v in s.get("breakdown", {}).get("direction", {}).items()},
           "hyps": hyps}
    json.dump(doc, open(out, "w"), ensure_ascii=False)
    print(name, {k: doc[k] for k in ("chrf", "off_target_rate", "max_new_tokens_rate", "source_copy_rate", "seconds")}, flush=True)
    del engine
