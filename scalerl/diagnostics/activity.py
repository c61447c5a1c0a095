"""Neuron activity: which neurons of a network still do something, measured from activations (the
tau-dormant ratio of ReDo) or from gradients (GraMa), and how rich the penultimate features are.

A neuron is an output unit of a Linear layer or an output channel of a Conv2d layer.

- ReDo score (Sokar et al., ICML 2023): s_i = E|h_i| / (mean_k E|h_k| + 1e-9), with h the neuron's
  post-activation output (after its norm, if any) averaged over the batch (and positions, for a channel).
  The neuron is tau-dormant when s_i <= tau.
- GraMa score (Liu et al., NeurIPS 2025, "Measure gradients, not activations!"): the mean |dL/dW| over the
  neuron's incoming weights (a row of a Linear's weight, an output channel's in x kh x kw weights of a
  Conv2d), divided by the layer's mean + 1e-9; LayerNorm and RMSNorm parameters score per element. As the
  paper's code does, the gradient is read from the weights, so it costs no extra pass. Inactive when the
  score is <= tau, or exactly zero when tau = 0.
- SoftMoE experts keep their weights stacked: an expert's hidden unit is a neuron too, scored within its
  expert (`expert_grama_scores`, `expert_redo_scores`).
- srank (Kumar et al., 2021): the fewest singular values of the feature matrix that hold 1 - delta of their
  sum; effective rank (Roy & Vetterli, 2007): exp of the entropy of the normalized singular values.

`neuron_layers` reads a network's structure from a torch.fx trace: for each Linear/Conv layer, the norm
and activation applied to its output and the layers that read it. A layer is *resettable* (scalerl's
ReDo and ReGraMa resets, `scalerl.interventions.resets`) when its post-activation output goes only into other
Linear/Conv layers, possibly through a flatten: then zeroing those layers' incoming weights from the
neuron makes a reset invisible to the network's output. Output layers, and layers whose output is added to
a residual stream or concatenated with something else, are not resettable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import fx, nn

NEURON_TYPES = (nn.Linear, nn.Conv2d)
NORM_TYPES = (nn.LayerNorm, nn.RMSNorm)
ACTIVATION_TYPES = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.Softplus, nn.Mish)
ACTIVATION_FUNCTIONS = {torch.relu, torch.tanh, torch.sigmoid, torch.nn.functional.relu, torch.nn.functional.gelu,
                        torch.nn.functional.leaky_relu, torch.nn.functional.elu, torch.nn.functional.silu,
                        torch.nn.functional.softplus, torch.nn.functional.mish}
PASS_THROUGH_METHODS = {"flatten", "view", "reshape", "contiguous"}
PASS_THROUGH_TYPES = (nn.Flatten, nn.Identity, nn.Dropout)
EPSILON = 1e-9


@dataclass
class NeuronLayer:
    """One Linear/Conv2d layer of a network and what happens to its output."""

    name: str
    layer: nn.Linear | nn.Conv2d
    norm: nn.Module | None = None
    """The LayerNorm/RMSNorm applied right after the layer."""
    post: list[Callable[[torch.Tensor], torch.Tensor]] = field(default_factory=list)
    """The norm and activation that turn the layer's output into its post-activation output."""
    activated: bool = False
    consumers: list[nn.Linear | nn.Conv2d] = field(default_factory=list)
    """The layers that read the post-activation output, when nothing else does."""

    @property
    def neurons(self) -> int:
        return self.layer.out_features if isinstance(self.layer, nn.Linear) else self.layer.out_channels

    @property
    def resettable(self) -> bool:
        return bool(self.consumers)

    def post_activation(self, output: torch.Tensor) -> torch.Tensor:
        for step in self.post:
            output = step(output)
        return output


