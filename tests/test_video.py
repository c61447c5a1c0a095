"""Episode videos (`--capture-video`, `scalerl eval --video`): what is filmed is the evaluation's own episode."""

import numpy as np
import pytest

from scalerl import train
from scalerl.checks import ConfigError
from scalerl.config import TrainConfig
from scalerl.run import evaluate
from scalerl.video import video_frame

moviepy = pytest.importorskip("moviepy")


def frames_in(path) -> int:
    clip = moviepy.VideoFileClip(str(path))
    try:
        return sum(1 for _ in clip.iter_frames())
    finally:
        clip.close()


def test_training_films_every_evaluation_and_eval_films_the_scored_episode(tmp_path):
    run = tmp_path / "run"
    train(env="classic:CartPole-v1", agent="dqn", steps=1200, eval_every=600, eval_episodes=1, eval_num_envs=1,
          capture_video=True, run_dir=str(run), progress="off", algo={"learning_starts": 200})
    assert sorted(path.name for path in (run / "videos").iterdir()) == ["step-000000600.mp4", "step-000001200.mp4"]
    result = evaluate(run, episodes=1, num_envs=1, video=True)
    # the filmed episode starts from the evaluation seed and plays the same deterministic policy: the first
    # frame (the reset) and one frame per step of the scored episode
    assert frames_in(result["video"]) == int(result["length_mean"]) + 1


def test_vector_only_suites_are_refused_in_one_line():
    pytest.importorskip("ale_py")
    with pytest.raises(ConfigError, match="suite 'atari' runs only as a vector environment.*recorded for classic"):
        TrainConfig(env="atari:pong", agent="dqn", capture_video=True)


def test_small_and_float_frames_become_even_sized_rgb_bytes():
    grid = np.zeros((10, 10, 3))
    grid[0, 0] = 1.0
    frame = video_frame(grid)  # MinAtar: floats in [0, 1], 10 x 10
    assert frame.shape == (160, 160, 3) and frame.dtype == np.uint8
    assert (frame[:16, :16] == 255).all() and (frame[16:, 16:] == 0).all()
    assert video_frame(np.zeros((101, 75, 3), dtype=np.uint8)).shape == (304, 226, 3)  # x3, then even
