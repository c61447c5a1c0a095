"""The optional suites: each builds a small vector env, steps it with random actions, and is
deterministic under a seed. A suite whose extra is not installed is skipped, naming the extra."""

import importlib.util

import numpy as np
import pytest

from scalerl import ConfigError, make_env


def needs(module: str, extra: str):
    return pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=f"pip install 'scalerl[{extra}]'")


def rollout(spec: str, seed: int, steps: int = 60, num_envs: int = 2, **opts):
    envs = make_env(spec, num_envs, seed, **opts)
    envs.action_space.seed(123)
    obs, _ = envs.reset()
    trace = [obs.copy()]
    for _ in range(steps):
        obs, rewards, terminated, truncated, _ = envs.step(envs.action_space.sample())
        assert rewards.shape == (num_envs,) and terminated.shape == (num_envs,)
        trace.append(obs.copy())
    envs.close()
    return np.stack(trace)


def check_deterministic(spec: str, steps: int = 60, **opts):
    first, second, other = (rollout(spec, seed, steps, **opts) for seed in (5, 5, 6))
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)
    return first


@needs("ale_py", "atari")
def test_atari_preprocessing_and_determinism():
    trace = check_deterministic("atari:breakout", steps=100)
    assert trace.shape[1:] == (2, 4, 84, 84) and trace.dtype == np.uint8
    envs = make_env("atari:breakout", 1, 0)
    assert envs.single_action_space.n == 4  # minimal action set


@needs("ale_py", "atari")
def test_cale_has_the_continuous_action_box():
    envs = make_env("cale:breakout", 2, 0)
    space = envs.single_action_space
    assert space.shape == (3,)
    assert np.allclose(space.low, [0, -np.pi, 0]) and np.allclose(space.high, [1, np.pi, 1])
    check_deterministic("cale:breakout", steps=50)


@needs("mujoco", "mujoco")
@pytest.mark.parametrize("task", ["HalfCheetah-v5", "Hopper-v5"])
def test_mujoco(task):
    trace = check_deterministic(f"mujoco:{task}")
    assert trace.dtype == np.float32


@needs("dm_control", "dmc")
def test_dmc_states_are_flat_float32():
    trace = check_deterministic("dmc:cheetah-run")
    assert trace.shape[1:] == (2, 17) and trace.dtype == np.float32
    envs = make_env("dmc:cheetah-run", 1, 0)
    assert envs.single_action_space.dtype == np.float32


@needs("dm_control", "dmc")
def test_dmc_pixels_are_stacked_channel_first():
    trace = check_deterministic("dmc:cartpole-swingup", steps=4, pixels=True, frame_stack=3, image_size=64, action_repeat=2)
    assert trace.shape[1:] == (2, 9, 64, 64) and trace.dtype == np.uint8


@needs("dm_control", "dmc")
def test_dmc_task_names():
    with pytest.raises(ConfigError, match="unknown dmc task 'cheetah-fly'"):
        make_env("dmc:cheetah-fly")
