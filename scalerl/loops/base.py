"""What the off-policy and on-policy loops share: episode statistics, the log / evaluate / checkpoint
schedule, the progress bar, checkpoints of the loop's parts, and the summary at the end."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from scalerl.agents.base import Agent
from scalerl.checkpoint import CheckpointError
from scalerl.checks import ConfigError
from scalerl.hooks.base import Episode, HookList
from scalerl.nets import parameter_count
from scalerl.progress import progress
from scalerl.session import Session


class TrainingDiverged(ConfigError):
    """A loss or a weight became NaN or infinite; the run stops and its last checkpoint is kept."""


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
    best_eval_step: int = 0
    last_eval: float | None = None
    reached_stop_return: bool = False
    episode_returns: np.ndarray | None = None
    episode_lengths: np.ndarray | None = None
    finished_returns: list[float] = field(default_factory=list)
    finished_lengths: list[int] = field(default_factory=list)
    update_metrics: dict[str, Any] = field(default_factory=dict)
    episode_steps: list[dict[str, list]] | None = None
    """Per environment, the running episode's rewards and act() extras step by step (only when a hook reads
    whole episodes)."""


class Loop:
    """The plumbing around a training loop. A subclass's `run` is the algorithm's loop itself: it steps the
    environments, calls `record_step` after each vector step, `record_update` after each update, and
    `periodic` where logging, evaluation and checkpoints may happen; `parts` names what else it checkpoints."""

    can_stop_episodes = False
    """Whether the loop lets hooks end episodes (stop_episodes)."""

    def __init__(self, config: Any, session: Session, agent: Agent, hooks: HookList) -> None:
        self.config, self.session, self.agent, self.hooks = config, session, agent, hooks
        stopping = [hook.name for hook in hooks.hooks if hook.stops_episodes]
        if stopping and not self.can_stop_episodes:
            raise ConfigError(f"hook {stopping[0]} ends episodes, "
                              f"which the {agent.loop} loop of {agent.name} does not allow")
        agent.hooks = hooks
        count = config.num_envs
        self.state = LoopState(next_log=config.log_every, next_eval=config.eval_every or config.steps,
                               next_checkpoint=config.checkpoint_every or config.steps,
                               episode_returns=np.zeros(count), episode_lengths=np.zeros(count, dtype=np.int64))
        self.state.episode_steps = self.empty_episode_steps() if hooks.wants_episodes else None
        self.obs, _ = session.envs.reset()
        self.last_record: dict[str, float] = {}

    @property
    def envs(self) -> Any:
        return self.session.envs

    # -- checkpoints -----------------------------------------------------------------------------

    def parts(self) -> dict[str, Any]:
        """What this loop checkpoints besides the counters, the agent and the hooks (e.g. its buffer)."""
        return {}

    def load_parts(self, checkpoint: dict[str, Any]) -> None:
        pass

    def episodes_cut(self) -> None:
        """The environments' episodes were cut short by a resume (they could not be restored)."""

    def save(self) -> None:
        self.read_update_metrics()
        self.check_finite()
        self.session.save(self.state.step, self.state.wall_time, loop=self.state, agent=self.agent.state_dict(),
                          hooks=self.hooks.state_dict(), obs=self.obs, **self.parts())

    def restore(self) -> None:
        """Continue from the session's checkpoint: agent, hooks, the loop's parts, counters, environments,
        and the global RNG state last."""
        checkpoint = self.session.checkpoint
        assert checkpoint is not None
        try:
            self.agent.load_state_dict(checkpoint["agent"])
            self.hooks.load_state_dict(checkpoint["hooks"])
            self.load_parts(checkpoint)
        except (KeyError, RuntimeError, ValueError) as error:
            raise CheckpointError(f"checkpoint does not match this run's agent: {error}") from None
        self.state = checkpoint["loop"]
        if self.session.restore_envs():
            self.obs = checkpoint["obs"]
        else:  # environments that cannot be pickled restart their episodes; the rest resumes exactly
            self.obs, _ = self.envs.reset(seed=self.config.seed + self.state.step)
            self.state.episode_returns[:] = 0
            self.state.episode_lengths[:] = 0
            if self.state.episode_steps is not None:
                self.state.episode_steps = self.empty_episode_steps()
            self.episodes_cut()
        self.session.restore_rng()

    # -- what each step and update leave behind --------------------------------------------------

    def empty_episode_steps(self) -> list[dict[str, list]]:
        return [{"rewards": [], "extras": []} for _ in range(self.config.num_envs)]

    def record_step(self, rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
                    extras: dict[str, np.ndarray]) -> None:
        """Count one vector step: running returns and lengths, finished episodes (handed to the hooks)."""
        state = self.state
        state.step += self.config.num_envs
        state.episode_returns += rewards
        state.episode_lengths += 1
        done = terminated | truncated
        if state.episode_steps is not None:
            for index, steps in enumerate(state.episode_steps):
                steps["rewards"].append(float(rewards[index]))
                steps["extras"].append({key: value[index] for key, value in extras.items()})
        if done.any():
            for index in np.flatnonzero(done):
                state.finished_returns.append(float(state.episode_returns[index]))
                state.finished_lengths.append(int(state.episode_lengths[index]))
                if state.episode_steps is not None:
                    episode = self.finished_episode(index, bool(terminated[index]), bool(truncated[index]))
                    self.hooks.on_episode_end(episode)
            state.episodes += int(done.sum())
            state.episode_returns[done] = 0
            state.episode_lengths[done] = 0

    def finished_episode(self, index: int, terminated: bool, truncated: bool) -> Episode:
        steps = self.state.episode_steps[index]
        extras = {key: np.stack([step[key] for step in steps["extras"]])
                  for key in (steps["extras"][0] if steps["extras"] else {})}
        episode = Episode(index, np.array(steps["rewards"]), extras, terminated, truncated)
        self.state.episode_steps[index] = {"rewards": [], "extras": []}
        return episode

    def update(self, batch: Any) -> dict[str, torch.Tensor]:
        """One agent update, in the run's precision (bf16 autocast where asked)."""
        if self.config.precision == "bf16":
            with torch.autocast(self.session.device.type, dtype=torch.bfloat16):
                return self.agent.update(batch)
        return self.agent.update(batch)

    def record_update(self, metrics: dict[str, torch.Tensor]) -> None:
        self.state.updates += 1
        self.state.update_metrics = metrics
        if self.hooks:
            self.hooks.after_update(metrics)

    def read_update_metrics(self) -> None:
        """Turn the last update's tensors into floats: the only host sync, done when logging or saving."""
        self.state.update_metrics = {key: float(value) for key, value in self.state.update_metrics.items()}

    # -- logging, evaluation, checkpoints --------------------------------------------------------

    def begin(self) -> None:
        config, state = self.config, self.state
        self.bar = progress(total=config.steps, initial=state.step, unit="step", setting=config.progress)
        # No terminal to draw a bar on (a log file, a job scheduler): a line per evaluation instead of silence.
        self.eval_lines = config.progress == "auto" and self.bar.disable
        self.last_tick, self.loop_seconds, self.sps_from_step = time.perf_counter(), 0.0, state.step
        self.session.write_json("parameters.json", self.parameter_counts())

    def tick(self, in_loop: bool) -> None:
        """Add the time since the last tick to the run's wall time, and to the loop time that
        steps/second is measured over unless it was spent evaluating or checkpointing."""
        now = time.perf_counter()
        self.state.wall_time += now - self.last_tick
        if in_loop:
            self.loop_seconds += now - self.last_tick
        self.last_tick = now

    @property
    def finished(self) -> bool:
        """All steps are taken, or an evaluation reached `stop_at_return`."""
        return self.state.step >= self.config.steps or self.state.reached_stop_return

    def periodic(self) -> None:
        """Log, evaluate and checkpoint when their step comes (and all three at the last step)."""
        config, state = self.config, self.state
        logged = state.step >= state.next_log or self.finished
        if logged:
            self.log_now()
        if state.step >= state.next_eval or self.finished:
            self.tick(in_loop=True)
            record = self.session.evaluate(self.agent, config.eval_episodes, state.step, state.wall_time)
            state.last_eval = record["return_mean"]
            if record["return_mean"] > state.best_eval:
                state.best_eval, state.best_eval_step = record["return_mean"], state.step
            if config.capture_video and self.session.filming:
                self.session.film(self.agent, state.step)
            self.tick(in_loop=False)
            if self.eval_lines:
                print(f"step {state.step:,}/{config.steps:,}: evaluation return {state.last_eval:.1f} (best "
                      f"{state.best_eval:.1f} at step {state.best_eval_step:,})", file=sys.stderr, flush=True)
            state.next_eval = self.advance(state.next_eval, config.eval_every or config.steps)
            if config.stop_at_return is not None and state.last_eval >= config.stop_at_return:
                state.reached_stop_return = True
                if not logged:
                    self.log_now()
        if state.step >= state.next_checkpoint or self.finished:
            self.tick(in_loop=True)
            self.save()
            self.tick(in_loop=False)
            state.next_checkpoint = self.advance(state.next_checkpoint, config.checkpoint_every or config.steps)

    def log_now(self) -> None:
        config, state = self.config, self.state
        self.tick(in_loop=True)
        sps = (state.step - self.sps_from_step) / max(self.loop_seconds, 1e-9)
        self.loop_seconds, self.sps_from_step = 0.0, state.step
        self.log(sps)
        state.next_log = self.advance(state.next_log, config.log_every)
        self.bar.update(state.step - self.bar.n)
        self.bar.set_postfix_str(self.progress_text(sps), refresh=False)

    def advance(self, due: int, interval: int) -> int:
        """The next due step after the current one (a rollout may step past several intervals at once)."""
        while due <= self.state.step:
            due += interval
        return due

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
        if self.hooks:
            record.update(self.hooks.on_log())
        self.last_record = record
        self.session.log(state.step, record)
        self.check_finite()

    def check_finite(self) -> None:
        """Stop at the first NaN or infinity in the last update's metrics or in the weights, looked for when
        logging and before each checkpoint (when the loop reads the device anyway), so no checkpoint ever
        holds a diverged network."""
        step = self.state.step
        for name, value in self.state.update_metrics.items():
            if not math.isfinite(value):
                raise TrainingDiverged(self.diverged(f"{name} is {value}", step))
        for name, module in self.agent.modules().items():
            parameters = [p.detach() for p in module.parameters()]
            if parameters and not torch.isfinite(torch.stack(torch._foreach_norm(parameters)).sum()):
                raise TrainingDiverged(self.diverged(f"the weights of {name} are not finite", step))

    def diverged(self, what: str, step: int) -> str:
        saved = self.session.checkpoint_path
        kept = f"the last checkpoint ({saved}) is kept" if saved.exists() else "no checkpoint was written"
        return f"training diverged at step {step}: {what}; {kept} (lower the learning rate or clip gradients)"

    def progress_text(self, sps: float) -> str:
        text = f"sps={sps:,.0f}"
        if "episode_return" in self.last_record:
            text = f"return={self.last_record['episode_return']:.1f} " + text
        if self.state.last_eval is not None:
            text = f"eval={self.state.last_eval:.1f} " + text
        return text

    def parameter_counts(self) -> dict[str, int]:
        return {name: parameter_count(module) for name, module in self.agent.modules().items()}

    def end(self) -> dict[str, Any]:
        self.bar.close()
        state, config = self.state, self.config
        return self.session.finish({
            "env": config.env,
            "agent": config.agent,
            "seed": config.seed,
            "device": str(self.session.device),
            "steps": state.step,
            "episodes": state.episodes,
            "updates": state.updates,
            "parameters": self.parameter_counts(),
            "final_eval_return": state.last_eval,
            "best_eval_return": state.best_eval,
            "best_eval_step": state.best_eval_step,
            "stopped_at_return": state.reached_stop_return,
            "wall_time": round(state.wall_time, 2),
            "sps": round(state.step / max(state.wall_time, 1e-9), 1),
        })
