"""Run directories as data: everything downstream (scores, plots, reports) reads these, never agents."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalerl.checks import ConfigError, flatten, read_json
from scalerl.logger import parse_records

IGNORED_KEYS = {"seed", "run_dir", "progress", "device", "threads"}
"""Config keys that do not make two runs different experiments."""


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return parse_records(path)


@dataclass
class RunRecord:
    """One run directory's records."""

    path: Path
    config: dict[str, Any]
    metrics: list[dict[str, Any]]
    evals: list[dict[str, Any]]
    summary: dict[str, Any] | None

    @property
    def env(self) -> str:
        return self.config["env"]

    @property
    def seed(self) -> int:
        return self.config["seed"]

    def value(self, key: str) -> Any:
        """A config value by dotted name, e.g. `net.bottleneck`; `variant` is the folder above the run's
        seed folder: a sweep variant's name."""
        if key == "variant":
            return self.path.parent.name
        flat = flatten(self.config)
        if key not in flat:
            close = ", ".join(sorted(k for k in flat if key.split(".")[-1] in k)[:5])
            raise ConfigError(f"runs have no config key {key!r}" + (f"; similar: {close}" if close else ""))
        return flat[key]


def load_run(path: Path) -> RunRecord:
    path = Path(path)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ConfigError(f"{path} is not a run directory: config.json is missing")
    summary_path = path / "summary.json"
    return RunRecord(
        path=path,
        config=read_json(config_path, "a run's config"),
        metrics=read_jsonl(path / "metrics.jsonl"),
        evals=read_jsonl(path / "eval.jsonl"),
        summary=read_json(summary_path) if summary_path.is_file() else None,
    )


def find_runs(paths: list[str | Path]) -> list[RunRecord]:
    """Every run directory at or below the given paths (a sweep folder holds many), in path order."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise ConfigError(f"{path} does not exist")
        if (path / "config.json").is_file():
            found.append(path)
        else:
            found += sorted(config.parent for config in path.rglob("config.json"))
    if not found:
        raise ConfigError(f"no run directories (folders with config.json) under {', '.join(map(str, paths))}")
    return [load_run(path) for path in dict.fromkeys(found)]


def differing_keys(runs: list[RunRecord]) -> list[str]:
    """Config keys whose value differs between runs, apart from the seed and bookkeeping."""
    flats = [flatten(run.config) for run in runs]
    keys = sorted(set().union(*flats))
    return [k for k in keys if k not in IGNORED_KEYS and len({json.dumps(f.get(k)) for f in flats}) > 1]


def label_value(value: Any) -> Any:
    """A whole-number float reads as the sweep wrote it (`net.width=2`, not 2.0): configs store it as a float,
    sweep folders name it as given."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def group_runs(runs: list[RunRecord], group_by: list[str] | None = None) -> dict[str, list[RunRecord]]:
    """Runs grouped by the values of `group_by` keys; by default by every differing key except `env`
    (tasks are the other axis). Group labels read `key=value, key=value`; grouped by `variant` alone, a
    sweep's variant names. An ablation of more than three groups, in which a strict majority of the groups
    share a value of every key (a base that each other group changes in a setting or two), labels each group by
    what sets it apart from that base; other comparisons keep every pair, since a key that matters to some
    groups only (DQN's unused v_max beside Rainbows) would otherwise drop out of the labels that need it."""
    keys = group_by if group_by is not None else [k for k in differing_keys(runs) if k != "env"]
    if keys == ["variant"]:
        pairs = {id(run): (run.value("variant"),) for run in runs}
    else:
        pairs = {id(run): tuple(f"{key}={label_value(run.value(key))}" for key in keys) for run in runs}
    distinct = list(dict.fromkeys(pairs.values()))
    base = {pair for pair in set().union(*distinct) if 2 * sum(pair in group for group in distinct) > len(distinct)}
    if len(distinct) <= 3 or len(base) < len(keys):
        base = set()
    groups: dict[str, list[RunRecord]] = {}
    for run in runs:
        label = [pair for pair in pairs[id(run)] if pair not in base] or (["the shared settings"] if base else [])
        groups.setdefault(", ".join(label) or "all runs", []).append(run)
    return groups
