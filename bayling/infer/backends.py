"""`load_engine`: one call for every backend, as the CLI options name them."""

from __future__ import annotations

from typing import Any, Mapping

from bayling.infer.engine import Engine, check_decoding
from bayling.errors import ConfigError
from bayling.models import ModelSpec

__all__ = ["BACKENDS", "load_engine"]

BACKENDS = ("transformers", "llamacpp", "openai")


def load_engine(
    model: str | ModelSpec | None = None,
    *,
    backend: str = "transformers",
    adapter: str | None = None,
    chat_format: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    batch_size: int = 8,
    n_ctx: int = 4096,
    decoding: Mapping[str, Any] | None = None,
) -> Engine:
    """An engine for `model`: embedded name, local folder (a `bayling train` adapter too), hub id,
    .gguf file (llamacpp), or the served model's name (openai, at `base_url`). The local backends
    take a `resolve_model` spec too (bayling.models): what the model is, worked out once.
    `decoding`: loop guards for every request that leaves them unset (`check_decoding`)."""
    guards = check_decoding(decoding or {})
    engine = _backend_engine(model, backend, adapter, chat_format, base_url, api_key, batch_size, n_ctx)
    if guards:
        engine.decoding = guards
    return engine


def _backend_engine(model, backend, adapter, chat_format, base_url, api_key, batch_size, n_ctx) -> Engine:
    if backend == "transformers":
        from bayling.infer.engine import TransformersEngine

        return TransformersEngine.load(model, adapter=adapter, chat_format=chat_format, batch_size=batch_size)
    if backend == "llamacpp":
        from bayling.infer.llamacpp import LlamaCppEngine

        if adapter:
            raise ConfigError("the llamacpp backend takes a merged GGUF; --adapter works with --backend transformers")
        return LlamaCppEngine.load(model, chat_format=chat_format, n_ctx=n_ctx)
    if backend == "openai":
        from bayling.infer.remote import OpenAIEngine

        if not base_url:
            raise ConfigError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        return OpenAIEngine(base_url, model=model, api_key=api_key, concurrency=batch_size)
    raise ConfigError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
