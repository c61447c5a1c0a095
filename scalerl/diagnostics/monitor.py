"""The activity monitor (`--hooks activity`): every N updates, dormant neurons, GraMa-inactive neurons,
feature ranks, near-zero gradients and churn of every network the agent trains, measured on that update's
own batch, without an extra pass over the data except one forward for churn.

On a measured update the monitor hooks each network's forward pass (the first one that builds a graph,
which is the loss's) to keep each layer's post-activation output, the features entering the output layer,
and the network's inputs and output; after each optimizer's backward pass it reads the gradients; after
the update it computes, per network and per layer:

    dormant/<net>[.<layer>]    share of ReDo tau-dormant neurons (layers whose output has an activation,
                               and SoftMoE experts' hidden units, as <path>.experts)
    grama/<net>[.<layer>]      share of GraMa-inactive neurons (every Linear/Conv layer but the output)
    zero_grad/<net>            share of gradient entries below 1e-8 in magnitude
    srank/<net>, effective_rank/<net>, feature_norm/<net>   of the features entering the output layer
    churn/<net>                mean |change| of the network's output on the same inputs, over the update
    action_flips/q             share of those inputs whose greedy action changed over the update (what the
                               stable-gradients code calls churn), for Q-networks of one value per action
    dispatch_entropy/<net>.<path>, combine_entropy/<net>.<path>
                               of each SoftMoE's routing weights, over their maximum: near 1, every slot
                               averages all tokens and every token gets the same mix of slots
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from scalerl.checks import in_range, positive
from scalerl.diagnostics.activity import (
    NeuronLayer,
    effective_rank,
    expert_grama_scores,
    expert_redo_scores,
    grama_scores,
    inactive,
    near_zero_share,
    neuron_layers,
    redo_scores,
    routing_entropy,
    srank,
)
from scalerl.hooks.base import MeasuringHook
from scalerl.nets.softmoe import SoftMoE


@dataclass(frozen=True)
class ActivityConfig:
    every: int = 1_000
    """Updates between measurements (the first update is measured)."""
    tau: float = 0.1
    """A neuron is dormant / inactive when its normalized score is <= tau (0: exactly zero)."""
    delta: float = 0.01
    """srank keeps the singular values holding 1 - delta of their sum."""
    per_layer: bool = True
    """Log each layer's shares as well as each network's."""

    def __post_init__(self) -> None:
        positive("hook_opts.activity.every", self.every)
        in_range("hook_opts.activity.tau", self.tau, 0.0, 1.0)
        in_range("hook_opts.activity.delta", self.delta, 0.0, 1.0)


class Capture:
    """Forward hooks on one network for one update: post-activations, penultimate features, inputs/output."""

    def __init__(self, module: nn.Module, layers: list[NeuronLayer]) -> None:
        self.module = module
        self.post: dict[int, torch.Tensor] = {}
        self.experts: dict[str, torch.Tensor] = {}
        """Expert hidden activations of each SoftMoE, by its path in the network."""
        self.routing: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        """Dispatch and combine weights of each SoftMoE, by its path."""
        self.features: torch.Tensor | None = None
        self.calls: dict[int, tuple[tuple, torch.Tensor]] = {}
        """The first graph-building call of the network (key 0) and of each direct child (keys 1...): an
        agent may call a network through a method (SAC's actor samples through its `net`)."""
        owners = [module, *module.children()]
        self.handles = [owner.register_forward_hook(self.call_hook(key)) for key, owner in enumerate(owners)]
        self.owners = owners
        for index, layer in enumerate(layers):
            is_last = index == len(layers) - 1
            self.handles.append(layer.layer.register_forward_hook(self.layer_hook(index, layer, is_last)))
        for path, moe in softmoes(module):
            self.handles.append(moe.activation.register_forward_hook(self.expert_hook(path)))
            self.handles.append(moe.register_forward_hook(self.routing_hook(path)))

    def routing_hook(self, path: str):
        def hook(module: SoftMoE, args: tuple, output: torch.Tensor) -> None:
            if torch.is_grad_enabled() and path not in self.routing:
                with torch.no_grad():
                    self.routing[path] = module.weights(args[0].detach())
        return hook

    def expert_hook(self, path: str):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            if torch.is_grad_enabled() and path not in self.experts:
                self.experts[path] = output.detach()
        return hook

    def call_hook(self, key: int):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            if key not in self.calls and torch.is_grad_enabled() and isinstance(output, torch.Tensor):
                self.calls[key] = (tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args),
                                   output.detach().clone())
        return hook

    def churn(self) -> tuple[float, float | None] | None:
        """Mean |output change| on the captured inputs, of the network or else of its first called child; and,
        where that output is one value per discrete action (batch x actions), the share of inputs whose
        greedy action changed."""
        if not self.calls:
            return None
        key = min(self.calls)
        args, before = self.calls[key]
        with torch.no_grad():
            after = self.owners[key](*args)
        flips = None
        if before.dim() == 2 and before.shape[1] > 1:
            flips = float((after.argmax(1) != before.argmax(1)).float().mean())
        return float((after - before).abs().mean()), flips

    def layer_hook(self, index: int, layer: NeuronLayer, last: bool):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            if not torch.is_grad_enabled() or index in self.post:
                return
            with torch.no_grad():
                self.post[index] = layer.post_activation(output.detach()) if layer.activated else output.detach()
                if last:
                    self.features = args[0].detach()
        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def softmoes(module: nn.Module) -> list[tuple[str, SoftMoE]]:
    return [(path, child) for path, child in module.named_modules() if isinstance(child, SoftMoE)]


