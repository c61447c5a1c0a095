"""What the run loop needs from an agent, and the settings every off-policy agent shares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from scalerl.checks import in_range, positive, require
from scalerl.nets import NetConfig
from scalerl.optim import OptimizerConfig


@dataclass(frozen=True)
class OffPolicyConfig(OptimizerConfig):
    """Replay and update cadence, read by the off-policy loop, and the optimizer."""

    buffer_size: int = 100_000
    """Transitions kept in replay."""
    batch_size: int = 64
    """Transitions per gradient step."""
    learning_starts: int = 1_000
    """Environment steps of data collected before the first update."""
    train_every: int = 1
    """Environment steps between training rounds."""
    gradient_steps: int = 1
    """Gradient steps per training round."""
    gamma: float = 0.99
    """Discount factor."""
    n_step: int = 1
    """Rewards summed before bootstrapping (n-step returns)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        positive("algo.buffer_size", self.buffer_size)
        positive("algo.batch_size", self.batch_size)
        require(self.learning_starts >= 0, "algo.learning_starts", ">= 0", self.learning_starts)
        positive("algo.train_every", self.train_every)
        positive("algo.gradient_steps", self.gradient_steps)
        in_range("algo.gamma", self.gamma, 0.0, 1.0)
        positive("algo.n_step", self.n_step)
        require(self.n_step < self.buffer_size, "algo.n_step", "< algo.buffer_size", self.n_step)


class Agent(ABC):
    """An agent acts on batches of observations and learns from batches of experience.

    Subclasses set `name`, `config_class` and `loop` ("off_policy" or, later, "on_policy").
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    loop: ClassVar[str]
    description: ClassVar[str]

    def __init__(
        self,
        cfg: Any,
        net: NetConfig,
        obs_space: gym.Space,
        action_space: gym.Space,
        device: torch.device,
        seed: int,
    ) -> None:
        self.cfg = cfg
        self.device = device
        self.rng = np.random.default_rng(seed)

    @abstractmethod
    def act(self, obs: np.ndarray, *, explore: bool) -> np.ndarray:
        """Actions for a batch of observations; explore=False is the deterministic evaluation policy."""

    @abstractmethod
    def update(self, batch: Any) -> dict[str, torch.Tensor]:
        """One gradient step. Returns detached scalars; the loop reads them only when it logs."""

    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """Named networks, for diagnostics, resets and parameter counts."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training exactly: networks, optimizers, counters, RNG."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def train_scalars(self) -> dict[str, float]:
        """Scalars about acting (e.g. epsilon) logged alongside training metrics."""
        return {}
