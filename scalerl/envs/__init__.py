"""`make_env("suite:task", num_envs, seed)`: every environment as a Gymnasium vector env.

All vector envs autoreset in SAME_STEP mode: when an episode ends, `step` already returns the next
episode's first observation and puts the true last one in `info["final_obs"]`. Every step is then a
real transition, which keeps replay and rollout code free of skipped "reset steps".
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from scalerl.checks import ConfigError
from scalerl.envs.options import EnvOptions
from scalerl.envs.registry import SUITES, EnvSpec, Suite, parse_spec, register_suite
from scalerl.envs.vector import SameStepVectorEnv


def check_options(suite: Suite, opts: dict[str, Any]) -> None:
    unknown = sorted(set(opts) - set(suite.options()))
    if unknown:
        valid = ", ".join(suite.options()) or "none"
        raise ConfigError(f"suite {suite.name!r} does not take option {unknown[0]!r}; it takes: {valid}")


def _make_single(suite_name: str, task: str, opts: dict[str, Any]) -> gym.Env:
    return SUITES[suite_name].make(task, **opts)


def make_env(spec: str | EnvSpec, num_envs: int = 1, seed: int = 0, **opts: Any) -> gym.vector.VectorEnv:
    """Build `num_envs` copies of `spec` (a `suite:task` string, or the EnvSpec parsed from one) as one vector
    env, seeded so that env i starts from seed + i.

    The env is reset once here with the seed, so every later `reset()` continues a seeded stream and
    two calls with the same arguments produce the same observations.
    """
    suite, task = parse_spec(spec)
    check_options(suite, opts)
    if suite.make_vector is not None:
        envs = suite.make_vector(task, num_envs, seed, **opts)
    else:
        factory = functools.partial(_make_single, suite.name, task, opts)
        envs = SameStepVectorEnv([factory] * num_envs)
        if not SameStepVectorEnv.fits(envs):
            envs.close()
            envs = SyncVectorEnv([factory] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP)
    envs.reset(seed=seed)
    envs.action_space.seed(seed)
    return envs


def task_members(spec: str | EnvSpec, envs: gym.vector.VectorEnv) -> list[str]:
    """The task each environment runs, for multi-task sets whose observations end with a one-hot task id
    (metaworld:MT10, multitask:...); an empty list for every other env."""
    suite, task = parse_spec(spec)
    return suite.members(task, envs) if suite.members is not None else []


def final_observations(next_obs: np.ndarray, done: np.ndarray, infos: dict[str, Any]) -> np.ndarray:
    """The observation each env actually ended the step in: `final_obs` where an episode ended."""
    if not done.any():
        return next_obs
    real = next_obs.copy()
    for index in np.flatnonzero(done):
        real[index] = infos["final_obs"][index]
    return real


def describe_suites() -> list[dict[str, Any]]:
    """One record per suite: its description, whether it is installed, its task names, and whether it exists
    only as a vector environment (ale-py's, Meta-World's sets, Procgen: no single Gymnasium env to check)."""
    rows = []
    for suite in SUITES.values():
        installed = suite.available()
        tasks = suite.tasks() if installed and not suite.any_task else []
        rows.append({"suite": suite.name, "description": suite.description, "installed": installed,
                     "extra": suite.extra, "tasks": tasks, "vector_only": suite.make is None})
    return rows


def describe_tasks(suite_name: str) -> list[dict[str, str]]:
    """Observation and action spaces of every task of one suite (builds each task once)."""
    if suite_name not in SUITES:
        raise ConfigError(f"unknown env suite {suite_name!r}; valid suites: {', '.join(SUITES)}")
    suite = SUITES[suite_name]
    suite.check_installed()
    if suite.any_task:
        raise ConfigError(f"suite {suite_name!r} takes any registered Gymnasium id; there is no task list")
    rows = []
    for task in suite.tasks():
        envs = make_env(f"{suite.name}:{task}", 1, 0)
        rows.append({"env": f"{suite.name}:{task}", "observation": _space_text(envs.single_observation_space),
                     "action": _space_text(envs.single_action_space)})
        envs.close()
    return rows


def _space_text(space: gym.Space) -> str:
    if isinstance(space, gym.spaces.Discrete):
        return f"Discrete({space.n})"
    if isinstance(space, gym.spaces.Box):
        return f"Box{tuple(space.shape)} {space.dtype}"
    return str(space)


__all__ = ["SUITES", "EnvOptions", "EnvSpec", "Suite", "check_options", "describe_suites", "describe_tasks",
           "final_observations", "make_env", "parse_spec", "register_suite", "task_members"]
