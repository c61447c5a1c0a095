"""Soft Actor-Critic (Haarnoja et al., 2018; the version with a learned temperature, Haarnoja et al., 2019)
for continuous actions, from vector observations or from pixels.

Twin critics with Polyak-averaged targets, a tanh-squashed Gaussian policy, and a temperature alpha tuned
so that the policy's entropy stays near a target (-|A| by default). The actor, the critics and the
temperature each have their own optimizer settings (--algo.actor-optim.*, --algo.critic-optim.*,
--algo.alpha-optim.*). Actions are uniform over the action space until learning starts.

From pixels (CALE, DMC pixels) a convolutional encoder (--net.encoder nature_cnn, impala, ... with its
--net.bottleneck) turns frames into features. As in the CALE paper's baseline (and SAC-AE/DrQ), the encoder
learns only through the critic loss; the actor reads its features detached, and the target critics have a
Polyak-averaged copy of it. From vector observations the encoder is the identity.

Networks see actions scaled to [-1, 1]; the environment gets them mapped onto its bounds.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scalerl.agents.base import Agent, AgentSpec, Optimized, frozen, polyak
from scalerl.agents.continuous import (
    ActionScaling,
    ActorCriticConfig,
    Critic,
    build_critic,
    check_continuous,
    head_config,
    vector_space,
)
from scalerl.checks import check_choices, in_range, positive, require
from scalerl.nets import NetConfig, build_network, build_trunk
from scalerl.optim import OptimizerConfig, make_optimizer
from scalerl.replay import Batch

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
"""The policy's log standard deviation is squashed into this range (as in CleanRL and DrQ)."""


@dataclass(frozen=True)
class SACConfig(ActorCriticConfig):
    """SAC hyperparameters (Haarnoja et al., 2019, with CleanRL's learning rates)."""

    critic_optim: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=1e-3))
    alpha_optim: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=1e-3))
    autotune: bool = True
    """Learn the temperature alpha towards the target entropy; otherwise keep alpha fixed."""
    alpha: float = 0.2
    """The temperature when not tuned, and its starting value when tuned."""
    target_entropy_scale: float = 1.0
    """Target entropy = -scale * action dimensions."""
    entropy_units: Literal["squashed", "action"] = "squashed"
    """Whose log-probabilities the temperature is tuned on (and the critic's entropy bonus uses): the squashed
    action in [-1, 1] (scalerl's and SB3's), or the environment's action, as CleanRL computes them (minus the
    sum of the log half-ranges of the action bounds). The same where the bounds are [-1, 1]; elsewhere (e.g.
    Pendulum's [-2, 2]) "action" asks for that much more spread in the environment's units."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choices(self, "algo")
        positive("algo.alpha", self.alpha)
        in_range("algo.target_entropy_scale", self.target_entropy_scale, -10.0, 10.0)


def build_encoder(spec: AgentSpec) -> tuple[nn.Module, int]:
    """For pixels, the spec's CNN and bottleneck (no torso) and its feature size; for vectors, the identity."""
    if len(spec.obs_space.shape) == 1:
        require(spec.net.encoder in ("auto", "mlp"), "net.encoder", "auto or mlp for vector observations (a CNN needs "
                f"pixels; this env observes {spec.obs_space.shape})", spec.net.encoder)
        return nn.Identity(), spec.obs_space.shape[0]
    encoder, bottleneck, _, features = build_trunk(dataclasses.replace(spec.net, torso="mlp", depth=0), spec.obs_space)
    return nn.Sequential(encoder, bottleneck), features


