"""What the actor-critic agents for continuous actions share (SAC, TD3, multi-task SAC): their config's common
part, critics of state-action pairs, the dense part of the network spec, and the mapping between the networks'
[-1, 1] actions and the environment's bounds."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from scalerl.agents.base import AgentSpec, OffPolicyConfig, check_optimizers
from scalerl.checks import non_negative, require
from scalerl.nets import NetConfig, build_network
from scalerl.optim import OptimizerConfig


@dataclass(frozen=True)
class ActorCriticConfig(OffPolicyConfig):
    """What SAC and TD3 share: replay, warm-up, Polyak targets, and an optimizer each for actor and critics."""

    buffer_size: int = 1_000_000
    batch_size: int = 256
    learning_starts: int = 5_000
    """Environment steps of uniformly random actions before the first update."""
    tau: float = 0.005
    """Polyak rate of the target networks."""
    actor_optim: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=3e-4))
    critic_optim: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=3e-4))
    max_grad_norm: float = 0.0
    """Clip each optimizer's gradient norm to this (0: no clipping)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_optimizers(self)
        require(0.0 < self.tau <= 1.0, "algo.tau", "in (0, 1]", self.tau)
        non_negative("algo.max_grad_norm", self.max_grad_norm)


def vector_space(size: int) -> gym.spaces.Box:
    return gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)


def head_config(net: NetConfig) -> NetConfig:
    """The dense part of the spec, for networks over features (and actions)."""
    return dataclasses.replace(net, encoder="mlp", bottleneck="flatten")


class Critic(nn.Module):
    """Q(s, a): a network over the features and the action, side by side, with one output."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.net = network

    def forward(self, features: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([features, action], dim=-1)).squeeze(-1)


def build_critic(net: NetConfig, features: int, action_dim: int) -> Critic:
    """The spec's dense network as a critic."""
    return Critic(build_network(head_config(net), vector_space(features + action_dim), 1))


def check_continuous(spec: AgentSpec, agent: str) -> gym.spaces.Box:
    space = spec.action_space
    require(isinstance(space, gym.spaces.Box) and len(space.shape) == 1 and np.all(np.isfinite(space.low))
            and np.all(np.isfinite(space.high)), "env", f"an environment with bounded continuous actions for {agent} "
            "(for discrete actions use --agent dqn, rainbow, pqn or ppo)", space)
    return space


class ActionScaling:
    """Between the networks' [-1, 1] actions and the environment's bounds."""

    def __init__(self, space: gym.spaces.Box, device: torch.device) -> None:
        self.low, self.high = space.low.astype(np.float32), space.high.astype(np.float32)
        self.scale = torch.as_tensor((self.high - self.low) / 2, device=device)
        self.centre = torch.as_tensor((self.high + self.low) / 2, device=device)

    def uniform(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """Uniformly random environment actions (the warm-up before learning starts)."""
        return rng.uniform(self.low, self.high, (count, len(self.low))).astype(np.float32)

    def to_env(self, action: torch.Tensor) -> np.ndarray:
        return (action * self.scale + self.centre).cpu().numpy()

    def to_unit(self, action: torch.Tensor) -> torch.Tensor:
        return (action - self.centre) / self.scale


__all__ = ["ActionScaling", "ActorCriticConfig", "Critic", "build_critic", "check_continuous", "head_config",
           "vector_space"]
