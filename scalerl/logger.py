"""Run records: metrics.jsonl and eval.jsonl (one JSON object per line) mirrored to TensorBoard, and to Weights &
Biases with --track."""

from __future__ import annotations

import json
import math
import re
import secrets
import threading
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter

from scalerl.checks import ConfigError, first_line, install_hint


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


RUN_ID = re.compile(r"[a-z0-9]{1,64}")


class WandbTracker:
    """Weights & Biases as a third copy of the records (`--track`): train/* and eval/* against the environment
    step, the config as the W&B run's config, files under RUN_DIR/wandb. The W&B run's id is kept in
    RUN_DIR/wandb_id, so a resumed run goes on in the same W&B run. W&B's own settings apply: WANDB_MODE=offline
    writes the run locally (`wandb sync RUN_DIR/wandb/offline-run-*` uploads it later), WANDB_API_KEY logs in."""

    def __init__(self, run_dir: Path, config: dict[str, Any], project: str, entity: str | None) -> None:
        try:
            import wandb
        except ImportError:
            raise ConfigError(f"--track needs wandb: {install_hint('track')}") from None
        id_path = run_dir / "wandb_id"
        run_id = id_path.read_text(errors="replace")[:65].strip() if id_path.is_file() else secrets.token_hex(6)
        if not RUN_ID.fullmatch(run_id):
            raise ConfigError(f"{id_path} does not hold a W&B run id (1-64 lower-case letters and digits)")
        id_path.write_text(run_id + "\n")
        try:
            self.run = wandb.init(project=project, entity=entity, name=run_dir.name, dir=str(run_dir), id=run_id,
                                  resume="allow", config=config)
        except Exception as error:  # noqa: BLE001  (W&B raises its own errors for login, network and settings)
            raise ConfigError(f"--track: W&B did not start ({first_line(error)}); log in with `wandb login`, or set "
                              "WANDB_MODE=offline to keep the run in RUN_DIR/wandb and `wandb sync` it later") from None

    def log(self, prefix: str, step: int, scalars: dict[str, float]) -> None:
        self.run.log({f"{prefix}/{key}": value for key, value in scalars.items() if math.isfinite(value)}, step=step)

    def close(self) -> None:
        self.run.finish()


class RunLogger:
    def __init__(self, run_dir: Path, resume_step: int | None = None, tracker: WandbTracker | None = None) -> None:
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
        self.tracker = tracker

    def log_metrics(self, step: int, scalars: dict[str, float]) -> None:
        self._write(self.metrics_file, {"step": step, **scalars})
        with self.writing_tensorboard():
            for key, value in scalars.items():
                if math.isfinite(value):
                    self.tensorboard.add_scalar(f"train/{key}", value, step)
        if self.tracker is not None:
            self.tracker.log("train", step, scalars)

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
        if self.tracker is not None:
            scalars = {key: record[key] for key in ("return_mean", "return_std", "length_mean", "success_mean")
                       if key in record}
            self.tracker.log("eval", step, scalars | {f"{name}/{key}": value for name, means in (tasks or {}).items()
                                                      for key, value in means.items()})
        return record

    def _write(self, handle, record: dict[str, Any]) -> None:
        try:
            handle.write(json.dumps({key: finite(value) for key, value in record.items()}, allow_nan=False) + "\n")
            handle.flush()
        except OSError as error:
            raise not_written(Path(handle.name), error) from None

    def close(self) -> None:
        """Close every writer; one that cannot flush (a full disk) loses its last records, not the run's error."""
        closers = [self.metrics_file.close, self.eval_file.close, self.tensorboard.close]
        if self.tracker is not None:
            closers.append(self.tracker.close)
            self.tracker = None
        for closing in closers:
            try:
                closing()
            except OSError:
                pass
