"""Multi-task SAC with one output head per task (MTMHSAC): the Meta-World baseline that "Multi-Task RL
Enables Parameter Scaling" (McLean, Chatzaroulas, et al., 2025) widens past elaborate multi-task
architectures.

It is SAC over a multi-task set whose observations end with a one-hot task id (metaworld:MT10,
metaworld:custom/..., multitask:...), with four changes:
- the actor and both critics are a shared MLP trunk over the observation (one-hot included) and one output
  layer per task, computed as one matmul over all heads and gathered by each sample's task;
- a learned temperature per task, each tuned towards the target entropy on its own task's samples;
- every update takes `batch_size` transitions from each task (128 x tasks in all);
- the actor's and the critics' sizes are set apart (--algo.actor-hidden, --algo.critic-hidden, ...-depth),
  since the paper finds widening the critic matters more than widening the actor.

The defaults are the reference settings of Meta-World+ and the paper's code: 3 x 400 ReLU layers with
He-uniform weights and zero biases, output heads drawn from U(-1e-3, 1e-3) (actor) and U(-3e-3, 3e-3)
(critics), Adam 3e-4 with eps 1e-5, gradient norms clipped to 1 (actor and critics), tau 0.005, gamma 0.99,
initial temperature 1, target entropy -|A|, 4,000 warm-up steps per task and one update per vector step
(both counted here, as everywhere in scalerl, in environment steps summed over the tasks: their defaults
are MT10's, and other sets scale them by their task count). The other --net options
(norm, activation, residual torso, the width multiplier) apply to both trunks; --net.hidden and --net.depth
are replaced by the four size fields here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from scalerl.agents.base import AgentSpec
from scalerl.agents.continuous import Critic, head_config, vector_space
from scalerl.agents.sac import SAC, GaussianActor, SACConfig
from scalerl.checks import ConfigError, positive, require
from scalerl.nets import NetConfig, build_trunk
from scalerl.optim import OptimizerConfig


def reference_optim() -> OptimizerConfig:
    return OptimizerConfig(lr=3e-4, adam_eps=1e-5)


@dataclass(frozen=True)
class MTSACConfig(SACConfig):
    """MT-SAC hyperparameters: the Meta-World+ reference settings."""

    batch_size: int = 128
    """Transitions per task in each gradient step (128 x tasks in all)."""
    learning_starts: int = 40_000
    """Environment steps, summed over tasks, of uniformly random actions: the reference's 4,000 per task on
    MT10 (multiply 4,000 by the task count for another set)."""
    train_every: int = 10
    """Environment steps, summed over tasks, between updates: the reference's one update per vector step on
    MT10 (set it to the task count for another set)."""
    actor_optim: OptimizerConfig = field(default_factory=reference_optim)
    critic_optim: OptimizerConfig = field(default_factory=reference_optim)
    alpha_optim: OptimizerConfig = field(default_factory=reference_optim)
    max_grad_norm: float = 1.0
    alpha: float = 1.0
    actor_hidden: int = 400
    """Units of each of the actor's hidden layers (before --net.width)."""
    actor_depth: int = 3
    """Hidden layers of the actor."""
    critic_hidden: int = 400
    """Units of each of the critics' hidden layers (before --net.width)."""
    critic_depth: int = 3
    """Hidden layers of each critic."""
    reference_init: bool = True
    """He-uniform hidden layers and small uniform heads, as the reference code; off: --net.init's choice."""

    balance_envs: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("actor_hidden", "critic_hidden", "actor_depth", "critic_depth"):
            positive(f"algo.{name}", getattr(self, name))


