"""Episode videos (`--capture-video`, `scalerl eval --video`): what is filmed is the evaluation's own episode."""

import numpy as np
import pytest

from scalerl import train
from scalerl.checks import ConfigError
from scalerl.config import TrainConfig
from scalerl.run import evaluate
from scalerl.video import video_frame

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")


def frames_in(path) -> int:
    return imageio_ffmpeg.count_frames_and_secs(str(path))[0]


def test_training_films_every_evaluation_and_eval_films_the_scored_episode(tmp_path):
    run = tmp_path / "run"
    train(env="classic:CartPole-v1", agent="dqn", steps=1200, eval_every=600, eval_episodes=1, eval_num_envs=1,
          capture_video=True, run_dir=str(run), progress="off", algo={"learning_starts": 200})
    assert sorted(path.name for path in (run / "videos").iterdir()) == ["step-000000600.mp4", "step-000001200.mp4"]
    result = evaluate(run, episodes=1, num_envs=1, video=True)
    # the filmed episode starts from the evaluation seed and plays the same deterministic policy: the first
    # frame (the reset) and one frame per step of the scored episode
    assert frames_in(result["video"]) == int(result["length_mean"]) + 1


def test_vector_only_suites_without_frames_are_refused_in_one_line():
    pytest.importorskip("metaworld")
    with pytest.raises(ConfigError, match="suite 'metaworld' runs only as a vector environment.*recorded for classic"):
        TrainConfig(env="metaworld:MT1/reach-v3", agent="sac", capture_video=True)


def test_atari_videos_show_the_frames_the_agent_sees(tmp_path):
    pytest.importorskip("ale_py")
    import gymnasium as gym
    import torch

    from scalerl.agents import AgentSpec
    from scalerl.agents.dqn import DQN, DQNConfig
    from scalerl.envs.registry import make_atari_vector
    from scalerl.nets import NetConfig
    from scalerl.video import record_episode

    TrainConfig(env="atari:pong", agent="dqn", capture_video=True)  # accepted
    agent = DQN(DQNConfig(), AgentSpec(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(6),
                                       net=NetConfig(width=0.25, hidden=16, depth=1), device=torch.device("cpu")))
    result = record_episode(agent, "atari:pong", 3, {}, tmp_path / "pong.mp4", max_frames=30)
    assert result["length"] == 29 and frames_in(result["video"]) == 30
    reader = imageio_ffmpeg.read_frames(result["video"])
    size = next(reader)["size"]  # the first item is the video's metadata
    first = np.frombuffer(next(reader), np.uint8).reshape(size[1], size[0], 3)
    reader.close()
    seen, _ = make_atari_vector("pong", 1, 3).reset(seed=3)  # the reset observation's newest frame, enlarged x2
    expected = np.repeat(np.repeat(seen[0][-1], 2, axis=0), 2, axis=1).astype(float)
    assert first.shape == (168, 168, 3) and np.abs(first[..., 0] - expected).mean() < 8  # H.264 is lossy


def test_small_and_float_frames_become_even_sized_rgb_bytes():
    grid = np.zeros((10, 10, 3))
    grid[0, 0] = 1.0
    frame = video_frame(grid)  # MinAtar: floats in [0, 1], 10 x 10
    assert frame.shape == (160, 160, 3) and frame.dtype == np.uint8
    assert (frame[:16, :16] == 255).all() and (frame[16:, 16:] == 0).all()
    assert video_frame(np.zeros((101, 75, 3), dtype=np.uint8)).shape == (304, 226, 3)  # x3, then even
