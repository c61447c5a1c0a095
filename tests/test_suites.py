"""The optional suites: each builds a small vector env, steps it with random actions, and is
deterministic under a seed. A suite whose extra is not installed is skipped, naming the extra."""

import importlib.util

import numpy as np
import pytest

from scalerl import ConfigError, make_env
from scalerl.envs.cale import action_events, event_shares, recorded_events, shares_of, uniform_actions


def needs(module: str, extra: str):
    return pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=f"pip install 'scalerl[{extra}]'")


def rollout(spec: str, seed: int, steps: int = 60, num_envs: int = 2, **opts):
    envs = make_env(spec, num_envs, seed, **opts)
    envs.action_space.seed(123)
    obs, _ = envs.reset()
    trace = [obs.copy()]
    for _ in range(steps):
        obs, rewards, terminated, _, _ = envs.step(envs.action_space.sample())
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
    trace = check_deterministic("dmc:cartpole-swingup", steps=4, pixels=True, frame_stack=3, image_size=64,
                                action_repeat=2)
    assert trace.shape[1:] == (2, 9, 64, 64) and trace.dtype == np.uint8


@needs("dm_control", "dmc")
def test_dmc_task_names():
    with pytest.raises(ConfigError, match="unknown dmc task 'cheetah-fly'"):
        make_env("dmc:cheetah-fly")


def paddle_x(frame: np.ndarray) -> float:
    """Breakout's paddle: the lit pixels of row 76 between the side walls."""
    return float(np.flatnonzero(frame[76, 5:79] > 0).mean())


@needs("ale_py", "atari")
def test_cale_right_and_left_move_the_paddle_that_way():
    for theta, sign in [(0.0, 1), (np.pi, -1)]:
        envs = make_env("cale:breakout", 1, 0, sticky_actions=0.0)
        obs, _ = envs.reset()
        start = paddle_x(obs[0, -1])
        for _ in range(4):
            obs, *_ = envs.step(np.array([[1.0, theta, 0.0]], dtype=np.float32))
        assert sign * (paddle_x(obs[0, -1]) - start) > 10, (theta, start, paddle_x(obs[0, -1]))


def joystick(actions: np.ndarray) -> np.ndarray:
    """The (horizontal, vertical) joystick direction of CALE actions at the default threshold."""
    return action_events(actions, 0.5)[:, :2]


@needs("ale_py", "atari")
def test_cale_threshold_leaves_most_random_actions_without_movement():
    """At threshold 0.5 a uniform random (r, theta) moves the joystick in neither axis with probability
    P(|r cos| <= .5, |r sin| <= .5) = 0.561. Berzerk's player walks in all eight directions and each
    gives a different frame. From one start state, the frame after each random action must be the frame
    of the direction the thresholds predict; so the thresholds' rate of 'no movement' over many samples
    of the action space is the environment's."""
    directions = [(h, v) for h in (-1, 0, 1) for v in (-1, 0, 1)]
    references = np.array([[float(d != (0, 0)), np.arctan2(d[1], d[0]), 0.0] for d in directions], np.float32)
    assert [tuple(d) for d in joystick(references)] == directions
    num_envs = 24
    envs = make_env("cale:berzerk", num_envs, 0, sticky_actions=0.0, noop_max=0)
    space = envs.single_action_space
    space.seed(0)

    def frames_after(actions: np.ndarray) -> np.ndarray:
        envs.reset(seed=0)
        for _ in range(30):  # let the player appear in the room
            envs.step(np.zeros((num_envs, 3), np.float32))
        return envs.step(actions)[0][:, -1]

    def random_actions(count: int) -> np.ndarray:
        actions = np.stack([space.sample() for _ in range(count)])
        actions[:, 2] = 0.0  # fire off: movement only
        return actions

    first = random_actions(num_envs - len(directions))
    frames = frames_after(np.concatenate([references, first]))
    reference_frames, first_frames = frames[: len(directions)], frames[len(directions):]
    assert len({frame.tobytes() for frame in reference_frames}) == len(directions)
    second = random_actions(num_envs)
    actions = np.concatenate([first, second])
    frames = np.concatenate([first_frames, frames_after(second)])
    matches = (frames[:, None] == reference_frames[None]).all(axis=(2, 3))
    assert (matches.sum(1) == 1).all()
    assert [directions[i] for i in matches.argmax(1)] == [tuple(d) for d in joystick(actions)]
    assert np.mean(matches.argmax(1) == directions.index((0, 0))) == pytest.approx(0.561, abs=0.2)
    many = random_actions(20_000)
    assert np.mean((joystick(many) == 0).all(1)) == pytest.approx(event_shares(0.5).centre, abs=0.01)