def _module_node_type(graph_module: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    return graph_module.get_submodule(node.target) if node.op == "call_module" else None


def _post_step(graph_module: fx.GraphModule, node: fx.Node) -> tuple[str, Callable | None]:
    """What a node after a layer's output is: ("norm" | "activation" | "pass" | "other", callable)."""
    module = _module_node_type(graph_module, node)
    if module is not None:
        if isinstance(module, NORM_TYPES):
            return "norm", module
        if isinstance(module, ACTIVATION_TYPES):
            return "activation", module
        if isinstance(module, PASS_THROUGH_TYPES):
            return "pass", None
        return "other", None
    if node.op == "call_function" and node.target in ACTIVATION_FUNCTIONS:
        extra_args, kwargs = node.args[1:], dict(node.kwargs)
        kwargs.pop("inplace", None)
        return "activation", lambda x, fn=node.target: fn(x, *extra_args, **kwargs)
    if node.op == "call_method" and node.target in PASS_THROUGH_METHODS:
        return "pass", None
    return "other", None


class _LayerTracer(fx.Tracer):
    """Every neuron layer is a leaf of the graph, also one that subclasses torch's (a NoisyLinear, whose
    forward fx would otherwise trace into, hiding the layer's call and what follows it)."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, NEURON_TYPES) or super().is_leaf_module(module, qualified_name)


def _trace_layers(module: nn.Module, prefix: str) -> list[NeuronLayer]:
    graph_module = fx.GraphModule(module, _LayerTracer().trace(module))
    layers = []
    traced = set()
    for node in graph_module.graph.nodes:
        layer = _module_node_type(graph_module, node)
        if not isinstance(layer, NEURON_TYPES):
            continue
        traced.add(node.target)
        info = NeuronLayer(f"{prefix}{node.target}", layer)
        current = node
        while len(current.users) == 1:
            user = next(iter(current.users))
            kind, step = _post_step(graph_module, user)
            if kind == "norm" and info.norm is None and not info.activated:
                info.norm = step
            elif not (kind == "pass" or (kind == "activation" and not info.activated)):
                break
            if step is not None:
                info.post.append(step)
            info.activated |= kind == "activation"
            current = user
        users = [_module_node_type(graph_module, user) for user in current.users]
        if users and all(isinstance(user, NEURON_TYPES) for user in users) and \
                all(user.op == "call_module" and user.args and user.args[0] is current for user in current.users):
            info.consumers = users
        layers.append(info)
    missing = [name for name, child in module.named_modules() if isinstance(child, NEURON_TYPES) and name not in traced]
    if missing:  # layers called around the module's own dispatch (e.g. an acting fast path): trace their parents
        raise ValueError(f"layers {missing} are called outside the traced graph")
    return layers


def neuron_layers(module: nn.Module, prefix: str = "") -> list[NeuronLayer]:
    """The Linear/Conv2d layers of `module` with what follows each, in forward order. A module that
    torch.fx cannot trace (or that calls its layers around their modules) is read child by child."""
    try:
        return _trace_layers(module, prefix)
    except Exception:  # fx raises many types for untraceable code; the children are tried instead
        if isinstance(module, NEURON_TYPES):
            return [NeuronLayer(prefix.rstrip("."), module)]
        return [layer for name, child in module.named_children() for layer in neuron_layers(child, f"{prefix}{name}.")]


def normalized(scores: torch.Tensor) -> torch.Tensor:
    return scores / (scores.mean() + EPSILON)


def redo_scores(post_activation: torch.Tensor) -> torch.Tensor:
    """ReDo scores of a layer from its post-activation output: (batch, neurons) or (batch, channels, H, W)."""
    magnitude = post_activation.detach().abs()
    dims = (0, 2, 3) if magnitude.dim() == 4 else tuple(range(magnitude.dim() - 1))
    return normalized(magnitude.mean(dim=dims))


def grama_scores(layer: nn.Module) -> torch.Tensor | None:
    """GraMa scores of a Linear/Conv2d layer's neurons (or a norm's elements) from the gradient its weights
    hold now; None when there is no gradient."""
    grad = layer.weight.grad
    if grad is None:
        return None
    magnitude = grad.detach().abs()
    if magnitude.dim() > 1:
        magnitude = magnitude.flatten(1).mean(dim=1)
    return normalized(magnitude)


def expert_grama_scores(moe: nn.Module) -> torch.Tensor | None:
    """GraMa scores of a SoftMoE's expert hidden units, (experts, hidden): each unit's incoming weights are a
    column of its expert's first matrix; each expert is normalized on its own, as a layer."""
    grad = moe.w1.grad
    if grad is None:
        return None
    magnitude = grad.detach().abs().mean(dim=1)
    return magnitude / (magnitude.mean(dim=1, keepdim=True) + EPSILON)


def expert_redo_scores(hidden: torch.Tensor) -> torch.Tensor:
    """ReDo scores of a SoftMoE's expert hidden units from their activations (experts, slots, hidden)."""
    magnitude = hidden.detach().abs().mean(dim=1)
    return magnitude / (magnitude.mean(dim=1, keepdim=True) + EPSILON)


def inactive(scores: torch.Tensor, tau: float) -> torch.Tensor:
    """The mask of inactive neurons: score <= tau, or exactly zero when tau is 0."""
    return scores == 0 if tau == 0 else scores <= tau


def singular_values(features: torch.Tensor) -> torch.Tensor:
    return torch.linalg.svdvals(features.detach().float().flatten(1))


def srank(features: torch.Tensor, delta: float = 0.01) -> int:
    """The fewest singular values of the (batch, dims) features whose sum reaches 1 - delta of the total."""
    values = singular_values(features)
    if values.sum() <= 0:
        return 0
    cumulative = torch.cumsum(values, 0) / values.sum()
    threshold = torch.tensor(1.0 - delta, dtype=cumulative.dtype, device=cumulative.device)
    return int(torch.searchsorted(cumulative, threshold).item()) + 1


def effective_rank(features: torch.Tensor) -> float:
    """exp(entropy) of the singular values normalized to sum to one (Roy & Vetterli, 2007)."""
    values = singular_values(features)
    if values.sum() <= 0:
        return 0.0
    p = values / values.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def routing_entropy(weights: torch.Tensor, dim: int) -> float:
    """Mean entropy of SoftMoE routing weights that sum to 1 along `dim`, over its maximum log(size): 1 when
    every slot averages all tokens alike (dispatch) or every token mixes all slots alike (combine), which
    makes the layer a global average broadcast to every position."""
    weights = weights.detach()
    entropy = -(weights * weights.clamp_min(1e-12).log()).sum(dim)
    return float(entropy.mean() / math.log(weights.shape[dim])) if weights.shape[dim] > 1 else 0.0


def near_zero_share(grad: torch.Tensor, threshold: float = 1e-8) -> float:
    """The share of gradient entries whose magnitude is below `threshold`."""
    return float((grad.detach().abs() < threshold).float().mean())


__all__ = [
    "NeuronLayer", "effective_rank", "expert_grama_scores", "expert_redo_scores", "grama_scores", "inactive",
    "near_zero_share", "neuron_layers", "normalized",
    "redo_scores", "routing_entropy", "singular_values", "srank",
]
