"""The `gym:` suite's ground: every registered Gymnasium id (the installed suites registered first) and how
one is made. Below both the suite registry and the multi-task sets, which build on it."""

from __future__ import annotations

import importlib

import gymnasium as gym
import numpy as np

from scalerl.envs.wrappers import Float32Observations, with_physics_snapshot

GYM_REGISTRANTS = {"ale_py": "ALE/*", "metaworld": "Meta-World/*", "shimmy": "dm_control/*"}
"""Installed suites whose import registers Gymnasium ids (MinAtar registers through minatar.gym)."""


def registered_gym_ids() -> list[str]:
    """Every Gymnasium id, with those of the installed suites registered first (so gym:ALE/Pong-v5 works)."""
    for module in GYM_REGISTRANTS:
        try:
            imported = importlib.import_module(module)
        except ImportError:
            continue
        if module == "ale_py":
            gym.register_envs(imported)
    try:
        import minatar.gym

        if "MinAtar/Breakout-v1" not in gym.registry:
            minatar.gym.register_envs()
    except ImportError:
        pass
    return sorted(gym.registry)


def make_gym(task: str, *, max_episode_steps: int | None = None, render_mode: str | None = None) -> gym.Env:
    """Any registered id; float64 Box observations (MuJoCo v4, say) are cast to float32 as the other suites do."""
    env = with_physics_snapshot(gym.make(task, max_episode_steps=max_episode_steps, render_mode=render_mode))
    space = env.observation_space
    if isinstance(space, gym.spaces.Box) and space.dtype == np.float64:
        env = Float32Observations(env)
    return env
