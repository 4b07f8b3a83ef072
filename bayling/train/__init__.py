"""Multi-turn SFT: assistant-only loss, packing, LoRA or full."""

from bayling.train.trainer import TrainConfig, load_recipe, train

__all__ = ["TrainConfig", "load_recipe", "train"]
