"""Chat formats: messages -> model text, plus which tokens are the assistant's (for multi-turn SFT).

Each format is a Hugging Face Jinja chat template whose assistant turns sit in
`{% generation %}` blocks, so `tokenizer.apply_chat_template(..., return_assistant_tokens_mask=True)`
works on a tokenizer that carries it, and any tool of the ecosystem (vLLM, TRL, llama.cpp's
server) renders exactly what we trained on. A model's own template without generation blocks is
still supported: assistant spans are then found by rendering growing prefixes of the chat.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence
from bayling.errors import BaylingError

__all__ = [
    "ChatFormat",
    "ChatFormatError",
    "FORMATS",
    "encode_chat",
    "get_format",
    "template_format",
    "validate_messages",
]

Message = dict[str, Any]

BAYLING_V1_SYSTEM = (
    "I am an intelligent language assistant developed by the NLP Group of ICT/CAS.\n"
    "Below is a dialog consisting of instructions and responses. "
    "Write a response that completes the request.\n\n"
)
BAYLING2_SYSTEM = "I am BayLing developed by the NLP Group of ICT/CAS."

# The released BayLing weights answer with name placeholders filled in at serving time.
NAME_PLACEHOLDERS = {"[NAME]": "BayLing", "[名字]": "百聆", "[AFFILIATION]": "ICT/CAS", "[单位]": "中国科学院计算技术研究所"}

_BAYLING_V1 = (
    "{%- if messages[0]['role'] == 'system' -%}"
    "{{- messages[0]['content'] | trim }}{{ '\\n\\n' }}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{{- default_system }}{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{ '### Instruction:\\n' + message['content'] + '\\n' }}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ '### Response:\\n' }}{% generation %}{{ message['content'] + eos }}{% endgeneration %}{{ '\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '### Response:\\n' }}{%- endif -%}"
)

_LLAMA3 = (
    "{{- '<|begin_of_text|>' }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set system = messages[0]['content'] -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set system = default_system -%}{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- if system -%}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' + system + '<|eot_id|>' }}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{ message['content'] + '<|eot_id|>' }}{% endgeneration %}"
    "{%- else -%}"
    "{{- message['content'] + '<|eot_id|>' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif -%}"
)

# Gemma has no system role: a system message is prepended to the first user turn, as Google's
# own template does.
_GEMMA = (
    "{{- bos }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_prefix = messages[0]['content'] + '\\n\\n' -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_prefix = '' -%}{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- '<start_of_turn>model\\n' }}{% generation %}{{ message['content'] + '<end_of_turn>' }}{% endgeneration %}{{ '\\n' }}"
    "{%- else -%}"
    "{{- '<start_of_turn>user\\n' + (first_prefix if loop.first else '') + message['content'] + '<end_of_turn>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)

_CHATML = (
    "{%- if messages[0]['role'] != 'system' and default_system -%}"
    "{{- '<|im_start|>system\\n' + default_system + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
    "{%- else -%}"
    "{{- message['content'] + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


class ChatFormatError(BaylingError, ValueError):
    """Messages that no chat format can render (wrong roles, empty content, ...)."""


@dataclass(frozen=True)
class ChatFormat:
    """A chat template plus what a generator needs to know about it."""

    name: str
    template: str
    stop: tuple[str, ...]
    default_system: str = ""
    # Special strings the template writes verbatim; bos/eos fill in from the tokenizer.
    variables: dict[str, str] = field(default_factory=dict)

    def full_template(self) -> str:
        """The template with our variables bound, as a tokenizer's `chat_template` carries it."""
        header = "".join(
            "{%- set " + k + " = " + repr(v) + " -%}"
            for k, v in {"default_system": self.default_system, **self.variables}.items()
        )
        return header + self.template

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = False) -> str:
        return render_with_spans(self, messages, add_generation_prompt)[0]


