"""llama.cpp through llama-cpp-python: GGUF models, the fastest path on a CPU.

Optional: `pip install 'bayling[llamacpp]'`. The import happens when an engine is loaded, so the
rest of bayling works without it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

from bayling.chat_formats import FORMATS, ChatFormat, get_format, template_format
from bayling.infer.engine import Engine, GenerationConfig, StopScanner, Stream
from bayling.errors import BaylingError, ConfigError
from bayling.models import EMBEDDED, ModelSpec, resolve_model

__all__ = ["BackendUnavailable", "LlamaCppEngine", "gguf_path", "llama_cpp_available"]


class BackendUnavailable(BaylingError, RuntimeError):
    """A backend whose package is not installed."""


def llama_cpp_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def gguf_path(model: str | ModelSpec | None) -> Path:
    """The GGUF file for an embedded model name, a .gguf path, a folder holding one, or a trained
    run (`bayling train` output or a shipped adapter such as bayling-mini: exported once, cached)."""
    spec = resolve_model(model)
    if spec.ref in EMBEDDED:
        return Path(EMBEDDED[spec.ref].gguf())
    path = Path(spec.ref).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.is_dir():
        found = sorted(path.glob("*.gguf"))
        if len(found) == 1:
            return found[0]
    if spec.run is not None:
        return exported_gguf(spec.run)
    raise ConfigError(f"the llamacpp backend needs a .gguf file, an embedded model name or a trained run, not {spec.ref!r}")


def exported_gguf(run: Path) -> Path:
    """`bayling export gguf` of a trained run, cached by the content of its weights."""
    import hashlib

    from bayling.export import export_gguf
    from bayling.models import cache_dir

    digest = hashlib.sha256()
    for f in sorted(run.glob("*.safetensors")) + [run / "bayling.json"]:
        digest.update(f.name.encode() + f.read_bytes())
    out = cache_dir() / "gguf" / f"{run.name}-{digest.hexdigest()[:16]}-q8_0.gguf"
    return out if out.is_file() else export_gguf(run, out)


def _gguf_format(llama) -> str | ChatFormat:
    """The chat format of a GGUF given without one: the bayling format `bayling export gguf` recorded,
    else the file's own chat template, else chatml."""
    from bayling.export import CHAT_FORMAT_KEY

    meta = llama.metadata
    if meta.get(CHAT_FORMAT_KEY) in FORMATS:
        return meta[CHAT_FORMAT_KEY]
    template = meta.get("tokenizer.chat_template")
    if not template:
        return "chatml"
    return template_format(template, llama.detokenize([llama.token_eos()], special=True).decode("utf-8", "replace"))


class LlamaCppEngine(Engine):
    """A llama.cpp `Llama` behind the Engine interface (one sequence at a time)."""

    def __init__(self, llama, chat_format: str | ChatFormat = "chatml", name: str = "model"):
        self.llama = llama
        self.chat_format = get_format(chat_format)
        self.name = name
        self.max_context = llama.n_ctx()

    @classmethod
    def load(cls, model: str | ModelSpec | None = None, chat_format: str | None = None, n_ctx: int = 4096,
             n_threads: int | None = None, **kw) -> "LlamaCppEngine":
        """An engine for a model reference or its `resolve_model` spec (bayling.models)."""
        if not llama_cpp_available():
            raise BackendUnavailable("the llamacpp backend needs llama-cpp-python: pip install 'bayling[llamacpp]'")
        from llama_cpp import Llama

        spec = resolve_model(model, chat_format=chat_format)
        llama = Llama(model_path=str(gguf_path(spec)), n_ctx=n_ctx, n_threads=n_threads or os.cpu_count(),
                      verbose=False, **kw)
        engine = cls(llama, _gguf_format(llama) if spec.chat_format == "auto" else spec.chat_format, name=spec.name)
        engine.replacements = spec.replacements
        return engine

    def _tokens(self, text: str) -> list[int]:
        # Our templates write BOS themselves; special=True reads "<bos>" etc. as their tokens.
        return self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def count_tokens(self, text: str) -> int:
        return len(self._tokens(text))

    def _kwargs(self, config: GenerationConfig) -> dict:
        guards = self.guards(config)
        ngrams = [g for g in guards if g.endswith("no_repeat_ngram_size")]
        if ngrams:
            raise ConfigError(f"llama.cpp has no {ngrams[0]}; use repetition_penalty (its repeat_penalty)")
        return dict(max_tokens=config.max_new_tokens, temperature=config.temperature, top_p=config.top_p,
                    stop=list(config.stop) or None, seed=config.seed,
                    repeat_penalty=guards.get("repetition_penalty", 1.0))

    def complete(self, prompts: Sequence[str], config: GenerationConfig) -> list[str]:
        return [self.llama.create_completion(self._tokens(p), **self._kwargs(config))["choices"][0]["text"]
                for p in prompts]

    def _stream_prompt(self, prompt: str, config: GenerationConfig, stream: Stream) -> Iterator[str]:
        tokens = self._tokens(prompt)
        stream.prompt_tokens = len(tokens)
        scanner = StopScanner(config.stop)
        chunks = self.llama.create_completion(tokens, stream=True, **{**self._kwargs(config), "stop": None})
        n = 0
        reason = "length"
        try:
            for chunk in chunks:
                if stream.cancel.is_set():
                    break
                choice = chunk["choices"][0]
                # One chunk a token, but for the closing one (finish_reason set), which carries
                # only what was held back, if anything.
                n += 1 if not choice.get("finish_reason") or choice.get("text") else 0
                text, stopped = scanner.feed(choice.get("text") or "")
                if text:
                    yield text
                if stopped:
                    reason = "stop"
                    break
                if choice.get("finish_reason"):
                    reason = choice["finish_reason"]
            else:
                tail = scanner.flush()
                if tail:
                    yield tail
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # ends llama.cpp's generation loop
        stream.completion_tokens = n
        stream.finish_reason = reason
