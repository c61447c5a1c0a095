"""PQN (Gallici et al., 2024, "Simplifying Deep Temporal Difference Learning"): Q-learning from many
parallel environments with no replay buffer and no target network, made stable by LayerNorm in the
Q-network; each rollout's Q(lambda) returns are regressed for a few epochs of minibatches.

Q(lambda) targets go backwards over the rollout from the greedy value of the last observation:
G_t = r_t + gamma (1 - done_t) [lambda G_{t+1} + (1 - lambda) max_a Q(s_{t+1}, a)], with the greedy values
taken when the data was collected. A truncated episode's last reward becomes r + gamma max_a Q(final obs, a)
and the recursion stops there, as at a termination. Exploration is epsilon-greedy, epsilon falling
linearly over the first `epsilon_fraction` of the run.

Defaults are the stable-gradients paper's (Castanyer et al., 2025) Atari settings: 128 envs x 32 steps,
32 minibatches, 2 epochs, gamma 0.99, lambda 0.65, gradient norm 10, epsilon 1 -> 0.005 over 10%, RAdam.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scalerl.agents.base import Agent, AgentSpec, OnPolicyConfig, Optimized, check_optimizers
from scalerl.checks import in_range, non_negative, positive, require
from scalerl.nets import build_q_network
from scalerl.optim import OptimizerConfig, make_optimizer
from scalerl.replay import Rollout


@dataclass(frozen=True)
class PQNConfig(OnPolicyConfig):
    rollout_steps: int = 32
    gamma: float = 0.99
    q_lambda: float = 0.65
    """lambda of the Q(lambda) returns."""
    epochs: int = 2
    minibatches: int = 32
    max_grad_norm: float = 10.0
    """Clip the global gradient norm to this (0: no clipping)."""
    epsilon_start: float = 1.0
    epsilon_end: float = 0.005
    epsilon_fraction: float = 0.1
    """Share of the run over which epsilon falls linearly from start to end."""
    layer_norm: bool = True
    """Put LayerNorm in the Q-network (when --net.norm is none): what lets PQN do without a target network."""
    anneal_lr: bool = False
    """Lower the learning rate linearly to 0 over the run."""
    optim: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(kind="radam", lr=2.5e-4))

    def __post_init__(self) -> None:
        super().__post_init__()
        check_optimizers(self)
        in_range("algo.gamma", self.gamma, 0.0, 1.0)
        in_range("algo.q_lambda", self.q_lambda, 0.0, 1.0)
        positive("algo.epochs", self.epochs)
        positive("algo.minibatches", self.minibatches)
        non_negative("algo.max_grad_norm", self.max_grad_norm)
        in_range("algo.epsilon_start", self.epsilon_start, 0.0, 1.0)
        in_range("algo.epsilon_end", self.epsilon_end, 0.0, 1.0)
        in_range("algo.epsilon_fraction", self.epsilon_fraction, 0.0, 1.0)


class PQN(Agent):
    name = "pqn"
    config_class = PQNConfig
    loop = "on_policy"
    description = "PQN: parallel Q-learning without replay or target network, LayerNorm, Q(lambda); discrete actions"
    saved = ("q", "optimizer", "env_steps", "updates")

    def __init__(self, cfg: PQNConfig, spec: AgentSpec) -> None:
        super().__init__(cfg, spec)
        require(isinstance(spec.action_space, gym.spaces.Discrete), "env", "an environment with discrete actions for "
                "pqn (for continuous actions use --agent sac, td3 or ppo)", spec.action_space)
        batch = cfg.rollout_steps * spec.num_envs
        require(batch % cfg.minibatches == 0, "algo.minibatches", f"a divisor of rollout_steps x envs = {batch}",
                cfg.minibatches)
        net = dataclasses.replace(spec.net, norm="layer") if cfg.layer_norm and spec.net.norm == "none" else spec.net
        self.num_actions = int(spec.action_space.n)
        self.q = build_q_network(net, spec.obs_space, self.num_actions, dueling=False).to(self.device)
        self.optimizer = make_optimizer(self.q.parameters(), cfg.optim)
        self.env_steps = 0
        self.updates = 0
        self.total_updates = max(1, spec.run_steps // batch) if spec.run_steps else 0

    def epsilon(self) -> float:
        cfg = self.cfg
        decay = max(1.0, cfg.epsilon_fraction * self.spec.run_steps) if self.spec.run_steps else 1.0
        return cfg.epsilon_end + (cfg.epsilon_start - cfg.epsilon_end) * max(0.0, 1.0 - self.env_steps / decay)

    @torch.no_grad()
    def act(self, obs: np.ndarray, *, explore: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        values = self.fast(self.q)(torch.as_tensor(obs, device=self.device))
        greedy = values.argmax(-1).cpu().numpy()
        if not explore:
            return greedy, {}
        epsilon = self.epsilon()
        self.env_steps += len(obs)
        random = self.rng.random(len(obs)) < epsilon
        actions = np.where(random, self.rng.integers(0, self.num_actions, len(obs)), greedy)
        return actions, {"max_q": values.max(-1).values.cpu().numpy()}

    @torch.no_grad()
    def greedy_values(self, obs: np.ndarray) -> np.ndarray:
        return self.q(torch.as_tensor(obs, device=self.device)).max(-1).values.float().cpu().numpy()

    def q_lambda_returns(self, rollout: Rollout) -> np.ndarray:
        cfg = self.cfg
        rewards = rollout.rewards.copy()
        if len(rollout.final_index):
            for (t, n), value in zip(rollout.final_index, self.greedy_values(rollout.final_obs)):
                if rollout.truncated[t, n] and not rollout.terminated[t, n]:
                    rewards[t, n] += cfg.gamma * value
        ended = (rollout.terminated | rollout.truncated).astype(np.float32)
        max_q = rollout.extras["max_q"]
        returns = np.zeros_like(rewards)
        following_value = self.greedy_values(rollout.next_obs)
        following_return = following_value
        for t in reversed(range(rollout.steps)):
            blended = cfg.q_lambda * following_return + (1 - cfg.q_lambda) * following_value
            returns[t] = rewards[t] + cfg.gamma * (1 - ended[t]) * blended
            following_return, following_value = returns[t], max_q[t]
        return returns

    def update(self, rollout: Rollout) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        targets = self.q_lambda_returns(rollout)
        if cfg.anneal_lr and self.total_updates:
            for group in self.optimizer.param_groups:
                group["lr"] = cfg.optim.lr * max(0.0, 1.0 - self.updates / self.total_updates)
        self.updates += 1
        obs = torch.as_tensor(rollout.obs.reshape(-1, *rollout.obs.shape[2:]), device=self.device)
        actions = torch.as_tensor(rollout.actions.reshape(-1), device=self.device).long()
        targets_t = torch.as_tensor(targets.reshape(-1), device=self.device)
        size = len(actions)
        minibatch = size // cfg.minibatches
        for _ in range(cfg.epochs):
            order = torch.as_tensor(self.rng.permutation(size), device=self.device)
            for start in range(0, size, minibatch):
                index = order[start:start + minibatch]
                q_taken = self.q(obs[index]).gather(1, actions[index, None]).squeeze(1)
                loss = 0.5 * F.mse_loss(q_taken, targets_t[index])
                grad_norm = self.step_optimizer("optim", loss, cfg.max_grad_norm)
        metrics = {"loss": loss.detach(), "q_taken": q_taken.detach().mean(), "target_mean": targets_t.mean()}
        if grad_norm is not None:
            metrics["grad_norm"] = grad_norm.detach()
        return metrics

    def train_scalars(self) -> dict[str, float]:
        return {"epsilon": self.epsilon()}

    def modules(self) -> dict[str, nn.Module]:
        return {"q": self.q}

    def optimizers(self) -> dict[str, Optimized]:
        return {"optim": Optimized(self.optimizer, ("q",))}

