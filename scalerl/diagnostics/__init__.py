"""Diagnostics: pure functions over networks, and the hooks that log them during training (the hooks that
intervene, resets and episode stops, are in scalerl.interventions)."""

from scalerl.diagnostics.norms import NormsConfig, NormsHook, layer_norms, parameter_layers

__all__ = ["NormsConfig", "NormsHook", "layer_norms", "parameter_layers"]
