"""bayling export gguf: a trained run as one GGUF that llama.cpp / Ollama read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bayling.export import ExportError, export_gguf


def _run_dir(tmp_path: Path, base: str) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "bayling.json").write_text(json.dumps({"chat_format": "chatml", "base_model": base, "method": "lora"}))
    return run


def test_refuses_what_it_cannot_export(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no llama.cpp converter on PATH
    with pytest.raises(ExportError, match="converter"):
        export_gguf(_run_dir(tmp_path, "some/hub-model"), tmp_path / "x.gguf")
    with pytest.raises(ExportError, match="q8_0, f16, f32"):
        export_gguf(tmp_path, tmp_path / "x.gguf", quant="q4_k_m")
    with pytest.raises(ExportError, match="not a `bayling train` output"):
        export_gguf(tmp_path / "nothing", tmp_path / "x.gguf")
    # The CLI says it in one line and exits 2.
    env = {**os.environ, "PATH": str(tmp_path) + os.pathsep + os.environ["PATH"]}
    res = subprocess.run([sys.executable, "-m", "bayling.cli", "export", "gguf", str(tmp_path / "nothing")],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0 and "not a `bayling train` output" in res.stderr


def _adapter_run(tiny_model_dir: Path, tmp_path: Path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=2, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    run = tmp_path / "run"
    model.save_pretrained(run)
    cfg = json.loads((run / "adapter_config.json").read_text())
    (run / "adapter_config.json").write_text(json.dumps({**cfg, "base_model_name_or_path": str(tiny_model_dir)}))
    (run / "bayling.json").write_text(json.dumps({"chat_format": "chatml", "base_model": str(tiny_model_dir)}))
    return run


def test_a_missing_or_failing_converter_is_one_line_and_leaves_nothing_behind(tiny_model_dir, tmp_path):
    run = _adapter_run(tiny_model_dir, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ExportError, match="/nonexistent/convert.py: no such converter"):
        export_gguf(run, tmp_path / "k.gguf", converter="/nonexistent/convert.py")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no run-merged/ folder, no output
    failing = tmp_path / "bin" / "convert.py"
    failing.parent.mkdir()
    failing.write_text("import sys\nopen(sys.argv[sys.argv.index('--outfile') + 1], 'w').write('half')\nsys.exit(3)\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    res = subprocess.run([sys.executable, "-m", "bayling.cli", "export", "gguf", str(run), "--out",
                          str(tmp_path / "k.gguf"), "--converter", str(failing)], capture_output=True, text=True,
                         check=False)
    last = res.stderr.strip().splitlines()[-1]  # after the merge's progress bars
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert last.startswith("error: ") and "convert.py failed (exit 3)" in last
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # the merged model and the half output are gone


@pytest.mark.slow
def test_shipped_adapter_exports_to_a_gguf_that_answers_like_the_merged_model(tmp_path):
    import gguf
    import torch
    from transformers import AutoModelForCausalLM

    from bayling.chat_formats import get_format
    from bayling.models import _shipped_path, load_model

    out = export_gguf(_shipped_path("bayling-mini"), tmp_path / "mini.gguf")
    reader = gguf.GGUFReader(str(out))
    template = str(reader.fields["tokenizer.chat_template"].contents())
    assert "<start_of_turn>" in template and "generation %}" not in template
    assert int(reader.fields["tokenizer.ggml.eot_token_id"].contents()) == 106  # <end_of_turn>
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == "Q8_0" and types["token_embd.weight"] == "Q8_0"  # base's own kept

    merged, tok = load_model("bayling-mini", dtype="float32", device="cpu")
    base, _ = load_model("gemma3-270m", dtype="float32", device="cpu")
    exported = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file=out.name, dtype=torch.float32)
    text = get_format("gemma", tok).render([{"role": "user", "content": "Translate the following English text into "
                                             "German.\n\nThe train station is closed on Sundays."}],
                                           add_generation_prompt=True)
    ids = tok(text, return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        lm, le, lb = (m(ids).logits[0] for m in (merged, exported, base))
        answers = [tok.decode(m.generate(ids, max_new_tokens=24, do_sample=False)[0, ids.shape[1]:]).split("<end_of_turn>")[0]
                   for m in (merged, exported)]
    # Q8_0 keeps the trained behaviour: the same greedy answer (top-1 agreement over the prompt's own
    # positions is no measure: user-text positions are near-ties, 0.85-0.96 across adapters and prompts)
    assert answers[0] == answers[1] and "Sonntag" in answers[0]
    assert (le - lm).abs().max() < 0.2 * (lb - lm).abs().max()  # ... and it is not the base's


@pytest.mark.slow
def test_trained_run_answers_through_llamacpp(tmp_path):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'bayling[llamacpp]')")
    from bayling.infer.engine import GenerationConfig
    from bayling.infer.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine.load("bayling-mini", n_ctx=512)
    reply = engine.chat([[{"role": "user", "content": "Translate the following English text into German.\n\n"
                                                      "The train station is closed on Sundays."}]],
                        GenerationConfig(max_new_tokens=32))[0]
    assert "Sonntag" in reply and "<end_of_turn>" not in reply
    # The file `bayling export gguf` writes, given alone, chats in the format it was trained with.
    out = export_gguf(Path(__file__).resolve().parents[1] / "bayling" / "assets" / "bayling-mini", tmp_path / "mini.gguf")
    alone = LlamaCppEngine.load(str(out), n_ctx=512)
    assert alone.chat_format.name == "gemma"
    assert alone.chat([[{"role": "user", "content": "Translate the following English text into German.\n\n"
                                                    "The train station is closed on Sundays."}]],
                      GenerationConfig(max_new_tokens=32))[0] == reply
