"""resolve_model: every kind of model reference becomes one spec, without loading or converting anything."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from bayling import models
from bayling.infer.official import LLAMA3_STOP_IDS, LLAMA3_VOCAB
from bayling.models import ModelSpec, resolve_model


def _folder(path: Path, **files: dict) -> Path:
    path.mkdir(parents=True)
    for name, content in files.items():
        (path / f"{name}.json").write_text(json.dumps(content))
    return path


@pytest.fixture
def no_conversion(tmp_path, monkeypatch):
    """Converting an embedded model fails the test: resolving must not do it."""
    monkeypatch.setenv("BAYLING_HOME", str(tmp_path / "home"))

    def convert(gguf, out):
        raise AssertionError("resolve_model converted an embedded model")

    monkeypatch.setattr(models, "_convert_gguf", convert)


@pytest.mark.parametrize("ref, fmt", [(None, "gemma"), ("gemma3-270m", "gemma"), ("smollm2-135m", "chatml")])
def test_embedded_names_resolve_without_converting(ref, fmt, no_conversion):
    spec = resolve_model(ref)
    name = ref or "gemma3-270m"
    assert spec == ModelSpec(ref=name, base=name, adapter=None, chat_format=fmt, official=None, name=name, run=None)


def test_weights_convert_an_embedded_model_once_when_first_read(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYLING_HOME", str(tmp_path))
    calls = []

    def convert(gguf, out):
        calls.append(out)
        _folder(out, config={})
        (out / models._COMPLETE).write_text(json.dumps({"files": models._manifest(out)}))

    monkeypatch.setattr(models, "_convert_gguf", convert)
    monkeypatch.setitem(models.EMBEDDED, "gemma3-270m", models.EmbeddedModel("gemma3-270m", "", "gemma", lambda: None, ""))
    spec = resolve_model("gemma3-270m")
    assert calls == []
    assert spec.weights == str(tmp_path / "models" / "gemma3-270m") == spec.weights
    assert len(calls) == 1


def test_shipped_adapter_names_its_base_and_format(no_conversion):
    spec = resolve_model("bayling-mini")
    assert spec.base == "gemma3-270m" and spec.chat_format == "gemma" and spec.name == "bayling-mini"
    assert spec.adapter is not None and (Path(spec.adapter) / "adapter_config.json").is_file()
    assert spec.run == Path(spec.adapter) and spec.official is None  # ours, not a released checkpoint


def test_local_folder_is_its_own_base(tiny_model_dir):
    spec = resolve_model(tiny_model_dir)
    assert (spec.base, spec.adapter, spec.chat_format, spec.official, spec.run) == (str(tiny_model_dir), None, "auto", None, None)
    assert spec.name == tiny_model_dir.name and spec.weights == str(tiny_model_dir)
    assert spec.stop_token_ids == () and spec.replacements == {}


def test_trained_lora_run_loads_on_the_base_it_names(tmp_path):
    base = _folder(tmp_path / "base", config={})
    run = _folder(tmp_path / "run", adapter_config={"base_model_name_or_path": str(base)},
                  bayling={"chat_format": "bayling-v1"})
    spec = resolve_model(str(run))
    assert (spec.base, spec.adapter, spec.weights) == (str(base), str(run), str(base))
    assert spec.chat_format == "bayling-v1" and spec.name == "run" and spec.run == run and spec.official is None
    # The same run given as --adapter on its base: the adapter's record decides format and name.
    assert resolve_model(str(base), adapter=str(run)) == replace(spec, ref=str(base))
    assert resolve_model(str(run), chat_format="chatml").chat_format == "chatml"  # an explicit format wins


def test_full_finetune_run_keeps_its_weights(tmp_path):
    run = _folder(tmp_path / "full", config={}, bayling={"chat_format": "gemma"})
    spec = resolve_model(str(run))
    assert (spec.base, spec.adapter, spec.chat_format, spec.run) == (str(run), None, "gemma", run)


def test_official_checkpoint_brings_format_stops_and_placeholders(tmp_path):
    spec = resolve_model(str(_folder(tmp_path / "BayLing-2-llama-3-8B", config={})))
    assert spec.official.name == "BayLing-2-llama-3-8B" and spec.chat_format == "bayling2-llama3"
    assert spec.stop_token_ids == LLAMA3_STOP_IDS and spec.replacements["[NAME]"] == "BayLing"
    overridden = resolve_model(spec.ref, chat_format="chatml")
    assert overridden.chat_format == "chatml" and overridden.official == spec.official
    # A renamed folder is settled by its vocabulary, and a LoRA by its base's.
    renamed = _folder(tmp_path / "my-bayling", config={"vocab_size": LLAMA3_VOCAB})
    assert resolve_model(str(renamed)).chat_format == "bayling2-llama3"
    lora = _folder(tmp_path / "bayling-lora", adapter_config={"base_model_name_or_path": str(renamed)})
    assert resolve_model(str(lora)).official.name == "BayLing-2-llama-3-8B"
    hub = resolve_model("ICTNLP/bayling-13b-v1.1")  # by name, offline
    assert (hub.base, hub.name, hub.official.name, hub.chat_format) == (hub.ref, hub.ref, "BayLing-13B-v1.1", "bayling-v1")


def test_gguf_files_are_not_taken_for_official_checkpoints(tmp_path):
    gguf = tmp_path / "bayling-mini-q8_0.gguf"  # the default name `bayling export gguf` gives bayling-mini
    gguf.write_bytes(b"GGUF")
    spec = resolve_model(str(gguf))
    assert spec.official is None and spec.chat_format == "auto" and spec.name == gguf.name


def test_a_spec_passes_through_but_takes_no_second_opinion(tiny_model_dir):
    spec = resolve_model(tiny_model_dir)
    assert resolve_model(spec) is spec
    with pytest.raises(ValueError, match="not a spec"):
        resolve_model(spec, chat_format="chatml")


def test_bad_references_fail_when_the_weights_are_wanted(tmp_path):
    with pytest.raises(models.ModelError, match="unknown model 'gemma-9000'"):
        resolve_model("gemma-9000").weights
    with pytest.raises(models.ModelError, match="not a model folder"):
        resolve_model(_folder(tmp_path / "empty")).weights


def test_fingerprint_follows_the_weights_not_the_path(tmp_path):
    base = _folder(tmp_path / "base", config={})
    (base / "model.safetensors").write_bytes(b"weights one")
    run = _folder(tmp_path / "run", adapter_config={"base_model_name_or_path": str(base)})
    (run / "adapter_model.safetensors").write_bytes(b"adapter one")
    first = resolve_model(str(run)).fingerprint
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in base.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    assert resolve_model(str(base)).fingerprint == resolve_model(str(copy)).fingerprint  # a copy is the same model
    # Files that decide nothing about the outputs (a README, the Trainer's arguments) change nothing.
    (run / "README.md").write_text("notes")
    (run / "training_args.bin").write_bytes(b"dated logging dir")
    assert resolve_model(str(run)).fingerprint == first
    (run / "adapter_model.safetensors").write_bytes(b"adapter two")  # other weights at the same path
    second = resolve_model(str(run)).fingerprint
    (base / "model.safetensors").write_bytes(b"weights two")  # the adapter's base retrained in place
    assert len({first, second, resolve_model(str(run)).fingerprint}) == 3
    assert resolve_model("owner/model").fingerprint != resolve_model("owner/other").fingerprint  # a hub id: its name