FORMATS: dict[str, ChatFormat] = {
    "bayling-v1": ChatFormat(
        "bayling-v1", _BAYLING_V1, stop=("</s>", "### Instruction:"),
        default_system=BAYLING_V1_SYSTEM, variables={"eos": "</s>"},
    ),
    "bayling2-llama3": ChatFormat(
        "bayling2-llama3", _LLAMA3, stop=("<|eot_id|>", "<|end_of_text|>"),
        default_system=BAYLING2_SYSTEM,
    ),
    "llama3": ChatFormat("llama3", _LLAMA3, stop=("<|eot_id|>", "<|end_of_text|>")),
    "gemma": ChatFormat("gemma", _GEMMA, stop=("<end_of_turn>", "<eos>"), variables={"bos": "<bos>"}),
    "chatml": ChatFormat("chatml", _CHATML, stop=("<|im_end|>",)),
}


def template_format(template: str, eos: str | None) -> ChatFormat:
    """A model's own Jinja chat template as a format, stopping at its end-of-sequence token."""
    return ChatFormat("auto", template, stop=(eos,) if eos else ())


def _hf_format(tokenizer) -> ChatFormat:
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        raise ChatFormatError(
            "the tokenizer has no chat template; choose one of: " + ", ".join(FORMATS)
        )
    return template_format(template, tokenizer.eos_token)


def get_format(name: str | ChatFormat = "auto", tokenizer=None) -> ChatFormat:
    """A format by name; "auto" means the tokenizer's own chat template."""
    if isinstance(name, ChatFormat):
        return name
    if name in FORMATS:
        return FORMATS[name]
    if name in ("auto", "hf") and tokenizer is not None:
        return _hf_format(tokenizer)
    raise ChatFormatError(f"unknown chat format {name!r}; choose one of: auto, {', '.join(FORMATS)}")


_ROLES = ("system", "user", "assistant")
_GENERATION_BLOCK = re.compile(r"\{%-?\s*generation\s*-?%\}")


