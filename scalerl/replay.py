"""Uniform replay with n-step returns, stored per vector-env column.

Transitions are kept as rows of `num_envs` columns in ring buffers, the layout they arrive in, so
adding is one slice assignment per field. The n-step return is computed when sampling by walking
forward along the sampled transition's own column, stopping at the end of its episode.

`FrameReplayBuffer` keeps stacked pixel observations as single frames, once each, and rebuilds the
stacks when sampling: about one frame per transition instead of two stacks of k.

Either buffer samples uniformly, or in proportion to priorities (`Priorities`, a sum tree over the
buffer's slots) that the agent hands back after each update, with importance weights in the batch.

What the loops hand agents lives here too, below both: a `Batch` (off-policy) and a `Rollout` (on-policy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from scalerl.checks import ConfigError


@dataclass(frozen=True)
class Batch:
    """A sampled minibatch. Targets are `rewards + discounts * V(next_obs)`: `rewards` is the
    discounted n-step sum and `discounts` is gamma**k, zero where the episode terminated."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    discounts: torch.Tensor
    indices: tuple[np.ndarray, np.ndarray] | None = None
    """(rows, columns) of the sampled transitions in the buffer, for priorities handed back."""
    weights: torch.Tensor | None = None
    """Importance-sampling weights of a prioritized sample (None: uniform, every weight 1)."""


