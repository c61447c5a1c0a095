"""The joystick of the Continuous Arcade Learning Environment (Farebrother & Castro, 2024), in numbers.

A CALE action (r, theta, fire) in [0, 1] x [-pi, pi] x [0, 1] becomes one of the 18 Atari joystick events:
with x = r cos(theta) and y = r sin(theta), the stick points right when x > tau, left when x < -tau, up when
y > tau, down when y < -tau, and fire is pressed when fire > tau. So a threshold tau leaves a dead square
[-tau, tau]^2 in which the stick moves nothing, and an agent exploring uniformly spends much of its time
there: at the default tau = 0.5, 56% of uniformly random actions move nothing.

`event_shares` gives those shares exactly for uniform actions; `action_events` applies the mapping to a
batch of actions (for counting what an agent's actions do); `recorded_events` reads back the events that
ale-py's own `env.step` sends to the emulator, to check the two agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from scalerl.checks import in_range

EVENTS = ("centre", "cardinal", "diagonal", "fire")
"""centre: the stick does not move; cardinal: one axis moves; diagonal: both do; fire: the button is down
(independent of the stick)."""


@dataclass(frozen=True)
class EventShares:
    centre: float
    cardinal: float
    diagonal: float
    fire: float

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in EVENTS}


def event_shares(threshold: float, points: int = 1 << 20) -> EventShares:
    """Shares of joystick events under uniformly random actions (r ~ U[0, 1], theta ~ U[-pi, pi], fire ~ U[0, 1]).

    For an angle theta the stick stays centred while r * max(|cos|, |sin|) <= tau, and is diagonal while
    r * min(|cos|, |sin|) > tau; r is uniform, so each is a length along the radius, averaged over theta
    (midpoint rule, exact to about 1e-9 with the default points)."""
    in_range("threshold", threshold, 0.0, 1.0)
    theta = (np.arange(points) + 0.5) * (2 * np.pi / points) - np.pi
    cos, sin = np.abs(np.cos(theta)), np.abs(np.sin(theta))
    centre = np.minimum(1.0, threshold / np.maximum(cos, sin)).mean()
    with np.errstate(divide="ignore"):
        diagonal = np.clip(1.0 - threshold / np.minimum(cos, sin), 0.0, None).mean()
    return EventShares(float(centre), float(1.0 - centre - diagonal), float(diagonal), 1.0 - threshold)


def action_events(actions: np.ndarray, threshold: float) -> np.ndarray:
    """(N, 3) CALE actions -> (N, 3) int array of (left -1 / none 0 / right 1, down -1 / none 0 / up 1, fire 0/1),
    the mapping ale-py applies."""
    radius, angle, fire = actions[:, 0], actions[:, 1], actions[:, 2]
    x, y = radius * np.cos(angle), radius * np.sin(angle)
    horizontal = (x > threshold).astype(int) - (x < -threshold).astype(int)
    vertical = (y > threshold).astype(int) - (y < -threshold).astype(int)
    return np.stack([horizontal, vertical, (fire > threshold).astype(int)], axis=1)


def shares_of(events: np.ndarray) -> EventShares:
    """Event shares of an (N, 3) array from `action_events` or `recorded_events`."""
    moving = (events[:, :2] != 0).sum(axis=1)
    return EventShares(float((moving == 0).mean()), float((moving == 1).mean()), float((moving == 2).mean()),
                       float(events[:, 2].mean()))


EVENT_OF_ACTION = {
    "NOOP": (0, 0, 0), "FIRE": (0, 0, 1), "UP": (0, 1, 0), "RIGHT": (1, 0, 0), "LEFT": (-1, 0, 0), "DOWN": (0, -1, 0),
    "UPRIGHT": (1, 1, 0), "UPLEFT": (-1, 1, 0), "DOWNRIGHT": (1, -1, 0), "DOWNLEFT": (-1, -1, 0),
    "UPFIRE": (0, 1, 1), "RIGHTFIRE": (1, 0, 1), "LEFTFIRE": (-1, 0, 1), "DOWNFIRE": (0, -1, 1),
    "UPRIGHTFIRE": (1, 1, 1), "UPLEFTFIRE": (-1, 1, 1), "DOWNRIGHTFIRE": (1, -1, 1), "DOWNLEFTFIRE": (-1, -1, 1),
}
"""The 18 ALE joystick actions as (horizontal, vertical, fire) events."""


class RecordingEmulator:
    """Stands in for an AtariEnv's emulator and writes down each action `env.step` sends it."""

    def __init__(self, ale) -> None:
        self._ale = ale
        self.sent: list[str] = []

    def act(self, action, strength: float = 1.0) -> int:
        self.sent.append(action.name)
        return self._ale.act(action, strength)

    def __getattr__(self, name: str):
        return getattr(self._ale, name)


def rom_id(game: str) -> str:
    """ale-py's ROM id of a game name: KungFuMaster -> kung_fu_master (ids pass unchanged)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", game).lower()


def recorded_events(game: str, actions: np.ndarray, threshold: float, seed: int = 0) -> np.ndarray:
    """Step ale-py's continuous AtariEnv with each action (frame skip 1, no sticky actions, resetting at
    game over) and return the (N, 3) events its step sent to the emulator."""
    from ale_py.env import AtariEnv

    env = AtariEnv(rom_id(game), continuous=True, continuous_action_threshold=threshold, frameskip=1,
                   repeat_action_probability=0.0)
    env.reset(seed=seed)
    emulator = RecordingEmulator(env.ale)
    env.ale = emulator
    for action in actions.astype(np.float32):
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    env.close()
    return np.array([EVENT_OF_ACTION[name] for name in emulator.sent], dtype=int)


def uniform_actions(rng: np.random.Generator, count: int) -> np.ndarray:
    return np.stack([rng.uniform(0, 1, count), rng.uniform(-np.pi, np.pi, count), rng.uniform(0, 1, count)], axis=1)
