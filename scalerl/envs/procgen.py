"""Procgen (Cobbe et al., 2020) as a Gymnasium vector env.

The maintained wheel for Python 3.11 is `procgen-mirror`, which needs numpy<2 and speaks the old gym3
API, so it lives in its own extra and environment (`pip install 'scalerl[procgen]'`). Its C++ envs are
vectorised and reset themselves: an episode's last frame is never returned, only the next one's first
(`first` flag). Every episode end is therefore reported as a termination, whose value is not
bootstrapped, and `final_obs` holds the new episode's first frame in place of the lost last one.
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

GAMES = ["bigfish", "bossfight", "caveflyer", "chaser", "climber", "coinrun", "dodgeball", "fruitbot", "heist",
         "jumper", "leaper", "maze", "miner", "ninja", "plunder", "starpilot"]
TEST_LEVELS_START = 1_000_000
"""Evaluation levels start here, far above any training range: train and test level sets are disjoint."""


class ProcgenVectorEnv(gym.vector.VectorEnv):
    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, game: str, num_envs: int, *, num_levels: int = 200, start_level: int = 0,
                 distribution_mode: Literal["easy", "hard"] = "easy",
                 level_set: Literal["train", "test"] = "train") -> None:
        self.game = game
        self.num_envs = num_envs
        if level_set == "test":
            start_level += TEST_LEVELS_START
        self.env_kwargs = {"num_levels": num_levels, "start_level": start_level, "distribution_mode": distribution_mode}
        self.single_observation_space = gym.spaces.Box(0, 255, (3, 64, 64), np.uint8)
        self.single_action_space = gym.spaces.Discrete(15)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.seed = 0
        self.env: Any = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """gym3 envs cannot be reset, so a reset builds a fresh one: from `seed`, or the next seed."""
        from procgen import ProcgenGym3Env

        self.seed = seed if seed is not None else self.seed + 1
        self.env = ProcgenGym3Env(num=self.num_envs, env_name=self.game, rand_seed=self.seed, **self.env_kwargs)
        _, obs, _ = self.env.observe()
        return self.frames(obs), {}

    def frames(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.ascontiguousarray(obs["rgb"].transpose(0, 3, 1, 2))

    def step(self, actions: np.ndarray):
        self.env.act(np.asarray(actions, dtype=np.int32))
        rewards, obs, first = self.env.observe()
        frames = self.frames(obs)
        terminated = np.asarray(first, dtype=bool)
        infos = {"final_obs": frames} if terminated.any() else {}
        return frames, rewards.astype(np.float32), terminated, np.zeros(self.num_envs, dtype=bool), infos


def make_procgen_vector(task: str, num_envs: int, seed: int, *, num_levels: int = 200, start_level: int = 0,
                        distribution_mode: Literal["easy", "hard"] = "easy",
                        level_set: Literal["train", "test"] = "train") -> ProcgenVectorEnv:
    """Procgen game on `num_levels` levels from `start_level` (0: unlimited); level_set='test' shifts
    the range to disjoint, unseen levels. Observations are (3, 64, 64) uint8, 15 actions."""
    return ProcgenVectorEnv(task, num_envs, num_levels=num_levels, start_level=start_level,
                            distribution_mode=distribution_mode, level_set=level_set)
