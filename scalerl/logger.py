"""Run records: metrics.jsonl and eval.jsonl (one JSON object per line) mirrored to TensorBoard."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter

from scalerl.checks import ConfigError


def parse_records(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file. A torn last line (the process was killed while writing it) is dropped;
    a broken line before the end is an error naming the file and line."""
    if not path.exists():
        return []
    lines = [(number, line) for number, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    records = []
    for index, (number, line) in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if index == len(lines) - 1:
                break
            raise ConfigError(f"{path} line {number} is not a JSON record") from None
    return records


def truncate_records(path: Path, last_step: int) -> None:
    """Keep the records up to `last_step` (a resumed run rewrites the rest from its checkpoint), dropping a
    torn last line."""
    if path.exists():
        kept = [record for record in parse_records(path) if record["step"] <= last_step]
        path.write_text("".join(json.dumps(record) + "\n" for record in kept))


def read_records(path: Path) -> list[dict[str, Any]]:
    return parse_records(path)


def finite(value: Any) -> Any:
    """JSON has no NaN or infinity: non-finite numbers are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [finite(item) for item in value]
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    return value


class RunLogger:
    def __init__(self, run_dir: Path, resume_step: int | None = None) -> None:
        self.metrics_path = run_dir / "metrics.jsonl"
        self.eval_path = run_dir / "eval.jsonl"
        if resume_step is not None:
            truncate_records(self.metrics_path, resume_step)
            truncate_records(self.eval_path, resume_step)
        self.metrics_file = open(self.metrics_path, "a")
        self.eval_file = open(self.eval_path, "a")
        purge_step = None if resume_step is None else resume_step + 1
        self.tensorboard = SummaryWriter(str(run_dir / "tb"), purge_step=purge_step, flush_secs=30)

    def log_metrics(self, step: int, scalars: dict[str, float]) -> None:
        self._write(self.metrics_file, {"step": step, **scalars})
        for key, value in scalars.items():
            if math.isfinite(value):
                self.tensorboard.add_scalar(f"train/{key}", value, step)

    def log_eval(self, step: int, returns: list[float], lengths: list[int], wall_time: float,
                 success_mean: float | None = None, tasks: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
        """One evaluation, with its success rate where the env reports one and, for a multi-task set, each
        task's means."""
        mean = sum(returns) / len(returns)
        std = math.sqrt(sum((r - mean) ** 2 for r in returns) / len(returns))
        record = {
            "step": step,
            "wall_time": wall_time,
            "return_mean": mean,
            "return_std": std,
            "return_min": min(returns),
            "return_max": max(returns),
            "length_mean": sum(lengths) / len(lengths),
            "returns": returns,
        }
        if success_mean is not None:
            record["success_mean"] = success_mean
        if tasks:
            record["tasks"] = tasks
        self._write(self.eval_file, record)
        self.tensorboard.add_scalar("eval/return_mean", mean, step)
        if success_mean is not None:
            self.tensorboard.add_scalar("eval/success_mean", success_mean, step)
        for name, means in (tasks or {}).items():
            for key, value in means.items():
                self.tensorboard.add_scalar(f"eval_tasks/{name}/{key}", value, step)
        return record

    def _write(self, handle, record: dict[str, Any]) -> None:
        handle.write(json.dumps({key: finite(value) for key, value in record.items()}, allow_nan=False) + "\n")
        handle.flush()

    def close(self) -> None:
        self.metrics_file.close()
        self.eval_file.close()
        self.tensorboard.close()