def share(masks: list[torch.Tensor]) -> float:
    total = sum(mask.numel() for mask in masks)
    return float(sum(int(mask.sum()) for mask in masks) / total) if total else 0.0


class ActivityHook(MeasuringHook):
    name = "activity"
    config_class = ActivityConfig
    description = "dormant and GraMa-inactive neurons, feature ranks, near-zero gradients, churn every N updates"

    def __init__(self, cfg: ActivityConfig, agent: Any) -> None:
        super().__init__(cfg, agent)
        self.layers = {name: neuron_layers(module) for name, module in agent.modules().items()}
        self.captures: dict[str, Capture] = {}
        self.grama: dict[str, list[tuple[str, torch.Tensor]]] = {}
        self.zero_grad: dict[str, float] = {}
        self.arm()

    def arm(self, names: list[str] | None = None) -> None:
        """Capture every network's next training forward, every `every` updates (or the `names` given)."""
        if names is None and self.updates % self.cfg.every:
            return  # not due: every update passes here, so nothing is built
        modules = self.agent.modules()
        if names is None:
            names = [name for name in modules if name not in self.captures]
        self.captures.update({name: Capture(modules[name], self.layers[name]) for name in names})

    def after_backward(self, optimizer: str, modules: dict[str, nn.Module]) -> None:
        if not self.captures:
            return
        for name, module in modules.items():
            if name in self.grama or name not in self.layers:
                continue
            layers = self.layers[name][:-1]  # the output layer's neurons are the outputs themselves
            self.grama[name] = [(layer.name, scores) for layer in layers
                                if (scores := grama_scores(layer.layer)) is not None]
            self.grama[name] += [(f"{path}.experts", scores) for path, moe in softmoes(module)
                                 if (scores := expert_grama_scores(moe)) is not None]
            grads = [p.grad for p in module.parameters() if p.grad is not None]
            if grads:
                total = sum(g.numel() for g in grads)
                self.zero_grad[name] = sum(near_zero_share(g) * g.numel() for g in grads) / total

    def after_update(self, metrics: dict[str, torch.Tensor]) -> None:
        if self.captures:
            self.measure()
        self.updates += 1
        self.arm()

    def measure(self) -> None:
        """Measure each network that trained in this update; one that did not (TD3's actor between its
        delayed updates) stays armed until it does."""
        tau, scalars = self.cfg.tau, self.pending
        for name, capture in list(self.captures.items()):
            if not (capture.post or capture.calls):
                continue
            capture.remove()
            del self.captures[name]
            layers = self.layers[name]
            dormant = [(layers[i].name, inactive(redo_scores(post), tau)) for i, post in capture.post.items()
                       if layers[i].activated]
            dormant += [(f"{path}.experts", inactive(expert_redo_scores(hidden), tau))
                        for path, hidden in capture.experts.items()]
            grama = [(layer, inactive(scores, tau)) for layer, scores in self.grama.get(name, [])]
            for key, masks in (("dormant", dormant), ("grama", grama)):
                if masks:
                    scalars[f"{key}/{name}"] = share([mask for _, mask in masks])
                    if self.cfg.per_layer:
                        scalars.update({f"{key}/{name}.{layer}": share([mask]) for layer, mask in masks})
            if name in self.zero_grad:
                scalars[f"zero_grad/{name}"] = self.zero_grad[name]
            if capture.features is not None and capture.features.dim() == 2 and len(capture.features) > 1:
                features = capture.features
                scalars[f"srank/{name}"] = float(srank(features, self.cfg.delta))
                scalars[f"effective_rank/{name}"] = effective_rank(features)
                scalars[f"feature_norm/{name}"] = float(features.norm(dim=1).mean())
            for path, (dispatch, combine) in capture.routing.items():
                scalars[f"dispatch_entropy/{name}.{path}"] = routing_entropy(dispatch, dim=1)
                scalars[f"combine_entropy/{name}.{path}"] = routing_entropy(combine, dim=2)
            if (churn := capture.churn()) is not None:
                scalars[f"churn/{name}"] = churn[0]
                if name == "q" and churn[1] is not None:
                    scalars[f"action_flips/{name}"] = churn[1]
            self.grama.pop(name, None)
            self.zero_grad.pop(name, None)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "armed": sorted(self.captures)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for capture in self.captures.values():
            capture.remove()
        self.captures = {}
        super().load_state_dict(state)
        self.arm(state.get("armed"))
