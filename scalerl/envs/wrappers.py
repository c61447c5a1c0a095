"""The few wrappers Gymnasium and the suites do not already provide."""

from __future__ import annotations

import sys
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np

Recorded = gym.utils.RecordConstructorArgs
"""Every wrapper here records its constructor's arguments, so Gymnasium can rebuild an environment from its
spec (`gymnasium.make(env.spec)`, which `check_env` tries)."""


class Float32Actions(gym.ActionWrapper, Recorded):
    """Declare a float32 Box action space (dm_control's is float64), so agents see one dtype."""

    def __init__(self, env: gym.Env) -> None:
        Recorded.__init__(self)
        super().__init__(env)
        space = env.action_space
        self.action_space = gym.spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32),
                                           dtype=np.float32)

    def action(self, action: np.ndarray) -> np.ndarray:
        return np.asarray(action, dtype=np.float64)


class Float32Observations(gym.ObservationWrapper, Recorded):
    """Cast Box observations to float32 (MuJoCo and dm_control give float64)."""

    def __init__(self, env: gym.Env) -> None:
        Recorded.__init__(self)
        super().__init__(env)
        space = env.observation_space
        self.observation_space = gym.spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32),
                                                dtype=np.float32)

    def observation(self, obs: np.ndarray) -> np.ndarray:
        return obs.astype(np.float32)


class ActionRepeat(gym.Wrapper, Recorded):
    """Repeat each action `repeat` times and sum the rewards, stopping early at an episode's end."""

    def __init__(self, env: gym.Env, repeat: int) -> None:
        Recorded.__init__(self, repeat=repeat)
        super().__init__(env)
        self.repeat = repeat

    def step(self, action: Any):
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


class ChannelFirstFrameStack(gym.ObservationWrapper, Recorded):
    """Stack the last `count` (H, W, C) frames into one (count * C, H, W) array, oldest first."""

    def __init__(self, env: gym.Env, count: int) -> None:
        Recorded.__init__(self, count=count)
        super().__init__(env)
        height, width, channels = env.observation_space.shape
        self.frames: deque[np.ndarray] = deque(maxlen=count)
        self.count = count
        self.observation_space = gym.spaces.Box(0, 255, (count * channels, height, width), np.uint8)

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        frame = obs.transpose(2, 0, 1)
        for _ in range(self.count):
            self.frames.append(frame)
        return np.concatenate(self.frames), info

    def observation(self, obs: np.ndarray) -> np.ndarray:
        self.frames.append(obs.transpose(2, 0, 1))
        return np.concatenate(self.frames)


class PhysicsSnapshot(gym.Wrapper, Recorded):
    """Pickles a Gymnasium MuJoCo environment with its whole simulation state, so a resumed run continues
    the episode it was in: those environments pickle as their constructor arguments (EzPickle) and come
    back freshly built. This wrapper also saves MuJoCo's full integration state (`mj_getState`: positions,
    velocities, the solver's warm start, actuator state, time) and the environment's random generator, and
    puts both back after the inner
    environment has been rebuilt (without an `mj_forward`, which would recompute the warm start and move
    the next step by up to 1e-8)."""

    def __init__(self, env: gym.Env) -> None:
        Recorded.__init__(self)
        super().__init__(env)

    def __getstate__(self) -> dict[str, Any]:
        import mujoco

        inner = self.env.unwrapped
        physics = np.empty(mujoco.mj_stateSize(inner.model, mujoco.mjtState.mjSTATE_INTEGRATION))
        mujoco.mj_getState(inner.model, inner.data, physics, mujoco.mjtState.mjSTATE_INTEGRATION)
        return {**self.__dict__, "_physics": physics, "_rng": inner.np_random.bit_generator.state}

    def __setstate__(self, state: dict[str, Any]) -> None:
        import mujoco

        physics, rng = state.pop("_physics"), state.pop("_rng")
        self.__dict__.update(state)
        inner = self.env.unwrapped
        mujoco.mj_setState(inner.model, inner.data, physics, mujoco.mjtState.mjSTATE_INTEGRATION)
        inner.np_random.bit_generator.state = rng


def with_physics_snapshot(env: gym.Env) -> gym.Env:
    """`env` in PhysicsSnapshot when it is one of Gymnasium's MuJoCo environments, else as it is. Meta-World's
    environments subclass the same base but keep task state in the MuJoCo model itself (goal and object
    sites set at reset), which no integration state holds: they are left as they are, and resume with the
    approximate state their own pickling keeps."""
    mujoco_env = sys.modules.get("gymnasium.envs.mujoco.mujoco_env")
    if mujoco_env is None:  # never imported, so `env` cannot be one; importing it needs the optional mujoco
        return env
    inner = env.unwrapped
    is_gymnasium_mujoco = isinstance(inner, mujoco_env.MujocoEnv) and inner.__module__.startswith("gymnasium.")
    return PhysicsSnapshot(env) if is_gymnasium_mujoco else env


class SeedLevels(gym.Wrapper, Recorded):
    """Procgen-style levels for an environment whose every random draw comes from the seed it is reset with
    (MinAtar): each episode is reset with a level, start + i for i uniform over `count`. The levels drawn
    follow the seed of the first reset, so a seeded run replays the same sequence of levels."""

    def __init__(self, env: gym.Env, count: int, start: int) -> None:
        Recorded.__init__(self, count=count, start=start)
        super().__init__(env)
        self.count, self.start = count, start
        self.level_rng = np.random.default_rng(start)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            self.level_rng = np.random.default_rng(seed)
        level = self.start + int(self.level_rng.integers(self.count))
        obs, info = self.env.reset(seed=level, options=options)
        return obs, {**info, "level": level}


class GymnasiumSeeding(gym.Wrapper, Recorded):
    """MinAtar's reset(seed) seeds its game but not the environment's own `np_random` (it does not call
    Gymnasium's reset), which Gymnasium's determinism contract expects; this seeds both. MinAtar never draws
    from `np_random`, so its games play as before."""

    def __init__(self, env: gym.Env) -> None:
        Recorded.__init__(self)
        super().__init__(env)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            gym.Env.reset(self.env.unwrapped, seed=seed)
        return self.env.reset(seed=seed, options=options)
