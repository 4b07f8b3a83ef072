"""bayling: BayLing, complete — interactive-translation data, multi-turn SFT, serving and evaluation."""

__version__ = "0.1.0"
