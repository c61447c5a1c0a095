import gymnasium as gym
import numpy as np
import pytest

from scalerl.replay import ReplayBuffer

OBS = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
ACT = gym.spaces.Discrete(2)


def filled(n_step, rewards, terminated, truncated, gamma=0.5, capacity=100):
    """One env column; obs at step t is t, next_obs is t + 1 (so the bootstrap row is visible)."""
    buffer = ReplayBuffer(capacity, 1, OBS, ACT, n_step=n_step, gamma=gamma, seed=0)
    for t, (r, te, tr) in enumerate(zip(rewards, terminated, truncated)):
        buffer.add(np.array([[t]]), np.array([t % 2]), np.array([r]), np.array([[t + 1]]), np.array([te]),
                   np.array([tr]))
    return buffer


def sample_row(buffer, row):
    buffer._sample_rows = lambda batch_size: np.full(batch_size, row)
    batch = buffer.sample(1)
    return batch.obs.item(), batch.rewards.item(), batch.next_obs.item(), batch.discounts.item()


def test_n_step_return_sums_discounted_rewards_and_bootstraps_from_step_n():
    buffer = filled(3, [1.0, 2.0, 4.0, 8.0, 16.0], [False] * 5, [False] * 5)
    obs, reward, next_obs, discount = sample_row(buffer, 1)
    assert obs == 1
    assert reward == pytest.approx(2.0 + 0.5 * 4.0 + 0.25 * 8.0)
    assert next_obs == 4  # the observation after the third step
    assert discount == pytest.approx(0.125)


def test_n_step_return_stops_at_termination_without_bootstrap():
    buffer = filled(3, [1.0, 2.0, 4.0, 8.0, 16.0], [False, True, False, False, False], [False] * 5)
    obs, reward, next_obs, discount = sample_row(buffer, 0)
    assert reward == pytest.approx(1.0 + 0.5 * 2.0)
    assert next_obs == 2
    assert discount == 0.0


def test_n_step_return_stops_at_truncation_and_bootstraps_from_final_obs():
    buffer = filled(3, [1.0, 2.0, 4.0, 8.0, 16.0], [False] * 5, [False, True, False, False, False])
    _, reward, next_obs, discount = sample_row(buffer, 0)
    assert reward == pytest.approx(2.0)
    assert next_obs == 2
    assert discount == pytest.approx(0.25)


def test_sampling_never_crosses_the_write_head():
    buffer = filled(3, list(range(10)), [False] * 10, [False] * 10, capacity=8)
    rows = buffer._sample_rows(5000)
    # position is 2: windows starting at rows 0 and 1 would run into the newest-to-oldest seam.
    assert set(np.unique(rows)) == {2, 3, 4, 5, 6, 7}


def test_state_dict_round_trip_continues_the_same_samples():
    buffer = filled(2, list(range(20)), [False] * 20, [False] * 20, capacity=16)
    clone = ReplayBuffer(16, 1, OBS, ACT, n_step=2, gamma=0.5, seed=123)
    clone.load_state_dict(buffer.state_dict())
    a, b = buffer.sample(32), clone.sample(32)
    assert np.array_equal(a.obs.numpy(), b.obs.numpy())
    assert np.array_equal(a.rewards.numpy(), b.rewards.numpy())


