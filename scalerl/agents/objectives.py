"""Objectives added to PPO's update: an auxiliary loss or phase from a paper, or a researcher's own, kept out
of the agent so that `ppo.py` reads as PPO.

An objective owns its networks (stepped by PPO's optimizer after PPO's own parameters, counted and measured
with the agent's networks, saved in its checkpoints), adds a term to every minibatch's loss, and may run a
phase of its own after an update. Built in, chosen by PPO's own options:
- `dynamics` (`--algo.dynamics actor|critic`): forward and inverse dynamics prediction on a trunk's latents
  (Garcin et al., ICLR 2025);
- `value_distillation` (`--algo.value-distillation actor|critic`): PPG's auxiliary phase (Cobbe et al., 2021).

A researcher's objective subclasses `Objective`, registers with `@register_objective` in a plug-in file
(`--plugins`, see scalerl.plugins) and is chosen with `--algo.objectives NAME`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scalerl.checks import ConfigError, unknown_name
from scalerl.plugins import check_plugin_class, load_plugins_from_environment
from scalerl.replay import Rollout

if TYPE_CHECKING:
    from scalerl.agents.ppo import PPO


class Objective:
    """One add-on to PPO's update. Override what you need; `saved` names the attributes that go into the
    agent's checkpoint under their own names (networks, tensors, counters, lists of tensors)."""

    name: ClassVar[str]
    description: ClassVar[str]
    saved: ClassVar[tuple[str, ...]] = ()

    def __init__(self, agent: PPO) -> None:
        self.agent = agent

    def modules(self) -> dict[str, nn.Module]:
        """The objective's own networks by name: PPO's optimizer steps them, diagnostics measure them."""
        return {}

    def start_update(self, rollout: Rollout, obs: torch.Tensor, actions: torch.Tensor) -> None:
        """Once per update, before the epochs: the rollout, and its observations (as the network sees them)
        and actions flattened to steps x envs, the order that minibatch indices refer to."""

    def minibatch_loss(self, index: torch.Tensor) -> torch.Tensor | None:
        """A term added to the loss of the minibatch of these steps (None: nothing this time)."""
        return None

    def end_update(self, obs: torch.Tensor, returns: torch.Tensor) -> dict[str, torch.Tensor]:
        """After the epochs, with the update's observations and returns: a phase of the objective's own,
        and its metrics (detached scalars)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        state = {}
        for name in self.saved:
            value = getattr(self, name)
            state[name] = value.state_dict() if hasattr(value, "state_dict") else value
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self.saved:
            value = getattr(self, name)
            if hasattr(value, "load_state_dict"):
                value.load_state_dict(state[name])
            else:
                setattr(self, name, state[name])


class DynamicsModels(nn.Module):
    """Forward and inverse models on a trunk's latents. The forward model's target latent is detached, so
    the objective shapes the representation through its inputs, not by pulling targets towards predictions."""

    def __init__(self, features: int, action_outputs: int, discrete: bool, hidden: int = 256) -> None:
        super().__init__()
        self.discrete, self.action_outputs = discrete, action_outputs
        self.inverse = nn.Sequential(nn.Linear(2 * features, hidden), nn.ReLU(), nn.Linear(hidden, action_outputs))
        self.forward_model = nn.Sequential(nn.Linear(features + action_outputs, hidden), nn.ReLU(),
                                           nn.Linear(hidden, features))

    def loss(self, latent: torch.Tensor, next_latent: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        predicted = self.inverse(torch.cat([latent, next_latent], dim=-1))
        if self.discrete:
            inverse_loss = F.cross_entropy(predicted, actions.long())
            encoded = F.one_hot(actions.long(), self.action_outputs).float()
        else:
            inverse_loss = F.mse_loss(predicted, actions)
            encoded = actions
        forward_loss = F.mse_loss(self.forward_model(torch.cat([latent, encoded], dim=-1)), next_latent.detach())
        return inverse_loss + forward_loss


class Dynamics(Objective):
    """Dynamics prediction on the actor's or the critic's latents (`--algo.dynamics`), weighted by
    `--algo.dynamics-coef` in every minibatch, over the steps whose next observation continues the episode."""

    name = "dynamics"
    description = "forward and inverse dynamics prediction on a trunk's latents (Garcin et al., 2025)"
    saved = ("dynamics",)

    def __init__(self, agent: PPO) -> None:
        super().__init__(agent)
        features = agent.network.policy_head.in_features
        self.dynamics = DynamicsModels(features, agent.action_outputs, agent.discrete).to(agent.device)
        net = agent.network
        self.trunk = net.actor_trunk if agent.cfg.dynamics == "actor" else net.critic_trunk
        self.last_loss = torch.zeros(())

    def modules(self) -> dict[str, nn.Module]:
        return {"dynamics": self.dynamics}

    def start_update(self, rollout: Rollout, obs: torch.Tensor, actions: torch.Tensor) -> None:
        following, continues = self.following_observations(rollout)
        self.obs, self.actions = obs, actions
        self.next_obs = torch.as_tensor(following.reshape(-1, *following.shape[2:]), device=obs.device)
        self.continues = torch.as_tensor(continues.reshape(-1), device=obs.device)

    def minibatch_loss(self, index: torch.Tensor) -> torch.Tensor:
        kept = index[self.continues[index]]
        loss = self.dynamics.loss(self.trunk(self.obs[kept]), self.trunk(self.next_obs[kept]), self.actions[kept])
        self.last_loss = loss.detach()
        return self.agent.cfg.dynamics_coef * loss

    def end_update(self, obs: torch.Tensor, returns: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"dynamics_loss": self.last_loss}

    def following_observations(self, rollout: Rollout) -> tuple[np.ndarray, np.ndarray]:
        """The observation after each step (the network's input form) and whether it continues the same
        episode: obs[t + 1], or the rollout's next_obs after its last step."""
        stats = self.agent.obs_stats
        obs = rollout.extras["obs"] if stats is not None else rollout.obs
        last = stats.normalize(rollout.next_obs) if stats is not None else rollout.next_obs
        following = np.concatenate([obs[1:], last[None]], axis=0)
        return following, ~(rollout.terminated | rollout.truncated)


def orthogonal(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class ValueDistillation(Objective):
    """PPG's auxiliary phase (`--algo.value-distillation`): every `aux_every` updates, regress the returns
    of those rollouts from the actor's latents (an extra value head) or the critic's (its own head), while a
    behaviour-cloning KL (`clone_coef`) keeps the policy where it was."""

    name = "value_distillation"
    description = "PPG's auxiliary phase: value distillation into a trunk, the policy held by a KL"
    saved = ("aux_value", "aux_memory")

    def __init__(self, agent: PPO) -> None:
        super().__init__(agent)
        self.aux_value = None
        if agent.cfg.value_distillation == "actor":
            features = agent.network.policy_head.in_features
            self.aux_value = orthogonal(nn.Linear(features, 1), 1.0).to(agent.device)
        self.aux_memory: list[tuple[torch.Tensor, torch.Tensor]] = []
        """(observations, returns) of the rollouts since the last auxiliary phase."""

    def modules(self) -> dict[str, nn.Module]:
        return {"aux_value": self.aux_value} if self.aux_value is not None else {}

    def end_update(self, obs: torch.Tensor, returns: torch.Tensor) -> dict[str, torch.Tensor]:
        self.aux_memory.append((obs, returns))
        return self.phase() if len(self.aux_memory) == self.agent.cfg.aux_every else {}

    def phase(self) -> dict[str, torch.Tensor]:
        """The auxiliary phase over the stored rollouts: value distillation into the chosen trunk, the value
        head kept fitting, and the policy held by a behaviour-cloning KL."""
        agent, cfg = self.agent, self.agent.cfg
        network = agent.network
        obs = torch.cat([stored for stored, _ in self.aux_memory])
        returns = torch.cat([target for _, target in self.aux_memory])
        self.aux_memory = []
        with torch.no_grad():
            old_policy = torch.cat([network(obs[start:start + 4096])[0] for start in range(0, len(obs), 4096)])
        old_log_std = None if agent.discrete else agent.log_std.detach().clone()
        size = len(obs)
        minibatch = max(1, size // (cfg.minibatches * cfg.aux_every))
        for _ in range(cfg.aux_epochs):
            order = torch.as_tensor(agent.rng.permutation(size), device=agent.device)
            for start in range(0, size, minibatch):
                index = order[start:start + minibatch]
                policy, values = network(obs[index])
                if self.aux_value is not None:
                    distilled = self.aux_value(network.actor_trunk(obs[index])).squeeze(-1)
                    distill_loss = 0.5 * F.mse_loss(distilled, returns[index])
                else:
                    distill_loss = torch.zeros(())
                clone_loss = agent.policy_kl(old_policy[index], policy, old_log_std).mean()
                loss = distill_loss + 0.5 * F.mse_loss(values, returns[index]) + cfg.clone_coef * clone_loss
                agent.step_optimizer("optim", loss, cfg.max_grad_norm)
        return {"aux_distill_loss": distill_loss.detach(), "aux_clone_kl": clone_loss.detach()}

    def state_dict(self) -> dict[str, Any]:
        memory = [(stored.cpu(), target.cpu()) for stored, target in self.aux_memory]
        return {"aux_value": None if self.aux_value is None else self.aux_value.state_dict(), "aux_memory": memory}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.aux_value is not None:
            self.aux_value.load_state_dict(state["aux_value"])
        device = self.agent.device
        self.aux_memory = [(stored.to(device), target.to(device)) for stored, target in state["aux_memory"]]


OBJECTIVES: dict[str, type[Objective]] = {objective.name: objective for objective in [Dynamics, ValueDistillation]}


def register_objective(cls: type[Objective]) -> type[Objective]:
    """Make an objective class of your own choosable by its `name` with --algo.objectives (a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Objective)):
        raise ConfigError(f"register_objective takes a subclass of scalerl.agents.objectives.Objective (got {cls!r})")
    check_plugin_class(cls, "objective", ("name", "description"), OBJECTIVES)
    OBJECTIVES[cls.name] = cls
    return cls


def objective_class(name: str) -> type[Objective]:
    """A registered objective of a researcher's own (the built-in ones are chosen by PPO's own options)."""
    if name not in OBJECTIVES:
        load_plugins_from_environment()
    own = [registered for registered in OBJECTIVES if registered not in (Dynamics.name, ValueDistillation.name)]
    if name not in own:
        if not own:
            raise ConfigError(f"unknown objective {name!r}: none is registered (register one with "
                              "@register_objective in a --plugins file)")
        raise unknown_name("objective", name, own)
    return OBJECTIVES[name]


__all__ = ["OBJECTIVES", "Dynamics", "DynamicsModels", "Objective", "ValueDistillation", "objective_class",
           "register_objective"]
