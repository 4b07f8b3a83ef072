"""The engine interface: text in, text out, whatever runs underneath.

Front ends (CLI, server, web page, eval) talk to an `Engine`; backends implement `complete`
(batched) and, for token streaming, `_stream_prompt`. Backends: `TransformersEngine` here,
`LlamaCppEngine` (llamacpp.py), `OpenAIEngine` (remote.py); `load_engine` (backends.py) picks one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any, Iterable, Iterator, Mapping, Sequence

from bayling.chat_formats import ChatFormat, get_format, render_with_spans, validate_messages
from bayling.errors import ConfigError
from bayling.models import ModelSpec, load_model, resolve_model

__all__ = [
    "Engine",
    "GUARDS",
    "GenerationConfig",
    "Rewriter",
    "StopScanner",
    "Stream",
    "TransformersEngine",
    "check_decoding",
    "cut_at_stop",
]


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int = 0
    # Loop guards; None leaves them to the engine's `decoding` (off by default). The first two are
    # transformers' (and vLLM's repetition_penalty): they count the prompt's tokens too, so a reply
    # cannot reuse a 3-gram of its source or of an earlier answer. reply_no_repeat_ngram_size looks
    # at the reply alone: loops are the reply repeating itself.
    repetition_penalty: float | None = None
    no_repeat_ngram_size: int | None = None
    reply_no_repeat_ngram_size: int | None = None


# Each loop guard and the value that turns it off.
GUARDS: dict[str, float] = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "reply_no_repeat_ngram_size": 0}


def check_decoding(decoding: Mapping[str, Any]) -> dict[str, Any]:
    """Engine-wide loop guards, validated: {"no_repeat_ngram_size": 4} or {"repetition_penalty": 1.2}."""
    unknown = set(decoding) - set(GUARDS)
    if unknown:
        raise ConfigError(f"unknown decoding setting(s) {', '.join(sorted(unknown))} (known: {', '.join(GUARDS)})")
    out: dict[str, Any] = {}
    for name, value in decoding.items():
        if name.endswith("no_repeat_ngram_size"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be a whole number >= 0 (0: off), got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 10:
            raise ConfigError(f"repetition_penalty must be a number in (0, 10] (1: off), got {value!r}")
        out[name] = value
    return out


def cut_at_stop(text: str, stop: Iterable[str]) -> str:
    """Text up to the earliest stop string."""
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]


def _held_back(text: str, keys: Iterable[str]) -> int:
    """Length of the longest suffix of `text` that could still grow into one of `keys`."""
    best = 0
    for k in keys:
        for n in range(min(len(k) - 1, len(text)), best, -1):
            if text.endswith(k[:n]):
                best = n
                break
    return best


class StopScanner:
    """Cut a text stream at the first stop string, never emitting a piece of one."""

    def __init__(self, stop: Iterable[str]):
        self.stop = tuple(s for s in stop if s)
        self._pending = ""

    def feed(self, piece: str) -> tuple[str, bool]:
        """(text safe to emit now, whether a stop string was reached)."""
        text = self._pending + piece
        cut = cut_at_stop(text, self.stop)
        if len(cut) < len(text):
            self._pending = ""
            return cut, True
        keep = _held_back(text, self.stop)
        self._pending = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep], False

    def flush(self) -> str:
        out, self._pending = self._pending, ""
        return out


class Rewriter:
    """Replace fixed strings in a text stream (e.g. name placeholders), across piece boundaries."""

    def __init__(self, replacements: Mapping[str, str]):
        self.replacements = dict(replacements)
        self._pending = ""

    def apply(self, text: str) -> str:
        for k, v in self.replacements.items():
            text = text.replace(k, v)
        return text

    def feed(self, piece: str) -> str:
        text = self.apply(self._pending + piece)
        keep = _held_back(text, self.replacements)
        self._pending = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        out, self._pending = self.apply(self._pending), ""
        return out


class Stream:
    """Text pieces as they are generated. Closing it (or setting `cancel`) stops generation.

    After the last piece: `finish_reason` ("stop" or "length"), `prompt_tokens`, `completion_tokens`.
    """

    def __init__(self, cancel: threading.Event | None = None):
        self.cancel = cancel if cancel is not None else threading.Event()
        self.finish_reason: str | None = None
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self._pieces: Iterator[str] = iter(())

    def __iter__(self) -> "Stream":
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        self.cancel.set()
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()

    def text(self) -> str:
        """Consume the rest of the stream and return it joined."""
        return "".join(self)


class Engine:
    """What every backend offers: raw completion, chat through a chat format, and streaming."""

    chat_format: ChatFormat
    tokenizer = None
    name: str = "model"
    # Longest prompt + completion in tokens, when the backend knows it.
    max_context: int | None = None
    # Strings to replace in everything a chat returns (official BayLing name placeholders).
    replacements: Mapping[str, str] = {}
    # Loop guards for requests that leave them unset (`check_decoding`); empty: plain decoding.
    decoding: Mapping[str, Any] = {}

    def guards(self, config: GenerationConfig) -> dict[str, Any]:
        """The loop guards in force for `config` (its own values, else the engine's), those that are on."""
        on = {}
        for name, off in GUARDS.items():
            value = getattr(config, name)
            value = self.decoding.get(name, off) if value is None else value
            if value != off:
                on[name] = value
        return on

    def complete(self, prompts: Sequence[str], config: GenerationConfig) -> list[str]:
        raise NotImplementedError

    def render(self, messages: Sequence[dict]) -> str:
        """The prompt a chat becomes (with the generation prompt for the next assistant turn)."""
        return render_with_spans(self.chat_format, messages, True, self.tokenizer)[0]

    def chat_config(self, config: GenerationConfig) -> GenerationConfig:
        """`config` plus the chat format's stop strings."""
        return replace(config, stop=tuple(dict.fromkeys(config.stop + self.chat_format.stop)))

    def chat(self, conversations: Sequence[Sequence[dict]], config: GenerationConfig) -> list[str]:
        prompts = []
        for messages in conversations:
            validate_messages(messages)
            prompts.append(self.render(messages))
        outs = self.complete(prompts, self.chat_config(config))
        return [Rewriter(self.replacements).apply(out.strip()) for out in outs]

    @property
    def requests_per_call(self) -> int:
        """How many requests to hand `complete` at once to keep the backend busy: its batch."""
        return int(getattr(self, "batch_size", 32))

    def count_tokens(self, text: str) -> int:
        if self.tokenizer is not None:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return max(1, len(text) // 3)  # rough: no tokenizer on this side

    def stream(
        self,
        prompt_or_messages: str | Sequence[dict],
        config: GenerationConfig,
        cancel: threading.Event | None = None,
    ) -> Stream:
        """Stream a raw completion (a str) or the next assistant turn of a chat (a message list)."""
        stream = Stream(cancel)
        if isinstance(prompt_or_messages, str):
            pieces = self._stream_prompt(prompt_or_messages, config, stream)
        else:
            validate_messages(prompt_or_messages)
            pieces = self._stream_chat(prompt_or_messages, config, stream)
        stream._pieces = self._rewritten(pieces, stream)
        return stream

    def _rewritten(self, pieces: Iterator[str], stream: Stream) -> Iterator[str]:
        rewriter = Rewriter(self.replacements) if self.replacements else None
        try:
            for piece in pieces:
                piece = rewriter.feed(piece) if rewriter else piece
                if piece:
                    yield piece
            tail = rewriter.flush() if rewriter else ""
            if tail:
                yield tail
        finally:
            if stream.finish_reason is None:  # closed early: stop the backend
                stream.cancel.set()
            close = getattr(pieces, "close", None)
            if close is not None:
                close()

    def _stream_chat(self, messages: Sequence[dict], config: GenerationConfig, stream: Stream) -> Iterator[str]:
        # A chat reply starts after the generation prompt: leading blanks are the template's.
        started = False
        for piece in self._stream_prompt(self.render(messages), self.chat_config(config), stream):
            if not started:
                piece = piece.lstrip()
                started = bool(piece)
            if piece:
                yield piece

    def _stream_prompt(self, prompt: str, config: GenerationConfig, stream: Stream) -> Iterator[str]:
        """Backends without token streaming: the whole completion as one piece."""
        if stream.cancel.is_set():
            stream.finish_reason = "stop"
            return
        text = self.complete([prompt], config)[0]
        stream.prompt_tokens = self.count_tokens(prompt)
        stream.completion_tokens = self.count_tokens(text) if text else 0
        stream.finish_reason = "length" if stream.completion_tokens >= config.max_new_tokens else "stop"
        if text:
            yield text


BATCHING = ("continuous", "static")
# Continuous batching refills a finished row from the requests still waiting: hand it this many batches at once.
REFILL = 8


def _contiguous_head(model) -> None:
    """Hand the output layer contiguous input. `generate` prefills with `logits_to_keep=1`, which
    gives the output layer the last position of every row as a strided view; on these CPUs the bf16
    matmul on that view took 51 s for 28 prompts against 1.6 s contiguous (same logits)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None or getattr(head, "_bayling_contiguous", None) is not None:
        return
    # The hook's handle stays on the layer: bench/bench_eval.py --static removes it for its baseline.
    head._bayling_contiguous = head.register_forward_pre_hook(
        lambda module, args: (args[0].contiguous(), *args[1:]) if args else None)


class TransformersEngine(Engine):
    """transformers generation; streams through TextIteratorStreamer.

    `batching="continuous"` (the default) runs greedy batches through transformers' continuous
    batching (`generate_batch`, paged KV cache): a row that finishes leaves the batch and the next
    prompt takes its place, so one runaway output no longer keeps `batch_size - 1` finished rows
    computing. Its outputs are token for token those of `generate` (tested). Sampling, loop guards
    (`GUARDS`), and stop strings of more than one character take the static path: `generate` on
    left-padded batches.
    """

    def __init__(self, model, tokenizer, chat_format: str | ChatFormat = "auto", batch_size: int = 8,
                 stop_token_ids: Sequence[int] = (), name: str | None = None, batching: str = "continuous"):
        if batching not in BATCHING:
            raise ValueError(f"batching must be one of {', '.join(BATCHING)}, got {batching!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.batching = batching
        self._containing: dict[str, frozenset[int]] = {}
        self.chat_format = get_format(chat_format, tokenizer)
        self.name = name or getattr(model.config, "_name_or_path", None) or "model"
        self.max_context = getattr(model.config, "max_position_embeddings", None)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        _contiguous_head(model)
        self._extra_stop_ids = tuple(stop_token_ids)
        self._stop_ids = self._single_token_stops()
        # Fast tokenizers refuse concurrent calls that change padding settings ("Already borrowed").
        self._tok_lock = threading.Lock()

    @classmethod
    def load(cls, model: str | ModelSpec | None = None, adapter: str | None = None, chat_format: str | None = None,
             **kw) -> "TransformersEngine":
        """An engine for a model reference or its `resolve_model` spec (bayling.models)."""
        spec = resolve_model(model, adapter, chat_format)
        m, tok = load_model(spec)
        kw.setdefault("stop_token_ids", spec.stop_token_ids)
        kw.setdefault("name", spec.name)
        engine = cls(m, tok, spec.chat_format, **kw)
        engine.replacements = spec.replacements
        return engine

    @property
    def requests_per_call(self) -> int:
        return self.batch_size * (REFILL if self.batching == "continuous" else 1)

    def _single_token_stops(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id, *self._extra_stop_ids}
        for s in self.chat_format.stop:
            tid = self.tokenizer.convert_tokens_to_ids(s)
            if isinstance(tid, int) and tid != self.tokenizer.unk_token_id:
                ids.add(tid)
        return sorted(i for i in ids if i is not None)

    def count_tokens(self, text: str) -> int:
        with self._tok_lock:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _generate_kwargs(self, config: GenerationConfig) -> dict:
        import torch

        tok = self.tokenizer
        kwargs = dict(max_new_tokens=config.max_new_tokens, eos_token_id=self._stop_ids, pad_token_id=tok.pad_token_id)
        # Stop strings that are one stop token (<end_of_turn>, <|eot_id|>) end generation as eos ids.
        stops = [s for s in config.stop if s and tok.convert_tokens_to_ids(s) not in self._stop_ids]
        if stops:
            kwargs["stopping_criteria"] = [_StopStrings(tok, stops, self._tok_lock)]
        if config.temperature > 0:
            torch.manual_seed(config.seed)
            kwargs.update(do_sample=True, temperature=config.temperature, top_p=config.top_p)
        else:
            kwargs.update(do_sample=False, top_p=None, top_k=None, temperature=None)
        guards = self.guards(config)
        reply_n = guards.pop("reply_no_repeat_ngram_size", 0)
        if reply_n:
            kwargs["logits_processor"] = [_ReplyNoRepeatNGram(reply_n)]
        kwargs.update(guards)
        return kwargs

    def _text_stops(self, config: GenerationConfig) -> tuple[str, ...]:
        tok = self.tokenizer
        return (*config.stop, tok.eos_token or "", tok.pad_token or "")

    def complete(self, prompts: Sequence[str], config: GenerationConfig) -> list[str]:
        import torch

        # Continuous batching's logits processors see no token history: loop guards take the static path.
        if self.batching == "continuous" and config.temperature == 0 and prompts and not self.guards(config):
            stop_ids = self._stop_ids_for(config)
            if stop_ids is not None:
                return self._complete_continuous(prompts, config, stop_ids)
        outputs: list[str] = []
        tok = self.tokenizer
        for start in range(0, len(prompts), self.batch_size):
            batch = list(prompts[start : start + self.batch_size])
            with self._tok_lock:
                tok.padding_side = "left"
                enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(self.model.device) for k, v in enc.items()}
            with torch.inference_mode():
                out = self.model.generate(**enc, **self._generate_kwargs(config))
            new = out[:, enc["input_ids"].shape[1] :]
            for row in new:
                outputs.append(cut_at_stop(tok.decode(row, skip_special_tokens=False), self._text_stops(config)))
        return outputs

    def _stop_ids_for(self, config: GenerationConfig) -> list[int] | None:
        """Token ids that end a row exactly where the stop strings would: the stop tokens, plus for
        a one-character stop ("\n") every vocabulary entry containing it (each occurrence of the
        character lies inside one token). None when a longer stop string needs text matching."""
        ids = set(self._stop_ids)
        for s in config.stop:
            if not s or self.tokenizer.convert_tokens_to_ids(s) in self._stop_ids:
                continue
            if len(s) != 1:
                return None
            if s not in self._containing:
                with self._tok_lock:
                    pieces = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])
                self._containing[s] = frozenset(i for i, piece in enumerate(pieces) if s in piece)
            ids |= self._containing[s]
        return sorted(ids)

    def _complete_continuous(self, prompts: Sequence[str], config: GenerationConfig, stop_ids: list[int]) -> list[str]:
        import torch
        from transformers import GenerationConfig as HFGenerationConfig
        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        from bayling.infer.paged_attention import install

        install()  # attention over each request's own cache block, not the whole batch's
        tok = self.tokenizer
        with self._tok_lock:
            inputs = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        page = 64
        longest = max(len(x) for x in inputs) + config.max_new_tokens
        rows = min(self.batch_size, len(inputs))
        # A paged cache just big enough for `rows` of the longest request (the default sizes it
        # from free accelerator memory, which on a CPU means gigabytes to allocate).
        cache = ContinuousBatchingConfig(page_size=page, num_blocks=rows * (-(-longest // page) + 1),
                                         max_batch_tokens=max(2048, longest), max_requests_per_batch=rows)
        gen = HFGenerationConfig(max_new_tokens=config.max_new_tokens, do_sample=False, eos_token_id=stop_ids,
                                 pad_token_id=tok.pad_token_id)
        with torch.inference_mode():
            done = self.model.generate_batch(inputs=inputs, generation_config=gen, continuous_batching_config=cache,
                                             warmup=False, progress_bar=False)
        by_prompt = [done[rid] for rid in sorted(done, key=lambda r: int(r.rsplit("_", 1)[1]))]
        failed = [o.error for o in by_prompt if o.error]
        if failed:
            raise RuntimeError(f"continuous batching failed: {failed[0]}")
        with self._tok_lock:
            texts = tok.batch_decode([o.generated_tokens for o in by_prompt], skip_special_tokens=False)
        return [cut_at_stop(t, self._text_stops(config)) for t in texts]

    def _stream_prompt(self, prompt: str, config: GenerationConfig, stream: Stream) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        cancel = stream.cancel

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kw):
                return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device)

        with self._tok_lock:
            enc = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        enc = {k: v.to(self.model.device) for k, v in enc.items()}
        n_prompt = enc["input_ids"].shape[1]
        stream.prompt_tokens = n_prompt
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=False)
        result: dict = {}

        def run() -> None:
            try:
                with torch.inference_mode():
                    kwargs = self._generate_kwargs(config)
                    criteria = StoppingCriteriaList([_Cancelled(), *kwargs.pop("stopping_criteria", [])])
                    out = self.model.generate(**enc, **kwargs, streamer=streamer, stopping_criteria=criteria)
                result["n"] = out.shape[1] - n_prompt
                result["last"] = int(out[0, -1]) if result["n"] else None
            except BaseException as e:  # surfaced in the consumer's thread
                result["error"] = e
                streamer.end()

        thread = threading.Thread(target=run, name="bayling-generate", daemon=True)
        thread.start()
        scanner = StopScanner(self._text_stops(config))
        stopped = False
        try:
            for piece in streamer:
                text, stopped = scanner.feed(piece)
                if text:
                    yield text
                if stopped:
                    cancel.set()  # the rest is past a stop string: end generation now
                    break
            if not stopped:
                tail = scanner.flush()
                if tail:
                    yield tail
        finally:
            if not stopped and stream.finish_reason is None and not result:
                cancel.set()  # the consumer went away before the end
            thread.join()
        if "error" in result:
            raise result["error"]
        stream.completion_tokens = result.get("n", 0)
        ran_out = stream.completion_tokens >= config.max_new_tokens and result.get("last") not in self._stop_ids
        stream.finish_reason = "length" if ran_out and not stopped else "stop"


class _ReplyNoRepeatNGram:
    """A logits processor: no n-gram of the reply twice — the reply's own tokens only, not the prompt's."""

    def __init__(self, n: int):
        self.n = n
        self.start: int | None = None

    def __call__(self, input_ids, scores):
        if self.start is None:  # the first call sees the prompt alone
            self.start = input_ids.shape[1]
        k = self.n - 1
        for row, ids in enumerate(input_ids[:, self.start:].tolist()):
            if len(ids) < self.n:
                continue
            prefix = ids[len(ids) - k:] if k else []
            banned = {ids[i + k] for i in range(len(ids) - k) if ids[i:i + k] == prefix}
            scores[row, list(banned)] = float("-inf")
        return scores


class _StopStrings:
    """A stopping criterion: a row is done once its new tokens contain a stop string.

    transformers' own `stop_strings` scans the whole vocabulary on every `generate` call — seconds
    with Gemma's 262k tokens, more than the generation itself; decoding the last few tokens of
    each row costs microseconds a step.
    """

    def __init__(self, tokenizer, stops: Sequence[str], lock: threading.Lock):
        self.tokenizer, self.stops, self.lock = tokenizer, tuple(stops), lock
        self.window = max(len(s) for s in self.stops) + 2  # a stop string spans at most that many tokens
        self.prompt_len: int | None = None

    def __call__(self, input_ids, scores, **kw):
        import torch

        if self.prompt_len is None:  # the first call comes after the first new token
            self.prompt_len = input_ids.shape[1] - 1
        tail = input_ids[:, max(self.prompt_len, input_ids.shape[1] - self.window):]
        with self.lock:
            texts = self.tokenizer.batch_decode(tail, skip_special_tokens=False)
        return torch.tensor([any(s in t for s in self.stops) for t in texts], device=input_ids.device)
