"""Episode videos: the deterministic policy playing one evaluation episode, rendered frame by frame and written
as an MP4 with imageio-ffmpeg (the ffmpeg that Gymnasium's RecordVideo reaches through moviepy, without moviepy,
which drops the last frames of a clip at 15 frames a second) into the run folder.

`scalerl train --capture-video` records one at every evaluation (videos/step-000050000.mp4), `scalerl eval RUN
--video` one of the checkpoint being scored. The episode is played on its own single environment, built with
the evaluation's options and rendering on, from the evaluation's seed; it is not one of the scored episodes.
ale-py's Atari and CALE exist only as a vector env, which does not render: their videos show what the agent
sees (each observation's newest 84 x 84 frame, 15 frames a second at frame skip 4) from a one-environment
vector env with the evaluation's options. Meta-World's sets and Procgen are not filmed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from scalerl.checks import ConfigError, install_hint
from scalerl.envs import SUITES, EnvSpec, final_observations, parse_spec

MAX_FRAMES = 27_000
"""Frames of one video at most (Atari's episode cap): an episode that does not end is cut there."""
SHORT_SIDE = 160
"""Frames smaller than this (MinAtar's 10 x 10) are enlarged by whole pixels until their short side reaches it."""


def check_video(spec: str | EnvSpec) -> None:
    """Raise a one-line ConfigError where `spec` cannot be filmed or imageio-ffmpeg is missing."""
    suite, _ = parse_spec(spec)
    if suite.make is None and not suite.films_observations:
        filmed = ", ".join(name for name, other in SUITES.items() if other.make is not None or other.films_observations)
        raise ConfigError(f"videos: suite {suite.name!r} runs only as a vector environment, which does not render "
                          f"here; videos are recorded for {filmed}")
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        raise ConfigError(f"videos need imageio-ffmpeg: {install_hint('video')}") from None


def video_frame(frame: Any) -> np.ndarray:
    """An RGB uint8 frame of even height and width (H.264 needs both), small frames enlarged."""
    image = np.asarray(frame)
    if image.dtype != np.uint8:  # MinAtar renders floats in [0, 1]
        image = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    scale = -(-SHORT_SIDE // min(image.shape[:2]))
    if scale > 1:
        image = image.repeat(scale, axis=0).repeat(scale, axis=1)
    return np.pad(image, ((0, image.shape[0] % 2), (0, image.shape[1] % 2), (0, 0)))


def record_episode(agent: Any, spec: str | EnvSpec, seed: int, options: dict[str, Any], path: Path,
                   max_frames: int = MAX_FRAMES) -> dict[str, Any]:
    """Play one episode of `agent`'s deterministic policy on `spec` from `seed`, write it to `path` (MP4) and
    return its return, length and path."""
    import imageio_ffmpeg

    check_video(spec)
    for variable in ("SDL_VIDEODRIVER", "SDL_AUDIODRIVER"):  # pygame (classic control) draws off-screen, silent
        os.environ.setdefault(variable, "dummy")
    suite, task = parse_spec(spec)
    if suite.make is None:
        frames, total = film_observations(agent, suite.make_vector(task, 1, seed, **options), seed, max_frames)
        fps = 60 / options.get("frame_skip", 4)  # the Atari 2600 draws 60 frames a second
    else:
        env = suite.make(task, render_mode="rgb_array", **options)
        try:
            obs, _ = env.reset(seed=seed)
            frames, total, done = [video_frame(env.render())], 0.0, False
            while not done and len(frames) < max_frames:
                actions, _ = agent.act(np.asarray(obs)[None], explore=False)
                obs, reward, terminated, truncated, _ = env.step(actions[0])
                total += float(reward)
                frames.append(video_frame(env.render()))
                done = bool(terminated or truncated)
            fps = env.metadata.get("render_fps") or 30
        finally:
            env.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(str(path), (width, height), fps=fps, codec="libx264", macro_block_size=1,
                                         ffmpeg_log_level="error")
    writer.send(None)  # starts ffmpeg
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return {"video": str(path), "return": total, "length": len(frames) - 1}


def film_observations(agent: Any, envs: Any, seed: int, max_frames: int) -> tuple[list[np.ndarray], float]:
    """One episode on a one-environment vector env whose observations are stacked frames: the frames the
    agent saw (each observation's newest, the episode's last from `final_obs`) and the return."""
    try:
        obs, _ = envs.reset(seed=seed)
        frames, total, done = [video_frame(obs[0][-1])], 0.0, False
        while not done and len(frames) < max_frames:
            actions, _ = agent.act(obs, explore=False)
            obs, rewards, terminated, truncated, infos = envs.step(actions)
            total += float(rewards[0])
            done = bool(terminated[0] or truncated[0])
            frames.append(video_frame(final_observations(obs, np.array([done]), infos)[0][-1]))
    finally:
        envs.close()
    return frames, total
