"""A run session: what every training loop stands on, the RL loops and ReaLchords' alike.

A session owns one run directory (claimed for a new run, refused if it already holds one, reopened
to resume), seeds every random stream, picks the device, opens the logger, and writes and reads the
checkpoint. For RL runs it also holds the training and evaluation environments and runs evaluations.
Whatever a loop keeps (its counters, the agent, the buffer, the hooks) goes into the checkpoint as named
parts beside the environments and the global RNG state; the loop puts them back itself.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import operator
import os
import pickle
import random
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from scalerl.checkpoint import (
    CheckpointError,
    global_rng_state,
    has_checkpoint,
    load_checkpoint,
    restore_global_rng_state,
    save_checkpoint,
)
from scalerl.checks import ConfigError, ScalerlWarning, first_line, flatten, read_json
from scalerl.envs import EnvSpec, make_env, task_members
from scalerl.envs.snapshot import load_envs
from scalerl.evaluation import run_episodes
from scalerl.logger import RunLogger, WandbTracker
from scalerl.provenance import provenance
from scalerl.video import record_episode

EVAL_SEED_OFFSET = 1_000_000
"""Evaluation environments are seeded apart from training ones, identically at every evaluation."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but torch sees no GPU; use --device cpu or auto")
    return torch.device(name)


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The config.json of a run directory, as plain data."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run directory: {path.name} is missing")
    return read_json(path)


KEPT_ALLOCATION_BYTES = 32 * 1024 * 1024
"""glibc's largest mmap threshold: blocks up to this size come from the heap and stay there once freed."""


def keep_freed_memory() -> None:
    """Ask glibc's malloc to keep freed blocks of up to 32 MiB for reuse instead of returning them to the
    system. PyTorch's CPU allocator does not cache, so an update that makes and frees a few 8 MB temporaries
    (a wide noisy layer's weights) otherwise maps fresh pages and faults each one in on every update: that
    took Rainbow's update on MinAtar at width 4 from 27 to 41 ms. A no-op where malloc is not glibc's."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(-3, KEPT_ALLOCATION_BYTES)  # M_MMAP_THRESHOLD: larger blocks only are mapped on their own
    mallopt(-1, 8 * KEPT_ALLOCATION_BYTES)  # M_TRIM_THRESHOLD: the heap's free top is kept up to this size


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Each dotted key where two configs differ, with both values, for an error message (the analysis's
    `differing_keys` compares many runs and leaves bookkeeping keys out; this names every change)."""
    saved, current = flatten(saved), flatten(current)
    return [f"{key}: {saved.get(key)!r} in the checkpoint, {current.get(key)!r} in config.json"
            for key in sorted(saved.keys() | current.keys()) if saved.get(key) != current.get(key)]


class RunDirTaken(ConfigError):
    """The run directory already holds a run (or another process claimed it first)."""


class RunDirBusy(ConfigError):
    """Another process is training in the run directory (a second resume, or a sweep trial retried while
    the attempt on a lost node still runs)."""


