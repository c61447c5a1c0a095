"""Networks built from one small spec, so a study swaps the bottleneck, the torso or the width with a
flag and nothing else changes.

A network is encoder -> bottleneck -> torso -> head:
- the encoder turns an observation into a feature map (CNNs) or a flat vector (MLP inputs);
- the bottleneck turns the map into one feature vector (flatten, global average pooling, or tokens
  mixed by a dense layer or a SoftMoE; see scalerl.nets.bottleneck);
- the torso is a stack of dense layers (plain, residual or multi-skip residual);
- the head maps to the outputs (a Linear layer, or one the agent brings, e.g. dueling).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from scalerl.checks import check_choices, in_range, positive, require
from scalerl.nets.bottleneck import TOKENIZED, Flatten, GlobalAveragePool, build_bottleneck
from scalerl.nets.conv import CoordinateChannels, DrQCNN, ImageInput, ImpalaCNN, MinAtarCNN, NatureCNN
from scalerl.nets.heads import DuelingHead, NoisyLinear, make_noisy
from scalerl.nets.mlp import MLP, FlatInput, ResidualMLP
from scalerl.nets.softmoe import SoftMoE


@dataclass(frozen=True)
class NetConfig:
    """Shape of an agent's networks (every network the agent builds uses the same spec)."""

    encoder: Literal["auto", "mlp", "minatar_cnn", "nature_cnn", "impala", "drq"] = "auto"
    """auto: the MinAtar CNN for (10, 10, C) grids, the Nature CNN for (C, H, W) frames, else an MLP input."""
    bottleneck: Literal["flatten", "gap", "project", "per_conv", "per_patch", "per_feat", "per_sample",
                        "shuffled"] = "flatten"
    """From the CNN's feature map to a vector: flatten, global average pooling, a projection (Linear,
    LayerNorm, tanh, as pixel SAC's drq encoder uses), or a tokenization."""
    projection: int = 50
    """Units of the project bottleneck (50 in SAC-AE and DrQ)."""
    mixer: Literal["dense", "softmoe"] = "dense"
    """What a tokenized bottleneck applies to its tokens: one shared dense layer, or a SoftMoE."""
    pool: Literal["mean", "sum", "flatten"] = "mean"
    """How a tokenized bottleneck turns its mixed tokens into one vector."""
    patch_size: int = 3
    """Side of the square patches of the per_patch tokenization."""
    patch_mode: Literal["conv", "avg_pool", "padded"] = "conv"
    """per_patch tokens: 'VALID' patches projected by a strided conv to patch_embedding dims (the paper's
    code), 'VALID' patches averaged, or the map zero-padded to whole patches and projected to C dims."""
    patch_embedding: int = 0
    """Dims of a conv per_patch token (0: 32 after the Impala encoder, 64 after the Nature CNN, as the paper's
    code; the channels of the map after any other encoder)."""
    experts: int = 4
    """SoftMoE experts."""
    expert_hidden: int = 512
    """Hidden units of each SoftMoE expert (Dense-act-Dense), before the width multiplier."""
    capacity: float = 1.0
    """SoftMoE slots per expert = ceil(tokens * capacity / experts)."""
    moe_normalize: bool = False
    """L2-normalise SoftMoE tokens and slot parameters, with a learned scale."""
    torso: Literal["mlp", "residual", "multiskip"] = "mlp"
    """Dense layers after the bottleneck: plain, residual blocks, or residual blocks with a global skip."""
    hidden: int = 128
    """Units of the torso (and of the per-token dense mixer), before the width multiplier."""
    depth: int = 2
    """Torso depth: dense layers for mlp (0: none), residual blocks for residual and multiskip."""
    width: float = 1.0
    """Multiplier on every width: conv channels, dense units, expert hidden units."""
    skip_blocks: int = 0
    """multiskip: add the global skip to the last k blocks only (0: every block)."""
    coords: bool = False
    """Append two coordinate channels (column and row, in [-1, 1]) to the image before the CNN (CoordConv), so
    a pooled bottleneck can keep where things are."""
    same_padding: bool = False
    """MinAtar CNN: pad its conv so the map keeps the grid's 10 x 10 (the paper's encoder gives 8 x 8)."""
    init: Literal["default", "orthogonal"] = "default"
    """Initial weights of the encoder, bottleneck and torso: torch's defaults, or orthogonal with gain
    sqrt(2) and zero biases (the stable-gradients paper's code, and PPO implementations)."""
    norm: Literal["none", "layer", "rms"] = "none"
    """Normalisation after each dense layer of the torso and the token mixer, before the activation."""
    activation: Literal["relu", "tanh", "gelu"] = "relu"
    """Nonlinearity everywhere in the network."""

    def __post_init__(self) -> None:
        check_choices(self, "net")
        positive("net.patch_size", self.patch_size)
        require(self.patch_embedding >= 0, "net.patch_embedding", ">= 0 (0: the encoder's default)",
                self.patch_embedding)
        positive("net.projection", self.projection)
        positive("net.experts", self.experts)
        positive("net.expert_hidden", self.expert_hidden)
        positive("net.capacity", self.capacity)
        positive("net.hidden", self.hidden)
        require(self.depth >= 0, "net.depth", ">= 0", self.depth)
        require(self.skip_blocks >= 0, "net.skip_blocks", ">= 0", self.skip_blocks)
        in_range("net.width", self.width, 1e-3, 256.0)
        require(self.hidden <= 65_536, "net.hidden", "<= 65536", self.hidden)
        require(self.depth <= 1_000, "net.depth", "<= 1000", self.depth)

    def scaled(self, units: int) -> int:
        return max(1, round(units * self.width))


ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}
NORMS: dict[str, type[nn.Module] | None] = {"none": None, "layer": nn.LayerNorm, "rms": nn.RMSNorm}
PATCH_EMBEDDING = {"impala": 32, "nature_cnn": 64}
"""The per-patch token size of "Don't Flatten, Tokenize!"'s code after each encoder."""
CNNS: dict[str, type[nn.Module]] = {"minatar_cnn": MinAtarCNN, "nature_cnn": NatureCNN, "impala": ImpalaCNN,
                                    "drq": DrQCNN}


