"""Run records: metrics.jsonl and eval.jsonl (one JSON object per line) mirrored to TensorBoard."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter

from scalerl.checks import ConfigError


class RecordsNotWritten(ConfigError):
    """A run's records could not be written (a full disk, most often): the run stops in one line."""


def quiet_tensorboard_thread_errors() -> None:
    """TensorBoard writes events on a thread of its own; when the disk fills, that thread dies with a
    traceback on stderr before the run learns of it. Its OSErrors are left to the run, which says them in
    one line (RunLogger), and every other thread's exceptions go to the hook that was there before."""
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if isinstance(args.exc_value, OSError) and type(args.thread).__module__.startswith("tensorboard."):
            return
        previous(args)

    if not getattr(previous, "quiets_tensorboard", False):
        hook.quiets_tensorboard = True  # type: ignore[attr-defined]
        threading.excepthook = hook


def not_written(path: Path, error: OSError) -> RecordsNotWritten:
    reason = "no space left on device" if error.errno == 28 else (error.strerror or str(error))
    return RecordsNotWritten(f"cannot write {path} ({reason}); the run stops here: make room, then resume it "
                             "with --resume (it goes on from its last checkpoint)")


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
        self.tensorboard_path = run_dir / "tb"
        quiet_tensorboard_thread_errors()
        self.tensorboard = SummaryWriter(str(self.tensorboard_path), purge_step=purge_step, flush_secs=30)

    def log_metrics(self, step: int, scalars: dict[str, float]) -> None:
        self._write(self.metrics_file, {"step": step, **scalars})
        with self.writing_tensorboard():
            for key, value in scalars.items():
                if math.isfinite(value):
                    self.tensorboard.add_scalar(f"train/{key}", value, step)

    def writing_tensorboard(self):
        """TensorBoard's failures (its thread's, surfacing on the next call) as one RecordsNotWritten."""
        import contextlib

        @contextlib.contextmanager
        def guarded():
            try:
                yield
            except OSError as error:
                raise not_written(self.tensorboard_path, error) from None

        return guarded()

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
        with self.writing_tensorboard():
            self.tensorboard.add_scalar("eval/return_mean", mean, step)
            if success_mean is not None:
                self.tensorboard.add_scalar("eval/success_mean", success_mean, step)
            for name, means in (tasks or {}).items():
                for key, value in means.items():
                    self.tensorboard.add_scalar(f"eval_tasks/{name}/{key}", value, step)
        return record

    def _write(self, handle, record: dict[str, Any]) -> None:
        try:
            handle.write(json.dumps({key: finite(value) for key, value in record.items()}, allow_nan=False) + "\n")
            handle.flush()
        except OSError as error:
            raise not_written(Path(handle.name), error) from None

    def close(self) -> None:
        """Close every writer; one that cannot flush (a full disk) loses its last records, not the run's error."""
        for closing in (self.metrics_file.close, self.eval_file.close, self.tensorboard.close):
            try:
                closing()
            except OSError:
                pass
