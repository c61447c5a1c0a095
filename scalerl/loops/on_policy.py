"""The on-policy loop: collect `rollout_steps` steps from every environment into a rollout that keeps
whatever `act` returned besides actions (log-probs, values), then one update over the whole rollout."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from scalerl.checks import ScalerlWarning
from scalerl.loops.base import Loop
from scalerl.replay import Rollout


class OnPolicyLoop(Loop):
    def run(self) -> dict[str, Any]:
        config = self.config
        rollout = config.num_envs * config.algo.rollout_steps
        if config.steps % rollout and self.state.step == 0:
            warnings.warn(f"steps {config.steps:,} is not a whole number of rollouts ({config.num_envs} env"
                          f"{'s' if config.num_envs > 1 else ''} x "
                          f"{config.algo.rollout_steps} steps = {rollout:,}): the run takes "
                          f"{-(-config.steps // rollout) * rollout:,}", ScalerlWarning, stacklevel=2)
        self.begin()
        while not self.finished:
            metrics = self.update(self.collect(config.algo.rollout_steps))
            self.record_update(metrics)
            self.periodic()
        return self.end()

    def collect(self, length: int) -> Rollout:
        """Step every environment `length` times. Each step is copied into arrays at once, so environments
        that reuse their output buffers cannot change what was collected."""
        arrays: dict[str, np.ndarray] = {}
        final_obs, final_index = [], []
        for t in range(length):
            actions, extras = self.agent.act(self.obs, explore=True)
            next_obs, rewards, terminated, truncated, infos = self.envs.step(actions)
            step = {"obs": self.obs, "actions": actions, "rewards": rewards, "terminated": terminated,
                    "truncated": truncated, **{f"extras.{key}": value for key, value in extras.items()}}
            for key, value in step.items():
                value = np.asarray(value)
                if t == 0:
                    arrays[key] = np.empty((length, *value.shape), np.float32 if key == "rewards" else value.dtype)
                arrays[key][t] = value
            for index in np.flatnonzero(terminated | truncated):
                final_obs.append(np.array(infos["final_obs"][index]))
                final_index.append((t, index))
            self.obs = next_obs
            self.record_step(rewards, terminated, truncated, extras)
        return Rollout(
            obs=arrays.pop("obs"), actions=arrays.pop("actions"), rewards=arrays.pop("rewards"),
            terminated=arrays.pop("terminated"), truncated=arrays.pop("truncated"),
            extras={key.removeprefix("extras."): value for key, value in arrays.items()},
            next_obs=np.array(self.obs),
            final_obs=np.stack(final_obs) if final_obs else np.zeros((0, *self.obs.shape[1:]), self.obs.dtype),
            final_index=np.array(final_index, dtype=np.int64).reshape(-1, 2),
        )
