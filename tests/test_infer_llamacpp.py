"""The llama.cpp backend: runs where llama-cpp-python is installed, explains itself where it is not."""

from __future__ import annotations

import pytest

from bayling.infer.llamacpp import BackendUnavailable, LlamaCppEngine, gguf_path, llama_cpp_available


def test_missing_package_gives_one_clear_line():
    if llama_cpp_available():
        pytest.skip("llama-cpp-python is installed")
    with pytest.raises(BackendUnavailable, match="pip install 'bayling\\[llamacpp\\]'"):
        LlamaCppEngine.load("gemma3-270m")


def test_gguf_path_refuses_non_gguf(tmp_path):
    with pytest.raises(ValueError, match=".gguf"):
        gguf_path(str(tmp_path))
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    assert gguf_path(str(f)) == f and gguf_path(str(tmp_path)) == f


@pytest.mark.slow
def test_embedded_gguf_generates():
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'bayling[llamacpp]')")
    from bayling.infer.engine import GenerationConfig

    engine = LlamaCppEngine.load("gemma3-270m", n_ctx=512)
    out = engine.complete(["<bos>The capital of France is Paris. The capital of Germany is"],
                          GenerationConfig(max_new_tokens=4))
    assert "Berlin" in out[0]
    s = engine.stream([{"role": "user", "content": "Say hi."}], GenerationConfig(max_new_tokens=6))
    assert s.text() is not None and s.finish_reason in ("stop", "length")
