"""Models from presets (training/presets.py): HF transformers config classes, random init, SDPA attention.

CPU presets are the smallest models that still learn something from ~1M tokens; the paper's
presets carry the public shapes of GPT2-125M, OPT-125M and the Pythia suite.
"""
from __future__ import annotations

import functools

from proxyrank.training.presets import PRESETS, Preset  # noqa: F401  (re-exported)


def build_config(preset: str, vocab_size: int, seq_len: int):
    """A transformers config for `preset`; dropout off, since proxies train one epoch."""
    from transformers import GPT2Config, GPTNeoXConfig, OPTConfig

    p = PRESETS[preset]
    common = dict(vocab_size=vocab_size, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    if p.family == "gpt2":
        cfg = GPT2Config(n_embd=p.hidden, n_layer=p.layers, n_head=p.heads, n_inner=p.ffn,
                         n_positions=seq_len, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                         **common)
    elif p.family == "pythia":
        cfg = GPTNeoXConfig(hidden_size=p.hidden, num_hidden_layers=p.layers,
                            num_attention_heads=p.heads, intermediate_size=p.ffn,
                            max_position_embeddings=seq_len, attention_dropout=0.0,
                            hidden_dropout=0.0, tie_word_embeddings=False, **common)
    else:
        cfg = OPTConfig(hidden_size=p.hidden, num_hidden_layers=p.layers, num_attention_heads=p.heads,
                        ffn_dim=p.ffn, max_position_embeddings=seq_len, word_embed_proj_dim=p.hidden,
                        dropout=0.0, attention_dropout=0.0, **common)
    cfg._attn_implementation = "sdpa"
    return cfg


def build_model(preset: str, vocab_size: int, seq_len: int):
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.set_verbosity_error()  # per-call notes about padding do not apply: nothing is padded
    return AutoModelForCausalLM.from_config(build_config(preset, vocab_size, seq_len),
                                            attn_implementation="sdpa")


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@functools.lru_cache(maxsize=None)
def param_count(preset: str, vocab_size: int, seq_len: int) -> int:
    """Exact parameter count without allocating: the model built on the meta device."""
    import torch

    with torch.device("meta"):
        return count_params(build_model(preset, vocab_size, seq_len))


def train_flops(n_params: int, preset: str, seq_len: int, tokens: int) -> int:
    """Training FLOPs: 6N per token for the weights plus 12·L·d·T for attention (PaLM, appendix B)."""
    p = PRESETS[preset]
    return tokens * (6 * n_params + 12 * p.layers * p.hidden * seq_len)
