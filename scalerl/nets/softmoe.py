"""Soft mixture of experts (Puigcerver et al., 2024), as used between the encoder and the head in
"Mixtures of Experts Unlock Parameter Scaling for Deep RL" and "Don't Flatten, Tokenize!".

Tokens X (m x d) are mixed into n * p slots, p per expert. With learned slot parameters Phi (d x n*p),
logits = X Phi; the dispatch weights D = softmax over the m tokens (each slot is a convex combination
of tokens) and the combine weights C = softmax over the n * p slots (each output token is a convex
combination of slot outputs). Slot inputs are D^T X, expert i processes its p slots, and the output is
Y = C Y~, again m tokens of d dimensions.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SoftMoE(nn.Module):
    """tokens (batch, m, d) -> (batch, m, d). Experts are Dense(hidden)-activation-Dense(d), kept as
    stacked weights so all experts run in two batched matrix products.

    normalize=True L2-normalizes the tokens and each column of Phi and multiplies the logits by a
    learned scale (initialised to 1), which keeps the softmaxes from saturating as d grows."""

    def __init__(
        self,
        num_tokens: int,
        dim: int,
        experts: int,
        hidden: int,
        capacity: float = 1.0,
        normalize: bool = False,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.experts = experts
        self.slots_per_expert = max(1, math.ceil(num_tokens * capacity / experts))
        self.normalize = normalize
        self.phi = nn.Parameter(torch.empty(dim, experts * self.slots_per_expert))
        nn.init.normal_(self.phi, std=1.0 / math.sqrt(dim))
        self.scale = nn.Parameter(torch.ones(())) if normalize else None
        self.w1 = nn.Parameter(torch.empty(experts, dim, hidden))
        self.b1 = nn.Parameter(torch.zeros(experts, 1, hidden))
        self.w2 = nn.Parameter(torch.empty(experts, hidden, dim))
        self.b2 = nn.Parameter(torch.zeros(experts, 1, dim))
        for weight, fan_in in ((self.w1, dim), (self.w2, hidden)):
            bound = 1.0 / math.sqrt(fan_in)  # nn.Linear's default scale
            nn.init.uniform_(weight, -bound, bound)
        self.activation = activation()

    def weights(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Dispatch (batch, m, slots; sums to 1 over m) and combine (batch, m, slots; sums to 1 over slots)."""
        phi = self.phi
        if self.normalize:
            tokens = nn.functional.normalize(tokens, dim=-1)
            phi = self.scale * nn.functional.normalize(phi, dim=0)
        logits = tokens @ phi
        return logits.softmax(dim=1), logits.softmax(dim=2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        dispatch, combine = self.weights(tokens)
        slots = dispatch.transpose(1, 2) @ tokens  # (batch, n * p, d)
        batch, _, dim = slots.shape
        per_expert = slots.reshape(batch, self.experts, self.slots_per_expert, dim).transpose(0, 1)
        per_expert = per_expert.reshape(self.experts, batch * self.slots_per_expert, dim)
        hidden = self.activation(torch.baddbmm(self.b1, per_expert, self.w1))
        outputs = torch.baddbmm(self.b2, hidden, self.w2)  # (n, batch * p, d)
        outputs = outputs.reshape(self.experts, batch, self.slots_per_expert, dim).transpose(0, 1)
        return combine @ outputs.reshape(batch, self.experts * self.slots_per_expert, dim)
