import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from scalerl import ConfigError, make_env
from scalerl.envs import final_observations


def rollout(spec, num_envs, seed, steps=200):
    envs = make_env(spec, num_envs, seed)
    rng = np.random.default_rng(0)
    obs, _ = envs.reset()
    trace = [obs.copy()]
    for _ in range(steps):
        actions = rng.integers(0, envs.single_action_space.n, size=num_envs)
        obs, rewards, terminated, truncated, infos = envs.step(actions)
        trace.append(obs.copy())
    envs.close()
    return np.stack(trace)


@pytest.mark.parametrize("spec", ["classic:CartPole-v1", "classic:Acrobot-v1", "minatar:breakout",
                                  "minatar:space_invaders", "gym:CartPole-v1"])
def test_same_seed_gives_same_observations_and_different_seeds_differ(spec):
    first, second, other = rollout(spec, 3, 7), rollout(spec, 3, 7), rollout(spec, 3, 8)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


def test_vector_env_has_requested_copies_and_spaces():
    envs = make_env("minatar:breakout", 4, 0)
    assert envs.num_envs == 4
    assert envs.single_observation_space.shape == (10, 10, 4)
    assert envs.single_action_space == gym.spaces.Discrete(3)
    obs, _ = envs.reset()
    assert obs.shape == (4, 10, 10, 4)


def test_autoreset_gives_the_true_final_observation():
    envs = make_env("classic:CartPole-v1", 2, 0)
    envs.reset()
    while True:
        next_obs, _, terminated, truncated, infos = envs.step(np.zeros(2, dtype=np.int64))
        done = terminated | truncated
        if done.any():
            break
    real = final_observations(next_obs, done, infos)
    index = int(np.flatnonzero(done)[0])
    assert np.array_equal(real[index], infos["final_obs"][index])
    assert not np.array_equal(real[index], next_obs[index])  # next_obs already holds the reset state
    # the pole fell: the final state is outside the termination bounds, the reset one is near zero
    assert abs(real[index][2]) > 0.2 or abs(real[index][0]) > 2.4
    assert np.all(np.abs(next_obs[index]) <= 0.05)


@pytest.mark.parametrize("spec, message", [
    ("CartPole-v1", "suite:task"),
    ("atari2600:pong", "unknown env suite 'atari2600'"),
    ("classic:CartPole-v0", "unknown classic task 'CartPole-v0'; valid: CartPole-v1"),
    ("minatar:pong", "valid: breakout, asterix"),
    ("gym:NoSuchEnv-v9", "unknown Gymnasium id"),
])
def test_bad_specs_name_the_valid_choices(spec, message):
    with pytest.raises(ConfigError, match=message):
        make_env(spec)


def test_suite_options_are_checked_against_the_suite():
    with pytest.raises(ConfigError, match="suite 'classic' does not take option 'pixels'; it takes: max_episode_steps"):
        make_env("classic:CartPole-v1", pixels=True)
    envs = make_env("minatar:breakout", 1, 0, max_episode_steps=7)
    envs.reset()
    for step in range(7):
        _, _, terminated, truncated, _ = envs.step(np.zeros(1, dtype=np.int64))
        if terminated[0]:
            break
    assert terminated[0] or truncated[0]


def test_training_only_options_stay_out_of_evaluation_envs():
    from scalerl.envs import EnvOptions

    atari = ["episodic_life", "reward_clipping", "frame_stack"]
    options = EnvOptions(episodic_life=True, reward_clipping=True, frame_stack=2)
    assert options.for_env(True, atari) == {"episodic_life": True, "reward_clipping": True, "frame_stack": 2}
    assert options.for_env(False, atari) == {"frame_stack": 2}
    procgen = ["num_levels", "level_set"]
    assert EnvOptions(num_levels=50).for_env(True, procgen) == {"num_levels": 50}
    assert EnvOptions(num_levels=50).for_env(False, procgen) == {"num_levels": 50, "level_set": "test"}
    with pytest.raises(ConfigError, match="env_opts.frame_stack must be > 0"):
        EnvOptions(frame_stack=0)


