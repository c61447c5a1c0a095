"""Meta-World v3 (Meta-World+, McLean et al., 2025) behind `metaworld:TASKS`.

TASKS is one of
- `MT1/<env>` (e.g. `MT1/reach-v3`): one manipulation task, its 50 goal variations; any num_envs;
- `MT10`, `MT25`, `MT50`: one environment per task (num_envs must equal the task count);
- `ML10/train`, `ML10/test`, `ML25/...`, `ML45/...`: meta-learning splits, num_envs a multiple of
  the split's task classes;
- `custom/<env>,<env>,...`: a multi-task set of your choosing, one environment per task.

Episodes last 500 steps (truncation), `info["success"]` says whether each env's task is solved, and
multi-task sets append a one-hot task id to the 39-dimensional observation.
"""

from __future__ import annotations

import functools

import gymnasium as gym
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from scalerl.checks import ConfigError

MULTI_TASK = {"MT10": 10, "MT25": 25, "MT50": 50}
META_LEARNING = {"ML10": (10, 5), "ML25": (25, 25), "ML45": (45, 5)}
"""Train and test task classes of each meta-learning benchmark."""


def environment_names() -> list[str]:
    import metaworld

    return sorted(metaworld.ALL_V3_ENVIRONMENTS)


def metaworld_tasks() -> list[str]:
    return (list(MULTI_TASK) + [f"{name}/{split}" for name in META_LEARNING for split in ("train", "test")]
            + [f"MT1/{name}" for name in environment_names()])


def check_metaworld_task(task: str) -> None:
    """Raise ConfigError unless `task` is a listed benchmark or a custom list of known environments."""
    if task.startswith("custom/"):
        names = task.removeprefix("custom/").split(",")
        unknown = [name for name in names if name not in environment_names()]
        if unknown or not names:
            raise ConfigError(f"unknown Meta-World environment {unknown[0] if unknown else ''!r} in {task!r}; "
                              f"valid: {', '.join(environment_names())}")
        return
    if task not in metaworld_tasks():
        raise ConfigError(f"unknown metaworld task {task!r}; valid: MT10, MT25, MT50, ML10/train, ML10/test, "
                          "ML25/..., ML45/..., MT1/<env>, custom/<env>,<env>,... (see scalerl envs --suite metaworld)")


def metaworld_task_count(task: str) -> tuple[int, bool] | None:
    """(environments per set, exact): MT10/25/50 and custom sets run exactly one environment per task, ML
    splits a multiple of their task classes; None for MT1 (any number)."""
    benchmark, _, rest = task.partition("/")
    if benchmark == "MT1":
        return None
    if benchmark in META_LEARNING:
        return META_LEARNING[benchmark][0 if rest == "train" else 1], False
    if benchmark == "custom":
        return len(rest.split(",")), True
    return MULTI_TASK[benchmark], True


class SeedOnReset(gym.Wrapper):
    """Meta-World ignores `reset(seed=...)` (its envs are seeded by `env.seed()` alone), so every copy of
    an MT1 task drew the same goals, and evaluations reset with a fixed seed saw new goals each time.
    This wrapper passes a reset's seed to `env.seed()`, which reseeds the task sampler and the goal
    noise: copy i of a vector env reset with seed s follows stream s + i, and the same seed gives the
    same goals again."""

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.env.unwrapped.seed(seed)
        return self.env.reset(seed=seed, options=options)


def _single(name: str, seed: int, **kwargs) -> gym.Env:
    import metaworld

    return SeedOnReset(metaworld.make_mt_envs(name, seed=seed, **kwargs))


def seed_on_reset(envs: gym.vector.VectorEnv) -> gym.vector.VectorEnv:
    """Wrap each sub-environment of a Meta-World vector env in SeedOnReset."""
    envs.envs = [SeedOnReset(env) for env in envs.envs]
    return envs


def make_metaworld_vector(task: str, num_envs: int, seed: int, *, reward_function_version: str = "v2",
                          max_episode_steps: int = 500, one_hot: bool | None = None,
                          terminate_on_success: bool = False) -> gym.vector.VectorEnv:
    """Meta-World vector env. reward_function_version v2 is Meta-World+'s default (v1: the original
    rewards); one_hot defaults to True for multi-task sets and False otherwise."""
    import metaworld  # noqa: F401  (registers the Meta-World/* ids)

    check_metaworld_task(task)
    common = {"reward_function_version": reward_function_version, "max_episode_steps": max_episode_steps,
              "terminate_on_success": terminate_on_success}
    benchmark, _, rest = task.partition("/")
    if benchmark == "MT1":
        factory = functools.partial(_single, rest, seed, use_one_hot=bool(one_hot), env_id=0, num_tasks=1, **common)
        return SyncVectorEnv([factory] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP)
    if benchmark in META_LEARNING:
        classes = META_LEARNING[benchmark][0 if rest == "train" else 1]
        if num_envs % classes:
            raise ConfigError(f"metaworld:{task} has {classes} task classes: "
                              f"num_envs must be a multiple of it (got {num_envs})")
        envs = gym.make_vec(f"Meta-World/{benchmark}-{rest}", seed=seed, meta_batch_size=num_envs,
                            vector_strategy="sync", **common)
        envs.call("toggle_sample_tasks_on_reset", True)  # each episode draws a task of its class
        return seed_on_reset(envs)
    names = rest.split(",") if benchmark == "custom" else None
    count = len(names) if names else MULTI_TASK[benchmark]
    if num_envs != count:
        raise ConfigError(f"metaworld:{task} runs one environment per task: num_envs must be {count} (got {num_envs})")
    one_hot = True if one_hot is None else one_hot
    if names:
        return seed_on_reset(gym.make_vec("Meta-World/custom-mt-envs", envs_list=names, seed=seed, use_one_hot=one_hot,
                                          vector_strategy="sync", **common))
    return seed_on_reset(gym.make_vec(f"Meta-World/{benchmark}", seed=seed, use_one_hot=one_hot, vector_strategy="sync",
                                      **common))


def metaworld_members(task: str, envs: gym.vector.VectorEnv) -> list[str]:
    """The tasks of a multi-task set (MT10, MT25, MT50, custom), one per environment; none for MT1 and ML."""
    benchmark = task.partition("/")[0]
    return task_names(envs) if benchmark in MULTI_TASK or benchmark == "custom" else []


def task_names(envs: gym.vector.VectorEnv) -> list[str]:
    """The Meta-World environment name of each sub-environment, e.g. 'reach-v3'."""
    import metaworld

    by_class = {cls: name for name, cls in metaworld.ALL_V3_ENVIRONMENTS.items()}
    return [by_class[type(env.unwrapped)] for env in envs.envs]
