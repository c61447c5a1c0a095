import os
import random

import numpy as np
import pytest
import torch

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
    import json

    def read(path):
        return [{k: v for k, v in json.loads(line).items() if k not in ("wall_time", "sps")}
                for line in path.read_text().splitlines()]

    return read
