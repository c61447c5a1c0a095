"""Sweeps: a grid or a list of config overrides x seeds, run as ordinary runs on Ray.

A sweep file (TOML, or YAML) names the shared settings, what varies, and the seeds:

    seeds = [0, 1, 2]
    [base]                       # TrainConfig fields; dotted keys reach nested ones
    env = "minatar:breakout"
    steps = 200000
    [grid]                       # every combination of these values...
    "net.bottleneck" = ["flatten", "gap"]
    "net.width" = [1, 4]
    # ...or [[variants]] tables, one override set each (and an optional `name` for its folder),
    # instead of (or as well as) a grid

Each (variant, seed) is a trial whose run directory is `<sweep dir>/<variant>/seed<k>`, where <variant> is
the variant's `name` or its key=value pairs. Started
again, a sweep skips finished trials (summary.json), resumes the ones with a checkpoint, and
starts the rest afresh. Trials that fail are retried (from their checkpoint) up to `max_retries`
times and then reported; a trial whose worker or node is lost is run again from its checkpoint without
using up those retries. Ray runs them: a local Ray with `workers` CPUs by default, or the cluster at
`address` (whose nodes must all see the sweep folder at the same path: checked before anything runs);
`gpus_per_run` > 0 puts each trial on its own share of a GPU with device cuda.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import re
import shutil
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalerl.analysis import write_report
from scalerl.checks import ConfigError, first_line, non_negative, positive, require
from scalerl.cluster import check_shared_folder, start_ray, trial_nodes
from scalerl.config import TrainConfig
from scalerl.run import resume, train
from scalerl.session import RunDirBusy, lock_run_dir


def nest(dotted: dict[str, Any]) -> dict[str, Any]:
    """{"net.width": 2, "env": "x"} -> {"net": {"width": 2}, "env": "x"}."""
    nested: dict[str, Any] = {}
    for key, value in dotted.items():
        *parents, last = key.split(".")
        target = nested
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                raise ConfigError(f"sweep key {key!r} goes inside {parent!r}, which is not a group of settings")
        target[last] = value
    return nested


def dotted(nested: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        if isinstance(value, dict):
            flat.update(dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def folder_name(text: str) -> str:
    """`text` with the characters paths dislike replaced."""
    return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", text)


def value_name(value: Any) -> str:
    """A setting's value as a folder name shows it: a list as its items joined by + (an empty one as none)."""
    if isinstance(value, list | tuple):
        return "+".join(value_name(item) for item in value) or "none"
    return str(value)


def trial_name(overrides: dict[str, Any]) -> str:
    """A folder name for a variant: its key=value pairs (`hooks=redo+activity,net.width=2`)."""
    return folder_name(",".join(f"{key}={value_name(value)}" for key, value in overrides.items()) or "base")


@dataclass(frozen=True)
class Trial:
    name: str
    seed: int
    config: dict[str, Any]
    """TrainConfig fields as nested plain data, run_dir included."""

    @property
    def run_dir(self) -> Path:
        return Path(self.config["run_dir"])


@dataclass(frozen=True)
class SweepSpec:
    """What to run: shared settings, the variants (grid product and listed), and the seeds."""

    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    variants: list[dict[str, Any]] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    max_retries: int = 1

    def __post_init__(self) -> None:
        require(len(self.seeds) > 0, "seeds", "a non-empty list", self.seeds)
        non_negative("max_retries", self.max_retries)
        for owned in ("run_dir", "seed", "progress"):  # set per trial by the sweep itself
            if owned in self.base or owned in self.grid or any(owned in variant for variant in self.variants):
                raise ConfigError(f"{owned} is set by the sweep for each trial; "
                                  + ("use -o SWEEP_DIR" if owned == "run_dir" else
                                     "use seeds = [...]" if owned == "seed" else "remove it"))
        for key, values in self.grid.items():
            require(isinstance(values, list) and len(values) > 0, f"grid.{key}", "a non-empty list of values", values)

    def overrides(self) -> list[tuple[str, dict[str, Any]]]:
        """(folder name, overrides) of every variant: a listed variant's `name` if it gives one, else its
        key=value pairs."""
        keys = list(self.grid)
        combos = [dict(zip(keys, values)) for values in itertools.product(*self.grid.values())] if keys else []
        named = []
        for variant in self.variants:
            overrides = dotted({key: value for key, value in variant.items() if key != "name"})
            require(isinstance(variant.get("name", ""), str), "variants.name", "a string", variant.get("name"))
            named.append((folder_name(variant["name"]) if "name" in variant else trial_name(overrides), overrides))
        return [(trial_name(combo), combo) for combo in combos] + named or [("base", {})]

    def trials(self, sweep_dir: Path) -> list[Trial]:
        """Every (variant, seed), each validated as a TrainConfig now, before anything runs."""
        trials = []
        for name, overrides in self.overrides():
            for seed in self.seeds:
                flat = {**dotted(self.base), **overrides, "seed": seed,
                        "run_dir": str(sweep_dir / name / f"seed{seed}"), "progress": "off"}
                config = nest(flat)
                try:
                    TrainConfig.from_dict(config)
                except ConfigError as error:
                    raise ConfigError(f"trial {name} seed {seed}: {error}") from None
                trials.append(Trial(name, seed, config))
        names = [(t.name, t.seed) for t in trials]
        if len(set(names)) != len(names):
            raise ConfigError("two variants of the sweep are identical; list each one once")
        return trials


