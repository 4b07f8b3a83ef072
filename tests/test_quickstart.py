"""`bayling quickstart` with the real embedded model, cut down to a few minutes."""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_quickstart_runs_the_whole_recipe_offline(tmp_path):
    out = tmp_path / "qs"
    cmd = [sys.executable, "-m", "bayling.cli", "quickstart", "--out", str(out), "--steps", "1",
           "--eval-sentences", "1", "--flores-lines", "8", "--news-lines", "0", "--max-new-tokens", "12"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1200,
                       env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    for system in ("base", "tuned"):
        for key in ("chrf", "bleu", "off_target_rate", "constraint_inclusion"):
            assert key in results[system]
    assert set(results["timings_seconds"]) == {"data", "train", "eval"}
    assert (out / "report.html").is_file() and (out / "results.png").is_file()
    assert "bayling chat --model" in r.stdout and "bayling serve" in r.stdout
    assert (out / "model" / "adapter_model.safetensors").is_file()
    # A second run resumes: every stage is skipped.
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stderr.count("done earlier") == 3
