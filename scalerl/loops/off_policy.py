"""The off-policy loop: act, step, store, sample, update.

After `learning_starts` environment steps, every `train_every` steps the agent takes `gradient_steps`
updates, each on a fresh replay batch (of `batch_size` from every environment, for agents that balance
their batches across the tasks of a multi-task set). An update may hand back new priorities for the transitions it
sampled; the buffer takes them.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from scalerl.checks import ConfigError, ScalerlWarning
from scalerl.envs import final_observations
from scalerl.loops.base import Loop
from scalerl.replay import FrameReplayBuffer, ReplayBuffer


def check_replay_memory(capacity: int, obs_space: Any, action_space: Any, stack: int | None) -> None:
    """Refuse a replay buffer that cannot fit in this machine's memory before allocating it (numpy would
    reserve it lazily and the run would die later, or fail at once with a 14 TiB request)."""
    import os

    obs_bytes = int(np.prod(obs_space.shape)) * np.dtype(obs_space.dtype).itemsize
    frames = (1.0 / stack + 1.0 / 64) if stack and stack > 1 and obs_space.dtype == np.uint8 else 2.0
    action_bytes = int(np.prod(action_space.shape or (1,))) * np.dtype(action_space.dtype).itemsize
    needed = capacity * (obs_bytes * frames + action_bytes + 6)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > memory:
        raise ConfigError(f"algo.buffer_size {capacity:,} needs about {needed / 2**30:,.1f} GiB of replay memory; "
                          f"this machine has {memory / 2**30:,.1f} GiB")


class OffPolicyLoop(Loop):
    can_stop_episodes = True

    def __init__(self, config: Any, session: Any, agent: Any, hooks: Any) -> None:
        super().__init__(config, session, agent, hooks)
        algo, envs = config.algo, session.envs
        space, stack = envs.single_observation_space, config.frame_stack()
        args = (algo.buffer_size, config.num_envs, space, envs.single_action_space, algo.n_step, algo.gamma,
                config.seed, session.device, algo.replay_priorities(config.schedule_budget), algo.balance_envs)
        self.batch_size = algo.batch_size * config.num_envs if algo.balance_envs else algo.batch_size
        check_replay_memory(algo.buffer_size, space, envs.single_action_space, stack)
        if stack and stack > 1 and space.dtype == np.uint8 and len(space.shape) == 3 and space.shape[0] % stack == 0:
            self.buffer: ReplayBuffer = FrameReplayBuffer(*args, frame_stack=stack)  # pixels: each frame once
        else:
            self.buffer = ReplayBuffer(*args)

    def run(self) -> dict[str, Any]:
        config, state, algo, agent = self.config, self.state, self.config.algo, self.agent
        if config.steps <= algo.learning_starts and state.step == 0:
            warnings.warn(f"steps {config.steps:,} <= algo.learning_starts {algo.learning_starts:,}: this run makes "
                          "no update (lower --algo.learning-starts or raise --steps)", ScalerlWarning, stacklevel=2)
        self.begin()
        while not self.finished:
            actions, extras = agent.act(self.obs, explore=True)
            next_obs, rewards, terminated, truncated, infos = self.envs.step(actions)
            stopped = None
            if self.hooks:
                stopped = self.hooks.stop_episodes(self.obs, actions, rewards, terminated, truncated)
            if stopped is not None:
                truncated = truncated | stopped  # ended by the agent: bootstrapped like a time limit
            done = terminated | truncated
            reset_by_env = done & ~stopped if stopped is not None else done
            self.buffer.add(self.obs, actions, rewards, final_observations(next_obs, reset_by_env, infos), terminated,
                            truncated)
            if stopped is not None:
                next_obs = self.reset_stopped(next_obs, stopped)
            self.obs = next_obs
            self.record_step(rewards, terminated, truncated, extras)
            state.steps_since_train += config.num_envs

            if state.step >= algo.learning_starts and self.buffer.can_sample():
                while state.steps_since_train >= algo.train_every:
                    state.steps_since_train -= algo.train_every
                    for _ in range(algo.gradient_steps):
                        batch = self.buffer.sample(self.batch_size)
                        metrics = self.update(batch)
                        if (priorities := metrics.pop("priorities", None)) is not None:
                            self.buffer.update_priorities(batch.indices, priorities)
                        self.record_update(metrics)
            else:
                state.steps_since_train = 0
            self.periodic()
        return self.end()

    def reset_stopped(self, next_obs: np.ndarray, stopped: np.ndarray) -> np.ndarray:
        """Start new episodes in the environments whose episodes a hook stopped."""
        try:
            obs, _ = self.envs.reset(options={"reset_mask": stopped})
        except (TypeError, ValueError, KeyError) as error:
            raise ConfigError(f"hooks {', '.join(h.name for h in self.hooks.hooks if h.stops_episodes)} end episodes, "
                              f"but env {self.config.env} cannot reset some of its environments: {error}") from None
        return np.where(stopped.reshape(-1, *[1] * (next_obs.ndim - 1)), obs, next_obs)

    def parts(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state_dict()}

    def load_parts(self, checkpoint: dict[str, Any]) -> None:
        self.buffer.load_state_dict(checkpoint["buffer"])

    def episodes_cut(self) -> None:
        self.buffer.cut_episodes()