def test_task_names_match_whatever_their_case_and_separators():
    from scalerl.envs import parse_spec

    assert parse_spec("classic:cartpole-v1")[1] == "CartPole-v1"
    with pytest.raises(ConfigError, match="did you mean CartPole-v1"):
        parse_spec("gym:CartPole-v9")


def test_a_run_parses_its_env_string_once(tmp_path, monkeypatch):
    """The config parses --env into an EnvSpec that every environment of the run is built from (training,
    evaluation, the final video): the task list is read once, not at each of them."""
    import dataclasses
    import pickle

    from scalerl import train
    from scalerl.envs import parse_spec, registry

    listed = []
    classic = registry.SUITES["classic"]
    monkeypatch.setitem(registry.SUITES, "classic", dataclasses.replace(
        classic, tasks=lambda: listed.append(1) or classic.tasks()))
    registry.parse_text.cache_clear()
    try:
        train(env="classic:cartpole-v1", steps=200, eval_every=100, eval_episodes=2, run_dir=str(tmp_path / "run"),
              progress="off", capture_video=False)
    finally:
        registry.parse_text.cache_clear()  # later tests parse with the real suite
    assert len(listed) == 1
    spec = parse_spec("classic:cartpole-v1")
    assert str(spec) == "classic:CartPole-v1" and parse_spec(spec) is spec
    assert pickle.loads(pickle.dumps(spec)) == spec  # suites hold functions: pickled as their text


@pytest.mark.parametrize("spec", ["classic:CartPole-v1", "classic:Pendulum-v1", "minatar:breakout"])
def test_the_lean_vector_env_steps_exactly_like_gymnasiums(spec):
    """SameStepVectorEnv only rewrites SyncVectorEnv.step: observations, rewards, flags and infos (final
    observations included) must be identical, step for step, through episode ends."""
    import functools

    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    from scalerl.envs import SameStepVectorEnv, _make_single

    suite, task = spec.split(":")
    factory = functools.partial(_make_single, suite, task, {})
    traces = []
    for envs in (SameStepVectorEnv([factory] * 3),
                 SyncVectorEnv([factory] * 3, autoreset_mode=AutoresetMode.SAME_STEP)):
        envs.reset(seed=3)
        envs.action_space.seed(1)
        trace = [envs.step(envs.action_space.sample()) for _ in range(300)]
        traces.append([(obs.copy(), rewards, terminated, truncated, repr(infos))
                       for obs, rewards, terminated, truncated, infos in trace])
    ended = 0
    for fast, reference in zip(*traces):
        assert all(np.array_equal(a, b) for a, b in zip(fast[:4], reference[:4]))
        assert fast[4] == reference[4]
        ended += int(reference[2].any() or reference[3].any())
    assert spec == "classic:Pendulum-v1" or ended > 0


@pytest.mark.parametrize("spec", ["mujoco:Hopper-v5", "gym:InvertedPendulum-v5"])
def test_a_mujoco_env_restored_from_a_checkpoint_continues_its_episode_exactly(spec):
    """Gymnasium's MuJoCo envs pickle as their constructor arguments; scalerl keeps their physics and random
    state too, so a resumed run steps on from the same state (across episode ends as well)."""
    pytest.importorskip("mujoco", reason="pip install 'scalerl[mujoco]'")
    import pickle

    from scalerl.envs.snapshot import load_envs

    envs = make_env(spec, 2, 0)
    rng = np.random.default_rng(0)
    actions = [rng.uniform(-1, 1, (2, *envs.single_action_space.shape)).astype(np.float32) for _ in range(300)]
    for action in actions[:20]:
        envs.step(action)
    restored = load_envs(pickle.dumps(envs))
    for action in actions[20:]:
        obs, rewards, terminated, truncated, _ = envs.step(action)
        again = restored.step(action)
        assert np.array_equal(obs, again[0]) and np.array_equal(rewards, again[1])
        assert np.array_equal(terminated, again[2]) and np.array_equal(truncated, again[3])
    assert envs.envs[0].unwrapped.data.time == restored.envs[0].unwrapped.data.time


