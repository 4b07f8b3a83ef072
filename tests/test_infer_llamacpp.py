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
    text = s.text()
    assert text.strip() and "<end_of_turn>" not in text and s.finish_reason in ("stop", "length")


@pytest.mark.slow
def test_embedded_gguf_streams_counts_stops_and_cancels():
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'bayling[llamacpp]')")
    import threading

    from bayling.infer.engine import GenerationConfig

    engine = LlamaCppEngine.load("gemma3-270m", n_ctx=512)
    prompt = "<bos>The history of the city begins in the twelfth century, when"
    s = engine.stream(prompt, GenerationConfig(max_new_tokens=12))
    text = s.text()
    assert s.finish_reason == "length" and s.completion_tokens == 12
    assert s.prompt_tokens == engine.count_tokens(prompt)
    # The same text again, cut at a stop string taken from inside it: nothing of the stop is emitted.
    word = text.split()[2]
    s = engine.stream(prompt, GenerationConfig(max_new_tokens=12, stop=(word,)))
    assert s.text() == text[: text.index(word)] and s.finish_reason == "stop"
    # Cancelled from the start: stops at once.
    cancel = threading.Event()
    cancel.set()
    s = engine.stream(prompt, GenerationConfig(max_new_tokens=64), cancel)
    s.text()
    assert s.completion_tokens <= 1
