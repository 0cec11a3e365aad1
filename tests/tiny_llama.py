"""A tiny randomly initialised Llama for the training tests: built from a config (no
download), small enough that a forward and backward pass take milliseconds."""

from __future__ import annotations

from typing import Any


def tiny_llama(
    *,
    layers: int = 2,
    vocab: int = 64,
    hidden: int = 32,
    intermediate: int = 48,
    heads: int = 4,
    kv_heads: int = 2,
) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=128,
    )
    return LlamaForCausalLM(config)
