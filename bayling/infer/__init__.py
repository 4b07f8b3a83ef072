"""Inference: one `Engine` interface over transformers, llama.cpp and remote OpenAI-compatible
servers, plus what runs on it — the terminal chat, batch translation, official checkpoints and
delta weights. Heavy imports happen inside the functions that need them."""
