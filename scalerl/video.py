"""Episode videos: the deterministic policy playing one evaluation episode, rendered frame by frame and written
as an MP4 with moviepy (the writer Gymnasium's RecordVideo uses) into the run folder.

`scalerl train --capture-video` records one at every evaluation (videos/step-000050000.mp4), `scalerl eval RUN
--video` one of the checkpoint being scored. The episode is played on its own single environment, built with
the evaluation's options and rendering on, from the evaluation's seed; it is not one of the scored episodes.
Suites that exist only as vector environments (ale-py's Atari and CALE, Meta-World's sets, Procgen) do not
render here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from scalerl.checks import ConfigError, install_hint
from scalerl.envs import SUITES, EnvSpec, parse_spec

MAX_FRAMES = 27_000
"""Frames of one video at most (Atari's episode cap): an episode that does not end is cut there."""
SHORT_SIDE = 160
"""Frames smaller than this (MinAtar's 10 x 10) are enlarged by whole pixels until their short side reaches it."""


def check_video(spec: str | EnvSpec) -> None:
    """Raise a one-line ConfigError where `spec` cannot be filmed or moviepy is missing."""
    suite, _ = parse_spec(spec)
    if suite.make is None:
        filmed = ", ".join(name for name, other in SUITES.items() if other.make is not None)
        raise ConfigError(f"videos: suite {suite.name!r} runs only as a vector environment, which does not render "
                          f"here; videos are recorded for {filmed}")
    try:
        import moviepy  # noqa: F401
    except ImportError:
        raise ConfigError(f"videos need moviepy: {install_hint('video')}") from None


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
    from moviepy import ImageSequenceClip

    check_video(spec)
    for variable in ("SDL_VIDEODRIVER", "SDL_AUDIODRIVER"):  # pygame (classic control) draws off-screen, silent
        os.environ.setdefault(variable, "dummy")
    suite, task = parse_spec(spec)
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
    ImageSequenceClip(frames, fps=fps).write_videofile(str(path), codec="libx264", audio=False, logger=None)
    return {"video": str(path), "return": total, "length": len(frames) - 1}
