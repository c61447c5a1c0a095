"""Environment suites behind one naming scheme, `suite:task`.

A suite knows its task names, how to make one single environment for a task, and which extra
provides it. Vector environments are built from single ones in `scalerl.envs.make_env`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from scalerl.checks import ConfigError


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    tasks: Callable[[], list[str]]
    make: Callable[..., gym.Env]
    requires: str | None = None
    """Python module the suite needs; missing -> an error naming the extra to install."""
    extra: str | None = None
    any_task: bool = False
    """Accepts any task name its `make` understands (e.g. every registered Gymnasium id)."""

    def available(self) -> bool:
        if self.requires is None:
            return True
        try:
            importlib.import_module(self.requires)
        except ImportError:
            return False
        return True

    def check_installed(self) -> None:
        if not self.available():
            raise ConfigError(
                f"suite {self.name!r} needs {self.requires!r}: pip install 'scalerl[{self.extra}]'"
            )


CLASSIC_TASKS = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"]


def make_classic(task: str, **opts: Any) -> gym.Env:
    return gym.make(task, **opts)


MINATAR_IDS = {
    "breakout": "MinAtar/Breakout-v1",
    "asterix": "MinAtar/Asterix-v1",
    "freeway": "MinAtar/Freeway-v1",
    "seaquest": "MinAtar/Seaquest-v1",
    "space_invaders": "MinAtar/SpaceInvaders-v1",
}


MINATAR_MAX_EPISODE_STEPS = 10_000
"""MinAtar sets no time limit, and a good Breakout player can go on for ever: cap episodes so that
evaluation always ends (pass max_episode_steps to change it)."""


def make_minatar(task: str, **opts: Any) -> gym.Env:
    """MinAtar games; observations are (10, 10, channels) booleans. Sticky actions 0.1 by default."""
    import minatar.gym

    if MINATAR_IDS[task] not in gym.registry:
        minatar.gym.register_envs()
    opts.setdefault("max_episode_steps", MINATAR_MAX_EPISODE_STEPS)
    return gym.make(MINATAR_IDS[task], **opts)


def registered_gym_ids() -> list[str]:
    return sorted(gym.registry)


def make_gym(task: str, **opts: Any) -> gym.Env:
    return gym.make(task, **opts)


SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in [
        Suite("classic", "Gymnasium classic control", lambda: list(CLASSIC_TASKS), make_classic),
        Suite("minatar", "MinAtar miniature Atari (10x10 grids)", lambda: list(MINATAR_IDS), make_minatar,
              requires="minatar", extra="minatar"),
        Suite("gym", "any registered Gymnasium id", registered_gym_ids, make_gym, any_task=True),
    ]
}


def parse_spec(spec: str) -> tuple[Suite, str]:
    """Split and check `suite:task`, raising ConfigError that lists the valid choices."""
    suite_name, sep, task = spec.partition(":")
    if not sep or not task:
        raise ConfigError(f"env must look like suite:task (got {spec!r}); suites: {', '.join(SUITES)}")
    if suite_name not in SUITES:
        raise ConfigError(f"unknown env suite {suite_name!r}; valid suites: {', '.join(SUITES)}")
    suite = SUITES[suite_name]
    suite.check_installed()
    tasks = suite.tasks()
    if task not in tasks:
        if suite.any_task:
            raise ConfigError(f"{task!r} is not a registered Gymnasium id (see `scalerl envs --suite gym`)")
        raise ConfigError(f"unknown {suite_name} task {task!r}; valid: {', '.join(tasks)}")
    return suite, task
