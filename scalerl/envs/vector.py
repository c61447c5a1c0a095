"""The vector env every suite without its own runs in."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv


class SameStepVectorEnv(SyncVectorEnv):
    """Gymnasium's SyncVectorEnv in SAME_STEP autoreset mode with a leaner `step` for Box observations and
    Box or Discrete actions: actions indexed directly rather than through `iterate`, observations stacked
    with numpy rather than `concatenate` + `deepcopy`. Its results are the same, step for step (a test
    compares them); for a single CartPole it halves the vector env's cost over the bare env's step.
    Everything else (reset, seeding, infos, pickling, closing) is SyncVectorEnv's own."""

    def __init__(self, env_fns: list) -> None:
        super().__init__(env_fns, autoreset_mode=AutoresetMode.SAME_STEP)

    @staticmethod
    def fits(envs: SyncVectorEnv) -> bool:
        return (isinstance(envs.single_observation_space, gym.spaces.Box)
                and isinstance(envs.single_action_space, gym.spaces.Box | gym.spaces.Discrete))

    def step(self, actions: Any):
        infos: dict[str, Any] = {}
        observations = self._env_obs
        for index, env in enumerate(self.envs):
            (observations[index], self._rewards[index], self._terminations[index], self._truncations[index],
             env_info) = env.step(actions[index])
            if self._terminations[index] or self._truncations[index]:
                infos = self._add_info(infos, {"final_obs": observations[index], "final_info": env_info}, index)
                observations[index], env_info = env.reset()
            if env_info:
                infos = self._add_info(infos, env_info, index)
        self._observations = np.array(observations)  # np.stack's checks cost 5 us for one env, this 0.7
        self._autoreset_envs = self._terminations | self._truncations
        return self._observations, self._rewards.copy(), self._terminations.copy(), self._truncations.copy(), infos