def test_cale_event_shares_have_their_closed_forms():
    """At tau = 0.5 the dead square lies inside the unit disc: P(centre) = (2 / pi) ln(1 + sqrt 2) = 0.561;
    a diagonal needs r sin(theta) > tau with theta in (pi/6, pi/4] of each octant, which integrates to 0.056.
    At 0.75 no r <= 1 reaches a diagonal (0.75 sqrt 2 > 1)."""
    half = event_shares(0.5)
    assert half.centre == pytest.approx(2 / np.pi * np.log(1 + np.sqrt(2)), abs=1e-7)
    octant = np.pi / 12 - 0.5 * (np.log(np.tan(np.pi / 8)) - np.log(np.tan(np.pi / 12)))
    assert half.diagonal == pytest.approx(4 / np.pi * octant, abs=1e-7)
    assert half.centre + half.cardinal + half.diagonal == pytest.approx(1.0)
    assert event_shares(0.75).diagonal == 0.0 and event_shares(0.75).fire == 0.25
    assert event_shares(0.25).centre < half.centre < event_shares(0.75).centre


@needs("ale_py", "atari")
@pytest.mark.parametrize("threshold", [0.25, 0.75])
def test_cale_mapping_is_the_one_ale_py_steps_with(threshold):
    actions = uniform_actions(np.random.default_rng(1), 3000)
    sent = recorded_events("breakout", actions, threshold)
    assert (sent == action_events(actions, threshold)).all()
    assert shares_of(sent).centre == pytest.approx(event_shares(threshold).centre, abs=0.03)


@needs("procgen", "procgen")
def test_procgen_vector_env_and_disjoint_level_sets():
    trace = check_deterministic("procgen:coinrun", steps=50, num_levels=10, distribution_mode="easy")
    assert trace.shape[1:] == (2, 3, 64, 64) and trace.dtype == np.uint8
    train = make_env("procgen:coinrun", 1, 0, num_levels=1, start_level=0)
    test = make_env("procgen:coinrun", 1, 0, num_levels=1, start_level=0, level_set="test")
    assert not np.array_equal(train.reset(seed=0)[0], test.reset(seed=0)[0])
    again = make_env("procgen:coinrun", 1, 1, num_levels=1, start_level=0)
    assert np.array_equal(train.reset(seed=0)[0], again.reset(seed=0)[0])  # one level: same start whatever the seed


def scripted_policy(name: str):
    """Meta-World ships a scripted policy per task."""
    from metaworld.policies import ENV_POLICY_MAP

    return ENV_POLICY_MAP[name]()


@needs("metaworld", "metaworld")
def test_metaworld_mt10_scripted_policies_succeed_on_every_task():
    from scalerl.envs.metaworld import task_names

    envs = make_env("metaworld:MT10", 10, 0)
    names = task_names(envs)
    assert len(set(names)) == 10 and "reach-v3" in names
    assert envs.single_observation_space.shape == (39 + 10,)  # state + one-hot task id
    policies = [scripted_policy(name) for name in names]
    obs, _ = envs.reset()
    assert np.array_equal(obs[:, 39:], np.eye(10))
    solved = np.zeros(10, dtype=bool)
    for step in range(500):
        actions = np.stack([policy.get_action(o[:39]) for policy, o in zip(policies, obs)])
        obs, _, _, _, infos = envs.step(np.clip(actions, -1, 1).astype(np.float32))
        solved |= infos["success"] > 0
        if solved.all():
            break
    assert solved.all(), [name for name, ok in zip(names, solved) if not ok]


@needs("metaworld", "metaworld")
def test_metaworld_episodes_last_500_steps_and_runs_are_seeded():
    envs = make_env("metaworld:MT1/reach-v3", 2, 0)
    assert envs.single_observation_space.shape == (39,)
    envs.reset()
    for step in range(500):
        _, _, terminated, truncated, _ = envs.step(np.zeros((2, 4), np.float32))
        assert not terminated.any()
    assert truncated.all() and step == 499
    check_deterministic("metaworld:MT1/reach-v3", steps=30)


