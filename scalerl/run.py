"""Training runs from Python: `train`, `resume`, `evaluate` (the functions behind `scalerl train` and
`scalerl eval`). A run is a session (run directory, seeds, environments, records), an agent, its hooks,
and the loop the agent names."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scalerl.agents import Agent, AgentSpec, agent_class
from scalerl.checkpoint import CheckpointError, load_checkpoint
from scalerl.checks import ConfigError, first_line, positive, require
from scalerl.config import (
    MAX_ENVS,
    MAX_EPISODES,
    TrainConfig,
    continued_config,
    run_config_from,
    same_training,
)
from scalerl.envs import make_env, task_members
from scalerl.evaluation import run_episodes
from scalerl.hooks import make_hooks
from scalerl.loops import LOOPS, LoopState
from scalerl.session import EVAL_SEED_OFFSET, RunDirTaken, Session, read_run_config, resolve_device
from scalerl.video import check_video, record_episode


def default_run_dir(config: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / config.env.replace(":", "-").replace("/", "-") / f"{config.agent}-s{config.seed}-{stamp}"


def build_agent(config: TrainConfig, obs_space: Any, action_space: Any, device: Any, tasks: list[str]) -> Agent:
    spec = AgentSpec(obs_space, action_space, config.num_envs, device, config.seed, config.net,
                     config.schedule_budget, tuple(tasks))
    return agent_class(config.agent)(config.algo, spec)


def run_session(config: TrainConfig, session: Session) -> dict[str, Any]:
    """Build the environments, the agent, its hooks and its loop in the session, then train to the end."""
    try:
        session.open_envs(config.env_spec, config.num_envs, config.eval_num_envs, config.env_kwargs(training=True),
                          config.env_kwargs(training=False))
        envs = session.envs
        agent = build_agent(config, envs.single_observation_space, envs.single_action_space, session.device,
                            session.tasks)
        loop = LOOPS[agent.loop](config, session, agent,
                                 make_hooks(config.hooks, config.hook_opts, agent, config.schedule_budget))
        if session.checkpoint is not None:
            loop.restore()
    except BaseException:
        session.discard()
        raise
    try:
        return loop.run()
    except BaseException:
        session.close()  # lets go of the run directory: an interrupted run can be resumed in this process
        raise


def train(config: TrainConfig | None = None, **fields: Any) -> dict[str, Any]:
    """Train one run and return its summary. Give a TrainConfig, or its fields as keywords:
    `train(env="minatar:breakout", steps=50_000, algo={"optim": {"lr": 1e-4}})`."""
    if config is None:
        config = TrainConfig(**fields)
    elif fields:
        raise ConfigError("give either a TrainConfig or keyword fields, not both")
    config = config.resolved()
    if config.run_dir:
        session = Session(config.run_dir, config.to_dict(), seed=config.seed, device=config.device,
                          threads=config.threads, tracking=config.tracking())
        return run_session(config, session)
    base = default_run_dir(config)
    for attempt in range(1, 1000):  # two runs started in the same second: the later one takes a suffix
        run_dir = base if attempt == 1 else base.with_name(f"{base.name}-{attempt}")
        candidate = dataclasses.replace(config, run_dir=str(run_dir))
        try:
            session = Session(run_dir, candidate.to_dict(), seed=config.seed, device=config.device,
                              threads=config.threads, tracking=config.tracking())
        except RunDirTaken:
            continue
        return run_session(candidate, session)
    raise ConfigError(f"no free run directory next to {base}")


def resume(run_dir: str | Path, steps: int | None = None) -> dict[str, Any]:
    """Continue a run from its latest checkpoint; the result matches an uninterrupted run on CPU. A run
    killed before its first checkpoint starts again from the beginning.

    `steps` moves where the run stops (a finished run trains on to a longer budget). Its schedules keep
    the budget they were running over (config `schedule_steps`), so the result matches a run started with
    that config."""
    # The identity of a run is its config.json as written: a scalerl that has since gained config fields
    # resolves the same file to more keys, and must still resume it.
    written = read_run_config(run_dir)
    if steps is not None:
        positive("steps", steps)
        written = continued_config(written, steps)
    config = run_config_from(Path(run_dir), written)
    session = Session(run_dir, written, seed=config.seed, device=config.device, threads=config.threads, resume=True,
                      continues=same_training, checkpoint_types=CHECKPOINT_TYPES, tracking=config.tracking())
    if steps is not None:
        reached = session.checkpoint["step"] if session.checkpoint else 0
        if reached > steps:
            session.close()
            raise ConfigError(f"steps must be at least {reached:,}, the step of the run's checkpoint; got {steps:,}")
        if session.checkpoint and session.checkpoint["loop"].reached_stop_return:
            session.close()
            raise ConfigError(f"{run_dir} stopped when an evaluation reached its stop_at_return: a new budget "
                              "would not train it further")
        session.rewrite_config(written)
    return run_session(config, session)


def load_config(run_dir: Path) -> TrainConfig:
    """The TrainConfig of an RL run directory."""
    return run_config_from(run_dir, read_run_config(run_dir))


CHECKPOINT_TYPES = (LoopState,)
"""What an RL run's checkpoint holds besides tensors, containers and numpy: the loop's counters."""


def load_agent(run_dir: str | Path, device: str = "auto") -> tuple[TrainConfig, Agent]:
    """The agent of a run, as its latest checkpoint left it."""
    run_dir = Path(run_dir)
    config = load_config(run_dir)
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "latest.pt", CHECKPOINT_TYPES)
    envs = make_env(config.env_spec, config.num_envs, config.seed, **config.env_kwargs(training=False))
    agent = build_agent(config, envs.single_observation_space, envs.single_action_space, resolve_device(device),
                        task_members(config.env_spec, envs))
    envs.close()
    try:
        agent.load_state_dict(checkpoint["agent"])
    except (KeyError, RuntimeError) as error:
        raise CheckpointError(f"checkpoint in {run_dir} does not match its config.json: {error}") from None
    for name, module in agent.modules().items():
        if not all(torch.isfinite(parameter).all() for parameter in module.parameters()):
            raise CheckpointError(f"the checkpoint in {run_dir} holds non-finite weights in {name}: there is no "
                                  "policy to evaluate (the run diverged, or the file was altered)")
    return config, agent


class Policy:
    """A trained run's deterministic policy, for inference: `act(obs)` takes what the run's environment
    gives (one observation, or a batch from a vector env of the same spec) and returns the action(s) the
    agent would take when evaluated, with no exploration and no learning."""

    def __init__(self, config: TrainConfig, agent: Agent, observation_space: Any, action_space: Any) -> None:
        self.config, self.agent = config, agent
        self.observation_space, self.action_space = observation_space, action_space

    def act(self, obs: Any) -> np.ndarray:
        obs = np.asarray(obs)
        single = obs.shape == self.observation_space.shape
        with torch.no_grad():
            actions, _ = self.agent.act(obs[None] if single else obs, explore=False)
        actions = np.asarray(actions)
        return actions[0] if single else actions

    def make_env(self, num_envs: int = 1, seed: int = 0) -> Any:
        """A vector env of the run's environment (with its evaluation options) to act in."""
        return make_env(self.config.env_spec, num_envs, seed, **self.config.env_kwargs(training=False))


