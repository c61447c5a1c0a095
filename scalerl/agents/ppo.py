"""PPO (Schulman et al., 2017) with the implementation details of Huang et al. (2022), "The 37
implementation details of PPO": GAE, the clipped surrogate, optional value clipping, an entropy bonus,
advantage normalization per minibatch, global gradient-norm clipping, linear learning-rate annealing,
and, for continuous control, a state-independent log standard deviation with observation and reward
normalization.

A truncated episode (a time limit) bootstraps from the value of the observation it really ended in: its
last reward becomes r + gamma V(final obs), and the advantage recursion stops there as at a termination.

Encoders (`--algo.encoders`), after "Studying the Interplay Between the Actor and Critic Representations
in RL" (Garcin et al., ICLR 2025):
- shared: one trunk (the `--net.*` spec) with an actor head and a critic head;
- separate: actor and critic each own a trunk of the same spec;
- shared_matched: one trunk widened until the network has as many parameters as the separate pair (the
  paper's parameter-matched control).
The same paper's auxiliary objectives can train the actor's or the critic's latents: dynamics prediction
(`--algo.dynamics actor|critic`) and PPG-style value distillation (`--algo.value-distillation actor|critic`).
They live in scalerl/agents/objectives.py, beside the place where a researcher's own objective plugs in
(`--algo.objectives NAME`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scalerl.agents.base import Agent, AgentSpec, OnPolicyConfig, Optimized, check_optimizers
from scalerl.agents.objectives import Dynamics, Objective, ValueDistillation, objective_class, orthogonal
from scalerl.checks import in_range, non_negative, positive, require
from scalerl.nets import NetConfig, build_trunk, parameter_count
from scalerl.normalization import RewardScaler, RunningMeanStd
from scalerl.optim import OptimizerConfig, make_optimizer
from scalerl.replay import Rollout

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclass(frozen=True)
class PPOConfig(OnPolicyConfig):
    """PPO hyperparameters; the defaults are CleanRL's ppo.py (Atari and classic control)."""

    gamma: float = 0.99
    gae_lambda: float = 0.95
    """GAE's lambda: 1 is the Monte-Carlo return, 0 one-step TD."""
    epochs: int = 4
    """Passes over each rollout."""
    minibatches: int = 4
    """Minibatches per pass (the rollout's T x N steps split evenly)."""
    clip: float = 0.2
    """The surrogate's ratio clip."""
    clip_value: bool = True
    """Clip the value update to +-clip around the value at collection time."""
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    normalize_advantages: bool = True
    """Per minibatch: zero mean, unit standard deviation."""
    max_grad_norm: float = 0.5
    """Clip the global gradient norm to this (0: no clipping)."""
    anneal_lr: bool = True
    """Lower the learning rate linearly to 0 over the run."""
    target_kl: float = 0.0
    """Stop an update's epochs early once the approximate KL exceeds this (0: never)."""
    optim: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=2.5e-4, adam_eps=1e-5))
    encoders: Literal["shared", "separate", "shared_matched"] = "shared"
    """One trunk for actor and critic, one each, or one widened to the separate pair's parameter count."""
    normalize_obs: bool = False
    """Normalize observations by running mean and variance, clipped to +-10 (continuous control)."""
    normalize_rewards: bool = False
    """Scale rewards by the running std of the discounted return, clipped to +-10 (continuous control)."""
    dynamics: Literal["none", "actor", "critic"] = "none"
    """Dynamics prediction on the actor's or the critic's latents (Garcin et al.'s forward-inverse objective):
    an inverse model predicts a_t from (z_t, z_t+1), a forward model predicts z_t+1 from (z_t, a_t)."""
    dynamics_coef: float = 1.0
    """Weight of the dynamics loss in each minibatch."""
    value_distillation: Literal["none", "actor", "critic"] = "none"
    """PPG's auxiliary phase (Cobbe et al., 2021): every `aux_every` updates, regress the returns of those
    rollouts from the actor's latents (an extra value head) or the critic's (its own head), while a
    behaviour-cloning term keeps the policy where it was."""
    aux_every: int = 32
    """Updates between auxiliary phases (PPG's N_pi)."""
    aux_epochs: int = 6
    """Passes over the stored rollouts in an auxiliary phase."""
    clone_coef: float = 1.0
    """Weight of KL(old policy || new policy) in the auxiliary phase."""
    objectives: list[str] = field(default_factory=list)
    """Further objectives by name, added after the ones above (registered with
    scalerl.agents.objectives.register_objective in a --plugins file)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_optimizers(self)
        in_range("algo.gamma", self.gamma, 0.0, 1.0)
        in_range("algo.gae_lambda", self.gae_lambda, 0.0, 1.0)
        positive("algo.epochs", self.epochs)
        positive("algo.minibatches", self.minibatches)
        positive("algo.clip", self.clip)
        non_negative("algo.value_coef", self.value_coef)
        non_negative("algo.entropy_coef", self.entropy_coef)
        non_negative("algo.max_grad_norm", self.max_grad_norm)
        non_negative("algo.target_kl", self.target_kl)
        non_negative("algo.dynamics_coef", self.dynamics_coef)
        positive("algo.aux_every", self.aux_every)
        positive("algo.aux_epochs", self.aux_epochs)
        non_negative("algo.clone_coef", self.clone_coef)
        object.__setattr__(self, "objectives", list(self.objectives))
        require(not {"dynamics", "value_distillation"} & set(self.objectives), "algo.objectives",
                "objectives of your own (dynamics and value distillation have --algo.dynamics and "
                "--algo.value-distillation)", self.objectives)
        require(len(set(self.objectives)) == len(self.objectives), "algo.objectives", "names without repeats",
                self.objectives)


def trunk(net: NetConfig, obs_space: gym.Space) -> tuple[nn.Sequential, int]:
    encoder, bottleneck, torso, features = build_trunk(net, obs_space)
    return nn.Sequential(encoder, bottleneck, torso), features


def matched_width(net: NetConfig, obs_space: gym.Space, target: int, head_outputs: int) -> NetConfig:
    """The spec with the width whose one trunk plus heads comes closest to `target` parameters."""
    def count(width: float) -> int:
        body, features = trunk(dataclasses.replace(net, width=width), obs_space)
        return parameter_count(body) + (features + 1) * head_outputs

    low, high = net.width, net.width * 4
    for _ in range(30):
        middle = (low + high) / 2
        low, high = (middle, high) if count(middle) < target else (low, middle)
    best = min((low, high), key=lambda width: abs(count(width) - target))
    return dataclasses.replace(net, width=best)


class ActorCritic(nn.Module):
    """Actor and critic trunks (the same module when shared), a policy head and a value head."""

    def __init__(self, net: NetConfig, obs_space: gym.Space, policy_outputs: int, encoders: str) -> None:
        super().__init__()
        if encoders == "shared_matched":
            separate = ActorCritic(net, obs_space, policy_outputs, "separate")
            net = matched_width(net, obs_space, parameter_count(separate), policy_outputs + 1)
        self.actor_trunk, features = trunk(net, obs_space)
        self.critic_trunk = trunk(net, obs_space)[0] if encoders == "separate" else self.actor_trunk
        self.shared = self.critic_trunk is self.actor_trunk
        self.policy_head = orthogonal(nn.Linear(features, policy_outputs), 0.01)
        self.value_head = orthogonal(nn.Linear(features, 1), 1.0)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Policy outputs and values."""
        actor_features = self.actor_trunk(obs)
        critic_features = actor_features if self.shared else self.critic_trunk(obs)
        return self.policy_head(actor_features), self.value_head(critic_features).squeeze(-1)


