"""Output heads and layers shared by value-based agents: dueling, and noisy linear layers."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class DuelingHead(nn.Module):
    """Q(s, a) = V(s) + A(s, a) - mean_a A(s, a) (Wang et al., 2016); with `atoms` > 1, the same on each
    atom's logit of a distributional head (as Rainbow does). Outputs (batch, num_actions * atoms)."""

    def __init__(self, in_features: int, num_actions: int, atoms: int = 1) -> None:
        super().__init__()
        self.num_actions, self.atoms = num_actions, atoms
        self.value = nn.Linear(in_features, atoms)
        self.advantage = nn.Linear(in_features, num_actions * atoms)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        advantage = self.advantage(features).view(-1, self.num_actions, self.atoms)
        value = self.value(features).view(-1, 1, self.atoms)
        return (value + advantage - advantage.mean(dim=1, keepdim=True)).flatten(1)


class NoisyLinear(nn.Linear):
    """A linear layer with learned, factorised Gaussian noise on its weights (Fortunato et al., 2018):
    w = mu_w + sigma_w * (f(e_out) f(e_in)^T), b = mu_b + sigma_b * f(e_out), f(x) = sign(x) sqrt(|x|).

    The means are the Linear layer's own weight and bias (initialised U(-1/sqrt(in), 1/sqrt(in)), as
    torch's Linear is), the sigmas start at sigma0 / sqrt(in). Fresh noise is drawn at every forward pass in
    training mode (each acting step and each update: online and target networks alike); in eval mode the
    layer is its means. A subclass of Linear, so diagnostics and resets treat it as one.
    """

    FACTORED_ROWS = 16
    """Below this many input rows (acting), the noise term is applied as (sigma (x * e_in)) * e_out, two thin
    matmuls, instead of building the in x out noisy weight matrix: 3-5x faster for one row of a wide layer.
    A training batch amortises the build, which is then the faster way."""

    def __init__(self, in_features: int, out_features: int, sigma0: float = 0.5, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        scale = sigma0 / math.sqrt(in_features)
        self.sigma_init = scale
        self.weight_sigma = nn.Parameter(torch.full((out_features, in_features), scale))
        self.bias_sigma = nn.Parameter(torch.full((out_features,), scale)) if bias else None

    @staticmethod
    def scaled_noise(size: int, like: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(size, device=like.device, dtype=like.dtype)
        return noise.abs().sqrt_().copysign_(noise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return F.linear(x, self.weight, self.bias)
        noise = self.scaled_noise(self.in_features + self.out_features, x)  # one draw: acting runs every step
        noise_in, noise_out = noise[:self.in_features], noise[self.in_features:]
        if x.numel() < self.FACTORED_ROWS * self.in_features:  # (sigma_w (x e_in) + sigma_b) e_out + mu_w x + mu_b
            noise_term = F.linear(x * noise_in, self.weight_sigma, self.bias_sigma)
            return torch.addcmul(F.linear(x, self.weight, self.bias), noise_term, noise_out)
        bias = self.bias + self.bias_sigma * noise_out if self.bias is not None else None
        weight = torch.addcmul(self.weight, self.weight_sigma, torch.outer(noise_out, noise_in))
        return F.linear(x, weight, bias)


def make_noisy(module: nn.Module, sigma0: float) -> nn.Module:
    """Swap every Linear layer inside `module` for a NoisyLinear that starts from the same means."""
    for name, child in module.named_children():
        if type(child) is nn.Linear:
            noisy = NoisyLinear(child.in_features, child.out_features, sigma0, child.bias is not None)
            with torch.no_grad():
                noisy.weight.copy_(child.weight)
                if child.bias is not None:
                    noisy.bias.copy_(child.bias)
            setattr(module, name, noisy.to(child.weight.device))
        else:
            make_noisy(child, sigma0)
    return module
