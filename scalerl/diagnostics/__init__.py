"""Diagnostics: pure functions over networks, and the hooks that log them during training."""

from scalerl.diagnostics.norms import NormsConfig, NormsHook, layer_norms, parameter_layers

__all__ = ["NormsConfig", "NormsHook", "layer_norms", "parameter_layers"]
