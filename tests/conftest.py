import os
import random

import numpy as np
import pytest
import torch
from support import records

# Ray starts its trial workers at nice 15; beside the other pytest-xdist worker (nice 0) on two cores they would
# get almost no CPU and the sweep tests would run many times slower. Every Ray a test starts inherits this.
os.environ.setdefault("RAY_worker_niceness", "0")


@pytest.fixture(autouse=True)
def _single_thread_and_seeded():
    """Tests compare numbers across runs; one thread keeps CPU kernels' reduction order fixed. The global random
    generators start from the same seed in every test, so a test's draws do not depend on which tests its
    pytest-xdist worker happened to run before it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def crash_after_checkpoint(monkeypatch):
    """`crashing = crash_after_checkpoint(step)`: within `with crashing:` a run raises KeyboardInterrupt right
    after writing its checkpoint at `step`, as a kill would, and the run's later records are left behind."""
    import contextlib

    from scalerl.loops import Loop

    @contextlib.contextmanager
    def crashing(step: int):
        save = Loop.save

        def save_then_crash(self):
            save(self)
            if self.state.step == step:
                raise KeyboardInterrupt

        monkeypatch.setattr(Loop, "save", save_then_crash)
        try:
            with pytest.raises(KeyboardInterrupt):
                yield
        finally:
            monkeypatch.setattr(Loop, "save", save)

    return crashing


@pytest.fixture
def run_records():
    """A run's metrics.jsonl or eval.jsonl records without the timing fields, which differ between runs."""
    return records


@pytest.fixture
def resumes_exactly(tmp_path, crash_after_checkpoint, run_records):
    """`whole = resumes_exactly(settings, step)`: train `settings` once whole (into tmp_path/whole) and once killed
    right after its checkpoint at `step` and resumed (tmp_path/killed); assert that both wrote the same metrics
    and evaluations, and return the whole run's metric records for the test's own checks."""
    from scalerl import resume, train

    def compare(settings: dict, step: int) -> list[dict]:
        train(run_dir=str(tmp_path / "whole"), **settings)
        with crash_after_checkpoint(step):
            train(run_dir=str(tmp_path / "killed"), **settings)
        resume(tmp_path / "killed")
        for name in ("metrics.jsonl", "eval.jsonl"):
            assert run_records(tmp_path / "killed" / name) == run_records(tmp_path / "whole" / name), name
        return run_records(tmp_path / "whole" / "metrics.jsonl")

    return compare