class MultiHeadLinear(nn.Module):
    """One linear output layer per task, as one matmul onto every head's outputs from which each sample's
    task's are gathered: no Python loop over tasks, and the same cost for any mix of tasks in a batch."""

    def __init__(self, in_features: int, out_features: int, heads: int) -> None:
        super().__init__()
        self.out_features, self.heads = out_features, heads
        self.weight = nn.Parameter(torch.empty(heads, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(heads, out_features))
        bound = 1 / math.sqrt(in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        every_head = torch.addmm(self.bias.view(-1), x, self.weight.view(-1, x.shape[-1]).t())
        every_head = every_head.view(-1, self.heads, self.out_features)
        return every_head.gather(1, task.view(-1, 1, 1).expand(-1, 1, self.out_features)).squeeze(1)


class MultiHeadMLP(nn.Module):
    """A dense trunk over the whole input, then the head of each sample's task. The task is read from the
    one-hot id at input[task_at : task_at + tasks] (the end of the observation); with no id (task_at None)
    there is one head."""

    def __init__(self, net: NetConfig, inputs: int, outputs: int, tasks: int, task_at: int | None) -> None:
        super().__init__()
        _, _, self.torso, features = build_trunk(head_config(net), vector_space(inputs))
        self.head = MultiHeadLinear(features, outputs, tasks)
        self.task_slice = None if task_at is None else slice(task_at, task_at + tasks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.torso(x)
        if self.task_slice is None:
            return self.head(features, torch.zeros(x.shape[0], dtype=torch.long, device=x.device))
        return self.head(features, x[:, self.task_slice].argmax(-1))


def reference_init(network: MultiHeadMLP, head_scale: float) -> None:
    """He-uniform hidden weights, zero biases, and a head drawn from U(-head_scale, head_scale)."""
    for layer in network.torso.modules():
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
    nn.init.uniform_(network.head.weight, -head_scale, head_scale)
    nn.init.uniform_(network.head.bias, -head_scale, head_scale)


class MTSAC(SAC):
    name = "mtsac"
    config_class = MTSACConfig
    loop = "off_policy"
    description = "Multi-task SAC (multi-head, a temperature per task, task-balanced batches): Meta-World MT10/MT50"

    def __init__(self, cfg: MTSACConfig, spec: AgentSpec) -> None:
        require(len(spec.obs_space.shape) == 1, "env", "vector observations for mtsac", spec.obs_space.shape)
        self.task_count = max(len(spec.tasks), 1)
        require(spec.num_envs % self.task_count == 0, "num_envs", f"one environment per task ({self.task_count})",
                spec.num_envs)
        super().__init__(cfg, spec)
        self.ids_checked = False

    def build_networks(self, spec: AgentSpec, features: int) -> tuple[GaussianActor, Critic, Critic]:
        """Multi-head networks; without tasks (any single env) a single head and no task id to read."""
        cfg, tasks = self.cfg, self.task_count
        task_at = features - len(spec.tasks) if spec.tasks else None
        actor_net = dataclasses.replace(spec.net, hidden=cfg.actor_hidden, depth=cfg.actor_depth)
        critic_net = dataclasses.replace(spec.net, hidden=cfg.critic_hidden, depth=cfg.critic_depth)
        actor = MultiHeadMLP(actor_net, features, 2 * self.action_dim, tasks, task_at)
        critics = [MultiHeadMLP(critic_net, features + self.action_dim, 1, tasks, task_at) for _ in range(2)]
        if cfg.reference_init:
            reference_init(actor, 1e-3)
            for critic in critics:
                reference_init(critic, 3e-3)
        return GaussianActor(actor), Critic(critics[0]), Critic(critics[1])

    def act(self, obs: np.ndarray, *, explore: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if not self.ids_checked and self.spec.tasks:
            ids = obs[:, -self.task_count:]
            if not (np.isin(ids, (0.0, 1.0)).all() and (ids.sum(1) == 1).all()):
                raise ConfigError(f"mtsac reads each observation's task from a one-hot id in its last "
                                  f"{self.task_count} entries, and these observations have none (Meta-World: leave "
                                  "--env-opts.one-hot on)")
            self.ids_checked = True
        return super().act(obs, explore=explore)

    def temperature_shape(self) -> tuple[int, ...]:
        return (self.task_count,)

    def log_temperature(self, obs: torch.Tensor) -> torch.Tensor:
        """Each observation's task's log alpha."""
        if not self.spec.tasks:
            return self.log_alpha[0]
        return self.log_alpha[obs[:, -self.task_count:].argmax(-1)]

    def train_scalars(self) -> dict[str, float]:
        alphas = self.alpha.tolist()
        return {"alpha": sum(alphas) / len(alphas), **{f"alpha/{task}": a for task, a in zip(self.spec.tasks, alphas)}}