def lock_run_dir(run_dir: Path) -> Any:
    """An exclusive lock on the run's config.json (the open file that holds it; closing it lets go), or None
    if another process holds it. It is an flock: the kernel (or the NFS server) drops it when its holder
    dies, however that happens. Opened for writing, as NFS needs for an exclusive lock."""
    handle = open(run_dir / "config.json", "r+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


class Session:
    """One run's directory, seeds, device, logger and checkpoints (and, for RL runs, its environments).

    `config` is the run's resolved config as plain data: written to config.json for a new run, and
    compared with the checkpoint's on resume. `resume=True` reopens the directory; its checkpoint is
    then in `self.checkpoint` (None if the run was killed before its first one: it starts afresh).
    `continues(saved, config)` says whether a checkpoint written under config `saved` may go on under
    `config`; by default only an identical config may.
    """

    def __init__(self, run_dir: str | Path, config: dict[str, Any], *, seed: int, device: str = "auto",
                 threads: int = 1, resume: bool = False,
                 continues: Callable[[dict[str, Any], dict[str, Any]], bool] = operator.eq,
                 checkpoint_types: Sequence[type] = (), tracking: tuple[str, str | None] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.config = config
        self.continues = continues
        self.checkpoint_types = tuple(checkpoint_types)
        self.checkpoint: dict[str, Any] | None = None
        self.created: list[Path] = []
        self.device = resolve_device(device)
        self.resumed = resume
        self._lock_handle: Any = None
        if resume:
            self._lock()
            self.checkpoint = self._reopen()
        else:
            self._claim()
            self._lock()
        if threads:
            torch.set_num_threads(threads)
            threadpool_limits(threads)  # numpy's BLAS too: acting runs through numpy (NumpyForward)
        if self.device.type == "cpu":
            keep_freed_memory()
        seed_everything(seed)
        self.seed = seed
        self.envs: Any = None
        self.eval_envs: Any = None
        self.filming = True
        """Whether videos can still be made (a failed one turns them off for the rest of the run)."""
        # Resuming drops records written after the checkpoint (all of them when there was none yet).
        resume_step = self.checkpoint["step"] if self.checkpoint else -1 if resume else None
        self.logger = RunLogger(self.run_dir, resume_step=resume_step)
        if tracking is not None:  # W&B (project, entity)
            try:
                self.logger.tracker = WandbTracker(self.run_dir, config, *tracking)
            except ConfigError:
                self.discard()
                raise
        self.started = time.perf_counter()

    # -- the run directory -------------------------------------------------------------------------

    def _claim(self) -> None:
        """Take the directory for a new run: config.json is created exclusively, so a directory that
        holds a run (or that another process claims first) is refused."""
        self.created = [path for path in [self.run_dir, *self.run_dir.parents] if not path.exists()]
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.run_dir / "config.json", "x") as handle:
                handle.write(json.dumps(self.config, indent=2, sort_keys=True) + "\n")
        except FileExistsError:
            raise RunDirTaken(f"{self.run_dir} already holds a run; resume it with --resume {self.run_dir} "
                              "or pick another --run-dir") from None
        self.write_json("provenance.json", provenance())

    def _lock(self) -> None:
        """Hold the run directory's lock while the session is open, so two processes never train in it."""
        self._lock_handle = lock_run_dir(self.run_dir)
        if self._lock_handle is None:
            raise RunDirBusy(f"{self.run_dir} is in use: another process is training there; wait for it to end "
                             "or stop it")

    def _reopen(self) -> dict[str, Any] | None:
        path = self.checkpoint_path
        if not has_checkpoint(path):
            return None
        checkpoint = load_checkpoint(path, self.checkpoint_types)
        if not self.continues(checkpoint.get("config"), self.config):
            differences = ", ".join(config_differences(checkpoint.get("config") or {}, self.config)[:3])
            raise CheckpointError(f"checkpoint in {self.run_dir} was written by a different config than config.json "
                                  f"({differences})")
        return checkpoint

    def rewrite_config(self, config: dict[str, Any]) -> None:
        """Replace the reopened run's config.json (it goes on under a config its checkpoint `continues`
        under), through the open file that holds the run's lock; a summary.json from the run's earlier end
        is removed, as the run is not finished under the new config."""
        assert self._lock_handle is not None and self.continues(self.config, config)
        self._lock_handle.seek(0)
        self._lock_handle.truncate()
        self._lock_handle.write(json.dumps(config, indent=2, sort_keys=True) + "\n")
        self._lock_handle.flush()
        os.fsync(self._lock_handle.fileno())
        (self.run_dir / "summary.json").unlink(missing_ok=True)
        self.config = config

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / "latest.pt"

    # -- environments and evaluation (RL runs) -----------------------------------------------------

    def open_envs(self, env: EnvSpec, num_envs: int, eval_num_envs: int, train_options: dict[str, Any],
                  eval_options: dict[str, Any]) -> None:
        """Training envs seeded with the run's seed; evaluation envs seeded apart, re-seeded identically at
        every evaluation, so two evaluations differ only by the policy."""
        self.envs = make_env(env, num_envs, self.seed, **train_options)
        self.eval_envs = make_env(env, eval_num_envs, self.seed + EVAL_SEED_OFFSET, **eval_options)
        self.tasks = task_members(env, self.eval_envs)
        self.eval_spec, self.eval_options = env, eval_options

    def film(self, agent: Any, step: int) -> None:
        """One episode of the deterministic policy from the evaluation seed, as videos/step-N.mp4. A video that
        cannot be made (no renderer on this machine) is a warning, and the run goes on without videos."""
        path = self.run_dir / "videos" / f"step-{step:09d}.mp4"
        try:
            record_episode(agent, self.eval_spec, self.seed + EVAL_SEED_OFFSET, self.eval_options, path)
        except Exception as error:  # noqa: BLE001  (rendering stacks fail in many ways; training must not)
            warnings.warn(f"no video at step {step:,}: {first_line(error)}; the run goes on without videos",
                          ScalerlWarning, stacklevel=2)
            self.filming = False

    def evaluate(self, agent: Any, episodes: int, step: int, wall_time: float) -> dict[str, Any]:
        """`episodes` deterministic episodes on the evaluation envs, logged to eval.jsonl (per task too, for a
        multi-task set)."""
        result = run_episodes(agent, self.eval_envs, episodes, self.seed + EVAL_SEED_OFFSET)
        return self.logger.log_eval(step, result.returns, result.lengths, round(wall_time, 3),
                                    result.success_rate(self.tasks), result.by_task(self.tasks))

    # -- checkpoints -------------------------------------------------------------------------------

    def save(self, step: int, wall_time: float, **parts: Any) -> None:
        """Write the checkpoint atomically: the named parts, the environments (pickled where they can
        be) and the global RNG state."""
        envs_state = None
        if self.envs is not None:
            try:
                envs_state = pickle.dumps(self.envs)
            except (pickle.PicklingError, TypeError, AttributeError):
                envs_state = None
        save_checkpoint(self.checkpoint_path, {"config": self.config, "step": step, "wall_time": wall_time,
                                               "envs": envs_state, "rng": global_rng_state(), **parts})

    def restore_envs(self) -> bool:
        """Put the checkpoint's environments back; False where they could not be pickled (the caller
        restarts their episodes)."""
        assert self.checkpoint is not None
        if self.checkpoint["envs"] is None:
            return False
        self.envs.close()
        self.envs = load_envs(self.checkpoint["envs"])
        return True

    def restore_rng(self) -> None:
        """Put the global RNG state back: call it last, after everything built on resume drew from it."""
        assert self.checkpoint is not None
        restore_global_rng_state(self.checkpoint["rng"])

    # -- records -----------------------------------------------------------------------------------

    def log(self, step: int, record: dict[str, float]) -> None:
        self.logger.log_metrics(step, record)

    def write_json(self, name: str, data: Any) -> None:
        (self.run_dir / name).write_text(json.dumps(data, indent=2) + "\n")

    def finish(self, summary: dict[str, Any]) -> dict[str, Any]:
        """Write summary.json and close everything the session opened."""
        summary = {"run_dir": str(self.run_dir), **summary}
        self.write_json("summary.json", summary)
        self.close()
        return summary

    def discard(self) -> None:
        """Undo claiming a new run whose set-up failed (e.g. an agent that does not fit the environment):
        close, and remove what the session wrote and the folders it created, so nothing is left behind.
        A resumed run is only closed."""
        import shutil

        self.close()
        if self.resumed:
            return
        for name in ("config.json", "metrics.jsonl", "eval.jsonl", "parameters.json", "provenance.json", "wandb_id"):
            (self.run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(self.run_dir / "tb", ignore_errors=True)
        for folder in self.created:
            if folder.exists() and not any(folder.iterdir()):
                folder.rmdir()

    def close(self) -> None:
        """Close the logger and the environments and let go of the run directory; closing twice is harmless."""
        self.logger.close()
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None
        for envs in (self.envs, self.eval_envs):
            if envs is not None:
                envs.close()
        self.envs = self.eval_envs = None
