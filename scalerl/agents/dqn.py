"""DQN (Mnih et al., 2015) with the common upgrades as flags: double Q-learning (van Hasselt et al.,
2016), n-step returns, a dueling head (Wang et al., 2016), Huber loss and soft or hard target updates.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scalerl.agents.base import Agent, AgentSpec, OffPolicyConfig, Optimized, check_optimizers
from scalerl.checks import in_range, non_negative, positive, require
from scalerl.nets import build_q_network, call_chain
from scalerl.optim import OptimizerConfig, load_optimizer_state, make_optimizer
from scalerl.replay import Batch


@dataclass(frozen=True)
class DQNConfig(OffPolicyConfig):
    """DQN hyperparameters. Defaults solve CartPole-v1 within 100k steps (with 3-step returns)."""

    n_step: int = 3
    """Rewards summed before bootstrapping (n-step returns)."""
    optim: OptimizerConfig = field(default_factory=OptimizerConfig)
    """The Q-network's optimizer (--algo.optim.kind, --algo.optim.lr, ...)."""
    max_grad_norm: float = 10.0
    """Clip the gradient's global norm to this (0: no clipping)."""
    loss: Literal["huber", "mse"] = "huber"
    """TD loss: Huber (smooth L1, delta 1) or squared error."""
    double: bool = True
    """Double DQN: the online network picks the next action, the target network values it."""
    dueling: bool = False
    """Dueling head: Q = V + A - mean(A)."""
    target_update_every: int = 250
    """Gradient steps between target network updates."""
    tau: float = 1.0
    """Target update rate: 1 copies the online network, < 1 moves the target part-way (Polyak)."""
    epsilon_start: float = 1.0
    """Exploration rate at step 0."""
    epsilon_end: float = 0.02
    """Exploration rate after the decay."""
    epsilon_decay_steps: int = 10_000
    """Environment steps over which epsilon falls linearly from start to end."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_optimizers(self)
        non_negative("algo.max_grad_norm", self.max_grad_norm)
        positive("algo.target_update_every", self.target_update_every)
        require(0.0 < self.tau <= 1.0, "algo.tau", "in (0, 1]", self.tau)
        in_range("algo.epsilon_start", self.epsilon_start, 0.0, 1.0)
        in_range("algo.epsilon_end", self.epsilon_end, 0.0, 1.0)
        positive("algo.epsilon_decay_steps", self.epsilon_decay_steps)


class DQN(Agent):
    name = "dqn"
    config_class = DQNConfig
    loop = "off_policy"
    description = "DQN: double, n-step, dueling options; discrete actions"

    def __init__(self, cfg: DQNConfig, spec: AgentSpec) -> None:
        super().__init__(cfg, spec)
        action_space = spec.action_space
        require(isinstance(action_space, gym.spaces.Discrete), "env", "an environment with discrete actions for dqn", action_space)
        self.num_actions = int(action_space.n)
        self.q = build_q_network(spec.net, spec.obs_space, self.num_actions, cfg.dueling).to(self.device)
        self.target = copy.deepcopy(self.q).requires_grad_(False)
        self.q_layers = call_chain(self.q)
        self.optimizer = make_optimizer(self.q.parameters(), cfg.optim)
        self.env_steps = 0
        self.gradient_steps = 0

    def epsilon(self) -> float:
        fraction = min(1.0, self.env_steps / self.cfg.epsilon_decay_steps)
        return self.cfg.epsilon_start + fraction * (self.cfg.epsilon_end - self.cfg.epsilon_start)

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            q_values = torch.as_tensor(obs, device=self.device)
            for layer in self.q_layers:
                q_values = layer(q_values)
            return q_values.argmax(dim=1).cpu().numpy()

    def act(self, obs: np.ndarray, *, explore: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if not explore:
            return self.greedy(obs), {}
        batch = len(obs)
        explore_mask = self.rng.random(batch) < self.epsilon()
        self.env_steps += batch
        actions = self.rng.integers(0, self.num_actions, size=batch)
        if explore_mask.all():
            return actions, {}
        if not explore_mask.any():
            return self.greedy(obs), {}
        return np.where(explore_mask, actions, self.greedy(obs)), {}

    def td_target(self, batch: Batch) -> torch.Tensor:
        with torch.no_grad():
            next_q_target = self.target(batch.next_obs)
            if self.cfg.double:
                next_actions = self.q(batch.next_obs).argmax(dim=1, keepdim=True)
                next_value = next_q_target.gather(1, next_actions).squeeze(1)
            else:
                next_value = next_q_target.max(dim=1).values
            return batch.rewards + batch.discounts * next_value

    def loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        q_taken = self.q(batch.obs).gather(1, batch.actions.long().unsqueeze(1)).squeeze(1)
        target = self.td_target(batch)
        if self.cfg.loss == "huber":
            return F.smooth_l1_loss(q_taken, target), q_taken
        return F.mse_loss(q_taken, target), q_taken

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        loss, q_taken = self.loss(batch)
        grad_norm = self.step_optimizer("q", loss, self.cfg.max_grad_norm)
        self.gradient_steps += 1
        if self.gradient_steps % self.cfg.target_update_every == 0:
            self.update_target()
        metrics = {"loss": loss.detach(), "q_mean": q_taken.detach().mean()}
        if grad_norm is not None:
            metrics["grad_norm"] = grad_norm.detach()
        return metrics

    @torch.no_grad()
    def update_target(self) -> None:
        online, target = list(self.q.parameters()), list(self.target.parameters())
        if self.cfg.tau == 1.0:
            torch._foreach_copy_(target, online)
        else:
            torch._foreach_lerp_(target, online, self.cfg.tau)

    def train_scalars(self) -> dict[str, float]:
        return {"epsilon": self.epsilon()}

    def modules(self) -> dict[str, nn.Module]:
        return {"q": self.q}

    def targets(self) -> dict[str, nn.Module]:
        return {"q": self.target}

    def optimizers(self) -> dict[str, Optimized]:
        return {"q": Optimized(self.optimizer, ("q",))}

    def state_dict(self) -> dict[str, Any]:
        return {
            "q": self.q.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "env_steps": self.env_steps,
            "gradient_steps": self.gradient_steps,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.q.load_state_dict(state["q"])
        self.target.load_state_dict(state["target"])
        load_optimizer_state(self.optimizer, state["optimizer"])
        self.env_steps = state["env_steps"]
        self.gradient_steps = state["gradient_steps"]
        self.rng.bit_generator.state = state["rng"]
