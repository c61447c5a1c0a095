"""The bottleneck: how the encoder's feature map (batch, C, H, W) reaches the dense layers.

"Mind the GAP" (Sokar & Castro, 2025) finds this connection is what limits the scaling of pixel agents:
`flatten` gives the first dense layer H*W*C inputs, `gap` (global average pooling) only C.
"Don't Flatten, Tokenize!" (Sokar et al., ICLR 2025) turns the map into tokens instead and shows that
the tokenization, more than the mixture of experts, is what helps:

- per_conv:   H*W tokens of C dims (one per spatial position)
- per_patch:  non-overlapping patch_size x patch_size patches ('VALID': a border row or column that does not
              fill a patch is dropped), each projected by a strided conv to a fixed embedding size, as the
              paper's code does (32 dims after the Impala encoder, 64 after the Nature CNN); or, with
              patch_mode avg_pool, averaged (C dims, no parameters); or, with patch_mode padded, the map
              zero-padded up to whole patches and projected to C dims
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

from scalerl.checks import ConfigError
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
    """One token per non-overlapping patch: a strided conv ('VALID', or over the map zero-padded to whole
    patches) projecting each patch to `embedding` dims, or the patch's average (embedding 0)."""

    def __init__(self, channels: int, patch_size: int, embedding: int, padded: bool) -> None:
        super().__init__()
        self.patch_size, self.padded = patch_size, padded
        self.project = nn.Conv2d(channels, embedding, kernel_size=patch_size, stride=patch_size) if embedding else None

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        if self.padded:
            height, width = maps.shape[2:]
            maps = F.pad(maps, (0, -width % self.patch_size, 0, -height % self.patch_size))
        if self.project is None:
            patches = F.avg_pool2d(maps, self.patch_size, self.patch_size)
        else:
            patches = self.project(maps)
        return patches.flatten(2).transpose(1, 2)


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


def tokenizer(kind: str, channels: int, height: int, width: int, patch_size: int, patch_mode: str,
              patch_embedding: int) -> tuple[nn.Module, int, int]:
    """(module, number of tokens, token dims) for a tokenized bottleneck."""
    if kind == "per_conv":
        return PerConv(), height * width, channels
    if kind == "shuffled":
        return Shuffled(channels, height, width), height * width, channels
    if kind == "per_feat":
        return PerFeat(), channels, height * width
    if kind == "per_sample":
        return PerSample(), 1, channels * height * width
    if patch_mode == "padded":
        patches = math.ceil(height / patch_size) * math.ceil(width / patch_size)
        return PerPatch(channels, patch_size, channels, padded=True), patches, channels
    if patch_size > min(height, width):
        raise ConfigError(f"net.patch_size {patch_size} is larger than the encoder's {height}x{width} feature map: no "
                          "whole patch fits ('VALID' patches; --net.patch-mode padded pads the map instead)")
    patches = (height // patch_size) * (width // patch_size)
    if patch_mode == "avg_pool":
        return PerPatch(channels, patch_size, 0, padded=False), patches, channels
    return PerPatch(channels, patch_size, patch_embedding, padded=False), patches, patch_embedding


def build_bottleneck(
    kind: str,
    map_shape: tuple[int, int, int],
    *,
    mixer: str,
    pool: str,
    units: int,
    projection: int,
    patch_size: int,
    patch_mode: str,
    patch_embedding: int,
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
    tokenize, num_tokens, dim = tokenizer(kind, channels, height, width, patch_size, patch_mode, patch_embedding)
    if mixer == "dense":
        mix, out_dim = TokenDense(dim, units, norm, activation), units
    else:
        mix, out_dim = SoftMoE(num_tokens, dim, experts, expert_hidden, capacity, moe_normalize, activation), dim
    features = out_dim * num_tokens if pool == "flatten" else out_dim
    return nn.Sequential(tokenize, mix, Pool(pool)), features
