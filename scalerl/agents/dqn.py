"""DQN (Mnih et al., 2015) and its Rainbow upgrades (Hessel et al., 2018), each a flag and all combinable:
double Q-learning (van Hasselt et al., 2016), n-step returns, a dueling head (Wang et al., 2016),
distributional C51 (Bellemare et al., 2017), prioritized replay (Schaul et al., 2016) and noisy linear
layers (Fortunato et al., 2018). Presets: `dqn`, `rainbow` (Dopamine's full Rainbow) and `der`
(Data-Efficient Rainbow for Atari 100k, van Hasselt et al., 2019).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scalerl.agents.base import Agent, AgentSpec, OffPolicyConfig, Optimized, check_optimizers, polyak
from scalerl.checks import in_range, non_negative, positive, require
from scalerl.nets import build_q_network
from scalerl.optim import OptimizerConfig, make_optimizer
from scalerl.replay import Batch, PrioritySettings


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
    """TD loss of scalar Q-values: Huber (smooth L1, delta 1) or squared error (C51 uses cross-entropy)."""
    double: bool = True
    """Double DQN: the online network picks the next action, the target network values it."""
    dueling: bool = False
    """Dueling head: Q = V + A - mean(A) (on each atom's logit with C51)."""
    atoms: int = 1
    """1: scalar Q-values. More: C51, a categorical distribution of returns on this many atoms."""
    v_min: float | None = None
    """Lowest atom of C51's support (default -v_max)."""
    v_max: float = 10.0
    """Highest atom of C51's support."""
    noisy: bool = False
    """Noisy linear layers in the torso and head: exploration by learned weight noise."""
    noisy_sigma0: float = 0.5
    """Initial noise scale of noisy layers (sigma = sigma0 / sqrt(fan-in))."""
    prioritized: bool = False
    """Prioritized replay: sample transitions in proportion to their last TD error (C51: cross-entropy)."""
    priority_alpha: float = 0.5
    """Priority = (error + eps)^alpha; 0 is uniform."""
    priority_beta_start: float = 0.4
    """Importance-weight exponent at the start; moves linearly to priority_beta_end over the run."""
    priority_beta_end: float = 1.0
    """Importance-weight exponent at the end of the run (1 corrects the sampling bias fully)."""
    priority_epsilon: float = 1e-6
    """Added to each error so no transition's priority is zero."""
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
    eval_epsilon: float | None = None
    """Exploration rate of the evaluation policy; None: the suite's protocol, 0.001 on atari and cale (Dopamine's:
    a greedy Atari policy that never presses FIRE after losing a life stalls its episode until the frame cap,
    27,000 steps), 0 (greedy) elsewhere. config.json records the rate used."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_optimizers(self)
        non_negative("algo.max_grad_norm", self.max_grad_norm)
        in_range("algo.atoms", self.atoms, 1, 1_001)
        require(self.atoms != 2, "algo.atoms", "1 (scalar Q) or at least 3 (C51)", self.atoms)
        require(self.atoms == 1 or self.loss == "huber", "algo.loss", "huber (unused) when algo.atoms > 1: C51 "
                "learns by cross-entropy", self.loss)
        require(self.v_min is None or self.v_min < self.v_max, "algo.v_min", f"< algo.v_max ({self.v_max})", self.v_min)
        require(self.v_min is not None or self.v_max > 0, "algo.v_max", "> 0 (v_min defaults to -v_max)", self.v_max)
        non_negative("algo.noisy_sigma0", self.noisy_sigma0)
        in_range("algo.priority_alpha", self.priority_alpha, 0.0, 1.0)
        in_range("algo.priority_beta_start", self.priority_beta_start, 0.0, 1.0)
        in_range("algo.priority_beta_end", self.priority_beta_end, 0.0, 1.0)
        positive("algo.priority_epsilon", self.priority_epsilon)
        positive("algo.target_update_every", self.target_update_every)
        require(0.0 < self.tau <= 1.0, "algo.tau", "in (0, 1]", self.tau)
        in_range("algo.epsilon_start", self.epsilon_start, 0.0, 1.0)
        in_range("algo.epsilon_end", self.epsilon_end, 0.0, 1.0)
        positive("algo.epsilon_decay_steps", self.epsilon_decay_steps)
        if self.eval_epsilon is not None:
            in_range("algo.eval_epsilon", self.eval_epsilon, 0.0, 1.0)

    def replay_priorities(self, steps: int) -> PrioritySettings | None:
        if not self.prioritized:
            return None
        return PrioritySettings(self.priority_alpha, self.priority_beta_start, self.priority_beta_end, max(steps, 1),
                                self.priority_epsilon)


@dataclass(frozen=True)
class RainbowConfig(DQNConfig):
    """Dopamine's full Rainbow for Atari (full_rainbow.gin): C51 on 51 atoms in [-10, 10], 3-step returns,
    prioritized replay (alpha 0.5, beta 0.5 held, as Dopamine's sqrt priorities and weights), noisy dueling
    double, Adam 6.25e-5 (eps 1.5e-4), batch 32, 1M replay, 20k steps before learning, an update every 4
    steps and a target copy every 8,000 steps (2,000 updates); no epsilon beyond the noise in training, 0.001 in
    evaluation. Its network is the Nature CNN with one hidden layer of 512: pass --net.hidden 512 --net.depth 1."""

    n_step: int = 3
    optim: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=6.25e-5, adam_eps=1.5e-4))
    max_grad_norm: float = 0.0
    dueling: bool = True
    double: bool = True
    atoms: int = 51
    noisy: bool = True
    prioritized: bool = True
    priority_beta_start: float = 0.5
    priority_beta_end: float = 0.5
    buffer_size: int = 1_000_000
    batch_size: int = 32
    learning_starts: int = 20_000
    train_every: int = 4
    target_update_every: int = 2_000
    epsilon_start: float = 0.0
    epsilon_end: float = 0.0
    eval_epsilon: float = 0.001


@dataclass(frozen=True)
class DERConfig(RainbowConfig):
    """Data-Efficient Rainbow (van Hasselt et al., 2019) as Dopamine's Atari-100k DER.gin sets it: Rainbow
    with 10-step returns, an update every step, a target copy every 2,000 updates, Adam 1e-4 (eps 1.5e-4),
    1,600 steps before learning, and epsilon from 1 to 0.01 besides the noise (Dopamine holds 1 for the
    first 1,600 steps and decays over the next 2,000; here the decay is linear over all 3,600)."""

    n_step: int = 10
    optim: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=1e-4, adam_eps=1.5e-4))
    learning_starts: int = 1_600
    train_every: int = 1
    target_update_every: int = 2_000
    epsilon_start: float = 1.0
    epsilon_end: float = 0.01
    epsilon_decay_steps: int = 3_600


def categorical_projection(next_probs: torch.Tensor, rewards: torch.Tensor, discounts: torch.Tensor,
                           support: torch.Tensor) -> torch.Tensor:
    """C51's target: the distribution r + discount * Z(s', a*) (atoms `support`, probabilities `next_probs`,
    shaped (batch, atoms)) put back on the fixed support, each shifted atom split between its two
    neighbours in proportion to closeness, after clipping to [v_min, v_max]."""
    next_probs = next_probs.float()  # under bf16 autocast the probabilities come in bf16: project in fp32
    v_min, v_max, atoms = support[0], support[-1], len(support)
    delta = (v_max - v_min) / (atoms - 1)
    shifted = (rewards[:, None] + discounts[:, None] * support[None, :]).clamp(v_min, v_max)
    # Rounding can put the top atom a hair past the last index (50.000004 of 50): keep it on the support.
    position = ((shifted - v_min) / delta).clamp(0, atoms - 1)
    lower, upper = position.floor().long(), position.ceil().long()
    upper_weight = position - lower
    lower_weight = 1.0 - upper_weight  # where lower == upper the whole mass stays on that atom
    target = torch.zeros_like(next_probs)
    target.scatter_add_(1, lower, next_probs * lower_weight)
    target.scatter_add_(1, upper, next_probs * upper_weight)
    return target


class DQN(Agent):
    name = "dqn"
    config_class = DQNConfig
    loop = "off_policy"
    description = "DQN: double, n-step, dueling, C51, prioritized, noisy options; discrete actions"
    saved = ("q", "target", "optimizer", "env_steps", "gradient_steps")

    def __init__(self, cfg: DQNConfig, spec: AgentSpec) -> None:
        super().__init__(cfg, spec)
        action_space = spec.action_space
        require(isinstance(action_space, gym.spaces.Discrete), "env",
                f"an environment with discrete actions for {self.name} (for continuous actions use --agent sac, "
                "td3 or ppo)", action_space)
        self.num_actions = int(action_space.n)
        self.q = build_q_network(spec.net, spec.obs_space, self.num_actions, cfg.dueling, cfg.atoms,
                                 cfg.noisy_sigma0 if cfg.noisy else 0.0).to(self.device)
        self.target = copy.deepcopy(self.q).requires_grad_(False)
        self.optimizer = make_optimizer(self.q.parameters(), cfg.optim)
        v_min = -cfg.v_max if cfg.v_min is None else cfg.v_min
        self.support = torch.linspace(v_min, cfg.v_max, cfg.atoms, device=self.device) if cfg.atoms > 1 else None
        self.support_numpy = None if self.support is None else self.support.cpu().numpy()
        self.env_steps = 0
        self.gradient_steps = 0

    # -- acting ------------------------------------------------------------------------------------

    def epsilon(self) -> float:
        fraction = min(1.0, self.env_steps / self.cfg.epsilon_decay_steps)
        return self.cfg.epsilon_start + fraction * (self.cfg.epsilon_end - self.cfg.epsilon_start)

    def q_values(self, outputs: torch.Tensor) -> torch.Tensor:
        """Q(s, .) from the network's outputs: themselves, or C51's expected return under each action."""
        if self.support is None:
            return outputs
        return (self.distribution(outputs).softmax(-1) * self.support).sum(-1)

    def distribution(self, outputs: torch.Tensor) -> torch.Tensor:
        """C51's logits, (batch, actions, atoms)."""
        return outputs.view(len(outputs), self.num_actions, self.cfg.atoms)

    def greedy(self, obs: np.ndarray, noise: bool) -> np.ndarray:
        """The best actions; noisy layers draw fresh noise when `noise`, act on their means otherwise."""
        forward = self.fast(self.q)
        if forward.numpy is not None:
            outputs = forward.numpy(obs, noise=noise)
            if self.support is not None:  # C51: the expected return under each action's distribution
                logits = outputs.reshape(len(obs), self.num_actions, self.cfg.atoms)
                probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
                outputs = (probs @ self.support_numpy) / probs.sum(axis=-1)
            return outputs.argmax(axis=1)
        means_only = self.cfg.noisy and not noise
        with torch.no_grad():
            if means_only:
                self.q.eval()
            outputs = forward(torch.as_tensor(obs, device=self.device))
            if means_only:  # switched back only when switched: acting runs every environment step
                self.q.train()
            return self.q_values(outputs).argmax(dim=1).cpu().numpy()

    def act(self, obs: np.ndarray, *, explore: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if not explore:
            if not self.cfg.eval_epsilon:
                return self.greedy(obs, noise=False), {}
            return self.epsilon_greedy(obs, self.cfg.eval_epsilon, noise=False), {}
        epsilon = self.epsilon()
        self.env_steps += len(obs)
        return self.epsilon_greedy(obs, epsilon, noise=True), {}

    def epsilon_greedy(self, obs: np.ndarray, epsilon: float, noise: bool) -> np.ndarray:
        """A random action with probability epsilon, the best one otherwise. One draw gives both the coin and
        the random action: Generator.integers costs 9 us a call, as much as the rest of acting on one
        observation."""
        draws = self.rng.random((2, len(obs)))
        explore_mask = draws[0] < epsilon
        actions = (draws[1] * self.num_actions).astype(np.int64)
        if explore_mask.all():
            return actions
        if not explore_mask.any():
            return self.greedy(obs, noise)
        return np.where(explore_mask, actions, self.greedy(obs, noise))

    # -- learning ----------------------------------------------------------------------------------

    def next_actions(self, next_target_q: torch.Tensor, batch: Batch) -> torch.Tensor:
        """a* at the next state: picked by the online network (double) or by the target network itself."""
        if self.cfg.double:
            return self.q_values(self.q(batch.next_obs)).argmax(dim=1)
        return next_target_q.argmax(dim=1)

    def td_target(self, batch: Batch) -> torch.Tensor:
        with torch.no_grad():
            next_q = self.fast(self.target)(batch.next_obs)
            next_value = next_q.gather(1, self.next_actions(next_q, batch).unsqueeze(1)).squeeze(1)
            return batch.rewards + batch.discounts * next_value

    def distribution_target(self, batch: Batch) -> torch.Tensor:
        with torch.no_grad():
            next_probs = self.distribution(self.fast(self.target)(batch.next_obs)).softmax(-1)
            next_actions = self.next_actions((next_probs * self.support).sum(-1), batch)
            chosen = next_probs[torch.arange(len(next_probs), device=self.device), next_actions]
            return categorical_projection(chosen, batch.rewards, batch.discounts, self.support)

    def losses(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-transition losses, Q(s, a) of the taken actions, and the errors priorities are made of:
        |TD error|, or C51's cross-entropy (its loss)."""
        outputs = self.q(batch.obs)
        actions = batch.actions.long()
        if self.support is None:
            q_taken = outputs.gather(1, actions.unsqueeze(1)).squeeze(1)
            target = self.td_target(batch)
            loss = F.smooth_l1_loss if self.cfg.loss == "huber" else F.mse_loss
            return loss(q_taken, target, reduction="none"), q_taken, (target - q_taken).abs()
        logits = self.distribution(outputs)[torch.arange(len(outputs), device=self.device), actions]
        cross_entropy = -(self.distribution_target(batch) * logits.log_softmax(-1)).sum(-1)
        return cross_entropy, (logits.softmax(-1) * self.support).sum(-1), cross_entropy

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        losses, q_taken, errors = self.losses(batch)
        loss = losses.mean() if batch.weights is None else (batch.weights * losses).mean()
        grad_norm = self.step_optimizer("q", loss, self.cfg.max_grad_norm)
        self.gradient_steps += 1
        if self.gradient_steps % self.cfg.target_update_every == 0:
            self.update_target()
        metrics = {"loss": loss.detach(), "q_mean": q_taken.detach().mean()}
        if grad_norm is not None:
            metrics["grad_norm"] = grad_norm.detach()
        if self.cfg.prioritized:
            metrics["priorities"] = errors.detach()
        return metrics

    def update_target(self) -> None:
        polyak([(self.q, self.target)], self.cfg.tau)

    # -- bookkeeping -------------------------------------------------------------------------------

    def train_scalars(self) -> dict[str, float]:
        return {"epsilon": self.epsilon()}

    def modules(self) -> dict[str, nn.Module]:
        return {"q": self.q}

    def targets(self) -> dict[str, nn.Module]:
        return {"q": self.target}

    def optimizers(self) -> dict[str, Optimized]:
        return {"q": Optimized(self.optimizer, ("q",))}



class Rainbow(DQN):
    name = "rainbow"
    config_class = RainbowConfig
    description = "Rainbow (Dopamine's full Rainbow): C51, prioritized, n-step, dueling, double, noisy"


class DER(DQN):
    name = "der"
    config_class = DERConfig
    description = "Data-Efficient Rainbow for Atari 100k: Rainbow with 10-step returns and an update every step"
