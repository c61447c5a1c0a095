"""TD3 (Fujimoto et al., 2018): a deterministic actor, twin critics with the smaller one as the target,
target policy smoothing, and delayed actor and target updates; Gaussian exploration noise.

Networks see actions scaled to [-1, 1]; noise scales are fractions of that range.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scalerl.agents.base import Agent, AgentSpec, Optimized, frozen, polyak
from scalerl.agents.continuous import (
    ActionScaling,
    ActorCriticConfig,
    build_critic,
    check_continuous,
    head_config,
    vector_space,
)
from scalerl.checks import non_negative, positive, require
from scalerl.nets import build_network
from scalerl.optim import make_optimizer
from scalerl.replay import Batch


@dataclass(frozen=True)
class TD3Config(ActorCriticConfig):
    """TD3 hyperparameters (Fujimoto et al., 2018, with CleanRL's settings)."""

    learning_starts: int = 25_000
    """Environment steps of uniformly random actions before the first update."""
    exploration_noise: float = 0.1
    """Standard deviation of the Gaussian noise added to actions while training."""
    policy_noise: float = 0.2
    """Standard deviation of the target policy smoothing noise."""
    noise_clip: float = 0.5
    """The smoothing noise is clipped to [-noise_clip, noise_clip]."""
    policy_delay: int = 2
    """Critic updates per actor (and target) update."""

    def __post_init__(self) -> None:
        super().__post_init__()
        non_negative("algo.exploration_noise", self.exploration_noise)
        non_negative("algo.policy_noise", self.policy_noise)
        non_negative("algo.noise_clip", self.noise_clip)
        positive("algo.policy_delay", self.policy_delay)


class DeterministicActor(nn.Sequential):
    """The network, then tanh into [-1, 1]; a plain chain, so that Agent.fast can run it without dispatch."""

    def __init__(self, spec: AgentSpec, action_dim: int) -> None:
        net = build_network(head_config(spec.net), vector_space(spec.obs_space.shape[0]), action_dim)
        super().__init__(OrderedDict(net=net, squash=nn.Tanh()))


class TD3(Agent):
    name = "td3"
    config_class = TD3Config
    loop = "off_policy"
    description = "TD3: twin critics, target policy smoothing, delayed actor updates; continuous actions"
    saved = ("actor", "critic1", "critic2", "target_actor", "target1", "target2", "actor_optimizer", "critic_optimizer",
             "env_steps", "critic_updates")
    critic_of_actions = True

    def __init__(self, cfg: TD3Config, spec: AgentSpec) -> None:
        super().__init__(cfg, spec)
        space = check_continuous(spec, "td3")
        require(len(spec.obs_space.shape) == 1, "env", "vector observations for td3 (from pixels, use sac)",
                spec.obs_space)
        self.action_dim = space.shape[0]
        self.scaling = ActionScaling(space, self.device)
        self.actor = DeterministicActor(spec, self.action_dim).to(self.device)
        features = spec.obs_space.shape[0]
        self.critic1 = build_critic(spec.net, features, self.action_dim).to(self.device)
        self.critic2 = build_critic(spec.net, features, self.action_dim).to(self.device)
        self.target_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.target1 = copy.deepcopy(self.critic1).requires_grad_(False)
        self.target2 = copy.deepcopy(self.critic2).requires_grad_(False)
        self.actor_optimizer = make_optimizer(self.actor.parameters(), cfg.actor_optim)
        self.critic_optimizer = make_optimizer([*self.critic1.parameters(), *self.critic2.parameters()],
                                               cfg.critic_optim)
        self.env_steps = 0
        self.critic_updates = 0

    def act(self, obs: np.ndarray, *, explore: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if explore:
            self.env_steps += len(obs)
            if self.env_steps <= self.cfg.learning_starts:
                return self.scaling.uniform(self.rng, len(obs)), {}
        with torch.no_grad():
            action = self.fast(self.actor)(torch.as_tensor(obs, device=self.device))
        if explore:
            noise = self.rng.normal(0.0, self.cfg.exploration_noise, action.shape).astype(np.float32)
            action = (action + torch.as_tensor(noise, device=self.device)).clamp(-1.0, 1.0)
        return self.scaling.to_env(action), {}

    @torch.no_grad()
    def q_value(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """min(Q1, Q2) of environment actions taken in observations (what LEAST compares)."""
        obs_tensor = torch.as_tensor(obs, device=self.device)
        unit = self.scaling.to_unit(torch.as_tensor(actions, device=self.device))
        return torch.min(self.critic1(obs_tensor, unit), self.critic2(obs_tensor, unit)).cpu().numpy()

    def critic_target(self, batch: Batch) -> torch.Tensor:
        """r + discount * min of the target critics at the target actor's action plus clipped noise."""
        cfg = self.cfg
        with torch.no_grad():
            noise = (torch.randn(len(batch.rewards), self.action_dim, device=self.device) * cfg.policy_noise)
            noise = noise.clamp(-cfg.noise_clip, cfg.noise_clip)
            next_action = (self.fast(self.target_actor)(batch.next_obs) + noise).clamp(-1.0, 1.0)
            next_q = torch.min(self.target1(batch.next_obs, next_action), self.target2(batch.next_obs, next_action))
            return batch.rewards + batch.discounts * next_q

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        actions = self.scaling.to_unit(batch.actions)
        target = self.critic_target(batch)
        q1, q2 = self.critic1(batch.obs, actions), self.critic2(batch.obs, actions)
        critic_loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        self.step_optimizer("critic", critic_loss, cfg.max_grad_norm)
        self.critic_updates += 1
        metrics = {"critic_loss": critic_loss.detach(), "q_mean": q1.detach().mean()}
        if self.critic_updates % cfg.policy_delay == 0:
            with frozen(self.critic1):
                actor_loss = -self.critic1(batch.obs, self.actor(batch.obs)).mean()
                self.step_optimizer("actor", actor_loss, cfg.max_grad_norm)
            self.update_targets()
            metrics["actor_loss"] = actor_loss.detach()
        return metrics

    def update_targets(self) -> None:
        polyak([(self.actor, self.target_actor), (self.critic1, self.target1), (self.critic2, self.target2)],
               self.cfg.tau)

    def modules(self) -> dict[str, nn.Module]:
        return {"actor": self.actor, "critic1": self.critic1, "critic2": self.critic2}

    def targets(self) -> dict[str, nn.Module]:
        return {"actor": self.target_actor, "critic1": self.target1, "critic2": self.target2}

    def optimizers(self) -> dict[str, Optimized]:
        return {"actor": Optimized(self.actor_optimizer, ("actor",)),
                "critic": Optimized(self.critic_optimizer, ("critic1", "critic2"))}