def load_policy(run_dir: str | Path, device: str = "cpu") -> Policy:
    """The policy of a run's latest checkpoint (the end of its training, as `scalerl eval` scores it)."""
    config, agent = load_agent(run_dir, device)
    envs = make_env(config.env_spec, 1, config.seed, **config.env_kwargs(training=False))
    policy = Policy(config, agent, envs.single_observation_space, envs.single_action_space)
    envs.close()
    return policy


def evaluate(run_dir: str | Path, episodes: int = 10, seed: int | None = None, device: str = "auto",
             num_envs: int | None = None, video: bool = False) -> dict[str, Any]:
    """Deterministic evaluation of a run's latest checkpoint; by default on the run's own evaluation seed and
    as many environments as its evaluations used. With `video`, one more episode from that seed is filmed
    into the run's videos/ folder (its path is in the result)."""
    require(0 < episodes <= MAX_EPISODES, "episodes", f"in [1, {MAX_EPISODES:,}]", episodes)
    require(num_envs is None or 0 < num_envs <= MAX_ENVS, "num_envs", f"in [1, {MAX_ENVS}]", num_envs)
    require(seed is None or 0 <= seed < 2**31, "seed", "in [0, 2**31)", seed)
    config, agent = load_agent(run_dir, device)
    if video:
        check_video(config.env_spec)
    num_envs = num_envs or config.eval_num_envs
    eval_seed = config.seed + EVAL_SEED_OFFSET if seed is None else seed
    envs = make_env(config.env_spec, num_envs, eval_seed, **config.env_kwargs(training=False))
    result = run_episodes(agent, envs, episodes, eval_seed)
    tasks = task_members(config.env_spec, envs)
    envs.close()
    summary = {
        "run_dir": str(run_dir),
        "env": config.env,
        "episodes": episodes,
        "num_envs": num_envs,
        "seed": eval_seed,
        "return_mean": float(np.mean(result.returns)),
        "return_std": float(np.std(result.returns)),
        "length_mean": float(np.mean(result.lengths)),
        "returns": result.returns,
    }
    if (success_rate := result.success_rate(tasks)) is not None:
        summary["success_mean"] = success_rate
    if tasks:
        summary["tasks"] = result.by_task(tasks)
    if video:
        try:
            filmed = record_episode(agent, config.env_spec, eval_seed, config.env_kwargs(training=False),
                                    Path(run_dir) / "videos" / f"eval-seed-{eval_seed}.mp4")
        except ConfigError:
            raise
        except Exception as error:  # noqa: BLE001  (rendering stacks fail in many ways: one line says which)
            raise ConfigError(f"no video: {first_line(error)} (without --video the run is scored alone)") from None
        summary["video"] = filmed["video"]
    return summary
