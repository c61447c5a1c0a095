"""Hook points: where the loops let plug-ins (diagnostics, resets, early stopping) look and act,
without the agent knowing they are there.

The loops call, in order:
- `after_backward(optimizer, modules)` inside each gradient step, after backward and before the
  optimizer's step (and before gradient clipping), with the modules that optimizer steps;
- `after_update(metrics)` after each agent update (a replay batch or a whole rollout);
- `stop_episodes(obs, actions, rewards, terminated, truncated)` after each training vector step (off-policy
  loop): a mask of the environments whose episodes the hook ends there, or None; the loop stores those
  transitions as truncations and resets those environments;
- `on_episode_end(episode)` when an episode of a training environment ends, with its per-step data;
- `on_log()` when the loop writes a metrics record: the scalars to add to it;
- `state_dict()` / `load_state_dict()` with every checkpoint, so a resumed run continues exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from scalerl.agents.base import Agent


@dataclass
class Episode:
    """One finished training episode: which environment, its rewards step by step, whatever the agent's
    `act` returned besides actions at each step (e.g. values), and how it ended."""

    env_index: int
    rewards: np.ndarray
    extras: dict[str, np.ndarray]
    terminated: bool
    truncated: bool

    @property
    def length(self) -> int:
        return len(self.rewards)

    @property
    def episode_return(self) -> float:
        return float(self.rewards.sum())


class Hook:
    """A plug-in the loops call at the points above; override the ones you need. Set `name` and
    `config_class` (its options, under --hook-opts.NAME.*), and `wants_episodes` if it reads
    `on_episode_end` (the loop keeps per-step data only then)."""

    name: ClassVar[str]
    config_class: ClassVar[type]
    description: ClassVar[str]
    wants_episodes: ClassVar[bool] = False
    stops_episodes: ClassVar[bool] = False
    """Set by hooks that override stop_episodes (only loops that can end episodes accept them)."""

    def __init__(self, cfg: Any, agent: Agent) -> None:
        self.cfg = cfg
        self.agent = agent
        self.run_steps = 0
        """The run's environment steps, for hooks that act after a share of training."""

    def after_backward(self, optimizer: str, modules: dict[str, nn.Module]) -> None:
        pass

    def after_update(self, metrics: dict[str, torch.Tensor]) -> None:
        pass

    def stop_episodes(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, terminated: np.ndarray,
                      truncated: np.ndarray) -> np.ndarray | None:
        return None

    def on_episode_end(self, episode: Episode) -> None:
        pass

    def on_log(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class MeasuringHook(Hook):
    """A hook that counts updates and hands what it measured to the next metrics record; its count and
    anything not yet logged go into checkpoints."""

    def __init__(self, cfg: Any, agent: Agent) -> None:
        super().__init__(cfg, agent)
        self.updates = 0
        self.pending: dict[str, float] = {}

    def on_log(self) -> dict[str, float]:
        scalars, self.pending = self.pending, {}
        return scalars

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "pending": dict(self.pending)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates, self.pending = state["updates"], dict(state["pending"])


class HookList:
    """The run's hooks, called in the order the config lists them."""

    def __init__(self, hooks: list[Hook] | None = None) -> None:
        self.hooks = list(hooks or [])
        self.wants_episodes = any(hook.wants_episodes for hook in self.hooks)

    def __bool__(self) -> bool:
        return bool(self.hooks)

    def after_backward(self, optimizer: str, modules: dict[str, nn.Module]) -> None:
        for hook in self.hooks:
            hook.after_backward(optimizer, modules)

    def after_update(self, metrics: dict[str, torch.Tensor]) -> None:
        for hook in self.hooks:
            hook.after_update(metrics)

    def stop_episodes(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, terminated: np.ndarray,
                      truncated: np.ndarray) -> np.ndarray | None:
        """The union of the hooks' stops, among environments whose episodes did not end by themselves."""
        stop = None
        for hook in self.hooks:
            if not hook.stops_episodes:
                continue
            if (mask := hook.stop_episodes(obs, actions, rewards, terminated, truncated)) is not None:
                stop = mask if stop is None else stop | mask
        if stop is None:
            return None
        stop = stop & ~(terminated | truncated)
        return stop if stop.any() else None

    def on_episode_end(self, episode: Episode) -> None:
        for hook in self.hooks:
            hook.on_episode_end(episode)

    def on_log(self) -> dict[str, float]:
        scalars: dict[str, float] = {}
        for hook in self.hooks:
            scalars.update(hook.on_log())
        return scalars

    def state_dict(self) -> dict[str, Any]:
        return {hook.name: hook.state_dict() for hook in self.hooks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for hook in self.hooks:
            hook.load_state_dict(state[hook.name])
