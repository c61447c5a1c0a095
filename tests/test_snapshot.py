"""Environment snapshots inside a checkpoint are a stranger's bytes: reading one may rebuild environments
and nothing else. Each payload below is what a doctored checkpoint could carry; none may touch the file
system or run code, and each is refused in one line that names what it held."""

import builtins
import collections
import ctypes
import functools
import operator
import pickle
import subprocess
import sys

import numpy as np
import pytest

from scalerl.envs import _make_single, make_env
from scalerl.envs.snapshot import SnapshotError, load_envs
from scalerl.envs.wrappers import SeedLevels
from scalerl.run import CHECKPOINT_TYPES


class Planted:
    """Pickles as `function(*args)`: the shape of every payload a doctored snapshot can hold."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def payloads(target):
    path = str(target)
    array = np.arange(4, dtype=np.uint8)
    return {
        "memmap": (Planted(np.memmap, path, np.uint8, "w+", 0, (16,)), "numpy.memmap"),
        "numpy.save": (Planted(np.save, path, array), "numpy.save"),
        "numpy.load": (Planted(np.load, path), "numpy.load"),
        "numpy.fromfile": (Planted(np.fromfile, path), "numpy.fromfile"),
        "ndarray.tofile": (Planted(getattr, array, "tofile"), "builtins.getattr"),
        "ctypes": (Planted(ctypes.CDLL, path), "ctypes.CDLL"),
        "builtins.open": (Planted(builtins.open, path, "w"), "io.open"),
        "builtins.exec": (Planted(builtins.exec, f"open({path!r}, 'w')"), "builtins.exec"),
        "attrgetter chain": (Planted(operator.attrgetter("__init__.__globals__"), collections.deque),
                             "operator.attrgetter"),
        "partial around a disallowed callable": (
            Planted(functools.partial(collections.deque, np.save), [path]), "numpy.save"),
        "an allowed callable in a partial, called": (
            Planted(functools.partial(collections.deque, [1]), ()), "functools.partial may not be called"),
        "an environment factory, called": (
            Planted(_make_single, "classic", "CartPole-v1", {}),
            "scalerl.envs._make_single may not be called"),
        "an environment class, constructed": (
            Planted(SeedLevels, None, 3, 0),
            "scalerl.envs.wrappers.SeedLevels may not be called"),
    }


@pytest.mark.parametrize("kind", list(payloads("x")))
def test_a_planted_snapshot_touches_nothing_and_is_refused_by_name(tmp_path, kind):
    target = tmp_path / "written-by-the-payload"
    if kind in ("numpy.load", "numpy.fromfile", "ctypes"):
        target.write_bytes(b"\x93NUMPY")  # something there to read: reading it is refused all the same
    before = sorted(tmp_path.iterdir())
    payload, named = payloads(target)[kind]
    envs = make_env("classic:CartPole-v1", 2, 0)
    envs.envs[0].planted = payload  # hidden inside an honest snapshot, not at its top
    data = pickle.dumps(envs)
    with pytest.raises(SnapshotError) as refused:
        load_envs(data)
    message = str(refused.value)
    assert "\n" not in message and named in message and "cannot be restored safely" in message
    assert sorted(tmp_path.iterdir()) == before
    if target.exists():
        assert target.read_bytes() == b"\x93NUMPY"


def test_a_snapshot_may_not_rewrite_a_class():
    """State set on a class (BUILD on what GLOBAL loaded) would change it for the whole process."""
    data = (pickle.PROTO + bytes([4]) + pickle.GLOBAL + b"scalerl.envs.wrappers\nSeedLevels\n"
            + pickle.EMPTY_DICT + pickle.NONE + pickle.TUPLE2 + pickle.BUILD + pickle.STOP)
    with pytest.raises(SnapshotError, match="may not change the class scalerl.envs.wrappers.SeedLevels"):
        load_envs(data)


def test_a_class_no_environment_is_made_of_is_refused_even_from_an_allowed_package():
    """Package-wide allowlists let gymnasium's RecordVideo (which writes files) through; names do not."""
    from gymnasium.wrappers import RecordVideo

    data = pickle.dumps(Planted(RecordVideo, None, "/tmp"))
    with pytest.raises(SnapshotError, match="gymnasium.wrappers.rendering.RecordVideo is not allowed"):
        load_envs(data)


@pytest.mark.parametrize("spec, options", [
    ("classic:CartPole-v1", {}), ("minatar:asterix", {"num_levels": 10}), ("gym:Acrobot-v1", {}),
    ("gym:FrozenLake-v1", {}), ("mujoco:HalfCheetah-v5", {}), ("multitask:Pendulum-v1,InvertedPendulum-v5", {}),
])
def test_every_suite_that_pickles_comes_back_through_the_strict_reader(spec, options):
    if spec.startswith(("mujoco", "multitask")):
        pytest.importorskip("mujoco", reason="pip install -e '.[mujoco]'")
    envs = make_env(spec, 2, 0, **options)
    envs.reset(seed=0)
    for _ in range(5):
        envs.step(envs.action_space.sample())
    restored = load_envs(pickle.dumps(envs))
    actions = envs.action_space.sample()
    assert np.array_equal(envs.step(actions)[0], restored.step(actions)[0])


def test_a_resumed_run_with_a_planted_snapshot_stops_with_one_line(tmp_path):
    """Through the command line: exit 2, one line naming the class, no traceback, nothing written."""
    import torch

    from scalerl import train
    from scalerl.checkpoint import file_digest, load_checkpoint

    run = tmp_path / "run"
    train(env="classic:CartPole-v1", steps=300, eval_every=0, eval_episodes=1, run_dir=str(run), progress="off",
          algo={"learning_starts": 100}, checkpoint_every=100)
    target = tmp_path / "planted"
    for name in ("latest.pt", "previous.pt"):  # the fallback checkpoint carries it too
        path = run / "checkpoints" / name
        state = load_checkpoint(path, CHECKPOINT_TYPES)
        envs = pickle.loads(state["envs"])
        envs.envs[0].planted = Planted(np.memmap, str(target), np.uint8, "w+", 0, (16,))
        torch.save({**state, "envs": pickle.dumps(envs)}, path)
        path.with_name(name + ".sha256").write_text(file_digest(path))
    done = subprocess.run([sys.executable, "-m", "scalerl", "train", "--resume", str(run)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "numpy.memmap is not allowed" in lines[0], done.stderr
    assert not target.exists()
