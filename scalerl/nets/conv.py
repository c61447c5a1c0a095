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


class NatureCNN(nn.Module):
    """The DQN Nature paper's encoder (Mnih et al., 2015) for channel-first 84x84 uint8 frames:
    conv 8x8/4 (32), 4x4/2 (64), 3x3/1 (64), then flatten; channels scale with width."""

    def __init__(self, in_channels: int, width: float = 1.0, activation: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        channels = [max(1, round(c * width)) for c in (32, 64, 64)]
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, channels[0], kernel_size=8, stride=4), activation(),
            nn.Conv2d(channels[0], channels[1], kernel_size=4, stride=2), activation(),
            nn.Conv2d(channels[1], channels[2], kernel_size=3, stride=1), activation(),
            nn.Flatten(),
        )
        self.channels = channels

    def out_features(self, height: int, width: int) -> int:
        for kernel, stride in ((8, 4), (4, 2), (3, 1)):
            height, width = (height - kernel) // stride + 1, (width - kernel) // stride + 1
        return self.channels[2] * height * width

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.layers(obs.float() / 255.0)
