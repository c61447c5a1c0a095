"""Training runs: set up a run directory, then the off-policy loop (act, step, store, update) with
logging, evaluation and checkpoints around it. `train` and `resume` are the Python API of
`scalerl train`.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from scalerl.agents import Agent, agent_class
from scalerl.checkpoint import (
    CheckpointError,
    global_rng_state,
    load_checkpoint,
    restore_global_rng_state,
    save_checkpoint,
)
from scalerl.checks import ConfigError
from scalerl.config import TrainConfig, load_config
from scalerl.envs import final_observations, make_env
from scalerl.logger import RunLogger
from scalerl.nets import parameter_count
from scalerl.replay import ReplayBuffer

EVAL_SEED_OFFSET = 1_000_000
"""Evaluation environments are seeded apart from training ones, identically at every evaluation."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but torch sees no GPU; use --device cpu or auto")
    return torch.device(name)


def default_run_dir(config: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / config.env.replace(":", "-").replace("/", "-") / f"{config.agent}-s{config.seed}-{stamp}"


@dataclass
class LoopState:
    """Counters and partial statistics of the loop; all of it goes into checkpoints."""

    step: int = 0
    steps_since_train: int = 0
    wall_time: float = 0.0
    episodes: int = 0
    updates: int = 0
    next_log: int = 0
    next_eval: int = 0
    next_checkpoint: int = 0
    best_eval: float = -float("inf")
    last_eval: float | None = None
    episode_returns: np.ndarray | None = None
    episode_lengths: np.ndarray | None = None
    finished_returns: list[float] = field(default_factory=list)
    finished_lengths: list[int] = field(default_factory=list)
    update_metrics: dict[str, float] = field(default_factory=dict)


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


def run_episodes(agent: Agent, envs: Any, seed: int) -> tuple[list[float], list[int], list[float] | None]:
    """One episode per environment with the deterministic policy, from a fixed seed. Returns the
    returns, the lengths and, for environments that report `success` (Meta-World), whether each
    episode succeeded at any step (Meta-World's success criterion), else None."""
    obs, _ = envs.reset(seed=seed)
    count = envs.num_envs
    returns, lengths = np.zeros(count), np.zeros(count, dtype=np.int64)
    succeeded, reports_success = np.zeros(count, dtype=bool), False
    running = np.ones(count, dtype=bool)
    while running.any():
        obs, rewards, terminated, truncated, infos = envs.step(agent.act(obs, explore=False))
        returns += np.where(running, rewards, 0.0)
        lengths += running
        if (flags := step_successes(infos, count)) is not None:
            succeeded |= running & flags
            reports_success = True
        running &= ~(terminated | truncated)
    return returns.tolist(), lengths.tolist(), succeeded.astype(float).tolist() if reports_success else None


class Run:
    """Everything one training run holds: environments, agent, replay, records and loop counters."""

    def __init__(self, config: TrainConfig, run_dir: Path, checkpoint: dict[str, Any] | None = None) -> None:
        self.config = config
        self.run_dir = run_dir
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        self.envs = make_env(config.env, config.num_envs, config.seed, **config.env_kwargs(training=True))
        self.eval_envs = make_env(config.env, config.eval_episodes, config.seed + EVAL_SEED_OFFSET,
                                  **config.env_kwargs(training=False))
        cls = agent_class(config.agent)
        self.agent = cls(config.algo, config.net, self.envs.single_observation_space,
                         self.envs.single_action_space, self.device, config.seed)
        algo = config.algo
        self.replay = ReplayBuffer(algo.buffer_size, config.num_envs, self.envs.single_observation_space,
                                   self.envs.single_action_space, algo.n_step, algo.gamma, config.seed, self.device)
        self.state = LoopState(next_log=config.log_every, next_eval=config.eval_every or config.steps,
                               next_checkpoint=config.checkpoint_every or config.steps)
        self.obs, _ = self.envs.reset()
        self.state.episode_returns = np.zeros(config.num_envs)
        self.state.episode_lengths = np.zeros(config.num_envs, dtype=np.int64)
        if checkpoint is not None:
            self.restore(checkpoint)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.logger = RunLogger(run_dir, resume_step=self.state.step if checkpoint else None)

    # -- checkpoints ---------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / "latest.pt"

    def save(self) -> None:
        self.read_update_metrics()
        try:
            envs_state = pickle.dumps(self.envs)
        except (pickle.PicklingError, TypeError, AttributeError):
            envs_state = None
        save_checkpoint(self.checkpoint_path, {
            "config": self.config.to_dict(),
            "loop": self.state,
            "agent": self.agent.state_dict(),
            "replay": self.replay.state_dict(),
            "envs": envs_state,
            "obs": self.obs,
            "rng": global_rng_state(),
        })

    def restore(self, checkpoint: dict[str, Any]) -> None:
        if checkpoint["config"] != self.config.to_dict():
            raise CheckpointError(f"checkpoint in {self.run_dir} was written by a different config than config.json")
        try:
            self.agent.load_state_dict(checkpoint["agent"])
            self.replay.load_state_dict(checkpoint["replay"])
        except (KeyError, RuntimeError, ValueError) as error:
            raise CheckpointError(f"checkpoint does not match this run's agent: {error}") from None
        self.state = checkpoint["loop"]
        if checkpoint["envs"] is not None:
            self.envs.close()
            self.envs = pickle.loads(checkpoint["envs"])
            self.obs = checkpoint["obs"]
        else:
            # Environments that cannot be pickled restart their episodes: the rest resumes exactly.
            self.obs, _ = self.envs.reset(seed=self.config.seed + self.state.step)
            self.state.episode_returns[:] = 0
            self.state.episode_lengths[:] = 0
        restore_global_rng_state(checkpoint["rng"])

    # -- the loop ------------------------------------------------------------------------------

    def tick(self, in_loop: bool) -> None:
        """Add the time since the last tick to the run's wall time, and to the loop time that
        steps/second is measured over unless it was spent evaluating or checkpointing."""
        now = time.perf_counter()
        self.state.wall_time += now - self.last_tick
        if in_loop:
            self.loop_seconds += now - self.last_tick
        self.last_tick = now

    def train(self) -> dict[str, Any]:
        config, state, algo = self.config, self.state, self.config.algo
        show = config.progress == "on" or (config.progress == "auto" and sys.stderr.isatty())
        bar = tqdm(total=config.steps, initial=state.step, disable=not show, unit="step", dynamic_ncols=True)
        self.last_tick, self.loop_seconds, self.sps_from_step = time.perf_counter(), 0.0, state.step
        self.log_parameter_counts()
        while state.step < config.steps:
            actions = self.agent.act(self.obs, explore=True)
            next_obs, rewards, terminated, truncated, infos = self.envs.step(actions)
            done = terminated | truncated
            self.replay.add(self.obs, actions, rewards, final_observations(next_obs, done, infos), terminated, truncated)
            self.obs = next_obs
            self.track_episodes(rewards, done)
            state.step += config.num_envs
            state.steps_since_train += config.num_envs

            if state.step >= algo.learning_starts:
                while state.steps_since_train >= algo.train_every:
                    state.steps_since_train -= algo.train_every
                    for _ in range(algo.gradient_steps):
                        metrics = self.agent.update(self.replay.sample(algo.batch_size))
                    state.updates += algo.gradient_steps
                    state.update_metrics = metrics
            else:
                state.steps_since_train = 0

            last = state.step >= config.steps
            if state.step >= state.next_log or last:
                self.tick(in_loop=True)
                sps = (state.step - self.sps_from_step) / max(self.loop_seconds, 1e-9)
                self.loop_seconds, self.sps_from_step = 0.0, state.step
                self.log(sps)
                state.next_log += config.log_every
                bar.update(state.step - bar.n)
                bar.set_postfix_str(self.progress_text(sps), refresh=False)
            if state.step >= state.next_eval or last:
                self.tick(in_loop=True)
                self.run_evaluation()
                self.tick(in_loop=False)
                state.next_eval += config.eval_every or config.steps
            if state.step >= state.next_checkpoint or last:
                self.tick(in_loop=True)
                self.save()
                self.tick(in_loop=False)
                state.next_checkpoint += config.checkpoint_every or config.steps
        bar.close()
        return self.finish()

    def track_episodes(self, rewards: np.ndarray, done: np.ndarray) -> None:
        state = self.state
        state.episode_returns += rewards
        state.episode_lengths += 1
        if done.any():
            for index in np.flatnonzero(done):
                state.finished_returns.append(float(state.episode_returns[index]))
                state.finished_lengths.append(int(state.episode_lengths[index]))
            state.episodes += int(done.sum())
            state.episode_returns[done] = 0
            state.episode_lengths[done] = 0

    def read_update_metrics(self) -> None:
        """Turn the last update's tensors into floats: the only host sync, done when logging or saving."""
        self.state.update_metrics = {key: float(value) for key, value in self.state.update_metrics.items()}

    def log(self, sps: float) -> None:
        state = self.state
        self.read_update_metrics()
        record: dict[str, float] = {"wall_time": round(state.wall_time, 3), "sps": round(sps, 1),
                                    "episodes": state.episodes, "updates": state.updates}
        if state.finished_returns:
            record["episode_return"] = float(np.mean(state.finished_returns))
            record["episode_length"] = float(np.mean(state.finished_lengths))
            state.finished_returns.clear()
            state.finished_lengths.clear()
        record.update(state.update_metrics)
        record.update(self.agent.train_scalars())
        self.last_record = record
        self.logger.log_metrics(state.step, record)

    def progress_text(self, sps: float) -> str:
        text = f"sps={sps:,.0f}"
        if "episode_return" in self.last_record:
            text = f"return={self.last_record['episode_return']:.1f} " + text
        if self.state.last_eval is not None:
            text = f"eval={self.state.last_eval:.1f} " + text
        return text

    def run_evaluation(self) -> None:
        returns, lengths, successes = run_episodes(self.agent, self.eval_envs, self.config.seed + EVAL_SEED_OFFSET)
        record = self.logger.log_eval(self.state.step, returns, lengths, round(self.state.wall_time, 3), successes)
        self.state.last_eval = record["return_mean"]
        self.state.best_eval = max(self.state.best_eval, record["return_mean"])

    def log_parameter_counts(self) -> None:
        counts = {name: parameter_count(module) for name, module in self.agent.modules().items()}
        (self.run_dir / "parameters.json").write_text(json.dumps(counts, indent=2) + "\n")

    def finish(self) -> dict[str, Any]:
        state = self.state
        summary = {
            "run_dir": str(self.run_dir),
            "env": self.config.env,
            "agent": self.config.agent,
            "seed": self.config.seed,
            "device": str(self.device),
            "steps": state.step,
            "episodes": state.episodes,
            "updates": state.updates,
            "parameters": {name: parameter_count(module) for name, module in self.agent.modules().items()},
            "final_eval_return": state.last_eval,
            "best_eval_return": state.best_eval,
            "wall_time": round(state.wall_time, 2),
            "sps": round(state.step / max(state.wall_time, 1e-9), 1),
        }
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        self.close()
        return summary

    def close(self) -> None:
        self.logger.close()
        self.envs.close()
        self.eval_envs.close()


def train(config: TrainConfig | None = None, **fields: Any) -> dict[str, Any]:
    """Train one run and return its summary. Give a TrainConfig, or its fields as keywords:
    `train(env="minatar:breakout", steps=50_000, algo={"lr": 1e-4})`."""
    if config is None:
        config = TrainConfig(**fields)
    elif fields:
        raise ConfigError("give either a TrainConfig or keyword fields, not both")
    run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(config)
    if (run_dir / "config.json").exists():
        raise ConfigError(f"{run_dir} already holds a run; resume it with --resume {run_dir} or pick another --run-dir")
    config = dataclasses.replace(config, run_dir=str(run_dir))
    run = Run(config, run_dir)
    (run_dir / "config.json").write_text(config.to_json() + "\n")
    return run.train()


def resume(run_dir: str | Path) -> dict[str, Any]:
    """Continue a run from its latest checkpoint; the result matches an uninterrupted run on CPU."""
    run_dir = Path(run_dir)
    config = load_config(run_dir)
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    return Run(config, run_dir, checkpoint).train()


def load_agent(run_dir: str | Path, device: str = "auto") -> tuple[TrainConfig, Agent]:
    """The agent of a run, as its latest checkpoint left it."""
    run_dir = Path(run_dir)
    config = load_config(run_dir)
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    envs = make_env(config.env, 1, config.seed, **config.env_kwargs(training=False))
    agent = agent_class(config.agent)(config.algo, config.net, envs.single_observation_space,
                                      envs.single_action_space, resolve_device(device), config.seed)
    envs.close()
    try:
        agent.load_state_dict(checkpoint["agent"])
    except (KeyError, RuntimeError) as error:
        raise CheckpointError(f"checkpoint in {run_dir} does not match its config.json: {error}") from None
    return config, agent


def evaluate(run_dir: str | Path, episodes: int = 10, seed: int | None = None, device: str = "auto") -> dict[str, Any]:
    """Deterministic evaluation of a run's latest checkpoint; by default on the run's own eval seeds."""
    if episodes < 1:
        raise ConfigError(f"episodes must be > 0 (got {episodes})")
    config, agent = load_agent(run_dir, device)
    eval_seed = config.seed + EVAL_SEED_OFFSET if seed is None else seed
    envs = make_env(config.env, episodes, eval_seed, **config.env_kwargs(training=False))
    returns, lengths, successes = run_episodes(agent, envs, eval_seed)
    envs.close()
    result = {
        "run_dir": str(run_dir),
        "env": config.env,
        "episodes": episodes,
        "seed": eval_seed,
        "return_mean": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
        "length_mean": float(np.mean(lengths)),
        "returns": returns,
    }
    if successes is not None:
        result["success_mean"] = float(np.mean(successes))
    return result
