"""Typed, validated run configuration.

Every config is a frozen dataclass that checks itself on construction, so a bad value fails
before any environment or network is built, with a message naming the field and its valid range.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from scalerl.agents import agent_class, register_agent
from scalerl.checks import ConfigError, check_magnitudes, config_from_dict, non_negative, positive, require
from scalerl.envs import EnvSpec, check_options, parse_spec
from scalerl.envs.options import EnvOptions
from scalerl.hooks import HookOptions, check_hook_names, register_hook
from scalerl.nets import NetConfig
from scalerl.video import check_video

AgentConfigT = TypeVar("AgentConfigT")


MAX_THREADS = 512
MAX_ENVS = 4096
MAX_EPISODES = 1_000_000
ATARI_EVAL_EPSILON = 0.001
"""The exploration rate Dopamine evaluates Atari agents with: a greedy one may never press FIRE again."""
MAX_STEPS = 10**12
"""Far past any budget a study runs; past it a typo (a 30-digit --steps) would run for ever."""


def check_run_dir(run_dir: str) -> None:
    """A run directory that can never be created fails here, in one line, not in the middle of set-up."""
    import os
    from pathlib import Path

    path = Path(run_dir).expanduser()
    require(bool(str(run_dir).strip()), "run_dir", "a folder path", run_dir)
    require(all(len(part.encode()) <= 255 for part in path.parts), "run_dir", "made of names of at most 255 bytes",
            str(run_dir)[:80] + "...")
    for parent in [path, *path.parents]:
        if parent.exists():  # the nearest existing folder must be one this process can write in
            require(parent.is_dir(), "run_dir", "a folder, not under or at an existing file", run_dir)
            require(os.access(parent, os.W_OK), "run_dir", f"a folder you can write to ({parent} is not)", run_dir)
            break


WANDB_NAME = re.compile(r"[^/\\#?%:\s]{1,128}")
"""A W&B project or entity name."""


@dataclass(frozen=True)
class TrainConfig(Generic[AgentConfigT]):
    """One training run: which agent on which environment, for how long, and how it is recorded."""

    env: str = "classic:CartPole-v1"
    """Environment as `suite:task` (see `scalerl envs`)."""
    env_opts: EnvOptions = field(default_factory=EnvOptions)
    """Options of the environment suite (atari frame stack, dmc pixels, ...); unset keeps its default."""
    agent: str = "dqn"
    """Agent name (see `scalerl agents`); in Python also an Agent subclass, registered and recorded by its name."""
    algo: AgentConfigT = None  # type: ignore[assignment]  # None: filled with the agent's defaults
    """The chosen agent's hyperparameters (its config dataclass)."""
    net: NetConfig = field(default_factory=NetConfig)
    """Network shape shared by the agent's networks."""
    seed: int = 0
    """Seeds environments, network initialisation, exploration and replay sampling."""
    steps: int = 100_000
    """Environment steps to train for, summed over the vector environments."""
    schedule_steps: int | None = None
    """Steps that the schedules tied to the budget run over (prioritized replay's beta, PPO's and PQN's
    learning-rate annealing, PQN's epsilon, LEAST's start); None: `steps`. A run continued to a new budget
    (`scalerl train --resume RUN_DIR --steps N`) keeps its first budget here, so its schedules carry on as
    they were."""
    num_envs: int = 0
    """Environments stepped together in one vector environment (0: the suite's default, 1 for most, one
    per task for Meta-World's multi-task sets)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where networks live: auto picks cuda when a GPU is visible."""
    threads: int = 1
    """CPU threads for torch (0: torch's default, one per core). One is fastest for small networks
    and lets several runs share a machine without oversubscribing it."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """Arithmetic of the updates' forward and backward passes: fp32, or bf16 autocast (weights, optimizer
    state and losses stay fp32). On a CPU with AVX-512 BF16 a wide pixel network's update runs about 1.5x
    faster (benchmarks/pixel_update.py); that learning matches fp32 over seeds is not yet shown."""
    run_dir: str | None = None
    """Folder for this run; default runs/<env>/<agent>-s<seed>-<timestamp>."""
    log_every: int = 1_000
    """Environment steps between metric records."""
    eval_every: int = 10_000
    """Environment steps between deterministic evaluations (0: only at the end)."""
    eval_episodes: int = 0
    """Episodes per evaluation (0: 10, or 5 per task for Meta-World's task sets; there it must be a
    multiple of the task count, so every task is evaluated equally often)."""
    eval_num_envs: int = 0
    """Environments the evaluation episodes are spread over (0: min(eval_episodes, 8), or one per task
    for Meta-World's task sets)."""
    capture_video: bool = False
    """Film one episode of the deterministic policy at every evaluation into the run folder's videos/ (MP4;
    single-environment suites; needs the video extra)."""
    track: bool = False
    """Also log to Weights & Biases (needs the track extra; WANDB_MODE=offline keeps the run in RUN_DIR/wandb)."""
    wandb_project: str = "scalerl"
    """W&B project of a tracked run."""
    wandb_entity: str | None = None
    """W&B team or user of a tracked run (None: your default entity)."""
    hooks: list[str] = field(default_factory=list)
    """Hooks to run, by name (see `scalerl hooks`): diagnostics and interventions; in Python also Hook
    subclasses, registered and recorded by their names."""
    hook_opts: HookOptions = field(default_factory=HookOptions)
    """Options of each hook (--hook-opts.NAME.*)."""
    checkpoint_every: int = 25_000
    """Environment steps between checkpoints (0: only at the end)."""
    stop_at_return: float | None = None
    """Stop early once an evaluation's mean return reaches this (None: train for all `steps`). Solved-task
    checks need not run past the evaluation that solves them; summary.json says whether a run stopped so."""
    progress: Literal["auto", "on", "off"] = "auto"
    """Progress bar: auto shows it only on a terminal."""

    def __post_init__(self) -> None:
        if isinstance(self.agent, type):  # train(agent=MyAgent): the class itself, from a researcher's script
            object.__setattr__(self, "agent", register_agent(self.agent).name)
        object.__setattr__(self, "hooks", [register_hook(hook).name if isinstance(hook, type) else hook
                                           for hook in self.hooks])
        if isinstance(self.env_opts, dict):
            object.__setattr__(self, "env_opts", config_from_dict(EnvOptions, self.env_opts, "env_opts"))
        spec = parse_spec(self.env)
        object.__setattr__(self, "_env_spec", spec)
        suite, task = spec
        if suite.name == "gym" and task.startswith("ALE/"):  # make_env gives them; training on them is a trap
            game = task.removeprefix("ALE/").split("-v")[0]
            raise ConfigError(f"env gym:{task} gives raw 210x160 colour frames, which would train an MLP of "
                              f"millions of weights on pixels: use atari:{game} (Atari preprocessing, stacked "
                              f"frames, the Nature CNN) or cale:{game}")
        check_options(suite, self.env_opts.given())
        if self.capture_video:
            check_video(spec)
        for name in ("wandb_project", "wandb_entity"):  # W&B refuses names with these characters
            value = getattr(self, name)
            named = isinstance(value, str) and WANDB_NAME.fullmatch(value) is not None
            require(named or (value is None and name == "wandb_entity"), name,
                    "1 to 128 characters, none of / \\ # ? % : or a space", value)
        cls = agent_class(self.agent)
        if self.algo is None:
            object.__setattr__(self, "algo", cls.config_class())
        elif isinstance(self.algo, dict):
            object.__setattr__(self, "algo", config_from_dict(cls.config_class, self.algo, "algo"))
        require(
            isinstance(self.algo, cls.config_class),
            "algo",
            f"a {cls.config_class.__name__} for agent {self.agent!r}",
            type(self.algo).__name__,
        )
        if isinstance(self.net, dict):
            object.__setattr__(self, "net", config_from_dict(NetConfig, self.net, "net"))
        if isinstance(self.hook_opts, dict):
            object.__setattr__(self, "hook_opts", config_from_dict(HookOptions, self.hook_opts, "hook_opts"))
        check_hook_names(self.hooks)
        require(0 < self.steps <= MAX_STEPS, "steps", f"in [1, {MAX_STEPS:.0e}]", self.steps)
        if self.schedule_steps is not None:
            require(0 < self.schedule_steps <= MAX_STEPS, "schedule_steps", f"in [1, {MAX_STEPS:.0e}]",
                    self.schedule_steps)
        non_negative("num_envs", self.num_envs)
        require(0 <= self.threads <= MAX_THREADS, "threads", f"in [0, {MAX_THREADS}] (0: torch's default)",
                self.threads)
        positive("log_every", self.log_every)
        non_negative("eval_every", self.eval_every)
        require(0 <= self.eval_episodes <= MAX_EPISODES, "eval_episodes", f"in [0, {MAX_EPISODES:,}]",
                self.eval_episodes)
        require(0 <= self.num_envs <= MAX_ENVS, "num_envs", f"in [0, {MAX_ENVS}]", self.num_envs)
        require(0 <= self.eval_num_envs <= MAX_ENVS, "eval_num_envs", f"in [0, {MAX_ENVS}]", self.eval_num_envs)
        if (task_set := suite.task_set(task)) is not None:
            count, exact = task_set
            for name in ("num_envs", "eval_num_envs", "eval_episodes"):
                value = getattr(self, name)
                if name == "eval_episodes" or not exact:
                    require(value % count == 0, name, f"a multiple of {count} for {self.env} (its task count)", value)
                else:
                    require(value in (0, count), name, f"{count} for {self.env} (one environment per task)", value)
        non_negative("checkpoint_every", self.checkpoint_every)
        if self.stop_at_return is not None:
            require(math.isfinite(self.stop_at_return), "stop_at_return", "a finite return, or None",
                    self.stop_at_return)
        require(0 <= self.seed < 2**31, "seed", "in [0, 2**31)", self.seed)
        if self.run_dir is not None:
            check_run_dir(self.run_dir)
        check_magnitudes(self, "")  # last: a field's own range check says more

    @property
    def env_spec(self) -> EnvSpec:
        """`env` parsed and checked, once, when the config was made: what every environment is built from."""
        return self._env_spec

    def resolved(self) -> TrainConfig:
        """This config with its automatic values made explicit (what config.json records)."""
        suite, task = self.env_spec
        count = task_set[0] if (task_set := suite.task_set(task)) is not None else None
        episodes = self.eval_episodes or (5 * count if count else 10)
        algo = self.algo
        if getattr(algo, "eval_epsilon", 0.0) is None:  # the suite's evaluation protocol
            algo = dataclasses.replace(algo, eval_epsilon=ATARI_EVAL_EPSILON if suite.name in ("atari", "cale")
                                       else 0.0)
        return dataclasses.replace(self, num_envs=self.num_envs or count or 1, eval_episodes=episodes,
                                   eval_num_envs=self.eval_num_envs or count or min(episodes, 8), algo=algo)

    @property
    def schedule_budget(self) -> int:
        """The steps that budget-tied schedules run over."""
        return self.schedule_steps or self.steps

    def frame_stack(self) -> int | None:
        """How many frames the environment stacks into an observation, for suites with a frame_stack option
        (Atari, CALE, DMC pixels); None for the others."""
        import inspect

        suite = self.env_spec.suite
        if "frame_stack" not in suite.options():
            return None
        given = self.env_opts.given().get("frame_stack")
        if given is not None:
            return int(given)
        return inspect.signature(suite.make_vector or suite.make).parameters["frame_stack"].default

    def env_kwargs(self, training: bool) -> dict[str, Any]:
        """Suite options for make_env: training envs get all of them, evaluation envs are the plain game."""
        return self.env_opts.for_env(training, self.env_spec.suite.options())

    def tracking(self) -> tuple[str, str | None] | None:
        """W&B's (project, entity) for a tracked run, None otherwise."""
        return (self.wandb_project, self.wandb_entity) if self.track else None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return config_from_dict(cls, data, "")


def run_config_from(run_dir: Path, data: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of a run directory's config.json contents."""
    if "agent" not in data or "env" not in data:
        raise ConfigError(f"{run_dir} is not an RL run directory (its config.json names no agent and env)")
    return TrainConfig.from_dict(data)


BUDGET_KEYS = ("steps", "schedule_steps")


def written_schedule_budget(written: dict[str, Any]) -> Any:
    """`TrainConfig.schedule_budget` of a config.json's contents."""
    return written.get("schedule_steps") or written.get("steps")


def continued_config(written: dict[str, Any], steps: int) -> dict[str, Any]:
    """A run's config.json continued to a new budget: it now stops at `steps`, and its schedules keep the
    budget they were running over."""
    return {**written, "steps": steps, "schedule_steps": written_schedule_budget(written)}


def same_training(saved: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether a checkpoint written under config `saved` continues under `current`: the configs may differ in
    where the run stops, never in how it trains (schedules included)."""
    def training(config: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in config.items() if key not in BUDGET_KEYS}

    return training(saved) == training(current) and written_schedule_budget(saved) == written_schedule_budget(current)
