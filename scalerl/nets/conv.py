"""Convolutional encoders. Observations arrive channel-last (H, W, C), as environments give them."""

from __future__ import annotations

import torch
from torch import nn


class MinAtarCNN(nn.Module):
    """The MinAtar paper's encoder: one 3x3 stride-1 conv (16 channels at width 1), then flatten."""

    def __init__(self, in_channels: int, channels: int = 16, activation: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, kernel_size=3, stride=1)
        self.activation = activation()
        self.channels = channels

    def out_features(self, height: int, width: int) -> int:
        return self.channels * (height - 2) * (width - 2)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.permute(0, 3, 1, 2).float()
        return self.activation(self.conv(x)).flatten(1)
