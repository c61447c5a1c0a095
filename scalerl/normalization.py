"""Running statistics for normalizing observations and rewards (as Gymnasium's NormalizeObservation and
NormalizeReward wrappers do), kept by the agent so they are saved and restored with its checkpoint."""

from __future__ import annotations

from typing import Any

import numpy as np


class RunningMeanStd:
    """Mean and variance of everything seen so far, merged batch by batch (Chan et al.'s parallel update)."""

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4

    def update(self, batch: np.ndarray) -> None:
        batch = np.asarray(batch, np.float64)
        batch_count = batch.shape[0]
        batch_mean = batch.sum(axis=0) / batch_count
        centred = batch - batch_mean
        batch_var = (centred * centred).sum(axis=0) / batch_count
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        squared_deviations = self.var * self.count + batch_var * batch_count
        self.var = (squared_deviations + delta**2 * self.count * batch_count / total) / total
        self.count = total

    def normalize(self, values: np.ndarray, clip: float = 10.0) -> np.ndarray:
        return np.clip((values - self.mean) / np.sqrt(self.var + 1e-8), -clip, clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean, self.var, self.count = np.array(state["mean"]), np.array(state["var"]), float(state["count"])


class RewardScaler:
    """Divides rewards by the running standard deviation of each environment's discounted return, then
    clips them, step by step in the order they were received (NormalizeReward's rule)."""

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0) -> None:
        self.returns = np.zeros(num_envs, np.float64)
        self.stats = RunningMeanStd()
        self.gamma, self.clip = gamma, clip

    def scale(self, rewards: np.ndarray, done: np.ndarray) -> np.ndarray:
        """(T, N) rewards and episode ends -> scaled rewards, updating the statistics as it goes."""
        scaled = np.empty_like(rewards, dtype=np.float32)
        for t in range(len(rewards)):
            self.returns = self.returns * self.gamma + rewards[t]
            self.stats.update(self.returns)
            scaled[t] = np.clip(rewards[t] / np.sqrt(self.stats.var + 1e-8), -self.clip, self.clip)
            self.returns[done[t]] = 0.0
        return scaled

    def state_dict(self) -> dict[str, Any]:
        return {"returns": self.returns.copy(), "stats": self.stats.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.returns = np.array(state["returns"])
        self.stats.load_state_dict(state["stats"])