def is_grid(space: gym.spaces.Box) -> bool:
    """MinAtar-style observations: small channel-last (H, W, C) grids."""
    return len(space.shape) == 3 and space.shape[0] <= 16 and space.shape[1] <= 16


def is_frames(space: gym.spaces.Box) -> bool:
    """Pixel observations: channel-first (C, H, W) frames, as the Atari, DMC and Procgen suites give them."""
    return len(space.shape) == 3 and space.shape[1] >= 36 and space.shape[2] >= 36


class Network(nn.Sequential):
    """encoder -> bottleneck -> torso -> head. `features` stops before the head (for diagnostics,
    and for agents that put several heads on one trunk)."""

    def __init__(self, encoder: nn.Module, bottleneck: nn.Module, torso: nn.Module, head: nn.Module) -> None:
        super().__init__(OrderedDict(encoder=encoder, bottleneck=bottleneck, torso=torso, head=head))

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        return self.torso(self.bottleneck(self.encoder(obs)))


def encoder_kind(cfg: NetConfig, obs_space: gym.spaces.Box) -> str:
    if cfg.encoder != "auto":
        return cfg.encoder
    return "minatar_cnn" if is_grid(obs_space) else "nature_cnn" if is_frames(obs_space) else "mlp"


def build_trunk(cfg: NetConfig, obs_space: gym.Space) -> tuple[nn.Module, nn.Module, nn.Module, int]:
    """(encoder, bottleneck, torso, feature size) for an observation space."""
    require(isinstance(obs_space, gym.spaces.Box), "env", "an environment with Box observations", obs_space)
    kind = encoder_kind(cfg, obs_space)
    activation, norm = ACTIVATIONS[cfg.activation], NORMS[cfg.norm]
    if kind == "mlp":
        require(not cfg.coords, "net.coords", "False for vector observations (there is no image)", cfg.coords)
        require(cfg.bottleneck == "flatten", "net.bottleneck",
                "flatten for vector observations (the MLP input has no feature map)", cfg.bottleneck)
        encoder, bottleneck, features = FlatInput(), nn.Identity(), int(np.prod(obs_space.shape))
    else:
        require(is_grid(obs_space) or is_frames(obs_space), "net.encoder",
                "a CNN only for (H, W, C) grids up to 16x16 or (C, H, W) frames from 36x36",
                f"{kind} for {obs_space.shape}")
        channels = obs_space.shape[2] if is_grid(obs_space) else obs_space.shape[0]
        options = {"same_padding": True} if cfg.same_padding else {}
        require(not cfg.same_padding or kind == "minatar_cnn", "net.same_padding", "False for encoders other than "
                "the MinAtar CNN (only its conv pads to keep the grid)", cfg.same_padding)
        cnn = CNNS[kind](channels + 2 * cfg.coords, cfg.width, activation, **options)
        encoder = nn.Sequential(ImageInput(channel_last=is_grid(obs_space)),
                                *([CoordinateChannels()] if cfg.coords else []), cnn)
        with torch.no_grad():
            map_shape = tuple(encoder(torch.zeros(1, *obs_space.shape)).shape[1:])
        bottleneck, features = build_bottleneck(
            cfg.bottleneck, map_shape, mixer=cfg.mixer, pool=cfg.pool, units=cfg.scaled(cfg.hidden),
            projection=cfg.projection,
            patch_size=cfg.patch_size, patch_mode=cfg.patch_mode,
            patch_embedding=cfg.patch_embedding or PATCH_EMBEDDING.get(kind, map_shape[0]), experts=cfg.experts,
            expert_hidden=cfg.scaled(cfg.expert_hidden),
            capacity=cfg.capacity, moe_normalize=cfg.moe_normalize, norm=norm, activation=activation,
        )
    hidden = cfg.scaled(cfg.hidden)
    if cfg.torso == "mlp":
        torso = MLP(features, hidden, cfg.depth, activation, norm)
    else:
        torso = ResidualMLP(features, hidden, cfg.depth, activation, norm, multi_skip=cfg.torso == "multiskip",
                            skip_blocks=cfg.skip_blocks)
    if cfg.init == "orthogonal":
        for part in (encoder, bottleneck, torso):
            orthogonal_init(part)
    return encoder, bottleneck, torso, torso.out_features


