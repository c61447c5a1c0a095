"""Networks built from one small spec, so a study changes width or depth with a flag and nothing else.

A network is encoder -> torso -> head: the encoder turns an observation into a flat feature vector,
the torso is a stack of dense layers, and the head (chosen by the agent) maps to outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import gymnasium as gym
import numpy as np
from torch import nn

from scalerl.checks import positive, require
from scalerl.nets.conv import MinAtarCNN, NatureCNN
from scalerl.nets.heads import DuelingHead
from scalerl.nets.mlp import MLP, FlatInput


@dataclass(frozen=True)
class NetConfig:
    """Shape of an agent's networks."""

    encoder: Literal["auto", "mlp", "minatar_cnn", "nature_cnn"] = "auto"
    """auto: the MinAtar CNN for (10, 10, C) grids, the Nature CNN for (C, H, W) frames, else an MLP."""
    hidden: int = 128
    """Units per dense torso layer, before the width multiplier."""
    depth: int = 2
    """Number of dense torso layers."""
    width: float = 1.0
    """Multiplier on every layer's width: dense units and conv channels."""
    layer_norm: bool = False
    """LayerNorm after each dense torso layer, before the activation."""
    activation: Literal["relu", "tanh", "gelu"] = "relu"
    """Nonlinearity of the torso and encoder."""

    def __post_init__(self) -> None:
        positive("net.hidden", self.hidden)
        positive("net.depth", self.depth)
        positive("net.width", self.width)

    def scaled(self, units: int) -> int:
        return max(1, round(units * self.width))


ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def is_grid(space: gym.spaces.Box) -> bool:
    """MinAtar-style observations: small channel-last (H, W, C) grids."""
    return len(space.shape) == 3 and space.shape[0] <= 16 and space.shape[1] <= 16


def is_frames(space: gym.spaces.Box) -> bool:
    """Pixel observations: channel-first (C, H, W) frames, as the Atari and DMC suites give them."""
    return len(space.shape) == 3 and space.shape[1] >= 36 and space.shape[2] >= 36


def build_encoder(cfg: NetConfig, obs_space: gym.Space) -> tuple[nn.Module, int]:
    """Return (encoder, feature size)."""
    require(isinstance(obs_space, gym.spaces.Box), "env", "an environment with Box observations", obs_space)
    kind = cfg.encoder
    if kind == "auto":
        kind = "minatar_cnn" if is_grid(obs_space) else "nature_cnn" if is_frames(obs_space) else "mlp"
    activation = ACTIVATIONS[cfg.activation]
    if kind == "minatar_cnn":
        require(is_grid(obs_space), "net.encoder", "used with (H, W, C) grid observations of at most 16x16", obs_space.shape)
        height, width, channels = obs_space.shape
        encoder = MinAtarCNN(channels, cfg.scaled(16), activation)
        return encoder, encoder.out_features(height, width)
    if kind == "nature_cnn":
        require(is_frames(obs_space), "net.encoder", "used with (C, H, W) frames of at least 36x36", obs_space.shape)
        channels, height, width = obs_space.shape
        encoder = NatureCNN(channels, cfg.width, activation)
        return encoder, encoder.out_features(height, width)
    return FlatInput(), int(np.prod(obs_space.shape))


def build_q_network(cfg: NetConfig, obs_space: gym.Space, num_actions: int, dueling: bool) -> nn.Module:
    """Encoder -> dense torso -> Q-value head (plain linear or dueling)."""
    encoder, features = build_encoder(cfg, obs_space)
    hidden = cfg.scaled(cfg.hidden)
    torso = MLP(features, hidden, cfg.depth, ACTIVATIONS[cfg.activation], cfg.layer_norm)
    head = DuelingHead(hidden, num_actions) if dueling else nn.Linear(hidden, num_actions)
    return nn.Sequential(encoder, torso, head)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["NetConfig", "MLP", "MinAtarCNN", "NatureCNN", "DuelingHead", "build_encoder", "build_q_network", "parameter_count"]
