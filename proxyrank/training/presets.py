"""Model presets by name: each family's shape (width, depth, heads, FFN) at CPU scale and the
paper's public shapes. Apart from models.py so that proxyrank.config (loaded by every stage, to
check preset names) does not make every stage depend on the code that builds the models."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    family: str
    hidden: int
    layers: int
    heads: int
    ffn: int


PRESETS = {
    # CPU scale (embedded default and smoke profile)
    "gpt2-nano": Preset("gpt2", 32, 1, 2, 128),
    "gpt2-tiny": Preset("gpt2", 64, 2, 2, 256),
    "gpt2-mini": Preset("gpt2", 128, 2, 4, 512),
    "pythia-nano": Preset("pythia", 32, 1, 2, 128),
    "pythia-tiny": Preset("pythia", 64, 2, 2, 256),
    "pythia-mini": Preset("pythia", 128, 4, 4, 512),
    "pythia-small": Preset("pythia", 256, 4, 4, 1024),
    "opt-nano": Preset("opt", 32, 1, 2, 128),
    "opt-tiny": Preset("opt", 64, 2, 2, 256),
    "opt-mini": Preset("opt", 128, 2, 4, 512),
    # the nano proxies 4x as wide, depth and head width kept (the ladder's width axis, rung proxy-wide)
    "gpt2-nano-x4": Preset("gpt2", 128, 1, 8, 512),
    "pythia-nano-x4": Preset("pythia", 128, 1, 8, 512),
    "opt-nano-x4": Preset("opt", 128, 1, 8, 512),
    # the paper's models, public shapes
    "gpt2-125m": Preset("gpt2", 768, 12, 12, 3072),
    "opt-125m": Preset("opt", 768, 12, 12, 3072),
    "pythia-70m": Preset("pythia", 512, 6, 8, 2048),
    "pythia-160m": Preset("pythia", 768, 12, 12, 3072),
    "pythia-410m": Preset("pythia", 1024, 24, 16, 4096),
    "pythia-1b": Preset("pythia", 2048, 16, 8, 8192),
}
