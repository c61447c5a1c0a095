"""Run records: metrics.jsonl and eval.jsonl (one JSON object per line) mirrored to TensorBoard."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter


def truncate_records(path: Path, last_step: int) -> None:
    """Drop records written after `last_step`: a resumed run rewrites them from its checkpoint."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= last_step]
    path.write_text("".join(line + "\n" for line in kept))


def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


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
                 successes: list[float] | None = None) -> dict[str, Any]:
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
        if successes is not None:
            record["success_mean"] = sum(successes) / len(successes)
        self._write(self.eval_file, record)
        self.tensorboard.add_scalar("eval/return_mean", mean, step)
        if successes is not None:
            self.tensorboard.add_scalar("eval/success_mean", record["success_mean"], step)
        return record

    def _write(self, handle, record: dict[str, Any]) -> None:
        handle.write(json.dumps(record) + "\n")
        handle.flush()

    def close(self) -> None:
        self.metrics_file.close()
        self.eval_file.close()
        self.tensorboard.close()
