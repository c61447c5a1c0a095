"""Dense torsos."""

from __future__ import annotations

from torch import nn


class MLP(nn.Sequential):
    """`depth` blocks of Linear -> (LayerNorm) -> activation, all `hidden` wide."""

    def __init__(
        self,
        in_features: int,
        hidden: int,
        depth: int,
        activation: type[nn.Module] = nn.ReLU,
        layer_norm: bool = False,
    ) -> None:
        layers: list[nn.Module] = []
        for index in range(depth):
            layers.append(nn.Linear(in_features if index == 0 else hidden, hidden))
            if layer_norm:
                layers.append(nn.LayerNorm(hidden))
            layers.append(activation())
        super().__init__(*layers)
        self.out_features = hidden


class FlatInput(nn.Module):
    """Encoder for vector observations: flatten to (batch, features) as float32."""

    def forward(self, obs):
        return obs.flatten(1).float()