def orthogonal_init(module: nn.Module, gain: float = math.sqrt(2)) -> None:
    """Orthogonal weights with `gain` and zero biases for every Linear and Conv2d layer of `module`. Each
    layer remembers its gain (`orthogonal_gain`), so a neuron reset re-draws from the same initializer."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv2d):
            nn.init.orthogonal_(layer.weight, gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
            layer.orthogonal_gain = gain


def redraw(layer: nn.Linear | nn.Conv2d) -> None:
    """Initialize `layer` afresh as the network built it: orthogonal where orthogonal_init drew it, torch's
    default (or the layer's own reset_parameters) otherwise."""
    layer.reset_parameters()
    if (gain := getattr(layer, "orthogonal_gain", None)) is not None:
        nn.init.orthogonal_(layer.weight, gain)


def build_network(cfg: NetConfig, obs_space: gym.Space, out_dim: int, head: nn.Module | None = None) -> Network:
    """The network of a spec for an observation space, with a Linear head of `out_dim` outputs unless
    the agent passes its own head (which must take the torso's `out_features` inputs)."""
    encoder, bottleneck, torso, features = build_trunk(cfg, obs_space)
    return Network(encoder, bottleneck, torso, head if head is not None else nn.Linear(features, out_dim))


def build_q_network(cfg: NetConfig, obs_space: gym.Space, num_actions: int, dueling: bool, atoms: int = 1,
                    noisy_sigma0: float = 0.0) -> Network:
    """A Q-network over the spec's trunk: a linear or dueling head with `atoms` outputs per action (1: Q
    values; more: the logits of a distribution over returns), shaped (batch, num_actions * atoms). With
    noisy_sigma0 > 0 the torso's and the head's linear layers are noisy (the encoder and bottleneck stay
    plain, as in Rainbow)."""
    encoder, bottleneck, torso, features = build_trunk(cfg, obs_space)
    head = DuelingHead(features, num_actions, atoms) if dueling else nn.Linear(features, num_actions * atoms)
    if noisy_sigma0 > 0:
        make_noisy(torso, noisy_sigma0)
        head = make_noisy(nn.Sequential(head), noisy_sigma0)[0]
    return Network(encoder, bottleneck, torso, head)


def call_chain(module: nn.Module) -> list:
    """The forward functions that compute `module(x)` one after another, for networks built of nested
    nn.Sequential containers: calling them skips torch's per-module dispatch, which on one observation
    costs more than a small MLP's arithmetic. Sequential containers are opened, Identity layers dropped,
    leaves called by their forward, any other container called whole. Forward hooks are not run: use it
    for acting, not for what diagnostics measure."""
    if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
        return [call for child in module for call in call_chain(child)]
    if isinstance(module, nn.Identity):
        return []
    return [module.forward if next(module.children(), None) is None else module]


NumpyStep = Callable[[np.ndarray, bool], np.ndarray]
"""One layer of a NumpyForward: (inputs, whether noisy layers draw noise) -> outputs."""


class NumpyForward:
    """`module(x)` computed in numpy on the CPU, for the networks agents act through: chains of Linear and ReLU
    layers, and the MinAtar CNN with a flatten or average-pool bottleneck, noisy layers and a dueling head.
    Acting on one observation through torch pays its dispatch on every op: about 45 us for a 120-120 MLP on
    one core here (numpy: 9), 277 us for Rainbow's noisy dueling C51 network on MinAtar (about 70 ops). The
    weights are numpy views of the parameters' memory, so optimizer steps, checkpoint loads and resets, all
    in place, show at once without copying. Noisy layers draw their noise from `rng` (the agent's, which its
    checkpoint keeps). `of` returns None for any other network, and for noisy layers without an `rng`."""

    def __init__(self, steps: list[NumpyStep]) -> None:
        self.steps = steps

    @classmethod
    def of(cls, module: nn.Module, rng: np.random.Generator | None = None) -> NumpyForward | None:
        steps = []
        for call in call_chain(module):
            step = numpy_step(getattr(call, "__self__", call), rng)
            if step is None:
                return None
            steps.extend(step)
        return cls(steps)

    def __call__(self, obs: np.ndarray, noise: bool = True) -> np.ndarray:
        """The outputs for `obs`; noisy layers in training mode draw fresh noise when `noise`, use their
        means otherwise (as torch's forward does in eval mode)."""
        x = np.asarray(obs)
        for step in self.steps:
            x = step(x, noise)
        return x


def numpy_step(layer: nn.Module, rng: np.random.Generator | None) -> list[NumpyStep] | None:
    """The numpy steps that compute `layer`, or None where there are none."""
    cpu_float = all(p.device.type == "cpu" and p.dtype == torch.float32 for p in layer.parameters())
    if not cpu_float:
        return None
    if type(layer) is nn.ReLU:
        return [lambda x, noise: np.maximum(x, np.float32(0.0))]
    if type(layer) is FlatInput:
        return [lambda x, noise: np.asarray(x, dtype=np.float32).reshape(len(x), -1)]
    if type(layer) is Flatten:
        return [lambda x, noise: x.reshape(len(x), -1)]
    if type(layer) is GlobalAveragePool:
        return [lambda x, noise: x.mean(axis=(2, 3), dtype=np.float32)]
    if type(layer) is ImageInput:
        if layer.channel_last:
            return [lambda x, noise: np.asarray(x, dtype=np.float32).transpose(0, 3, 1, 2)]
        return [lambda x, noise: np.asarray(x, dtype=np.float32) / np.float32(255.0)]
    if type(layer) is MinAtarCNN:
        conv, activation = numpy_step(layer.conv, rng), numpy_step(layer.activation, rng)
        return None if conv is None or activation is None else conv + activation
    if type(layer) is nn.Conv2d:
        return [numpy_conv(layer)] if layer.groups == 1 and layer.dilation == (1, 1) and isinstance(
            layer.padding, tuple) and layer.padding_mode == "zeros" else None
    if type(layer) is nn.Linear:
        return [numpy_linear(layer)]
    if type(layer) is NoisyLinear:
        return None if rng is None else [numpy_noisy_linear(layer, rng)]
    if type(layer) is DuelingHead:
        value, advantage = numpy_step(layer.value, rng), numpy_step(layer.advantage, rng)
        if value is None or advantage is None:
            return None
        actions, atoms = layer.num_actions, layer.atoms

        def dueling(x: np.ndarray, noise: bool) -> np.ndarray:
            a = advantage[0](x, noise).reshape(len(x), actions, atoms)
            v = value[0](x, noise).reshape(len(x), 1, atoms)
            return (v + a - a.mean(axis=1, keepdims=True)).reshape(len(x), actions * atoms)

        return [dueling]
    return None


def numpy_linear(layer: nn.Linear) -> NumpyStep:
    weight = layer.weight.detach().numpy().T
    bias = None if layer.bias is None else layer.bias.detach().numpy()

    def linear(x: np.ndarray, noise: bool) -> np.ndarray:
        return x @ weight if bias is None else x @ weight + bias

    return linear


def numpy_noisy_linear(layer: NoisyLinear, rng: np.random.Generator) -> NumpyStep:
    """NoisyLinear's factored form, (sigma_w (x e_in) + sigma_b) e_out + mu_w x + mu_b, with f(e) = sign(e) sqrt(|e|)
    drawn from `rng`."""
    means = numpy_linear(layer)
    weight_sigma = layer.weight_sigma.detach().numpy().T
    bias_sigma = None if layer.bias_sigma is None else layer.bias_sigma.detach().numpy()
    inputs, outputs = layer.in_features, layer.out_features

    def noisy_linear(x: np.ndarray, noise: bool) -> np.ndarray:
        if not (noise and layer.training):
            return means(x, noise)
        draw = rng.standard_normal(inputs + outputs, dtype=np.float32)
        scaled = np.copysign(np.sqrt(np.abs(draw)), draw)
        noise_term = (x * scaled[:inputs]) @ weight_sigma
        if bias_sigma is not None:
            noise_term += bias_sigma
        return means(x, noise) + noise_term * scaled[inputs:]

    return noisy_linear


def numpy_conv(layer: nn.Conv2d) -> NumpyStep:
    """A 2-d convolution as one matrix product over the input's windows (batch, C, H, W), gathered by an index
    built once per input shape (numpy's sliding_window_view costs more than the product on one observation)."""
    out_channels = layer.out_channels
    weight = layer.weight.detach().numpy().reshape(out_channels, -1).T  # (C * kh * kw, out)
    bias = None if layer.bias is None else layer.bias.detach().numpy()
    (pad_h, pad_w), (stride_h, stride_w), kernel = layer.padding, layer.stride, layer.kernel_size
    windows_of: dict[tuple[int, ...], np.ndarray] = {}

    def conv(x: np.ndarray, noise: bool) -> np.ndarray:
        if pad_h or pad_w:
            x = np.pad(x, ((0, 0), (0, 0), (pad_h, pad_h), (pad_w, pad_w)))
        batch, shape = len(x), x.shape[1:]
        if shape not in windows_of:  # (out_h, out_w, C * kh * kw) positions in the flattened input
            positions = np.arange(int(np.prod(shape))).reshape(shape)
            windows = np.lib.stride_tricks.sliding_window_view(positions, kernel, axis=(1, 2))
            windows = windows[:, ::stride_h, ::stride_w]
            windows_of[shape] = windows.transpose(1, 2, 0, 3, 4).reshape(*windows.shape[1:3], -1)
        index = windows_of[shape]
        out = x.reshape(batch, -1)[:, index] @ weight  # (batch, out_h, out_w, out)
        if bias is not None:
            out += bias
        return out.transpose(0, 3, 1, 2)

    return conv


class FastForward:
    """`module(x)` for acting and for target networks, where nothing watches the forward: its call chain
    (no per-module dispatch), and `numpy`, the same computed in numpy where NumpyForward covers the network
    on the CPU (None otherwise; noisy layers draw from `rng`). Training forwards go through the module itself,
    so that forward hooks and diagnostics see them."""

    def __init__(self, module: nn.Module, rng: np.random.Generator | None = None) -> None:
        self.module = module
        self.calls = call_chain(module)
        self.numpy = NumpyForward.of(module, rng)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for call in self.calls:
            x = call(x)
        return x


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = [
    "MLP", "TOKENIZED", "DrQCNN", "DuelingHead", "ImpalaCNN", "MinAtarCNN", "NatureCNN", "NetConfig", "Network",
    "NoisyLinear",
    "FastForward", "NumpyForward", "ResidualMLP",
    "SoftMoE", "build_network", "build_q_network", "build_trunk", "call_chain", "parameter_count",
]
