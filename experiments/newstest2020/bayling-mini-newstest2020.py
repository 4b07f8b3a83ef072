"""bayling-mini v7 vs v6 vs the base's 3-shot prompt on WMT newstest2020: news, a domain and files no
bayling-mini was trained on (its newstest data is en-zh / en-de only), in two trained languages (ja, ru)
and one never trained (pl), both ways, 50 sentences each.

    python experiments/newstest2020/bayling-mini-newstest2020.py V6_ADAPTER_DIR   # writes runs/news/, then experiments/newstest2020/bayling-mini-newstest2020.*

V6_ADAPTER_DIR: `git show 29b48ad:bayling/assets/bayling-mini/<file>` for adapter_config.json,
adapter_model.safetensors, bayling.json. Each system and direction is one `bayling eval translation` call
(the first 3 pairs of each file are the shots, left out for every system); a finished one is not redone.
"""

import json
import subprocess
import sys
from pathlib import Path

from bayling.eval.report import compare_systems
from bayling.resources import named_corpus

OUT = Path("runs/news")
DIRECTIONS = [("en-ja", "en", "ja"), ("ja-en", "ja", "en"), ("en-ru", "en", "ru"), ("ru-en", "ru", "en"),
              ("en-pl", "en", "pl"), ("pl-en", "pl", "en")]


def main(v6: str) -> None:
    systems = {"v7": ("bayling-mini", "chat"), "v6": (v6, "chat"), "base": ("gemma3-270m", "few-shot")}
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (model, prompt) in systems.items():
        result = {"breakdown": {"direction": {}}, "examples": []}
        for folder, s, t in DIRECTIONS:
            stem = OUT / f"{name}-{s}{t}"
            if not stem.with_suffix(".json").is_file():
                subprocess.run(["bayling", "eval", "translation", "--corpus", named_corpus(f"newstest:2020/{folder}"), "-s", s, "-t", t,
                                "--model", model, "--prompt", prompt, "--limit", "50", "--max-new-tokens", "160",
                                "--batch-size", "32", "--bootstrap", "0", "-q", "--hyp-out", str(stem) + ".jsonl",
                                "--out", str(stem) + ".json"], check=True, stdout=subprocess.DEVNULL)
            r = json.loads(stem.with_suffix(".json").read_text())
            result["breakdown"]["direction"][r["direction"]] = {k: r[k] for k in (
                "chrf", "bleu", "off_target_rate", "max_new_tokens_rate", "source_copy_rate")}
            result["examples"] += [{"src": e["src"], "ref": e["tgt"], "hyp": e["hyp"], "direction": r["direction"]}
                                   for e in map(json.loads, stem.with_suffix(".jsonl").read_text().splitlines())]
        per = result["breakdown"]["direction"].values()
        for k in ("chrf", "bleu", "off_target_rate", "max_new_tokens_rate", "source_copy_rate"):
            result[k] = sum(d[k] for d in per) / len(per)  # mean over directions, as the recipe reports
        systems[name] = result
    doc = {**systems, "eval_set": {"corpus": "WMT newstest2020", "split": None}}
    (OUT / "results.json").write_text(json.dumps(doc, ensure_ascii=False))
    print(compare_systems([("base 3-shot", str(OUT), "base"), ("v6", str(OUT), "v6"), ("v7 (bayling-mini)", str(OUT), "v7")],
                          "experiments/newstest2020/bayling-mini-newstest2020"))


if __name__ == "__main__":
    main(sys.argv[1])
