"""Per-layer gradient and weight norms: the first thing to look at when a larger network trains worse
(the "Stable Gradients" paper reads vanishing and exploding gradients off these per layer)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from scalerl.checks import positive
from scalerl.hooks.base import MeasuringHook


def parameter_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers of a network that hold parameters themselves (Linear, Conv, norms, SoftMoE), by name."""
    return [(name, layer) for name, layer in module.named_modules()
            if next(layer.parameters(recurse=False), None) is not None]


def layer_norms(module: nn.Module) -> dict[str, tuple[float, float]]:
    """{layer: (gradient L2 norm, weight L2 norm)} over each layer's own parameters, and "" for the whole
    network. A parameter without a gradient counts as a zero gradient."""
    layers = parameter_layers(module)
    params = [p for _, layer in layers for p in layer.parameters(recurse=False)]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    with torch.no_grad():
        squares = torch.stack([torch.stack(torch._foreach_norm(grads)),
                               torch.stack(torch._foreach_norm(params))]).square()
    per_param = squares.tolist()
    norms, index = {}, 0
    for name, layer in layers:
        count = sum(1 for _ in layer.parameters(recurse=False))
        grad_sq, weight_sq = sum(per_param[0][index:index + count]), sum(per_param[1][index:index + count])
        norms[name] = (grad_sq**0.5, weight_sq**0.5)
        index += count
    norms[""] = (sum(per_param[0]) ** 0.5, sum(per_param[1]) ** 0.5)
    return norms


@dataclass(frozen=True)
class NormsConfig:
    every: int = 1_000
    """Updates between measurements (the first update is measured)."""

    def __post_init__(self) -> None:
        positive("hook_opts.norms.every", self.every)


class NormsHook(MeasuringHook):
    """Every `every` updates, the gradient (before clipping) and weight L2 norm of each layer of every
    network an optimizer steps, logged as grad_norm/<module>.<layer> and weight_norm/<module>.<layer>
    (and grad_norm/<module> for the whole network) with the next metrics record."""

    name = "norms"
    config_class = NormsConfig
    description = "per-layer gradient and weight norms every N updates"

    def after_backward(self, optimizer: str, modules: dict[str, nn.Module]) -> None:
        if self.updates % self.cfg.every:
            return
        for module_name, module in modules.items():
            for layer, (grad, weight) in layer_norms(module).items():
                key = f"{module_name}.{layer}" if layer else module_name
                self.pending[f"grad_norm/{key}"] = grad
                self.pending[f"weight_norm/{key}"] = weight

    def after_update(self, metrics: dict[str, torch.Tensor]) -> None:
        self.updates += 1