def test_columns_are_sampled_from_their_own_env():
    buffer = ReplayBuffer(100, 3, OBS, ACT, n_step=2, gamma=1.0, seed=0)
    for t in range(10):
        column = np.arange(3, dtype=np.float32)
        buffer.add((10 * column + t)[:, None], np.zeros(3, np.int64), column, (10 * column + t + 1)[:, None],
                   np.zeros(3, bool), np.zeros(3, bool))
    batch = buffer.sample(256)
    env = (batch.obs.squeeze(1) // 10).numpy()
    assert np.allclose(batch.rewards.numpy(), 2 * env)  # two steps of reward `env`
    assert np.allclose(batch.next_obs.squeeze(1).numpy(), batch.obs.squeeze(1).numpy() + 2)


def test_one_step_batches_bootstrap_unless_terminated():
    space = gym.spaces.Box(-10.0, 10.0, (1,), np.float32)
    buffer = ReplayBuffer(16, 2, space, gym.spaces.Discrete(2), n_step=1, gamma=0.9, seed=0)
    for t in range(6):
        obs = np.array([[t], [100 + t]], np.float32)
        buffer.add(obs, np.array([0, 1]), np.array([t, -t], np.float32), obs + 0.5,
                   np.array([t == 2, False]), np.array([False, t == 4]))
    batch = buffer.sample(64)
    obs, rewards, discounts, next_obs = (x.numpy() for x in (batch.obs[:, 0], batch.rewards, batch.discounts,
                                                            batch.next_obs[:, 0]))
    step = np.where(obs < 100, obs, obs - 100).astype(int)
    assert np.array_equal(rewards, np.where(obs < 100, step, -step))
    assert np.array_equal(next_obs, obs + 0.5)
    terminal = (obs == 2)
    assert np.array_equal(discounts, np.where(terminal, 0.0, np.float32(0.9)))  # truncation (env 1, t 4) bootstraps


def test_frame_replay_rebuilds_every_observation_the_environment_gave():
    """Atari frames stored once: every transition's observation and next observation (the true final one at
    episode ends) equal the stacks the environment returned, across episode starts and after both rings
    wrapped; and it needs about one frame per transition."""
    pytest.importorskip("ale_py")
    import torch

    from scalerl.envs import final_observations, make_env
    from scalerl.replay import FrameReplayBuffer, PrioritySettings

    envs = make_env("atari:breakout", 2, 0)
    space, actions_space = envs.single_observation_space, envs.single_action_space
    plain = ReplayBuffer(600, 2, space, actions_space, n_step=3, gamma=0.9, seed=1)
    frames = FrameReplayBuffer(600, 2, space, actions_space, n_step=3, gamma=0.9, seed=1, frame_stack=4)
    ranked = FrameReplayBuffer(600, 2, space, actions_space, n_step=3, gamma=0.9, seed=1, frame_stack=4,
                               priorities=PrioritySettings())
    rng = np.random.default_rng(0)
    obs, _ = envs.reset(seed=4)
    ends = 0
    for _ in range(1000):
        actions = rng.integers(0, actions_space.n, size=2)
        next_obs, rewards, terminated, truncated, infos = envs.step(actions)
        done = terminated | truncated
        ends += int(done.sum())
        real_next = final_observations(next_obs, done, infos)
        plain.add(obs, actions, rewards, real_next, terminated, truncated)
        frames.add(obs, actions, rewards, real_next, terminated, truncated)
        ranked.add(obs, actions, rewards, real_next, terminated, truncated)
        obs = next_obs
    assert ends >= 2 and frames.pushed.min() > frames.frame_rows  # episodes ended, and the frame ring wrapped
    flat = np.arange(plain.rows * 2)
    rows, cols = np.divmod(flat, 2)
    available = frames.frame_index[rows, cols] - 3 >= frames.pushed[cols] - frames.frame_rows
    assert available.mean() > 0.95
    for following in (False, True):
        assert np.array_equal(frames.observations_at(flat[available], following),
                              plain.observations_at(flat[available], following))
    batch = frames.sample(256)
    rows, cols = batch.indices
    reference = plain.observations_at(rows * 2 + cols, following=False)
    assert np.array_equal(batch.obs.numpy(), reference) and batch.obs.dtype == torch.uint8
    batch = ranked.sample(256)  # prioritized draws rebuild the same stacks, and redraw lost ones by priority too
    rows, cols = batch.indices
    assert np.array_equal(batch.obs.numpy(), plain.observations_at(rows * 2 + cols, following=False))
    atari = FrameReplayBuffer(100_000, 1, space, actions_space, frame_stack=4)
    assert 7056 < atari.bytes_per_transition < 7250  # one 84x84 frame + 22 bytes, and the 1/64 margin
    assert ReplayBuffer(1000, 1, space, actions_space).bytes_per_transition > 8 * 7056


def test_episodes_cut_by_a_resume_end_in_truncation():
    """After environments restart on resume, no n-step window runs from the old episode into the new one."""
    buffer = filled(3, [1.0, 2.0], [False, False], [False, False])
    buffer.cut_episodes()
    for t, r in ((10, 4.0), (11, 8.0)):
        buffer.add(np.array([[t]]), np.array([0]), np.array([r]), np.array([[t + 1]]), np.array([False]),
                   np.array([False]))
    obs, reward, next_obs, discount = sample_row(buffer, 0)
    assert (obs, next_obs) == (0, 2)  # the window stops at the cut, bootstrapping from the old episode's last obs
    assert reward == pytest.approx(1.0 + 0.5 * 2.0) and discount == pytest.approx(0.25)


def test_a_frame_stack_the_buffer_cannot_rebuild_is_one_clear_error():
    from scalerl import ConfigError
    from scalerl.replay import FrameReplayBuffer

    with pytest.raises(ConfigError, match="cannot rebuild stacks of 4 frames from observations shaped \\(9, 84, 84\\)"):
        FrameReplayBuffer(100, 1, gym.spaces.Box(0, 255, (9, 84, 84), np.uint8), ACT, frame_stack=4)
