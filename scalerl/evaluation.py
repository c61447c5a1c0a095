"""Running the evaluation policy: a number of episodes spread over however many environments.

The episode count is independent of the environment count: 100 Atari episodes on 8 emulators means
each emulator plays 12 or 13 episodes one after another. Which environment plays which episodes is
fixed (environment i plays episodes i, i + E, i + 2E, ...), and the environments are reset with the
same seed at every evaluation, so two evaluations differ only by the policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class EvalResult:
    returns: list[float]
    lengths: list[int]
    successes: list[float] | None
    """Whether each episode succeeded at any step, for environments that report `success` (Meta-World)."""

    def by_task(self, tasks: list[str]) -> dict[str, dict[str, float]] | None:
        """Mean return (and success rate) of each task of a multi-task set whose environment i runs task i,
        so that episode k is task k mod len(tasks)'s; None when there are no tasks."""
        if not tasks:
            return None
        count = len(tasks)
        summary = {}
        for index, name in enumerate(tasks):
            returns = self.returns[index::count]
            summary[name] = {"return_mean": float(np.mean(returns))}
            if self.successes is not None:
                summary[name]["success_mean"] = float(np.mean(self.successes[index::count]))
        return summary

    def success_rate(self, tasks: list[str]) -> float | None:
        """The evaluation's success rate (None where the env reports none): for a multi-task set the mean over
        tasks of each task's rate (Meta-World's protocol), otherwise the mean over episodes."""
        if self.successes is None:
            return None
        per_task = self.by_task(tasks)
        if per_task:
            return float(np.mean([means["success_mean"] for means in per_task.values()]))
        return float(np.mean(self.successes))


def step_successes(infos: dict[str, Any], count: int) -> np.ndarray | None:
    """The `success` flags of a vector step (Meta-World), wherever autoreset put them, or None."""
    flags = np.zeros(count, dtype=bool)
    found = False
    for source in (infos, infos.get("final_info", {})):
        if "success" in source:
            present = source.get("_success", np.ones(count, dtype=bool))
            flags |= present & (np.asarray(source["success"]) > 0)
            found = True
    return flags if found else None


def episode_quotas(episodes: int, num_envs: int) -> np.ndarray:
    """Episodes each environment plays: environment i plays episodes i, i + E, ... of the total."""
    return np.array([len(range(index, episodes, num_envs)) for index in range(num_envs)])


def run_episodes(agent: Any, envs: Any, episodes: int, seed: int) -> EvalResult:
    """`episodes` episodes of the deterministic policy from a fixed seed. Results are in episode order
    (episode k is environment k mod E's (k // E)-th)."""
    obs, _ = envs.reset(seed=seed)
    count = envs.num_envs
    quotas = episode_quotas(episodes, count)
    finished = np.zeros(count, dtype=np.int64)
    returns, lengths = np.zeros(count), np.zeros(count, dtype=np.int64)
    succeeded, reports_success = np.zeros(count, dtype=bool), False
    results: dict[int, tuple[float, int, bool]] = {}
    while (finished < quotas).any():
        actions, _ = agent.act(obs, explore=False)
        obs, rewards, terminated, truncated, infos = envs.step(actions)
        active = finished < quotas
        returns += np.where(active, rewards, 0.0)
        lengths += active
        if (flags := step_successes(infos, count)) is not None:
            succeeded |= active & flags
            reports_success = True
        for index in np.flatnonzero(active & (terminated | truncated)):
            results[index + count * finished[index]] = (float(returns[index]), int(lengths[index]),
                                                        bool(succeeded[index]))
            finished[index] += 1
            returns[index], lengths[index], succeeded[index] = 0.0, 0, False
    ordered = [results[k] for k in range(episodes)]
    return EvalResult([r for r, _, _ in ordered], [n for _, n, _ in ordered],
                      [float(s) for _, _, s in ordered] if reports_success else None)