@needs("metaworld", "metaworld")
def test_metaworld_task_sets_and_their_errors():
    envs = make_env("metaworld:custom/reach-v3,push-v3", 2, 0, reward_function_version="v1")
    assert envs.single_observation_space.shape == (39 + 2,)
    with pytest.raises(ConfigError, match="num_envs must be 10"):
        make_env("metaworld:MT10", 4, 0)
    with pytest.raises(ConfigError, match="unknown Meta-World environment 'fly-v3'"):
        make_env("metaworld:custom/reach-v3,fly-v3", 2, 0)
    with pytest.raises(ConfigError, match="unknown metaworld task 'MT11'"):
        make_env("metaworld:MT11", 11, 0)
    envs = make_env("metaworld:ML10/train", 10, 0)
    assert envs.num_envs == 10


@needs("metaworld", "metaworld")
def test_evaluation_counts_metaworld_successes():
    """An episode succeeds if `success` is reported at any step, the final (autoreset) step included."""
    from scalerl.evaluation import run_episodes, step_successes

    class Scripted:
        def __init__(self):
            self.policy = scripted_policy("reach-v3")

        def act(self, obs, explore):
            return np.clip(np.stack([self.policy.get_action(o) for o in obs]), -1, 1).astype(np.float32), {}

    class Still:
        def act(self, obs, explore):
            return np.zeros((len(obs), 4), np.float32), {}

    envs = make_env("metaworld:MT1/reach-v3", 3, 0)
    assert run_episodes(Scripted(), envs, 3, 0).successes == [1.0, 1.0, 1.0]
    assert run_episodes(Still(), envs, 3, 0).successes == [0.0, 0.0, 0.0]
    assert step_successes({"reward_run": np.zeros(2)}, 2) is None


@needs("metaworld", "metaworld")
def test_metaworld_mt1_copies_draw_their_own_goals_and_a_seed_repeats_them():
    """Meta-World ignores reset(seed=...): without SeedOnReset every copy had the same goal and an
    evaluation reset with a fixed seed saw new goals each time. The goal is the observation's last 3 dims."""
    envs = make_env("metaworld:MT1/reach-v3", 3, 0)
    first = envs.reset(seed=5)[0][:, 36:39]
    assert len({tuple(goal) for goal in first}) == 3
    envs.step(envs.action_space.sample())
    assert np.array_equal(envs.reset(seed=5)[0][:, 36:39], first)
    assert not np.array_equal(envs.reset(seed=6)[0][:, 36:39], first)
    envs.reset()
    for _ in range(500):  # the first episodes end (500 steps): each copy's next goal comes from its own stream
        obs, *_ = envs.step(envs.action_space.sample())
    assert len({tuple(goal) for goal in obs[:, 36:39]}) == 3


@needs("metaworld", "metaworld")
def test_metaworld_task_sets_default_to_one_env_per_task():
    from scalerl import TrainConfig

    config = TrainConfig(env="metaworld:MT10", agent="dqn").resolved()
    assert (config.num_envs, config.eval_num_envs, config.eval_episodes) == (10, 10, 50)
    with pytest.raises(ConfigError, match="num_envs must be 10 for metaworld:MT10"):
        TrainConfig(env="metaworld:MT10", num_envs=5)
    with pytest.raises(ConfigError, match="eval_episodes must be a multiple of 10"):
        TrainConfig(env="metaworld:MT10", eval_episodes=15)


@needs("ale_py", "atari")
def test_names_users_type_reach_their_games():
    from scalerl.envs import parse_spec

    assert parse_spec("atari:Pong")[1] == "pong"
    assert parse_spec("atari:MsPacman")[1] == "ms_pacman"
    assert parse_spec("gym:ALE/Pong-v5")[1] == "ALE/Pong-v5"
    envs = make_env("gym:ALE/Pong-v5", 1, 0)
    assert envs.single_observation_space.shape == (210, 160, 3)
    with pytest.raises(ConfigError) as error:
        parse_spec("atari:pongg")
    message = str(error.value)
    assert "did you mean pong" in message and "(108 choices)" in message and "zaxxon" not in message


@needs("mujoco", "mujoco")
def test_gym_ids_with_float64_observations_reach_agents_as_float32():
    envs = make_env("gym:HalfCheetah-v4", 1, 0)
    assert envs.single_observation_space.dtype == np.float32
    assert envs.reset(seed=0)[0].dtype == np.float32
