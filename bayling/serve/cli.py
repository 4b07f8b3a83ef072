"""`bayling serve`: the OpenAI-compatible API and web page over one engine, with uvicorn.

Mounted by bayling/cli.py: app.command("serve")(serve_command)
"""

from __future__ import annotations

from typing import List, Optional

import typer

from bayling.infer.cli import (ADAPTER, BACKEND, BASE_URL, CHAT_FORMAT, MODEL, NO_REPEAT, REPETITION_PENALTY,
                               REPLY_NO_REPEAT,
                               decoding_options, engine_from_options)

__all__ = ["serve_command"]


def serve_command(
    model: Optional[str] = MODEL,
    adapter: Optional[str] = ADAPTER,
    chat_format: Optional[str] = CHAT_FORMAT,
    backend: str = BACKEND,
    base_url: Optional[str] = BASE_URL,
    backend_api_key: Optional[str] = typer.Option(None, "--backend-api-key", envvar="OPENAI_API_KEY",
                                                  help="API key of the --base-url endpoint (--backend openai)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8765, help="Port to listen on."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="BAYLING_API_KEY",
                                          help="Require 'Authorization: Bearer KEY' on /v1/* (401 without it)."),
    cors_origin: Optional[List[str]] = typer.Option(None, "--cors-origin",
                                                    help="A web page origin (https://host[:port]) whose scripts may "
                                                    "call the API; repeat for more. [default: none]"),
    served_model_name: Optional[str] = typer.Option(None, help="The model id clients see. [default: the --model name]"),
    max_concurrent: int = typer.Option(1, help="Generations running at once."),
    max_waiting: int = typer.Option(16, help="Requests queued beyond those; more get 429."),
    max_tokens: int = typer.Option(2048, help="Largest max_tokens a request may ask for."),
    max_prompt_tokens: int = typer.Option(8192, help="Longest prompt accepted, in tokens."),
    max_request_bytes: int = typer.Option(1_000_000, help="Largest request body accepted."),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="How the web page's translate asks: few-shot or chat. "
                                         "[default: few-shot for the embedded base gemma3-270m, else chat]"),
    log_level: str = typer.Option("info", help="uvicorn log level."),
    no_repeat_ngram_size: int = NO_REPEAT,
    reply_no_repeat_ngram_size: int = REPLY_NO_REPEAT,
    repetition_penalty: float = REPETITION_PENALTY,
) -> None:
    """Serve /v1/chat/completions, /v1/completions, /v1/models, /health and the web page at /."""
    import uvicorn

    from bayling.infer.translate import default_prompt_mode
    from bayling.serve.app import Limits, create_app

    engine = engine_from_options(model, adapter, chat_format, backend, base_url, backend_api_key,
                                 decoding=decoding_options(no_repeat_ngram_size, repetition_penalty,
                                                           reply_no_repeat_ngram_size))
    limits = Limits(max_request_bytes=max_request_bytes, max_prompt_tokens=max_prompt_tokens, max_tokens=max_tokens,
                    default_max_tokens=min(512, max_tokens), max_concurrent=max_concurrent, max_waiting=max_waiting)
    app = create_app(engine, api_key=api_key, limits=limits, model_name=served_model_name,
                     translate_mode=prompt or default_prompt_mode(model, adapter, backend),
                     cors_origins=cors_origin or ())
    typer.echo(f"serving {served_model_name or engine.name} on http://{host}:{port}/ (OpenAI API at /v1)", err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
