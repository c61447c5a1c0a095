"""Resetting inactive neurons: ReDo (Sokar et al., ICML 2023) finds them by their activations, ReGraMa
(Liu et al., NeurIPS 2025) by their gradients (`scalerl.diagnostics.activity`).

Every N updates, on that update's own batch, each resettable layer's inactive neurons get:
- their incoming weights re-drawn from the layer's own initializer (a fresh layer of the same shape,
  orthogonal with the network's gain where the network was built so, as Dopamine re-draws from the layer's
  initializer) and their bias set to zero; a noisy layer's noise scales back to their initial value;
- their outgoing weights (the consuming layers' columns, a noisy consumer's noise scales too; for a conv
  feeding a dense layer through a flatten, every position of the channel) set to zero, so the network
  computes the same function right after the reset, noise included (unless a norm follows the layer: its
  statistics change);
- the optimizer's per-weight state for those weights (Adam's moments, momentum) set to zero, so no old
  momentum pushes the fresh weights;
- with ReGraMa, the norm that follows the layer gets its scale back to 1 and its shift to 0 for them.
Output layers, and layers that feed a residual stream or a concatenation, are never reset (see
`neuron_layers`). Target networks are not touched: they follow the online ones through their updates.
An optional cap resets at most a share of a layer's neurons, the lowest-scoring first.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from scalerl.checks import in_range, positive
from scalerl.diagnostics.activity import NeuronLayer, grama_scores, inactive, neuron_layers, redo_scores
from scalerl.hooks.base import MeasuringHook
from scalerl.nets import redraw


def outgoing_columns(layer: NeuronLayer, consumer: nn.Module, mask: torch.Tensor) -> torch.Tensor:
    """The consumer's input columns fed by the masked neurons: a flattened channel feeds H x W columns."""
    inputs = consumer.in_features if isinstance(consumer, nn.Linear) else consumer.in_channels
    return torch.repeat_interleave(mask, inputs // layer.neurons)


def zero_state(optimizer: torch.optim.Optimizer | None, parameter: torch.Tensor, index: tuple) -> None:
    """Zero the optimizer's per-weight state (tensors shaped like the parameter) at `index`."""
    if optimizer is None or parameter not in optimizer.state:
        return
    for value in optimizer.state[parameter].values():
        if isinstance(value, torch.Tensor) and value.shape == parameter.shape:
            value[index] = 0.0


@torch.no_grad()
def reset_neurons(layer: NeuronLayer, mask: torch.Tensor, optimizer: torch.optim.Optimizer | None = None,
                  reset_norm: bool = False) -> int:
    """Reset the masked neurons of one layer (see the module docstring); returns how many."""
    count = int(mask.sum())
    if count == 0:
        return 0
    fresh = copy.deepcopy(layer.layer)
    redraw(fresh)
    weight = layer.layer.weight
    weight[mask] = fresh.weight[mask].to(weight.dtype)
    zero_state(optimizer, weight, (mask,))
    if layer.layer.bias is not None:
        layer.layer.bias[mask] = 0.0
        zero_state(optimizer, layer.layer.bias, (mask,))
    for name in ("weight_sigma", "bias_sigma"):  # a noisy layer's noise scales start where they started
        if (sigma := getattr(layer.layer, name, None)) is not None:
            sigma[mask] = layer.layer.sigma_init
            zero_state(optimizer, sigma, (mask,))
    for consumer in layer.consumers:
        columns = outgoing_columns(layer, consumer, mask)
        for name in ("weight", "weight_sigma"):  # a noisy consumer's noise reaches the fresh neurons too
            if (incoming := getattr(consumer, name, None)) is not None:
                incoming[:, columns] = 0.0
                zero_state(optimizer, incoming, (slice(None), columns))
    if reset_norm and layer.norm is not None:
        if getattr(layer.norm, "weight", None) is not None:
            layer.norm.weight[mask] = 1.0
            zero_state(optimizer, layer.norm.weight, (mask,))
        if getattr(layer.norm, "bias", None) is not None:
            layer.norm.bias[mask] = 0.0
            zero_state(optimizer, layer.norm.bias, (mask,))
    return count


def capped(mask: torch.Tensor, scores: torch.Tensor, max_share: float) -> torch.Tensor:
    """At most max_share of the neurons, the lowest-scoring of the masked ones."""
    limit = int(max_share * mask.numel())
    if int(mask.sum()) <= limit:
        return mask
    order = torch.argsort(torch.where(mask, scores, torch.full_like(scores, float("inf"))))
    kept = torch.zeros_like(mask)
    kept[order[:limit]] = True
    return kept


@dataclass(frozen=True)
class ResetConfig:
    hook: ClassVar[str]
    every: int = 1_000
    """Updates between resets."""
    tau: float = 0.1
    """Inactive when the normalized score is <= tau (0: exactly zero)."""
    max_share: float = 1.0
    """Reset at most this share of a layer's neurons per reset (the lowest-scoring)."""
    start: int = 1
    """First update that may reset (the first is 0: nothing has trained yet)."""

    def __post_init__(self) -> None:
        prefix = f"hook_opts.{self.hook}"
        positive(f"{prefix}.every", self.every)
        in_range(f"{prefix}.tau", self.tau, 0.0, 1.0)
        in_range(f"{prefix}.max_share", self.max_share, 0.0, 1.0)
        in_range(f"{prefix}.start", self.start, 0, 10**12)


class ResetHook(MeasuringHook):
    """The shared schedule of ReDo and ReGraMa: score on update k (a multiple of `every`), reset after it."""

    reset_norm: bool
    counts_learning = False
    """Whether the hook also logs NAME_reset_learning: how many of the neurons it reset still had gradient."""

    def __init__(self, cfg: ResetConfig, agent: Any) -> None:
        super().__init__(cfg, agent)
        self.layers = {name: [layer for layer in neuron_layers(module) if layer.resettable]
                       for name, module in agent.modules().items()}
        self.optimizer_of = {module: optimized.optimizer for optimized in agent.optimizers().values()
                             for module in optimized.modules}
        self.scores: dict[tuple[str, int], torch.Tensor] = {}
        self.gradients: dict[tuple[str, int], torch.Tensor] = {}
        """GraMa scores of the scored update, where a hook counts the reset neurons still learning."""
        self.handles: list = []
        self.total = 0
        if self.due():
            self.arm()

    def due(self) -> bool:
        return self.updates >= self.cfg.start and self.updates % self.cfg.every == 0

    def arm(self) -> None:
        """Prepare to score the coming update (ReDo hooks the forward pass; ReGraMa needs nothing)."""

    def still_learning(self, module: str, index: int, mask: torch.Tensor) -> int:
        """How many of the neurons in `mask` had a GraMa score above tau on the scored update."""
        gradient = self.gradients.get((module, index))
        return 0 if gradient is None else int((mask & ~inactive(gradient, self.cfg.tau)).sum())

    def keep_gradients(self, modules: dict[str, nn.Module], into: dict[tuple[str, int], torch.Tensor]) -> None:
        """GraMa scores of the modules' resettable layers from the gradient they hold now (the first backward
        of a scored update wins: later ones, such as the actor's through the critic, do not overwrite it)."""
        for module in modules:
            for index, layer in enumerate(self.layers.get(module, [])):
                if (module, index) not in into and (scores := grama_scores(layer.layer)) is not None:
                    into[(module, index)] = scores.clone()

    def after_update(self, metrics: dict[str, torch.Tensor]) -> None:
        if self.scores:
            self.reset()
        for handle in self.handles:
            handle.remove()
        self.handles, self.scores, self.gradients = [], {}, {}
        self.updates += 1
        if self.due():
            self.arm()

    def reset(self) -> None:
        counts: dict[str, int] = {}
        learning = 0
        for (module, index), scores in self.scores.items():
            layer = self.layers[module][index]
            mask = capped(inactive(scores, self.cfg.tau), scores, self.cfg.max_share)
            learning += self.still_learning(module, index, mask)
            counts[f"{module}.{layer.name}"] = reset_neurons(layer, mask, self.optimizer_of.get(module),
                                                             self.reset_norm)
        self.total += sum(counts.values())
        if self.counts_learning:
            self.pending[f"{self.name}_reset_learning"] = float(learning)
        self.pending.update({f"{self.name}_reset/{key}": float(count) for key, count in counts.items()})
        self.pending[f"{self.name}_reset"] = float(sum(counts.values()))
        self.pending[f"{self.name}_reset_total"] = float(self.total)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "total": self.total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.total = state["total"]
        if self.due():
            self.arm()


@dataclass(frozen=True)
class ReDoConfig(ResetConfig):
    hook = "redo"
    tau: float = 0.1
    """ReDo's tau: 0.1 in the paper's DrQ(eps) and SAC runs, 0.025 for DQN."""


class ReDoHook(ResetHook):
    """Reset tau-dormant neurons: those whose mean |activation| on the update's batch is small."""

    name = "redo"
    config_class = ReDoConfig
    description = "ReDo: every N updates, re-initialize tau-dormant neurons (by activations)"
    reset_norm = False
    counts_learning = True

    def after_backward(self, optimizer: str, modules: dict[str, nn.Module]) -> None:
        if self.due():
            self.keep_gradients(modules, self.gradients)

    def arm(self) -> None:
        for module, layers in self.layers.items():
            for index, layer in enumerate(layers):
                if layer.activated:
                    self.handles.append(layer.layer.register_forward_hook(self.capture(module, index, layer)))

    def capture(self, module: str, index: int, layer: NeuronLayer):
        def hook(_: nn.Module, args: tuple, output: torch.Tensor) -> None:
            if torch.is_grad_enabled() and (module, index) not in self.scores:
                with torch.no_grad():
                    self.scores[(module, index)] = redo_scores(layer.post_activation(output.detach()))
        return hook


@dataclass(frozen=True)
class ReGraMaConfig(ResetConfig):
    hook = "regrama"
    tau: float = 0.0
    """GraMa's tau: 0 (exactly zero gradient) in the paper's SAC runs, 0.01 with BRO-net."""


class ReGraMaHook(ResetHook):
    """Reset GraMa-inactive neurons: those whose incoming weights get (almost) no gradient."""

    name = "regrama"
    config_class = ReGraMaConfig
    description = "ReGraMa: every N updates, re-initialize GraMa-inactive neurons (by gradients), reset their norms"
    reset_norm = True

    def after_backward(self, optimizer: str, modules: dict[str, nn.Module]) -> None:
        if self.due():
            self.keep_gradients(modules, self.scores)