class PPO(Agent):
    name = "ppo"
    config_class = PPOConfig
    loop = "on_policy"
    description = "PPO: clipped surrogate, GAE; discrete or continuous actions; shared or separate encoders"
    saved = ("network", "optimizer", "updates", "log_std", "obs_stats", "reward_scaler")
    """(and each objective's own `saved`, under the same names as when the objectives lived here)"""

    def __init__(self, cfg: PPOConfig, spec: AgentSpec) -> None:
        super().__init__(cfg, spec)
        space = spec.action_space
        self.discrete = isinstance(space, gym.spaces.Discrete)
        require(self.discrete or (isinstance(space, gym.spaces.Box) and len(space.shape) == 1), "env",
                "an environment with discrete or vector continuous actions for ppo", space)
        require(not cfg.normalize_obs or len(spec.obs_space.shape) == 1, "algo.normalize_obs",
                "off for pixel observations (they are scaled to [0, 1] already)", cfg.normalize_obs)
        self.action_outputs = int(space.n) if self.discrete else space.shape[0]
        self.network = ActorCritic(spec.net, spec.obs_space, self.action_outputs, cfg.encoders).to(self.device)
        self.log_std: nn.Parameter | None = None
        if not self.discrete:
            self.log_std = nn.Parameter(torch.zeros(self.action_outputs, device=self.device))
            self.low, self.high = space.low.astype(np.float32), space.high.astype(np.float32)
        chosen = [Dynamics] if cfg.dynamics != "none" else []
        chosen += [ValueDistillation] if cfg.value_distillation != "none" else []
        chosen += [objective_class(name) for name in cfg.objectives]
        self.objectives: list[Objective] = [objective(self) for objective in chosen]
        keys = [key for objective in self.objectives for key in objective.saved]
        clash = sorted({key for key in keys if keys.count(key) > 1 or key in (*self.saved, "rng")})
        require(not clash, "algo.objectives", "objectives whose saved names differ from each other and PPO's",
                clash)
        parameters = [*self.network.parameters(), *([] if self.discrete else [self.log_std]),
                      *(p for objective in self.objectives for module in objective.modules().values()
                        for p in module.parameters())]
        self.optimizer = make_optimizer(parameters, cfg.optim)
        self.obs_stats = RunningMeanStd(spec.obs_space.shape) if cfg.normalize_obs else None
        self.reward_scaler = RewardScaler(spec.num_envs, cfg.gamma) if cfg.normalize_rewards else None
        self.updates = 0
        batch = cfg.rollout_steps * spec.num_envs
        require(batch % cfg.minibatches == 0, "algo.minibatches", f"a divisor of rollout_steps x envs = {batch}",
                cfg.minibatches)
        self.total_updates = max(1, spec.run_steps // batch) if spec.run_steps else 0

    # -- acting ----------------------------------------------------------------------------------

    # The policy's distribution written out: torch.distributions' objects cost more than the small
    # networks here on every acting step.

    def sample(self, policy: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Actions drawn from the policy, and their log-probabilities, on the CPU from the agent's own
        generator: a categorical draw inverts the cumulative probabilities; a Gaussian one is mean + std * noise,
        whose log-density needs only the noise."""
        if self.discrete:
            log_probs = policy.log_softmax(-1).cpu().numpy()
            cumulative = np.exp(log_probs).cumsum(-1)
            draws = self.rng.random((len(log_probs), 1))
            actions = np.minimum((cumulative < draws).sum(-1), log_probs.shape[-1] - 1)
            return actions, log_probs[np.arange(len(actions)), actions]
        mean, log_std = policy.cpu().numpy(), self.log_std.detach().cpu().numpy()
        noise = self.rng.standard_normal(mean.shape).astype(np.float32)
        log_prob = (-0.5 * noise * noise - log_std).sum(-1) - HALF_LOG_2PI * mean.shape[-1]
        return mean + np.exp(log_std) * noise, log_prob.astype(np.float32)

    def log_prob(self, policy: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        if self.discrete:
            return policy.log_softmax(-1).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        return (-0.5 * ((actions - policy) / self.log_std.exp()).square() - self.log_std - HALF_LOG_2PI).sum(-1)

    def entropy(self, policy: torch.Tensor) -> torch.Tensor:
        if self.discrete:
            log_probs = policy.log_softmax(-1)
            return -(log_probs.exp() * log_probs).sum(-1)
        return (0.5 + HALF_LOG_2PI + self.log_std).sum().expand(len(policy))

    def prepare(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        if self.obs_stats is None:
            return obs
        if explore:
            self.obs_stats.update(obs)
        return self.obs_stats.normalize(obs)

    def forward_acting(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The policy's and the value's outputs, through the networks' fast forwards."""
        net = self.network
        features = self.fast(net.actor_trunk)(obs)
        critic = features if net.shared else self.fast(net.critic_trunk)(obs)
        return self.fast(net.policy_head)(features), self.fast(net.value_head)(critic).squeeze(-1)

    @torch.no_grad()
    def act(self, obs: np.ndarray, *, explore: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        seen = self.prepare(obs, explore)
        policy, value = self.forward_acting(torch.as_tensor(seen, device=self.device))
        if not explore:
            action = policy.argmax(-1) if self.discrete else policy
            return self.to_env(action.cpu().numpy()), {}
        action, log_prob = self.sample(policy)
        extras = {"log_prob": log_prob, "value": value.cpu().numpy(), "action": action}
        if self.obs_stats is not None:
            extras["obs"] = seen
        return self.to_env(extras["action"]), extras

    def to_env(self, action: np.ndarray) -> np.ndarray:
        """Continuous samples are clipped to the action bounds for the environment; the rollout keeps the
        unclipped sample, whose log-probability the update needs."""
        return action if self.discrete else np.clip(action, self.low, self.high)

    # -- learning --------------------------------------------------------------------------------

    @torch.no_grad()
    def values_of(self, obs: np.ndarray) -> np.ndarray:
        seen = self.obs_stats.normalize(obs) if self.obs_stats is not None else obs
        return self.network(torch.as_tensor(seen, device=self.device))[1].float().cpu().numpy()

    def advantages(self, rollout: Rollout, rewards: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """GAE over the rollout, with truncations bootstrapped from their real final observations."""
        cfg = self.cfg
        values = rollout.extras["value"]
        rewards = rewards.copy()
        if len(rollout.final_index):
            final_values = self.values_of(rollout.final_obs)
            for (t, n), value in zip(rollout.final_index, final_values):
                if rollout.truncated[t, n] and not rollout.terminated[t, n]:
                    rewards[t, n] += cfg.gamma * value
        ended = rollout.terminated | rollout.truncated
        next_value = self.values_of(rollout.next_obs)
        advantages = np.zeros_like(rewards)
        running = np.zeros_like(next_value)
        for t in reversed(range(rollout.steps)):
            following = next_value if t == rollout.steps - 1 else values[t + 1]
            continues = 1.0 - ended[t]
            delta = rewards[t] + cfg.gamma * following * continues - values[t]
            running = delta + cfg.gamma * cfg.gae_lambda * continues * running
            advantages[t] = running
        return advantages, advantages + values

    def update(self, rollout: Rollout) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        rewards = rollout.rewards
        if self.reward_scaler is not None:
            rewards = self.reward_scaler.scale(rewards, rollout.terminated | rollout.truncated)
        advantages, returns = self.advantages(rollout, rewards)
        if cfg.anneal_lr and self.total_updates:
            for group in self.optimizer.param_groups:
                group["lr"] = cfg.optim.lr * max(0.0, 1.0 - self.updates / self.total_updates)
        self.updates += 1

        def flat(array: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(array.reshape(-1, *array.shape[2:]), device=self.device)

        obs = flat(rollout.extras["obs"] if self.obs_stats is not None else rollout.obs)
        actions, old_log_probs, old_values = flat(rollout.extras["action"]), flat(rollout.extras["log_prob"]), \
            flat(rollout.extras["value"])
        advantages_t, returns_t = flat(advantages.astype(np.float32)), flat(returns.astype(np.float32))
        for objective in self.objectives:
            objective.start_update(rollout, obs, actions)
        size = len(old_values)
        minibatch = size // cfg.minibatches
        clip_fractions, approx_kl = [], torch.zeros(())
        for _ in range(cfg.epochs):
            order = torch.as_tensor(self.rng.permutation(size), device=self.device)
            # One gather per tensor an epoch; each minibatch is then a slice (a view), not six more gathers.
            shuffled = [tensor[order] for tensor in (obs, actions, old_log_probs, old_values, advantages_t, returns_t)]
            for start in range(0, size, minibatch):
                index = order[start:start + minibatch]
                mb_obs, mb_actions, mb_old_log_probs, mb_old_values, advantage, mb_returns = (
                    tensor[start:start + minibatch] for tensor in shuffled)
                policy, values = self.network(mb_obs)
                log_probs = self.log_prob(policy, mb_actions)
                log_ratio = log_probs - mb_old_log_probs
                ratio = log_ratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - log_ratio).mean()
                    clip_fractions.append(((ratio - 1.0).abs() > cfg.clip).float().mean())
                if cfg.normalize_advantages and len(index) > 1:
                    advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
                policy_loss = torch.max(-advantage * ratio,
                                        -advantage * ratio.clamp(1 - cfg.clip, 1 + cfg.clip)).mean()
                value_loss = self.value_loss(values, mb_old_values, mb_returns)
                entropy = self.entropy(policy).mean()
                loss = policy_loss - cfg.entropy_coef * entropy + cfg.value_coef * value_loss
                for objective in self.objectives:
                    if (term := objective.minibatch_loss(index)) is not None:
                        loss = loss + term
                self.step_optimizer("optim", loss, cfg.max_grad_norm)
            if cfg.target_kl and approx_kl > cfg.target_kl:
                break
        explained = 1 - np.var(returns - rollout.extras["value"]) / (np.var(returns) + 1e-8)
        extra = {}
        for objective in self.objectives:
            extra.update(objective.end_update(obs, returns_t))
        return {**extra, "policy_loss": policy_loss.detach(), "value_loss": value_loss.detach(),
                "entropy": entropy.detach(),
                "approx_kl": approx_kl, "clip_fraction": torch.stack(clip_fractions).mean(),
                "explained_variance": torch.tensor(float(explained)),
                "lr": torch.tensor(self.optimizer.param_groups[0]["lr"])}

    def policy_kl(self, old: torch.Tensor, new: torch.Tensor, old_log_std: torch.Tensor | None) -> torch.Tensor:
        """KL(old || new) per sample, for the policy outputs of the same observations."""
        if self.discrete:
            old_log, new_log = old.log_softmax(-1), new.log_softmax(-1)
            return (old_log.exp() * (old_log - new_log)).sum(-1)
        old_var, new_var = (2 * old_log_std).exp(), (2 * self.log_std).exp()
        return (self.log_std - old_log_std + (old_var + (old - new).square()) / (2 * new_var) - 0.5).sum(-1)

    def value_loss(self, values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
        if not self.cfg.clip_value:
            return 0.5 * F.mse_loss(values, returns)
        clipped = old_values + (values - old_values).clamp(-self.cfg.clip, self.cfg.clip)
        return 0.5 * torch.max((values - returns).square(), (clipped - returns).square()).mean()

    # -- the contract ----------------------------------------------------------------------------

    def latent_modules(self) -> dict[str, nn.Module]:
        return {"actor": self.network.actor_trunk, "critic": self.network.critic_trunk}

    def modules(self) -> dict[str, nn.Module]:
        net = self.network
        added = {name: module for objective in self.objectives for name, module in objective.modules().items()}
        if net.shared:
            return {"encoder": net.actor_trunk, "actor": net.policy_head, "critic": net.value_head, **added}
        return {"actor": nn.Sequential(net.actor_trunk, net.policy_head),
                "critic": nn.Sequential(net.critic_trunk, net.value_head), **added}

    def optimizers(self) -> dict[str, Optimized]:
        return {"optim": Optimized(self.optimizer, tuple(self.modules()))}

    def train_scalars(self) -> dict[str, float]:
        return {} if self.discrete else {"action_std": float(self.log_std.detach().exp().mean())}

    def objective(self, name: str) -> Objective:
        """The objective of that name this agent runs."""
        return next(objective for objective in self.objectives if objective.name == name)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        for objective in self.objectives:
            state.update(objective.state_dict())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        for objective in self.objectives:
            objective.load_state_dict(state)


__all__ = ["PPO", "ActorCritic", "PPOConfig"]