def load_sweep_file(path: Path) -> SweepSpec:
    if not path.is_file():
        raise ConfigError(f"sweep file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as error:  # the parsers' own error types differ; all mean a malformed file
        raise ConfigError(f"cannot read {path}: {first_line(error)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a table of base, grid, variants, seeds, max_retries")
    unknown = set(data) - {"base", "grid", "variants", "seeds", "max_retries"}
    if unknown:
        raise ConfigError(f"unknown sweep file keys {', '.join(sorted(unknown))}; "
                          "valid: base, grid, variants, seeds, max_retries")
    if not data.get("base") and not data.get("grid") and not data.get("variants"):
        raise ConfigError(f"{path} sets no base, grid or variants: it would sweep the default run; "
                          "say what to run")
    return SweepSpec(**data)


def trial_state(trial: Trial) -> str:
    """finished, resumable (has a checkpoint), or new. A folder with neither is a trial killed before
    its first checkpoint: it is cleared and started again."""
    if (trial.run_dir / "summary.json").is_file():
        return "finished"
    if (trial.run_dir / "checkpoints" / "latest.pt").is_file():
        return "resumable"
    if trial.run_dir.exists():
        shutil.rmtree(trial.run_dir)
    return "new"


NODE_LOSS_RETRIES = 3
"""How many times Ray runs a trial again (from its checkpoint) when the worker or node running it is lost;
apart from the trial's own `max_retries`, which count errors the trial raised."""

BUSY_WAIT_SECONDS = 120.0
"""How long a retried trial waits for its run directory while an attempt on a lost node is still dying."""


def execute_trial(config: dict[str, Any]) -> dict[str, Any]:
    """Run one trial to the end (in a Ray worker), resuming it if it has a checkpoint, and return its summary
    with the node it ran on. Each attempt appends {node, resume, time} to the run directory's attempts.jsonl."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    deadline = time.monotonic() + BUSY_WAIT_SECONDS
    while True:
        try:
            return {**run_attempt(config, node), "node": node}
        except RunDirBusy:
            if time.monotonic() > deadline:
                raise
            time.sleep(2.0)


def run_attempt(config: dict[str, Any], node: str) -> dict[str, Any]:
    run_dir = Path(config["run_dir"])
    resuming = (run_dir / "checkpoints" / "latest.pt").is_file()
    if run_dir_in_use(run_dir):
        raise RunDirBusy(f"{run_dir} is in use by another attempt")
    attempts = run_dir / "attempts.jsonl"
    if not resuming and run_dir.exists():  # killed before its first checkpoint: start again, keep its history
        history = attempts.read_bytes() if attempts.is_file() else b""
        shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        if history:
            attempts.write_bytes(history)
    run_dir.mkdir(parents=True, exist_ok=True)
    append_line(attempts, json.dumps({"node": node, "resume": resuming, "time": time.strftime("%Y-%m-%d %H:%M:%S")}))
    return resume(run_dir) if resuming else train(TrainConfig.from_dict(config))


def append_line(path: Path, line: str) -> None:
    """Append one line in a single write to a file opened for appending: two attempts writing at once (on
    a shared folder) never interleave within a line."""
    handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(handle, (line + "\n").encode())
    finally:
        os.close(handle)


def run_dir_in_use(run_dir: Path) -> bool:
    """Whether a session holds the run directory's lock."""
    if not (run_dir / "config.json").is_file():
        return False
    handle = lock_run_dir(run_dir)
    if handle is None:
        return True
    handle.close()
    return False


def run_sweep(spec: SweepSpec, sweep_dir: str | Path, *, workers: int | None = None, address: str | None = None,
              gpus_per_run: float = 0.0, report: bool = True, log=print) -> dict[str, Any]:
    """Run (or continue) a sweep; returns {"finished": [...], "failed": [...]} by trial folder."""
    if workers is not None:
        positive("workers", workers)
    non_negative("gpus_per_run", gpus_per_run)
    if gpus_per_run and address is None:
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--gpus-per-run needs a GPU, and torch sees none on this machine: leave it out, or "
                              "give --address of a Ray cluster with GPUs")
    sweep_dir = Path(sweep_dir)
    trials = spec.trials(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with driver_lock(sweep_dir):
        return drive(spec, sweep_dir, trials, workers, address, gpus_per_run, report, log)


@contextlib.contextmanager
def driver_lock(sweep_dir: Path) -> Iterator[None]:
    """One driver per sweep directory: a second one would delete the first one's running trials (a trial
    without a checkpoint is cleared and restarted). The lock is an flock on sweep_dir/.driver.lock, so it
    dies with its process, however that process ends."""
    handle = open(sweep_dir / ".driver.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ConfigError(f"another sweep driver ({holder}) is running on {sweep_dir}; "
                          "wait for it or stop it") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def drive(spec: SweepSpec, sweep_dir: Path, trials: list[Trial], workers: int | None, address: str | None,
          gpus_per_run: float, report: bool, log) -> dict[str, Any]:
    manifest = {"base": spec.base, "grid": spec.grid, "variants": spec.variants, "seeds": spec.seeds,
                "max_retries": spec.max_retries, "trials": [str(t.run_dir.relative_to(sweep_dir)) for t in trials]}
    (sweep_dir / "sweep.json").write_text(json.dumps(manifest, indent=2) + "\n")
    states = {t.run_dir: trial_state(t) for t in trials}
    todo = [t for t in trials if states[t.run_dir] != "finished"]
    log(f"sweep {sweep_dir}: {len(trials)} trials, {len(trials) - len(todo)} finished, "
        f"{sum(s == 'resumable' for s in states.values())} to resume, "
        f"{sum(s == 'new' for s in states.values())} to start")
    failures: dict[Path, str] = {}
    nodes: dict[str, str] = {}
    if todo:
        start_ray(address, workers)
        import ray

        if address:
            check_shared_folder(ray, sweep_dir, trial_nodes(ray, gpus_per_run))
        options: dict[str, Any] = {"num_cpus": 1, "max_retries": NODE_LOSS_RETRIES}
        if gpus_per_run:
            options["num_gpus"] = gpus_per_run
        remote = ray.remote(execute_trial).options(**options)

        def submit(trial: Trial):
            config = dict(trial.config, threads=1, **({"device": "cuda"} if gpus_per_run else {}))
            return remote.remote(config)

        attempts = {t.run_dir: 0 for t in todo}
        pending = {submit(t): t for t in todo}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            trial = pending.pop(done[0])
            try:
                summary = ray.get(done[0])
                nodes[str(trial.run_dir.relative_to(sweep_dir))] = summary["node"]
                log(f"finished {trial.run_dir.relative_to(sweep_dir)} on node {summary['node'][:8]}: "
                    f"final eval {summary['final_eval_return']}")
                failures.pop(trial.run_dir, None)
            except Exception as error:  # a trial's failure must not stop the sweep: it is retried, then reported
                message = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
                failures[trial.run_dir] = message
                attempts[trial.run_dir] += 1
                if attempts[trial.run_dir] <= spec.max_retries:
                    log(f"failed {trial.run_dir.relative_to(sweep_dir)} ({message}); "
                        f"retry {attempts[trial.run_dir]}/{spec.max_retries}")
                    pending[submit(trial)] = trial
                else:
                    log(f"failed {trial.run_dir.relative_to(sweep_dir)} ({message}); no retries left")
    finished = [str(t.run_dir.relative_to(sweep_dir)) for t in trials if (t.run_dir / "summary.json").is_file()]
    failed = [{"trial": str(path.relative_to(sweep_dir)), "error": error} for path, error in failures.items()]
    result = {"sweep_dir": str(sweep_dir), "finished": finished, "failed": failed, "nodes": nodes,
              "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    (sweep_dir / "sweep_status.json").write_text(json.dumps(result, indent=2) + "\n")
    if report and finished:
        finished_dirs = [sweep_dir / name for name in finished]
        try:
            result["report"] = str(write_report(finished_dirs, sweep_dir / "report.md"))
        except ConfigError as error:
            log(f"no report: {error}")
    return result
