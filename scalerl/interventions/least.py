"""LEAST (Liu et al., ICML 2025, "The Courage to Stop"): end a training episode early when its value has
fallen below what earlier episodes had at the same point, so that replay fills with informative data.

For each step index i of an episode the hook keeps, over the last K episodes, the critic's value
Q(s_i, a_i) of the action taken and a gradient magnitude G_i. As the paper's proxy for the gradient it
uses the size of the TD error of the step, |r_i + gamma Q(s_{i+1}, a_{i+1}) - Q(s_i, a_i)| with the current
critic (the TD loss's gradient with respect to Q is proportional to it). At step i of a running episode,
with eps_i = median of the kept Q values at i and omega = median of the kept G at i - 1 over the episode's
own G_{i-1} (a step with a large gradient is informative and makes stopping less likely), the episode is
stopped when

    Q_i < scale * omega * eps_i     if eps_i >= 0,
    Q_i < eps_i / (scale * omega)   if eps_i < 0,

once `start` of the run's steps have passed and at least `min_episodes` kept episodes reached step i. A
stopped transition is stored as a truncation, so its value is bootstrapped, never taken as terminal, and
the environment is reset.

The paper's text and code could not be consulted; its rule is known from secondary accounts that partly
disagree. What is uncertain is a flag here: the memory K (`episodes`), the threshold's `scale`, the start
(`start`), the gradient proxy (`gradient`: the TD error, or "none" to drop the gradient ratio) and the
median (`statistic`: median or mean). Two pieces of those accounts are left out: adapting K from the entropy
of the kept values, and raising the exploration noise when stops are frequent.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from scalerl.checks import ConfigError, in_range, positive
from scalerl.hooks.base import Hook


@dataclass(frozen=True)
class LEASTConfig:
    episodes: int = 20
    """K: how many recent episodes' values and gradients are kept (the paper uses up to ~250)."""
    scale: float = 0.5
    """Multiplies the median threshold: lower stops less often."""
    start: float = 0.15
    """Share of the run's environment steps before any stop."""
    min_episodes: int = 5
    """Kept episodes that must have reached a step index before it can stop an episode."""
    gradient: Literal["td", "none"] = "td"
    """Gradient magnitude proxy: the step's TD error, or none (omega = 1)."""
    statistic: Literal["median", "mean"] = "median"
    """How the kept episodes are summarized per step index (the paper finds the median better)."""

    def __post_init__(self) -> None:
        positive("hook_opts.least.episodes", self.episodes)
        positive("hook_opts.least.scale", self.scale)
        in_range("hook_opts.least.start", self.start, 0.0, 1.0)
        positive("hook_opts.least.min_episodes", self.min_episodes)
        if self.min_episodes > self.episodes:
            raise ConfigError(f"hook_opts.least.min_episodes must be <= hook_opts.least.episodes "
                              f"(got {self.min_episodes} > {self.episodes})")


def stop_threshold(eps: float, omega: float, scale: float) -> float:
    """The value under which an episode stops, given the kept statistic eps and the gradient ratio omega."""
    return scale * omega * eps if eps >= 0 else eps / (scale * omega)


