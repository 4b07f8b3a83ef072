"""A tiny randomly initialised model + tokenizer, built in seconds with no network.

Used by the tests and benchmarks wherever behaviour (not quality) is being checked.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = [
    "<pad>", "<bos>", "<eos>", "<unk>",
    "<start_of_turn>", "<end_of_turn>",
    "<|im_start|>", "<|im_end|>",
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
    "</s>",
]

_CORPUS = [
    "Translate the following sentence into German.",
    "The quick brown fox jumps over the lazy dog. 12345 67890",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "请把下面的句子翻译成中文。我们今天去公园散步。",
    "Le renard brun rapide saute par-dessus le chien paresseux.",
    "### Instruction:\n### Response:\n system user assistant model",
    "Быстрая коричневая лиса прыгает через ленивую собаку.",
    "素早い茶色の狐がのろまな犬を飛び越える。",
]


def build_tiny_tokenizer(out: Path | None = None):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=SPECIAL_TOKENS[4:],
    )
    if out is not None:
        fast.save_pretrained(out)
    return fast


def build_tiny_model(out: Path, *, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Write a tiny Llama-architecture model and its tokenizer to `out`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    out = Path(out)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
