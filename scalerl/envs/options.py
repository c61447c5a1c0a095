"""Typed environment options (`--env-opts.*`), each taken by some suites.

Unset options (None) leave the suite's default. Setting an option the chosen suite does not take is
an error that names the options it does take.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from scalerl.checks import ConfigError, in_range, positive

TRAINING_ONLY = ("episodic_life", "reward_clipping")
"""Training tricks: evaluation environments are built without them, so they score the true game."""


@dataclass(frozen=True)
class EnvOptions:
    """Options of the environment suites; each names the suites that take it."""

    max_episode_steps: int | None = None
    """classic, minatar, mujoco, metaworld, gym: episode length cap (MinAtar 10,000, Meta-World 500)."""
    sticky_actions: float | None = None
    """atari, cale, minatar: probability of repeating the previous action (0.25 Atari, 0.1 MinAtar)."""
    episodic_life: bool | None = None
    """atari, cale: end a training episode at each life lost (training envs only)."""
    reward_clipping: bool | None = None
    """atari, cale: clip training rewards to their sign (training envs only)."""
    noop_max: int | None = None
    """atari, cale: up to this many no-op actions at the start of an episode (30)."""
    frame_skip: int | None = None
    """atari, cale: emulator frames per action, max-pooled over the last two (4)."""
    frame_stack: int | None = None
    """atari, cale, dmc (pixels): frames stacked into one observation (4 Atari, 3 DMC)."""
    image_size: int | None = None
    """atari, cale, dmc (pixels): observation height and width (84)."""
    grayscale: bool | None = None
    """atari, cale: grayscale frames (True) or RGB."""
    full_action_space: bool | None = None
    """atari, cale, minatar: every action instead of the game's minimal set (Atari 18, MinAtar 6)."""
    fire_reset: bool | None = None
    """atari, cale: press fire at the start of games that need it (True)."""
    max_episode_frames: int | None = None
    """atari, cale: episode cap in emulator frames (108,000 = 30 minutes)."""
    continuous_action_threshold: float | None = None
    """cale: a joystick axis or fire triggers when its component exceeds this (0.5)."""
    pixels: bool | None = None
    """dmc: observe rendered frames instead of the state."""
    action_repeat: int | None = None
    """dmc: control steps per action (1)."""
    camera_id: int | None = None
    """dmc (pixels): camera to render (2 for quadruped, else 0)."""
    reward_function_version: Literal["v1", "v2"] | None = None
    """metaworld: reward functions of the original Meta-World (v1) or Meta-World+ (v2, default)."""
    one_hot: bool | None = None
    """metaworld: append a one-hot task id to observations (default: on for multi-task sets)."""
    terminate_on_success: bool | None = None
    """metaworld: end an episode when its task is solved (off: episodes last 500 steps)."""
    num_levels: int | None = None
    """procgen: number of training levels (200; 0 is unlimited)."""
    start_level: int | None = None
    """procgen: first training level (0)."""
    distribution_mode: Literal["easy", "hard"] | None = None
    """procgen: game difficulty (easy)."""
    level_set: Literal["train", "test"] | None = None
    """procgen: levels of the training envs (train); evaluation envs always play the disjoint test levels."""

    def __post_init__(self) -> None:
        for name in ("max_episode_steps", "frame_skip", "frame_stack", "image_size", "max_episode_frames",
                     "action_repeat"):
            if getattr(self, name) is not None:
                positive(f"env_opts.{name}", getattr(self, name))
        if self.sticky_actions is not None:
            in_range("env_opts.sticky_actions", self.sticky_actions, 0.0, 1.0)
        if self.continuous_action_threshold is not None:
            in_range("env_opts.continuous_action_threshold", self.continuous_action_threshold, 0.0, 1.0)
        for name in ("noop_max", "num_levels", "start_level"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ConfigError(f"env_opts.{name} must be >= 0 (got {getattr(self, name)})")

    def given(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}

    def for_env(self, training: bool, suite_options: list[str]) -> dict[str, Any]:
        """Keyword options for make_env. Evaluation drops the training-only ones and, where the suite
        has level sets (procgen), plays the test levels."""
        options = {k: v for k, v in self.given().items() if training or k not in TRAINING_ONLY}
        if not training and "level_set" in suite_options:
            options["level_set"] = "test"
        return options
