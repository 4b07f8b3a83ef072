import json
import multiprocessing as mp

import pytest

from bayling import models
from bayling.models import ModelError, load_model, resolve_model_path


def test_local_folder_loads(tiny_model_dir):
    model, tok = load_model(str(tiny_model_dir))
    assert model.config.vocab_size == len(tok)
    assert not model.training


def test_unknown_name_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="unknown model 'gemma-9000'"):
        resolve_model_path("gemma-9000")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a model folder"):
        resolve_model_path(tmp_path / "empty")


def test_cache_dir_honours_bayling_home(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYLING_HOME", str(tmp_path / "home"))
    assert models.cache_dir() == tmp_path / "home"
    assert (tmp_path / "home").is_dir()


def _fake_convert(calls_file, wait_for=None):
    def convert(gguf, out):
        import os

        with open(calls_file, "a") as f:
            f.write("x\n")
        if wait_for is not None:
            wait_for()
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text("{}")
        (out / models._COMPLETE).write_text(json.dumps({"files": models._manifest(out)}))
        os.sync()
    return convert


def _resolve_in_child(home, calls_file, arrived, both_arrived):
    """Resolve the embedded model, reporting when this process reaches the lock (or, without one, the check)."""
    import os

    import filelock

    os.environ["BAYLING_HOME"] = home
    reported = []

    def arrive():
        if not reported:
            reported.append(1)
            arrived.release()

    class ObservedLock(filelock.FileLock):
        def acquire(self, *a, **kw):
            arrive()
            return super().acquire(*a, **kw)

    is_complete = models._is_complete

    def observed_is_complete(folder):
        done = is_complete(folder)
        arrive()  # after looking: a lock-free racer has seen no cache by now
        return done

    filelock.FileLock = ObservedLock
    models._is_complete = observed_is_complete
    # The converting process holds on until the other one has reached the lock: the two overlap
    # for certain, and without the lock the other would find no cache and convert again.
    models._convert_gguf = _fake_convert(calls_file, wait_for=lambda: both_arrived.wait(60))
    models.EMBEDDED["gemma3-270m"] = models.EmbeddedModel("gemma3-270m", "", "gemma", lambda: None, "")
    resolve_model_path("gemma3-270m")


def test_two_processes_convert_once(tmp_path):
    calls = tmp_path / "calls"
    ctx = mp.get_context("fork")
    arrived, both_arrived = ctx.Semaphore(0), ctx.Event()
    procs = [ctx.Process(target=_resolve_in_child, args=(str(tmp_path / "home"), str(calls), arrived, both_arrived))
             for _ in range(2)]
    for p in procs:
        p.start()
    for _ in procs:
        assert arrived.acquire(timeout=60)
    both_arrived.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert calls.read_text().count("x") == 1


def test_half_written_cache_is_never_used(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYLING_HOME", str(tmp_path))
    calls = tmp_path / "calls"
    monkeypatch.setattr(models, "_convert_gguf", _fake_convert(calls))
    monkeypatch.setitem(models.EMBEDDED, "gemma3-270m",
                        models.EmbeddedModel("gemma3-270m", "", "gemma", lambda: None, ""))
    out = tmp_path / "models" / "gemma3-270m"
    out.mkdir(parents=True)
    (out / "config.json").write_text("{}")  # a conversion killed before its marker
    resolve_model_path("gemma3-270m")
    assert calls.read_text().count("x") == 1
    # A file truncated after the marker was written is caught by the manifest too.
    (out / "config.json").write_text("")
    resolve_model_path("gemma3-270m")
    assert calls.read_text().count("x") == 2
    resolve_model_path("gemma3-270m")  # complete now: no further conversion
    assert calls.read_text().count("x") == 2


@pytest.mark.slow
def test_embedded_gemma_loads_and_continues_text():
    from bayling.infer.engine import GenerationConfig, TransformersEngine

    engine = TransformersEngine.load("gemma3-270m")
    assert engine.model.config.model_type.startswith("gemma3")
    prompts = ["<bos>The capital of France is Paris. The capital of Germany is",
               "<bos>Question: What is the capital of France?\nAnswer:"]
    out = engine.complete(prompts, GenerationConfig(max_new_tokens=6, stop=("\n",)))
    assert "Berlin" in out[0] and out[1].strip() == "Paris"


def test_shipped_bayling_mini_resolves_offline():
    from bayling.infer.official import detect_official
    from bayling.models import default_chat_format

    path = resolve_model_path("bayling-mini")
    cfg = json.loads((__import__("pathlib").Path(path) / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == "gemma3-270m"
    assert default_chat_format("bayling-mini") == "gemma"
    assert detect_official("bayling-mini") is None  # ours, not a released BayLing checkpoint
