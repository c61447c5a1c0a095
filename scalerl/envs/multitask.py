"""`multitask:ID,ID,...`: any Gymnasium tasks as one multi-task set, one environment per task.

Meta-World's multi-task sets are costly to step; multi-task agents also need a cheap set to be tested
and tried on. This suite makes one from any registered Gymnasium ids (`multitask:Pendulum-v1,
InvertedPendulum-v5`), laid out as Meta-World lays out MT10: environment i runs task i, and its
observation ends with a one-hot task id. So that the tasks share one observation and one action space:
- observations are zero-padded to the longest task's length before the one-hot id;
- continuous actions are rescaled to [-1, 1] for every task (each task maps them onto its own bounds),
  so the tasks must have the same number of action dimensions; discrete tasks the same number of actions.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np

from scalerl.checks import ConfigError
from scalerl.envs.gym_ids import make_gym, registered_gym_ids
from scalerl.envs.vector import SameStepVectorEnv


def parse_task_list(task: str) -> list[str]:
    names = [name.strip() for name in task.split(",")]
    if not all(names):
        raise ConfigError(f"multitask:{task} has an empty task name; give Gymnasium ids separated by commas")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"multitask:{task} names {repeated[0]!r} twice; each task once")
    return names


def check_multitask_task(task: str) -> None:
    known = set(registered_gym_ids())
    for name in parse_task_list(task):
        if name not in known:
            raise ConfigError(f"multitask: unknown Gymnasium id {name!r} (see `scalerl envs --suite gym`)")


def multitask_task_count(task: str) -> tuple[int, bool]:
    return len(parse_task_list(task)), True


class TaskInSet(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """One task of a set: its observation padded to the set's length and followed by the one-hot task id;
    continuous actions taken in [-1, 1] and mapped onto the task's bounds."""

    def __init__(self, env: gym.Env, name: str, index: int, count: int, obs_size: int) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, name=name, index=index, count=count, obs_size=obs_size)
        super().__init__(env)
        self.task_name = name
        self.padding = obs_size - int(np.prod(env.observation_space.shape))
        self.task_id = np.zeros(count, dtype=np.float32)
        self.task_id[index] = 1.0
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_size + count,), np.float32)
        space = env.action_space
        self.continuous = isinstance(space, gym.spaces.Box)
        if self.continuous:
            self.action_space = gym.spaces.Box(-1.0, 1.0, space.shape, np.float32)
            self.low, self.high = space.low.astype(np.float64), space.high.astype(np.float64)

    def observation(self, obs: np.ndarray) -> np.ndarray:
        flat = np.asarray(obs, dtype=np.float32).reshape(-1)
        return np.concatenate([flat, np.zeros(self.padding, np.float32), self.task_id])

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        return self.observation(obs), info

    def step(self, action: Any):
        if self.continuous:
            action = self.low + (np.clip(action, -1.0, 1.0) + 1.0) * 0.5 * (self.high - self.low)
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self.observation(obs), reward, terminated, truncated, info


def check_compatible(names: list[str], envs: list[gym.Env]) -> None:
    """The tasks must be able to share one policy's outputs."""
    for name, env in zip(names, envs):
        obs_space, action_space = env.observation_space, env.action_space
        if not isinstance(obs_space, gym.spaces.Box):
            raise ConfigError(f"multitask: {name} observes {obs_space}; the tasks need Box observations")
        if not isinstance(action_space, gym.spaces.Box | gym.spaces.Discrete):
            raise ConfigError(f"multitask: {name} acts in {action_space}; the tasks need Box or Discrete actions")
    first = envs[0].action_space
    for name, env in zip(names[1:], envs[1:]):
        space = env.action_space
        same = (isinstance(space, gym.spaces.Box) and isinstance(first, gym.spaces.Box)
                and space.shape == first.shape) or (
            isinstance(space, gym.spaces.Discrete) and isinstance(first, gym.spaces.Discrete) and space.n == first.n)
        if not same:
            raise ConfigError(f"multitask: {name} acts in {space} but {names[0]} in {first}; the tasks need "
                              "the same number of action dimensions (or of discrete actions)")


def _task_env(name: str, index: int, count: int, obs_size: int, max_episode_steps: int | None) -> gym.Env:
    return TaskInSet(make_gym(name, max_episode_steps=max_episode_steps), name, index, count, obs_size)


def make_multitask_vector(task: str, num_envs: int, seed: int, *,
                          max_episode_steps: int | None = None) -> gym.vector.VectorEnv:
    names = parse_task_list(task)
    if num_envs != len(names):
        raise ConfigError(f"multitask:{task} runs one environment per task: "
                          f"num_envs must be {len(names)} (got {num_envs})")
    probes = [make_gym(name, max_episode_steps=max_episode_steps) for name in names]
    try:
        check_compatible(names, probes)
        obs_size = max(int(np.prod(env.observation_space.shape)) for env in probes)
    finally:
        for env in probes:
            env.close()
    factories = [functools.partial(_task_env, name, index, len(names), obs_size, max_episode_steps)
                 for index, name in enumerate(names)]
    return SameStepVectorEnv(factories)


def multitask_members(task: str, envs: gym.vector.VectorEnv) -> list[str]:
    return parse_task_list(task)
