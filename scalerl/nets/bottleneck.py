"""The bottleneck: how the encoder's feature map (batch, C, H, W) reaches the dense layers.

"Mind the GAP" (Sokar & Castro, 2025) finds this connection is what limits the scaling of pixel agents:
`flatten` gives the first dense layer H*W*C inputs, `gap` (global average pooling) only C.
"Don't Flatten, Tokenize!" (Sokar et al., ICLR 2025) turns the map into tokens instead and shows that
the tokenization, more than the mixture of experts, is what helps:

- per_conv:   H*W tokens of C dims (one per spatial position)
- per_patch:  non-overlapping patch_size x patch_size patches, projected by a strided conv to C dims
- per_feat:   C tokens of H*W dims (one per channel)
- per_sample: one token of C*H*W dims
- shuffled:   per_conv after one fixed random permutation of the C*H*W features (the control that
              destroys the spatial structure of the tokens)

Tokens then go through a mixer: `dense` (one dense layer shared by all tokens) or `softmoe`, and are
pooled into one feature vector by their mean, their sum, or by flattening.

`project` is the pixel SAC bottleneck of SAC-AE and DrQ (Yarats et al., 2021): flatten, then a Linear
layer to `projection` units, LayerNorm and tanh.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from scalerl.nets.softmoe import SoftMoE

TOKENIZED = ("per_conv", "per_patch", "per_feat", "per_sample", "shuffled")
BOTTLENECKS = ("flatten", "gap", "project", *TOKENIZED)


class Flatten(nn.Module):
    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return maps.flatten(1)


class GlobalAveragePool(nn.Module):
    """The mean over H x W of each channel."""

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return maps.mean(dim=(2, 3))


class Projection(nn.Module):
    """Flatten -> Linear -> LayerNorm -> tanh: bounded features of a fixed size, whatever the map's."""

    def __init__(self, inputs: int, units: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(inputs, units), nn.LayerNorm(units), nn.Tanh())

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.layers(maps)


class PerConv(nn.Module):
    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return maps.flatten(2).transpose(1, 2)


class PerFeat(nn.Module):
    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return maps.flatten(2)


class PerSample(nn.Module):
    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return maps.flatten(1).unsqueeze(1)


class PerPatch(nn.Module):
    """Maps are zero-padded up to a multiple of the patch size, so no border row or column is dropped."""

    def __init__(self, channels: int, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.project = nn.Conv2d(channels, channels, kernel_size=patch_size, stride=patch_size)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        height, width = maps.shape[2:]
        pad_h, pad_w = -height % self.patch_size, -width % self.patch_size
        return self.project(F.pad(maps, (0, pad_w, 0, pad_h))).flatten(2).transpose(1, 2)


class Shuffled(nn.Module):
    """per_conv tokens of a fixed permutation of the features. The permutation is drawn once, from the
    run's seeded generator when the network is built, and saved with the network's state."""

    def __init__(self, channels: int, height: int, width: int) -> None:
        super().__init__()
        self.channels = channels
        self.register_buffer("permutation", torch.randperm(channels * height * width))

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        shuffled = maps.flatten(1)[:, self.permutation]
        return shuffled.reshape(len(maps), self.channels, -1).transpose(1, 2)


class TokenDense(nn.Module):
    """One Linear -> (norm) -> activation applied to every token with shared weights."""

    def __init__(self, dim: int, units: int, norm: type[nn.Module] | None, activation: type[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(dim, units), norm(units) if norm else nn.Identity(), activation())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.layers(tokens)


class Pool(nn.Module):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.mode == "mean":
            return tokens.mean(dim=1)
        if self.mode == "sum":
            return tokens.sum(dim=1)
        return tokens.flatten(1)


def tokenizer(kind: str, channels: int, height: int, width: int, patch_size: int) -> tuple[nn.Module, int, int]:
    """(module, number of tokens, token dims) for a tokenized bottleneck."""
    if kind == "per_conv":
        return PerConv(), height * width, channels
    if kind == "shuffled":
        return Shuffled(channels, height, width), height * width, channels
    if kind == "per_feat":
        return PerFeat(), channels, height * width
    if kind == "per_sample":
        return PerSample(), 1, channels * height * width
    patches = math.ceil(height / patch_size) * math.ceil(width / patch_size)
    return PerPatch(channels, patch_size), patches, channels


def build_bottleneck(
    kind: str,
    map_shape: tuple[int, int, int],
    *,
    mixer: str,
    pool: str,
    units: int,
    projection: int,
    patch_size: int,
    experts: int,
    expert_hidden: int,
    capacity: float,
    moe_normalize: bool,
    norm: type[nn.Module] | None,
    activation: type[nn.Module],
) -> tuple[nn.Module, int]:
    """(bottleneck module, size of the feature vector it outputs) for a (C, H, W) feature map."""
    channels, height, width = map_shape
    if kind == "flatten":
        return Flatten(), channels * height * width
    if kind == "gap":
        return GlobalAveragePool(), channels
    if kind == "project":
        return Projection(channels * height * width, projection), projection
    tokenize, num_tokens, dim = tokenizer(kind, channels, height, width, patch_size)
    if mixer == "dense":
        mix, out_dim = TokenDense(dim, units, norm, activation), units
    else:
        mix, out_dim = SoftMoE(num_tokens, dim, experts, expert_hidden, capacity, moe_normalize, activation), dim
    features = out_dim * num_tokens if pool == "flatten" else out_dim
    return nn.Sequential(tokenize, mix, Pool(pool)), features
