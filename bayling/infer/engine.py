"""The engine interface: text in, text out, whatever runs underneath.

Front ends (CLI, server, web page, eval) talk to an `Engine`; backends implement `complete`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from bayling.chat_formats import ChatFormat, get_format, render_with_spans, validate_messages

__all__ = ["Engine", "GenerationConfig", "TransformersEngine", "cut_at_stop"]


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int = 0


def cut_at_stop(text: str, stop: Iterable[str]) -> str:
    """Text up to the earliest stop string."""
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]


class Engine:
    """What every backend offers: raw completion, and chat through a chat format."""

    chat_format: ChatFormat

    def complete(self, prompts: Sequence[str], config: GenerationConfig) -> list[str]:
        raise NotImplementedError

    def chat(self, conversations: Sequence[Sequence[dict]], config: GenerationConfig) -> list[str]:
        prompts = []
        for messages in conversations:
            validate_messages(messages)
            prompts.append(render_with_spans(self.chat_format, messages, True, self.tokenizer)[0])
        stop = tuple(dict.fromkeys(config.stop + self.chat_format.stop))
        cfg = GenerationConfig(**{**config.__dict__, "stop": stop})
        return [out.strip() for out in self.complete(prompts, cfg)]


class TransformersEngine(Engine):
    """transformers `generate`, batched with left padding."""

    def __init__(self, model, tokenizer, chat_format: str | ChatFormat = "auto", batch_size: int = 8):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.chat_format = get_format(chat_format, tokenizer)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._stop_ids = self._single_token_stops()

    @classmethod
    def load(cls, model: str | None = None, adapter: str | None = None, chat_format: str | None = None, **kw):
        from bayling.models import default_chat_format, load_model

        m, tok = load_model(model, adapter=adapter)
        return cls(m, tok, chat_format or default_chat_format(adapter or model), **kw)

    def _single_token_stops(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id}
        for s in self.chat_format.stop:
            tid = self.tokenizer.convert_tokens_to_ids(s)
            if isinstance(tid, int) and tid != self.tokenizer.unk_token_id:
                ids.add(tid)
        return sorted(i for i in ids if i is not None)

    def complete(self, prompts: Sequence[str], config: GenerationConfig) -> list[str]:
        import torch

        outputs: list[str] = []
        tok = self.tokenizer
        tok.padding_side = "left"
        for start in range(0, len(prompts), self.batch_size):
            batch = list(prompts[start : start + self.batch_size])
            enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(self.model.device) for k, v in enc.items()}
            kwargs = dict(
                max_new_tokens=config.max_new_tokens,
                eos_token_id=self._stop_ids,
                pad_token_id=tok.pad_token_id,
            )
            if config.stop:
                kwargs.update(stop_strings=list(config.stop), tokenizer=tok)
            if config.temperature > 0:
                torch.manual_seed(config.seed)
                kwargs.update(do_sample=True, temperature=config.temperature, top_p=config.top_p)
            else:
                kwargs.update(do_sample=False, top_p=None, top_k=None, temperature=None)
            with torch.inference_mode():
                out = self.model.generate(**enc, **kwargs)
            new = out[:, enc["input_ids"].shape[1] :]
            for row in new:
                text = tok.decode(row, skip_special_tokens=False)
                text = cut_at_stop(text, (*config.stop, tok.eos_token or "", tok.pad_token or ""))
                outputs.append(text)
        return outputs
