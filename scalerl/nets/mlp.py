"""Dense torsos: the layers between the bottleneck's feature vector and the head."""

from __future__ import annotations

import torch
from torch import nn


def maybe_norm(norm: type[nn.Module] | None, units: int) -> nn.Module:
    return norm(units) if norm else nn.Identity()


class MLP(nn.Sequential):
    """`depth` blocks of Linear -> (norm) -> activation, all `hidden` wide. Depth 0 passes the features
    through unchanged (for bottlenecks such as SoftMoE that are the penultimate layer themselves)."""

    def __init__(
        self,
        in_features: int,
        hidden: int,
        depth: int,
        activation: type[nn.Module] = nn.ReLU,
        norm: type[nn.Module] | None = None,
    ) -> None:
        layers: list[nn.Module] = []
        for index in range(depth):
            layers.append(nn.Linear(in_features if index == 0 else hidden, hidden))
            if norm:
                layers.append(norm(hidden))
            layers.append(activation())
        super().__init__(*layers)
        self.out_features = hidden if depth else in_features


class ResidualBlock(nn.Module):
    """Pre-activation block of the stable-gradients paper: f(x) = N(W1 act(N(W0 act(x)))), returns f(x) + x."""

    def __init__(self, hidden: int, activation: type[nn.Module], norm: type[nn.Module] | None) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            activation(), nn.Linear(hidden, hidden), maybe_norm(norm, hidden),
            activation(), nn.Linear(hidden, hidden), maybe_norm(norm, hidden),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual(x)


class ResidualMLP(nn.Module):
    """h0 = N(W_in x); h_{k+1} = block_k(h_k) [+ h0 with multi_skip]; output act(h_depth), or
    act(N(W_out h_depth)) with multi_skip.

    multi_skip=True is the multi-skip residual MLP of "Stable Gradients for Stable Learning at Scale"
    (Castanyer et al., 2025) as its official code builds it: the projected input h0 is kept as a global
    skip and added to the output of every block, so every block, however deep, has a short gradient path
    to the input, and a final Linear and norm follow the blocks. `skip_blocks` k > 0 adds the global skip to
    the last k blocks only (the paper's ablation over how many blocks receive it; which k it chose is not
    stated, scalerl takes the deepest). The final activation makes the output, like the plain MLP's, a
    post-activation feature for the head."""

    def __init__(
        self,
        in_features: int,
        hidden: int,
        depth: int,
        activation: type[nn.Module] = nn.ReLU,
        norm: type[nn.Module] | None = None,
        multi_skip: bool = False,
        skip_blocks: int = 0,
    ) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Linear(in_features, hidden), maybe_norm(norm, hidden))
        self.blocks = nn.ModuleList(ResidualBlock(hidden, activation, norm) for _ in range(depth))
        self.multi_skip = multi_skip
        skipped = depth if skip_blocks <= 0 else min(skip_blocks, depth)
        self.skip_into = [multi_skip and index >= depth - skipped for index in range(depth)]
        self.final = nn.Sequential(nn.Linear(hidden, hidden), maybe_norm(norm, hidden)) if multi_skip else nn.Identity()
        self.activation = activation()
        self.out_features = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = h = self.project(x)
        for block, add_skip in zip(self.blocks, self.skip_into):
            h = block(h) + skip if add_skip else block(h)
        return self.activation(self.final(h))


class FlatInput(nn.Module):
    """Encoder for vector observations: flatten to (batch, features) as float32."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.flatten(1).float()