def test_gym_envs_work_where_mujoco_is_not_installed():
    """The MuJoCo snapshot wrapper must not import mujoco for an env that is not one (the Procgen venv lacks it)."""
    script = ("import sys; sys.modules['mujoco'] = None\n"
              "from scalerl.envs import make_env\n"
              "print(make_env('gym:CartPole-v1', 2, 0).reset(seed=0)[0].shape)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(2, 4)"


def play(envs, actions):
    observations = [envs.reset(seed=5)[0]]
    for action in actions:
        observations.append(envs.step(np.full(envs.num_envs, action))[0])
    return np.stack(observations)


def test_minatar_full_action_space_adds_fire_in_the_papers_order():
    """The MinAtar paper's agents chose among all six actions (no-op, left, up, right, down, fire); Asterix
    has no use for fire, so with the full set action 5 plays exactly as the no-op, and the minimal set has 5."""
    assert make_env("minatar:asterix", 1, 0).single_action_space.n == 5
    full = make_env("minatar:asterix", 1, 0, full_action_space=True, sticky_actions=0.0)
    assert full.single_action_space.n == 6
    assert np.array_equal(play(full, [5] * 40), play(full, [0] * 40))
    assert not np.array_equal(play(full, [1] * 40), play(full, [0] * 40))


def test_a_minatar_level_is_a_seed_and_replays_the_same_episode():
    actions = np.random.default_rng(0).integers(0, 3, 60)
    one_level = play(make_env("minatar:asterix", 2, 0, num_levels=1, start_level=7), actions)
    assert np.array_equal(one_level[:, 0], one_level[:, 1])  # both copies play level 7, spawns included
    assert np.array_equal(one_level, play(make_env("minatar:asterix", 2, 3, num_levels=1, start_level=7), actions))
    other = play(make_env("minatar:asterix", 2, 0, num_levels=1, start_level=8), actions)
    assert not np.array_equal(one_level, other)


def test_minatar_levels_come_from_the_training_range_and_evaluation_plays_disjoint_ones():
    from scalerl.envs.options import EnvOptions
    from scalerl.envs.procgen import TEST_LEVELS_START

    options = EnvOptions(num_levels=5, start_level=10)
    train = make_env("minatar:breakout", 4, 0, **options.for_env(True, ["level_set"]))
    test = make_env("minatar:breakout", 4, 0, **options.for_env(False, ["level_set"]))
    levels = {"train": set(), "test": set()}
    for name, envs in (("train", train), ("test", test)):
        for seed in range(0, 100, 4):
            levels[name] |= set(envs.reset(seed=seed)[1]["level"].tolist())
    assert levels["train"] == set(range(10, 15))
    assert levels["test"] == set(range(TEST_LEVELS_START + 10, TEST_LEVELS_START + 15))
    first, again = make_env("minatar:breakout", 4, 0, num_levels=50), make_env("minatar:breakout", 4, 0, num_levels=50)
    assert np.array_equal(first.reset(seed=3)[1]["level"], again.reset(seed=3)[1]["level"])


def test_levels_are_refused_where_a_suite_has_none():
    with pytest.raises(ConfigError, match="does not take option 'num_levels'"):
        make_env("classic:CartPole-v1", 1, 0, num_levels=3)


@pytest.mark.parametrize("suite, task", [("classic", "CartPole-v1"), ("minatar", "breakout"), ("gym", "Acrobot-v1"),
                                         ("mujoco", "Hopper-v5"), ("dmc", "cheetah-run")])
def test_every_suites_single_environment_passes_gymnasiums_checker(suite, task):
    """Gymnasium's own check_env: spaces, seeding determinism (MinAtar seeds np_random too now) and rebuilding
    from the spec (every scalerl wrapper records its constructor's arguments)."""
    import warnings

    from gymnasium.utils.env_checker import check_env

    from scalerl.envs import SUITES, _make_single

    if SUITES[suite].requires:
        pytest.importorskip(SUITES[suite].requires)
    env = _make_single(suite, task, {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)
    env.close()


def test_scalerl_envs_says_which_suites_exist_only_as_vector_environments():
    from scalerl.envs import describe_suites

    vector_only = {row["suite"] for row in describe_suites() if row["vector_only"]}
    assert {"atari", "cale", "metaworld", "multitask", "procgen"} == vector_only