class LEASTHook(Hook):
    name = "least"
    config_class = LEASTConfig
    description = "LEAST: stop training episodes whose value falls below earlier episodes' at the same step"
    stops_episodes = True

    def __init__(self, cfg: LEASTConfig, agent: Any) -> None:
        super().__init__(cfg, agent)
        if not agent.critic_of_actions:
            raise ConfigError("hook least needs an agent with a critic of the action taken (sac, td3), "
                              f"not {agent.name}")
        self.gamma = float(agent.cfg.gamma)
        self.summary = np.median if cfg.statistic == "median" else np.mean
        self.kept_q: deque[np.ndarray] = deque(maxlen=cfg.episodes)
        self.kept_g: deque[np.ndarray] = deque(maxlen=cfg.episodes)
        self.running: list[dict[str, list[float]]] = []
        self.kept_lengths: deque[tuple[int, bool]] = deque(maxlen=cfg.episodes)
        """(length, stopped) of the kept episodes."""
        self.steps = 0
        self.window = {"finished": 0, "stopped": 0, "steps": 0}
        self.steps_saved = 0.0

    def stop_episodes(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, terminated: np.ndarray,
                      truncated: np.ndarray) -> np.ndarray | None:
        count = len(obs)
        if not self.running:
            self.running = [{"q": [], "g": [], "r": []} for _ in range(count)]
        self.steps += count
        values = self.agent.q_value(obs, actions)
        active = self.steps >= self.cfg.start * self.run_steps
        if active:  # stops per step counts the steps where a stop could happen, as the random stop's does
            self.window["steps"] += count
        stop = np.zeros(count, dtype=bool)
        for index in range(count):
            episode = self.running[index]
            if episode["q"]:  # the previous step's TD error, now that this step's value is known
                episode["g"].append(abs(episode["r"][-1] + self.gamma * values[index] - episode["q"][-1]))
            episode["q"].append(float(values[index]))
            episode["r"].append(float(rewards[index]))
            if active and not (terminated[index] or truncated[index]):
                stop[index] = self.should_stop(episode)
            if terminated[index] or truncated[index] or stop[index]:
                self.finish(index, stopped=bool(stop[index]))
        return stop if stop.any() else None

    def should_stop(self, episode: dict[str, list[float]]) -> bool:
        step = len(episode["q"]) - 1
        reached = [q for q in self.kept_q if len(q) > step]
        if step == 0 or len(reached) < self.cfg.min_episodes:
            return False
        eps = float(self.summary([q[step] for q in reached]))
        omega = 1.0
        if self.cfg.gradient == "td":
            kept = [g[step - 1] for g in self.kept_g if len(g) > step - 1]
            current = episode["g"][step - 1]
            omega = float(self.summary(kept)) / current if current > 0 and kept else 1.0
        return episode["q"][step] < stop_threshold(eps, omega, self.cfg.scale)

    def finish(self, index: int, stopped: bool) -> None:
        episode = self.running[index]
        length = len(episode["q"])
        if stopped:
            self.window["stopped"] += 1
            complete = [n for n, was_stopped in self.kept_lengths if not was_stopped]
            if complete:
                self.steps_saved += max(0.0, float(np.median(complete)) - length)
        self.window["finished"] += 1
        self.kept_q.append(np.asarray(episode["q"]))
        self.kept_g.append(np.asarray(episode["g"]))
        self.kept_lengths.append((length, stopped))
        self.running[index] = {"q": [], "g": [], "r": []}

    def on_log(self) -> dict[str, float]:
        if not self.window["finished"]:
            return {}
        scalars = {"least/stopped": float(self.window["stopped"]),
                   "least/stop_rate": self.window["stopped"] / self.window["finished"],
                   "least/stops_per_step": self.window["stopped"] / max(self.window.get("steps", 0), 1),
                   "least/steps_saved": self.steps_saved}
        self.window = {"finished": 0, "stopped": 0, "steps": 0}
        return scalars

    def state_dict(self) -> dict[str, Any]:
        return {"kept_q": list(self.kept_q), "kept_g": list(self.kept_g), "kept_lengths": list(self.kept_lengths),
                "running": [{k: list(v) for k, v in e.items()} for e in self.running], "steps": self.steps,
                "window": dict(self.window), "steps_saved": self.steps_saved}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.kept_q.extend(state["kept_q"])
        self.kept_g.extend(state["kept_g"])
        self.kept_lengths.extend(tuple(pair) for pair in state["kept_lengths"])
        self.running = [{k: list(v) for k, v in e.items()} for e in state["running"]]
        self.steps, self.window, self.steps_saved = state["steps"], dict(state["window"]), state["steps_saved"]


@dataclass(frozen=True)
class RandomStopConfig:
    rate: float = 0.001
    """Chance per environment step that a running episode is stopped. Set to LEAST's measured
    least/stops_per_step, it separates what stopping does (more resets, more start states) from what LEAST's
    rule chooses."""
    start: float = 0.15
    """Share of the run's environment steps before any stop (LEAST's default)."""
    seed: int = 0
    """Offset of the stops' own random stream from the run's seed."""

    def __post_init__(self) -> None:
        in_range("hook_opts.random_stop.rate", self.rate, 0.0, 1.0)
        in_range("hook_opts.random_stop.start", self.start, 0.0, 1.0)


class RandomStopHook(Hook):
    name = "random_stop"
    config_class = RandomStopConfig
    description = "the control for LEAST: stop running episodes at random, at a set rate per step"
    stops_episodes = True

    def __init__(self, cfg: RandomStopConfig, agent: Any) -> None:
        super().__init__(cfg, agent)
        self.rng = np.random.default_rng([cfg.seed, agent.spec.seed])
        self.steps = 0
        self.window = {"stopped": 0, "steps": 0}

    def stop_episodes(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, terminated: np.ndarray,
                      truncated: np.ndarray) -> np.ndarray | None:
        count = len(obs)
        self.steps += count
        draws = self.rng.random(count)  # drawn every step, so the stream does not depend on when stops begin
        if self.steps < self.cfg.start * self.run_steps:
            return None
        self.window["steps"] += count
        stop = (draws < self.cfg.rate) & ~(terminated | truncated)
        self.window["stopped"] += int(stop.sum())
        return stop if stop.any() else None

    def on_log(self) -> dict[str, float]:
        if not self.window["steps"]:
            return {}
        scalars = {"random_stop/stopped": float(self.window["stopped"]),
                   "random_stop/stops_per_step": self.window["stopped"] / self.window["steps"]}
        self.window = {"stopped": 0, "steps": 0}
        return scalars

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "steps": self.steps, "window": dict(self.window)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.steps, self.window = state["steps"], dict(state["window"])
