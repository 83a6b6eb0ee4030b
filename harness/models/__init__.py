"""The model zoo (MobileNetV1/V2, MCUNet-style, ResNet-8, DS-CNN, a tiny CNN, user models) and training."""

from harness.models.registry import build_model, checkpoint_path, load_checkpoint, model_config, model_names

__all__ = ["build_model", "checkpoint_path", "load_checkpoint", "model_config", "model_names"]