def validate_messages(messages: Sequence[Message]) -> None:
    """Raise ChatFormatError naming the first message that breaks the chat shape."""
    if not isinstance(messages, (list, tuple)):
        raise ChatFormatError(f"messages must be a list of {{role, content}} objects, not {type(messages).__name__}")
    if not messages:
        raise ChatFormatError("no messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ChatFormatError(f"message {i}: needs 'role' and 'content'")
        if m["role"] not in _ROLES:
            raise ChatFormatError(f"message {i}: unknown role {m['role']!r} (use {', '.join(_ROLES)})")
        if m["role"] == "system" and i != 0:
            raise ChatFormatError(f"message {i}: a system message may only come first")
        content = m["content"]
        if content is not None and not isinstance(content, str):
            raise ChatFormatError(f"message {i}: content must be a string, not {type(content).__name__}")
        if not content or not content.strip():
            raise ChatFormatError(f"message {i}: empty content")
        if "weight" in m and (m["role"] != "assistant" or m["weight"] not in (0, 1) or isinstance(m["weight"], bool)):
            raise ChatFormatError(f"message {i}: 'weight' is 0 or 1, on assistant messages only")


def _render(template: str, messages, add_generation_prompt: bool, tracked: bool, **kw):
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, spans = render_jinja_template(
        conversations=[list(messages)],
        chat_template=template,
        return_assistant_tokens_mask=tracked,
        add_generation_prompt=add_generation_prompt,
        **kw,
    )
    return rendered[0], (spans[0] if spans else [])


def render_with_spans(
    fmt: ChatFormat, messages: Sequence[Message], add_generation_prompt: bool = False, tokenizer=None
) -> tuple[str, list[tuple[int, int]]]:
    """Render and return the character spans of every assistant turn."""
    kw = {}
    if tokenizer is not None:
        kw = {"bos_token": tokenizer.bos_token or "", "eos_token": tokenizer.eos_token or ""}
    template = fmt.full_template() if fmt.name != "auto" else fmt.template
    if _GENERATION_BLOCK.search(template):
        return _render(template, messages, add_generation_prompt, True, **kw)
    # A template without generation blocks: the assistant's text is what rendering message i
    # adds after the generation prompt of the chat before it.
    text, _ = _render(template, messages, add_generation_prompt, False, **kw)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt, _ = _render(template, messages[:i], True, False, **kw)
        upto, _ = _render(template, messages[: i + 1], False, False, **kw)
        if not text.startswith(prompt) or not upto.startswith(prompt):
            raise ChatFormatError(
                "the tokenizer's chat template is not prefix-stable; pick an explicit --chat-format"
            )
        # The trailing newline a template writes after the end-of-turn token is not learned.
        end = len(upto.rstrip("\n"))
        spans.append((len(prompt), end))
    return text, spans


def encode_chat(
    tokenizer, messages: Sequence[Message], fmt: str | ChatFormat = "auto", term_weight: float = 1.0,
    unlikelihood: float = 0.0,
) -> tuple[list[int], list[int | float]]:
    """Token ids of the rendered chat and a mask that is 1 exactly on assistant tokens (0 elsewhere).

    With `term_weight` != 1, the tokens of an assistant message that spell one of its "terms" (the
    words the user asked that answer to contain) carry that weight instead of 1. With
    `unlikelihood` > 0, the tokens of an untrained ("weight": 0) assistant message that repeat an
    earlier 4-gram of that message carry -unlikelihood: the trainer pushes their probability down."""
    validate_messages(messages)
    fmt = get_format(fmt, tokenizer)
    text, spans = render_with_spans(fmt, messages, tokenizer=tokenizer)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc["input_ids"]
    assistant = [m for m in messages if m["role"] == "assistant"]
    # OpenAI's fine-tuning field: an assistant message with "weight": 0 is context, not trained.
    weights = [m.get("weight", 1) for m in assistant]
    if len(spans) != len(weights):
        raise ChatFormatError(f"format {fmt.name}: {len(spans)} assistant spans for {len(weights)} assistant messages")
    marked = _term_spans(text, spans, assistant) if term_weight != 1 else []
    mask: list[int | float] = [0] * len(ids)
    untrained: dict[int, list[int]] = {}  # span -> its token positions, for weight-0 spans
    j = k = 0
    for t, (a, b) in enumerate(enc["offset_mapping"]):
        while j < len(spans) and spans[j][1] <= a:
            j += 1
        if j < len(spans) and a >= spans[j][0] and b <= spans[j][1] and b > a:
            mask[t] = weights[j]
            if not weights[j]:
                untrained.setdefault(j, []).append(t)
            while k < len(marked) and marked[k][1] <= a:
                k += 1
            if weights[j] and k < len(marked) and marked[k][0] < b:  # the token overlaps a term
                mask[t] = term_weight
    if unlikelihood:
        for positions in untrained.values():
            for i in repeated_ngram_ends([ids[t] for t in positions], UNLIKELIHOOD_N):
                mask[positions[i]] = -unlikelihood
    return ids, mask


UNLIKELIHOOD_N = 4  # Welleck et al. (2019) use 4-grams for sequence-level unlikelihood


def repeated_ngram_ends(ids: Sequence[int], n: int) -> list[int]:
    """Indices i whose n-gram ids[i-n+1 : i+1] already occurred earlier (starting before i-n+1)."""
    seen: set[tuple[int, ...]] = set()
    found = []
    for i in range(n - 1, len(ids)):
        gram = tuple(ids[i - n + 1 : i + 1])
        if gram in seen:
            found.append(i)
        seen.add(gram)
    return found


def _term_spans(text: str, spans: list[tuple[int, int]], assistant: Sequence[Message]) -> list[tuple[int, int]]:
    """Sorted character spans of every occurrence of an assistant message's "terms" in its own turn."""
    found = []
    for (a, b), m in zip(spans, assistant):
        for term in m.get("terms") or ():
            start = text.find(term, a, b)
            while term and start != -1:
                found.append((start, start + len(term)))
                start = text.find(term, start + len(term), b)
    return sorted(found)


def attach_format(tokenizer, fmt: str | ChatFormat) -> None:
    """Put the format's template on the tokenizer, so a saved tokenizer carries it."""
    fmt = get_format(fmt, tokenizer)
    if fmt.name != "auto":
        tokenizer.chat_template = fmt.full_template()


def fill_name_placeholders(text: str) -> str:
    """The released BayLing weights write placeholders for their own name; fill them in."""
    for k, v in NAME_PLACEHOLDERS.items():
        text = text.replace(k, v)
    return text