@dataclass
class Rollout:
    """T steps of N environments, arrays shaped (T, N, ...). `next_obs` is what the environments show after
    the last step (to bootstrap from). Where an episode ended at step t in environment n, the observation
    it really ended in is `final_obs[k]` with `final_index[k] == (t, n)`: a truncated episode bootstraps
    from it, since obs[t + 1] is already the next episode's first observation."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    extras: dict[str, np.ndarray]
    next_obs: np.ndarray
    final_obs: np.ndarray
    final_index: np.ndarray

    @property
    def steps(self) -> int:
        return self.rewards.shape[0]


class SumTree:
    """Sums over a complete binary tree stored in one array (leaves from `size`, node i's children at 2i
    and 2i+1): setting leaves and finding the leaf under a prefix sum are O(log n), vectorized over a
    batch one level at a time. Internal sums are recomputed from their children, never incremented, so
    rounding does not drift."""

    SCALAR_CLIMB = 4
    """Up to this many leaves, `set` climbs to the root one leaf at a time in plain Python."""

    def __init__(self, capacity: int) -> None:
        self.depth = max(1, math.ceil(math.log2(capacity)))
        self.size = 1 << self.depth
        self.nodes = np.zeros(2 * self.size, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self.nodes[1])

    def leaves(self, indices: np.ndarray) -> np.ndarray:
        return self.nodes[indices + self.size]

    def set(self, indices: np.ndarray, values: np.ndarray) -> None:
        """Leaves `indices` take `values` (for a repeated index, its last value). A parent reached twice is
        recomputed twice from the same children, which costs less than removing the repeats."""
        node = indices + self.size
        self.nodes[node] = values
        if len(node) <= self.SCALAR_CLIMB:  # a step's few new transitions: scalar indexing costs a tenth
            nodes = self.nodes
            for index in node.tolist():
                while index > 1:
                    index >>= 1
                    nodes[index] = nodes[2 * index] + nodes[2 * index + 1]
            return
        for _ in range(self.depth):
            node = node >> 1
            self.nodes[node] = self.nodes[2 * node] + self.nodes[2 * node + 1]

    def find(self, prefix: np.ndarray) -> np.ndarray:
        """For each prefix sum in [0, total), the leaf where the running sum of leaves passes it."""
        node = np.ones(len(prefix), dtype=np.int64)
        prefix = prefix.copy()
        for _ in range(self.depth):
            left = 2 * node
            left_sum = self.nodes[left]
            right = prefix >= left_sum
            prefix -= np.where(right, left_sum, 0.0)
            node = left + right
        return node - self.size


@dataclass(frozen=True)
class PrioritySettings:
    """Proportional prioritized replay (Schaul et al., 2016): P(i) = p_i / sum p, p_i = (error_i + eps)^alpha,
    importance weights (N P(i))^-beta / max over the batch, beta moving linearly from beta_start to beta_end
    over `anneal_steps` stored transitions."""

    alpha: float = 0.5
    beta_start: float = 0.4
    beta_end: float = 1.0
    anneal_steps: int = 1
    epsilon: float = 1e-6


class Priorities:
    """The priorities of a buffer's slots (slot = row * num_envs + column). New transitions get the largest
    priority seen so far, so each is sampled at least about once before its own error is known."""

    def __init__(self, slots: int, settings: PrioritySettings) -> None:
        self.settings = settings
        self.tree = SumTree(slots)
        self.max_priority = 1.0
        self.stored = 0

    def beta(self) -> float:
        s = self.settings
        return s.beta_start + (s.beta_end - s.beta_start) * min(1.0, self.stored / s.anneal_steps)

    def draw(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """`count` slots, one from each of `count` equal slices of the total priority (stratified)."""
        total = self.tree.total
        prefix = (np.arange(count) + rng.random(count)) * (total / count)
        slots = self.tree.find(np.minimum(prefix, np.nextafter(total, 0.0)))
        while (empty := self.tree.leaves(slots) <= 0.0).any():  # a rounding edge: draw those again
            slots[empty] = self.tree.find(rng.random(int(empty.sum())) * total)
        return slots

    def weights(self, slots: np.ndarray, transitions: int) -> np.ndarray:
        probabilities = self.tree.leaves(slots) / self.tree.total
        weights = (transitions * probabilities) ** -self.beta()
        return (weights / weights.max()).astype(np.float32)

    def update(self, slots: np.ndarray, errors: np.ndarray) -> None:
        priorities = (np.abs(errors.astype(np.float64)) + self.settings.epsilon) ** self.settings.alpha
        self.max_priority = max(self.max_priority, float(priorities.max()))
        self.tree.set(slots, priorities)

    def state_dict(self) -> dict[str, Any]:
        return {"leaves": self.tree.nodes[self.tree.size:].copy(), "max_priority": self.max_priority,
                "stored": self.stored}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tree.set(np.arange(self.tree.size), state["leaves"])
        self.max_priority, self.stored = state["max_priority"], state["stored"]


class ReplayBuffer:
    FIELDS = ("obs", "next_obs", "actions", "rewards", "terminated", "truncated")
    """The arrays of (rows, envs, ...) that state_dict saves."""

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        obs_space: gym.Space,
        action_space: gym.Space,
        n_step: int = 1,
        gamma: float = 0.99,
        seed: int = 0,
        device: torch.device | str = "cpu",
        priorities: PrioritySettings | None = None,
        balanced: bool = False,
    ) -> None:
        if balanced and priorities is not None:
            raise ConfigError("replay cannot both balance its batches across environments and sample by priority")
        self.balanced = balanced
        """Every batch takes the same number of transitions from each column (each task of a multi-task set),
        in column order."""
        self.rows = max(capacity // num_envs, n_step + 1)
        self.num_envs = num_envs
        self.n_step = n_step
        self.gamma = gamma
        self.device = torch.device(device)
        self.rng = np.random.default_rng(seed)
        rows, cols = self.rows, num_envs
        self.allocate_observations(obs_space)
        self.actions = np.zeros((rows, cols, *action_space.shape), dtype=action_space.dtype)
        self.rewards = np.zeros((rows, cols), dtype=np.float32)
        self.terminated = np.zeros((rows, cols), dtype=bool)
        self.truncated = np.zeros((rows, cols), dtype=bool)
        self.position = 0
        self.full = False
        self.priorities = Priorities(rows * cols, priorities) if priorities is not None else None

    def allocate_observations(self, obs_space: gym.Space) -> None:
        self.obs = np.zeros((self.rows, self.num_envs, *obs_space.shape), dtype=obs_space.dtype)
        self.next_obs = np.zeros_like(self.obs)

    def store_observations(self, row: int, obs: np.ndarray, next_obs: np.ndarray, done: np.ndarray) -> None:
        self.obs[row] = obs
        self.next_obs[row] = next_obs

    def observations_at(self, flat: np.ndarray, following: bool) -> np.ndarray:
        """The observations (following=False) or next observations of the transitions at flat indices."""
        return self._gather(self.next_obs if following else self.obs, flat)

    @property
    def bytes_per_transition(self) -> float:
        arrays = [getattr(self, name) for name in self.FIELDS]
        return sum(array.nbytes for array in arrays) / (self.rows * self.num_envs)

    def __len__(self) -> int:
        return (self.rows if self.full else self.position) * self.num_envs

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
    ) -> None:
        """Store one vector-env step; `next_obs` must be the true final observation where an episode ended."""
        row = self.position
        self.store_observations(row, obs, next_obs, terminated | truncated)
        self.actions[row] = actions
        self.rewards[row] = rewards
        self.terminated[row] = terminated
        self.truncated[row] = truncated
        if self.priorities is not None:
            self.prioritize_new(row)
        self.position = (row + 1) % self.rows
        self.full = self.full or self.position == 0

    def prioritize_new(self, row: int) -> None:
        """The row just written cannot be sampled until its n-step window is complete: priority 0. The row
        whose window it completes (n - 1 rows back) becomes sampleable, at the largest priority so far."""
        columns = np.arange(self.num_envs)
        slots, values = [row * self.num_envs + columns], [np.zeros(self.num_envs)]
        ready = row - self.n_step + 1
        if ready >= 0 or self.full:
            slots.append(ready % self.rows * self.num_envs + columns)
            values.append(np.full(self.num_envs, self.priorities.max_priority))
        self.priorities.tree.set(np.concatenate(slots), np.concatenate(values))
        self.priorities.stored += self.num_envs

    def cut_episodes(self) -> None:
        """The environments restarted their episodes (a resume that could not restore them): the last stored
        transition of each column ends its episode by truncation, so no n-step window runs into the new one."""
        if self.position or self.full:
            self.truncated[(self.position - 1) % self.rows] = True

    def redraw_unavailable(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Replace drawn transitions that cannot be rebuilt (every one can, here)."""
        return rows, cols

    def can_sample(self) -> bool:
        """Whether a whole n-step window has been written (with learning_starts 0 the first steps have not)."""
        return self.full or self.position - self.n_step + 1 > 0

    def _sample_rows(self, batch_size: int) -> np.ndarray:
        """Rows whose n-step window lies in written data and does not cross the write head."""
        if self.full:
            offsets = self.rng.integers(0, self.rows - self.n_step + 1, size=batch_size)
            return (self.position + offsets) % self.rows
        valid = self.position - self.n_step + 1
        if valid <= 0:
            raise ValueError(f"replay holds {len(self)} transitions: too few to sample {self.n_step}-step returns")
        return self.rng.integers(0, valid, size=batch_size)

    def _draw(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, columns) of `batch_size` transitions: uniform, or by priority."""
        if self.balanced:
            if batch_size % self.num_envs:
                raise ValueError(f"a balanced batch of {batch_size} does not split evenly over {self.num_envs} columns")
            return self._sample_rows(batch_size), np.repeat(np.arange(self.num_envs), batch_size // self.num_envs)
        if self.priorities is None:
            if self.num_envs == 1:  # the same stream: a draw from one value consumes no random bits, but costs 9 us
                return self._sample_rows(batch_size), np.zeros(batch_size, dtype=np.int64)
            return self._sample_rows(batch_size), self.rng.integers(0, self.num_envs, size=batch_size)
        if not self.can_sample():
            raise ValueError(f"replay holds {len(self)} transitions: too few to sample {self.n_step}-step returns")
        return np.divmod(self.priorities.draw(self.rng, batch_size), self.num_envs)

    def sample(self, batch_size: int) -> Batch:
        rows, cols = self.redraw_unavailable(*self._draw(batch_size))
        at = rows * self.num_envs + cols
        if self.n_step == 1:  # the common case without the walk: the same numbers, a third of the time
            terminated = self._gather(self.terminated, at)
            return self._batch(rows, cols, at, at, self._gather(self.rewards, at),
                               np.where(terminated, np.float32(0.0), np.float32(self.gamma)))
        rewards = np.zeros(batch_size, dtype=np.float32)
        discounts = np.ones(batch_size, dtype=np.float32)
        alive = np.ones(batch_size, dtype=bool)
        last = at
        for k in range(self.n_step):
            step = (rows + k) % self.rows * self.num_envs + cols
            rewards += np.where(alive, discounts * self._gather(self.rewards, step), 0.0)
            discounts = np.where(alive, discounts * self.gamma, discounts)
            last = np.where(alive, step, last)
            terminated = self._gather(self.terminated, step)
            discounts = np.where(alive & terminated, 0.0, discounts)
            alive &= ~(terminated | self._gather(self.truncated, step))
        return self._batch(rows, cols, at, last, rewards, discounts.astype(np.float32))

    @staticmethod
    def _gather(array: np.ndarray, flat: np.ndarray) -> np.ndarray:
        """array[row, col] for flat = row * num_envs + col: a take over the (rows * envs) view is several
        times faster than indexing with two arrays."""
        return array.reshape(-1, *array.shape[2:]).take(flat, axis=0)

    def _batch(self, rows: np.ndarray, cols: np.ndarray, at: np.ndarray, last: np.ndarray, rewards: np.ndarray,
               discounts: np.ndarray) -> Batch:
        return Batch(
            obs=self._tensor(self.observations_at(at, following=False)),
            actions=self._tensor(self._gather(self.actions, at)),
            rewards=self._tensor(rewards),
            next_obs=self._tensor(self.observations_at(last, following=True)),
            discounts=self._tensor(discounts),
            indices=(rows, cols),
            weights=None if self.priorities is None else self._tensor(self.priorities.weights(at, len(self))),
        )

    def update_priorities(self, indices: tuple[np.ndarray, np.ndarray], errors: torch.Tensor) -> None:
        """Set the sampled transitions' priorities from the errors the update measured on them."""
        if self.priorities is None:
            raise TypeError("uniform replay keeps no priorities: the agent returned 'priorities' from update, "
                            "which needs a prioritized buffer")
        rows, cols = indices
        self.priorities.update(rows * self.num_envs + cols, errors.detach().float().cpu().numpy())

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(array)
        return tensor if self.device.type == "cpu" else tensor.to(self.device, non_blocking=True)

    def state_dict(self) -> dict[str, Any]:
        used = self.rows if self.full else self.position
        return {
            "rows": self.rows,
            "num_envs": self.num_envs,
            "position": self.position,
            "full": self.full,
            "rng": self.rng.bit_generator.state,
            "data": {name: getattr(self, name)[:used].copy() for name in self.FIELDS},
            **({"priorities": self.priorities.state_dict()} if self.priorities is not None else {}),
            **self.extra_state(),
        }

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if (state["rows"], state["num_envs"]) != (self.rows, self.num_envs):
            raise ValueError(
                f"replay shape mismatch: checkpoint has {state['rows']}x{state['num_envs']}, "
                f"config gives {self.rows}x{self.num_envs}"
            )
        self.position, self.full = state["position"], state["full"]
        self.rng.bit_generator.state = state["rng"]
        for name in self.FIELDS:
            data = state["data"][name]
            getattr(self, name)[: len(data)] = data
        if self.priorities is not None:
            self.priorities.load_state_dict(state["priorities"])
        self.load_extra_state(state)

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass


class FrameReplayBuffer(ReplayBuffer):
    """Replay for observations that are stacks of the last k frames (channel-first uint8, e.g. Atari's
    4 x 84 x 84 or DMC pixels' 9 x 84 x 84): each frame is stored once.

    Each environment column has a ring of frames, filled in the order they are seen: the k frames of an
    episode's first observation, then the newest frame of every next observation (the true final one where
    an episode ended). A transition keeps the position f of its observation's newest frame: its observation
    is frames f-k+1 .. f and its next observation f-k+2 .. f+1, so an episode's frames never mix with the
    next one's. Each episode start adds k - 1 frames beyond one per transition; the frame ring is 1/64
    longer than the transition ring, and the few oldest transitions whose first frame has been overwritten
    are drawn again rather than sampled.
    """

    FIELDS = ("actions", "rewards", "terminated", "truncated", "frame_index")

    def __init__(self, capacity: int, num_envs: int, obs_space: gym.Space, action_space: gym.Space, n_step: int = 1,
                 gamma: float = 0.99, seed: int = 0, device: torch.device | str = "cpu",
                 priorities: PrioritySettings | None = None, balanced: bool = False, *, frame_stack: int) -> None:
        channels = obs_space.shape[0]
        if len(obs_space.shape) != 3 or frame_stack < 1 or channels % frame_stack:
            raise ConfigError(f"frame replay cannot rebuild stacks of {frame_stack} frames from observations shaped "
                              f"{obs_space.shape}: it needs (k * C, H, W)")
        self.frame_stack = frame_stack
        self.frame_shape = (channels // frame_stack, *obs_space.shape[1:])
        super().__init__(capacity, num_envs, obs_space, action_space, n_step, gamma, seed, device, priorities, balanced)

    def allocate_observations(self, obs_space: gym.Space) -> None:
        self.frame_rows = self.rows + self.rows // 64 + 2 * self.frame_stack
        self.frames = np.zeros((self.frame_rows, self.num_envs, *self.frame_shape), dtype=obs_space.dtype)
        self.frame_index = np.zeros((self.rows, self.num_envs), dtype=np.int64)
        self.pushed = np.zeros(self.num_envs, dtype=np.int64)
        """Frames written so far in each column (positions are this count, not taken modulo the ring)."""
        self.starting = np.ones(self.num_envs, dtype=bool)
        """Whether each column's next observation starts an episode (its k frames are not stored yet)."""
        self.columns = np.arange(self.num_envs)

    def store_observations(self, row: int, obs: np.ndarray, next_obs: np.ndarray, done: np.ndarray) -> None:
        for col in np.flatnonzero(self.starting):
            for frame in obs[col].reshape(self.frame_stack, *self.frame_shape):
                self.frames[self.pushed[col] % self.frame_rows, col] = frame
                self.pushed[col] += 1
        self.frame_index[row] = self.pushed - 1
        self.frames[self.pushed % self.frame_rows, self.columns] = next_obs[:, -self.frame_shape[0]:]
        self.pushed += 1
        self.starting = np.array(done, dtype=bool)

    def cut_episodes(self) -> None:
        super().cut_episodes()
        self.starting[:] = True

    def observations_at(self, flat: np.ndarray, following: bool) -> np.ndarray:
        rows, cols = np.divmod(flat, self.num_envs)
        newest = self.frame_index[rows, cols] + int(following)
        window = newest[:, None] + np.arange(1 - self.frame_stack, 1)
        stacks = self.frames[window % self.frame_rows, cols[:, None]]
        return stacks.reshape(len(flat), -1, *self.frame_shape[1:])

    def redraw_unavailable(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        while True:
            oldest = self.frame_index[rows, cols] - self.frame_stack + 1
            lost = oldest < self.pushed[cols] - self.frame_rows
            if not lost.any():
                return rows, cols
            rows, cols = rows.copy(), cols.copy()
            rows[lost], cols[lost] = self._draw(int(lost.sum()))

    @property
    def bytes_per_transition(self) -> float:
        arrays = [self.frames, *(getattr(self, name) for name in self.FIELDS)]
        return sum(array.nbytes for array in arrays) / (self.rows * self.num_envs)

    def extra_state(self) -> dict[str, Any]:
        written = int(min(self.frame_rows, self.pushed.max()))
        return {"frames": self.frames[:written].copy(), "pushed": self.pushed.copy(), "starting": self.starting.copy()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.frames[: len(state["frames"])] = state["frames"]
        self.pushed, self.starting = state["pushed"].copy(), state["starting"].copy()
