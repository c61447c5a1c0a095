"""Convolutional encoders. Each takes float images (batch, channels, height, width), as `ImageInput`
makes them from observations, and returns a feature map of the same layout; the bottleneck
(scalerl.nets.bottleneck) decides how that map reaches the dense layers."""

from __future__ import annotations

import torch
from torch import nn


class ImageInput(nn.Module):
    """Observations to float (batch, channels, height, width) images: uint8 frames, already channel-first
    (Atari, DMC pixels, Procgen), are scaled to [0, 1]; channel-last grids (MinAtar) are transposed."""

    def __init__(self, channel_last: bool) -> None:
        super().__init__()
        self.channel_last = channel_last

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.channel_last:  # copied channel-first: a conv on the permuted view writes a channel-last map,
            # whose flatten, ReLU backward and clamp run 2-5x slower (a quarter of a MinAtar update at width 1)
            return obs.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format)
        return obs.float() / 255.0


def channels_last(images: torch.Tensor) -> torch.Tensor:
    """The same images stored channel-last. mkldnn's convs and pooling run faster on it for deep encoders
    (one torch thread, batch 32 fwd + bwd: Nature CNN 19.7 -> 16.4 ms on 84x84 frames, Impala 200 -> 126 ms;
    max-pool 3x3/2 on 32x16x10x10: 236 -> 43 us forward); the one-conv MinAtar CNN is faster channel-first,
    where its flatten needs no copy."""
    return images.contiguous(memory_format=torch.channels_last)


def scaled_channels(base: tuple[int, ...], width: float) -> list[int]:
    return [max(1, round(channels * width)) for channels in base]


class CoordinateChannels(nn.Module):
    """Append two channels holding each position's column and row, in [-1, 1] (CoordConv, Liu et al., 2018):
    a conv then sees where it is, so features averaged over the map (global average pooling) can still
    carry where things were."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = images.shape
        rows = torch.linspace(-1.0, 1.0, height, device=images.device, dtype=images.dtype)
        columns = torch.linspace(-1.0, 1.0, width, device=images.device, dtype=images.dtype)
        grid = torch.stack(torch.meshgrid(columns, rows, indexing="xy"))  # (2, height, width): x then y
        return torch.cat([images, grid.expand(batch, -1, -1, -1)], dim=1)


class MinAtarCNN(nn.Module):
    """The MinAtar paper's encoder: one 3x3 stride-1 conv (16 channels at width 1); 10x10 grids give 8x8, or
    10x10 with `same_padding` (the border cells get a full receptive field too)."""

    def __init__(self, in_channels: int, width: float = 1.0, activation: type[nn.Module] = nn.ReLU,
                 same_padding: bool = False) -> None:
        super().__init__()
        (channels,) = scaled_channels((16,), width)
        self.conv = nn.Conv2d(in_channels, channels, kernel_size=3, stride=1, padding=1 if same_padding else 0)
        self.activation = activation()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.activation(self.conv(images))


class NatureCNN(nn.Module):
    """The DQN Nature paper's encoder (Mnih et al., 2015): conv 8x8/4 (32), 4x4/2 (64), 3x3/1 (64); 84x84 frames
    give a 7x7 map."""

    def __init__(self, in_channels: int, width: float = 1.0, activation: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        first, second, third = scaled_channels((32, 64, 64), width)
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, first, kernel_size=8, stride=4), activation(),
            nn.Conv2d(first, second, kernel_size=4, stride=2), activation(),
            nn.Conv2d(second, third, kernel_size=3, stride=1), activation(),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(channels_last(images))


class DrQCNN(nn.Module):
    """The pixel SAC encoder of SAC-AE and DrQ (Yarats et al., 2021), the CALE paper's phi_SAC: four 3x3
    convs of 32 channels, the first with stride 2; 84x84 frames give a 35x35 map. Pair it with
    `--net.bottleneck project` for those papers' dense projection (Linear, LayerNorm, tanh)."""

    def __init__(self, in_channels: int, width: float = 1.0, activation: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        channels = scaled_channels((32, 32, 32, 32), width)
        layers: list[nn.Module] = []
        for index, out_channels in enumerate(channels):
            layers += [nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2 if index == 0 else 1), activation()]
            in_channels = out_channels
        self.layers = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(channels_last(images))


class ImpalaResidualBlock(nn.Module):
    """x + conv(act(conv(act(x)))), both convs 3x3 with padding 1."""

    def __init__(self, channels: int, activation: type[nn.Module]) -> None:
        super().__init__()
        self.block = nn.Sequential(
            activation(), nn.Conv2d(channels, channels, kernel_size=3, padding=1),
            activation(), nn.Conv2d(channels, channels, kernel_size=3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ImpalaCNN(nn.Module):
    """The IMPALA ResNet encoder (Espeholt et al., 2018): stacks of conv 3x3 -> max-pool 3x3 stride 2 ->
    two residual blocks, with (16, 32, 32) x width channels, then the activation. Each stack halves
    the map (rounding up): 84x84 frames give 11x11, 64x64 Procgen frames 8x8."""

    def __init__(self, in_channels: int, width: float = 1.0, activation: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for channels in scaled_channels((16, 32, 32), width):
            layers += [
                nn.Conv2d(in_channels, channels, kernel_size=3, padding=1),
                nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
                ImpalaResidualBlock(channels, activation),
                ImpalaResidualBlock(channels, activation),
            ]
            in_channels = channels
        layers.append(activation())
        self.layers = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(channels_last(images))
