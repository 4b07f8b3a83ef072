"""Delta weights (BayLing v1 release format) round-trip on two tiny models."""

from __future__ import annotations

import pytest
from safetensors.torch import load_file

from bayling.infer.delta import DeltaError, apply_delta, make_delta
from bayling.testing.tiny import build_tiny_model


@pytest.fixture(scope="module")
def tuned_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tuned"), seed=1)  # same shapes, other weights


def test_make_then_apply_gives_the_tuned_model_back(tiny_model_dir, tuned_dir, tmp_path):
    delta = make_delta(tiny_model_dir, tuned_dir, tmp_path / "delta")
    d, base, tuned = (load_file(p / "model.safetensors") for p in (delta, tiny_model_dir, tuned_dir))
    name = next(iter(d))
    assert (d[name] - (tuned[name] - base[name])).abs().max() < 1e-6
    assert (delta / "tokenizer.json").exists() and (delta / "config.json").exists()

    out = apply_delta(tiny_model_dir, delta, tmp_path / "restored")
    restored = load_file(out / "model.safetensors")
    assert restored.keys() == tuned.keys()
    assert max(float((restored[k] - tuned[k]).abs().max()) for k in tuned) < 1e-6

    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out)  # a loadable model folder


def test_wrong_base_shapes_are_refused(tuned_dir, tmp_path):
    other = build_tiny_model(tmp_path / "wider", hidden=48)
    with pytest.raises(DeltaError, match="shape .* in the target but .* in the base"):
        make_delta(other, tuned_dir, tmp_path / "delta")


def test_missing_tensors_and_folders_are_refused(tiny_model_dir, tuned_dir, tmp_path):
    from safetensors.torch import save_file

    lacking = tmp_path / "lacking"
    lacking.mkdir()
    w = load_file(tiny_model_dir / "model.safetensors")
    w.pop(next(iter(w)))
    save_file(w, str(lacking / "model.safetensors"))
    with pytest.raises(DeltaError, match="not in the base"):
        apply_delta(lacking, tuned_dir, tmp_path / "out")
    with pytest.raises(DeltaError, match="not a folder"):
        apply_delta(tmp_path / "nowhere", tuned_dir, tmp_path / "out")
    with pytest.raises(DeltaError, match="must differ"):
        apply_delta(tiny_model_dir, tuned_dir, tuned_dir)


def test_sharded_and_bin_inputs(tiny_model_dir, tuned_dir, tmp_path):
    import torch

    # The 2023 release used pytorch_model-*.bin shards: read them too.
    w = load_file(tuned_dir / "model.safetensors")
    names = sorted(w)
    shards = tmp_path / "bin"
    shards.mkdir()
    half = len(names) // 2
    torch.save({k: w[k] for k in names[:half]}, shards / "pytorch_model-00001-of-00002.bin")
    torch.save({k: w[k] for k in names[half:]}, shards / "pytorch_model-00002-of-00002.bin")
    (shards / "config.json").write_text((tuned_dir / "config.json").read_text())
    out = make_delta(tiny_model_dir, shards, tmp_path / "delta")
    assert sorted(p.name for p in out.glob("*.safetensors")) == ["model-00001-of-00002.safetensors",
                                                                 "model-00002-of-00002.safetensors"]
    assert (out / "model.safetensors.index.json").exists()
    back = apply_delta(tiny_model_dir, out, tmp_path / "back")
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(back)
    assert torch.allclose(m.state_dict()["model.norm.weight"], w["model.norm.weight"], atol=1e-6)


def test_delta_cli(tiny_model_dir, tuned_dir, tmp_path):
    import typer
    from typer.testing import CliRunner

    from bayling.infer.cli import delta_app

    app = typer.Typer()
    app.add_typer(delta_app, name="delta")
    r = CliRunner().invoke(app, ["delta", "make", "--base", str(tiny_model_dir), "--target", str(tuned_dir),
                                 "--out", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["delta", "apply", "--base", str(tiny_model_dir), "--delta", str(tmp_path / "d"),
                                 "--out", str(tmp_path / "t")])
    assert r.exit_code == 0 and (tmp_path / "t" / "model.safetensors").exists()