class GaussianActor(nn.Module):
    """A Gaussian over pre-squash actions; tanh maps samples into [-1, 1]. The network's outputs are the
    mean and the unsquashed log standard deviation of each action; the `*_of` methods read them, so that
    acting can compute the outputs by the network's fast forward (Agent.fast) and training by the module."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.net = network

    @staticmethod
    def gaussian_of(outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean and the log standard deviation, squashed smoothly into [LOG_STD_MIN, LOG_STD_MAX]."""
        mean, log_std = outputs.chunk(2, dim=-1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1)
        return mean, log_std

    @classmethod
    def sample_of(cls, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised squashed sample and its log-probability, with the tanh change of variables:
        log pi(a) = log N(u) - sum log(1 - tanh(u)^2)."""
        mean, log_std = cls.gaussian_of(outputs)
        pre_squash = mean + log_std.exp() * torch.randn_like(mean)
        action = torch.tanh(pre_squash)
        gaussian = -0.5 * ((pre_squash - mean) / log_std.exp()).square() - log_std - 0.5 * math.log(2 * math.pi)
        log_prob = (gaussian - 2 * (math.log(2) - pre_squash - F.softplus(-2 * pre_squash))).sum(-1)
        return action, log_prob

    @staticmethod
    def mean_action_of(outputs: torch.Tensor) -> torch.Tensor:
        """The deterministic action: tanh of the mean."""
        return torch.tanh(outputs.chunk(2, dim=-1)[0])

    def distribution(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.gaussian_of(self.net(obs))

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sample_of(self.net(obs))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mean_action_of(self.net(obs))


def build_actor(net: NetConfig, features: int, action_dim: int) -> GaussianActor:
    """The spec's dense network as a Gaussian policy."""
    return GaussianActor(build_network(head_config(net), vector_space(features), 2 * action_dim))


class SAC(Agent):
    name = "sac"
    config_class = SACConfig
    loop = "off_policy"
    description = "Soft Actor-Critic: twin critics, squashed Gaussian policy, learned temperature; continuous actions"
    saved = ("encoder", "target_encoder", "actor", "critic1", "critic2", "target1", "target2", "log_alpha",
             "actor_optimizer", "critic_optimizer", "alpha_optimizer", "env_steps")
    critic_of_actions = True

    def __init__(self, cfg: SACConfig, spec: AgentSpec) -> None:
        super().__init__(cfg, spec)
        space = check_continuous(spec, self.name)
        self.action_dim = space.shape[0]
        self.scaling = ActionScaling(space, self.device)
        self.log_prob_offset = float(torch.log(self.scaling.scale).sum()) if cfg.entropy_units == "action" else 0.0
        self.encoder, features = build_encoder(spec)
        self.encoder.to(self.device)
        self.actor, self.critic1, self.critic2 = (network.to(self.device)
                                                  for network in self.build_networks(spec, features))
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.target1 = copy.deepcopy(self.critic1).requires_grad_(False)
        self.target2 = copy.deepcopy(self.critic2).requires_grad_(False)
        self.log_alpha = torch.full(self.temperature_shape(), math.log(cfg.alpha), device=self.device,
                                    requires_grad=cfg.autotune)
        self.target_entropy = -cfg.target_entropy_scale * self.action_dim
        self.actor_optimizer = make_optimizer(self.actor.parameters(), cfg.actor_optim)
        self.critic_optimizer = make_optimizer(
            [*self.encoder.parameters(), *self.critic1.parameters(), *self.critic2.parameters()], cfg.critic_optim)
        self.alpha_optimizer = make_optimizer([self.log_alpha], cfg.alpha_optim)
        self.env_steps = 0

    def build_networks(self, spec: AgentSpec, features: int) -> tuple[GaussianActor, Critic, Critic]:
        """The actor and the twin critics over the encoder's features."""
        return (build_actor(spec.net, features, self.action_dim), build_critic(spec.net, features, self.action_dim),
                build_critic(spec.net, features, self.action_dim))

    def temperature_shape(self) -> tuple[int, ...]:
        """One temperature (MT-SAC keeps one per task)."""
        return ()

    # -- acting ----------------------------------------------------------------------------------

    def act(self, obs: np.ndarray, *, explore: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if explore:
            self.env_steps += len(obs)
            if self.env_steps <= self.cfg.learning_starts:
                return self.scaling.uniform(self.rng, len(obs)), {}
        with torch.no_grad():
            features = self.fast(self.encoder)(torch.as_tensor(obs, device=self.device))
            outputs = self.fast(self.actor.net)(features)
            action = self.actor.sample_of(outputs)[0] if explore else self.actor.mean_action_of(outputs)
        return self.scaling.to_env(action), {}

    @torch.no_grad()
    def q_value(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """min(Q1, Q2) of environment actions taken in observations (what LEAST compares)."""
        features = self.encoder(torch.as_tensor(obs, device=self.device))
        unit = self.scaling.to_unit(torch.as_tensor(actions, device=self.device))
        return torch.min(self.critic1(features, unit), self.critic2(features, unit)).cpu().numpy()

    # -- learning --------------------------------------------------------------------------------

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    def log_temperature(self, obs: torch.Tensor) -> torch.Tensor:
        """log alpha for a batch of observations: the one temperature (MT-SAC: each observation's task's)."""
        return self.log_alpha

    def sample(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A policy sample in [-1, 1] and its log-probability in the configured `entropy_units`."""
        action, log_prob = self.actor.sample(features)
        return action, log_prob - self.log_prob_offset

    def critic_target(self, batch: Batch, alpha: torch.Tensor) -> torch.Tensor:
        """r + discount * (min of the target critics at a fresh next action - alpha * its log-probability)."""
        with torch.no_grad():
            next_action, next_log_prob = self.sample(self.encoder(batch.next_obs))
            next_features = self.target_encoder(batch.next_obs)
            next_q = torch.min(self.target1(next_features, next_action), self.target2(next_features, next_action))
            return batch.rewards + batch.discounts * (next_q - alpha * next_log_prob)

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        actions = self.scaling.to_unit(batch.actions)
        log_alpha = self.log_temperature(batch.obs)
        alpha = log_alpha.detach().exp()
        target = self.critic_target(batch, alpha)
        features = self.encoder(batch.obs)  # the encoder learns from the critic loss only
        q1, q2 = self.critic1(features, actions), self.critic2(features, actions)
        critic_loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        self.step_optimizer("critic", critic_loss, cfg.max_grad_norm)

        features = features.detach()
        with frozen(self.critic1, self.critic2):
            action, log_prob = self.sample(features)
            q_policy = torch.min(self.critic1(features, action), self.critic2(features, action))
            actor_loss = (alpha * log_prob - q_policy).mean()
            self.step_optimizer("actor", actor_loss, cfg.max_grad_norm)

        metrics = {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(), "q_mean": q1.detach().mean(),
                   "entropy": -log_prob.detach().mean()}
        if cfg.autotune:
            alpha_loss = -(log_alpha * (log_prob.detach() + self.target_entropy)).mean()
            self.step_optimizer("alpha", alpha_loss)
            metrics["alpha_loss"] = alpha_loss.detach()
        self.update_targets()
        return metrics

    def update_targets(self) -> None:
        polyak([(self.encoder, self.target_encoder), (self.critic1, self.target1), (self.critic2, self.target2)],
               self.cfg.tau)

    # -- the contract ----------------------------------------------------------------------------

    @property
    def pixels(self) -> bool:
        return not isinstance(self.encoder, nn.Identity)

    def modules(self) -> dict[str, nn.Module]:
        return {**({"encoder": self.encoder} if self.pixels else {}), "actor": self.actor, "critic1": self.critic1,
                "critic2": self.critic2}

    def targets(self) -> dict[str, nn.Module]:
        return {**({"encoder": self.target_encoder} if self.pixels else {}), "critic1": self.target1,
                "critic2": self.target2}

    def optimizers(self) -> dict[str, Optimized]:
        critic = ("encoder", "critic1", "critic2") if self.pixels else ("critic1", "critic2")
        return {"actor": Optimized(self.actor_optimizer, ("actor",)),
                "critic": Optimized(self.critic_optimizer, critic),
                "alpha": Optimized(self.alpha_optimizer, ())}

    def train_scalars(self) -> dict[str, float]:
        return {"alpha": float(self.alpha)}

