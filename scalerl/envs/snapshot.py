"""Environment snapshots: the vector env a checkpoint carries, so a resumed run steps on from the same
state. A checkpoint may come from a stranger, so its snapshot is read by an unpickler that admits only the
classes and callables environments are made of, each by name, and calls none but a few rebuilders."""

from __future__ import annotations

import io
import pickle
from typing import Any

import gymnasium as gym

from scalerl.checks import ConfigError
from scalerl.envs.gym_ids import registered_gym_ids


class SnapshotError(ConfigError):
    """An environment snapshot holds something no environment is made of, or is damaged."""


SNAPSHOT_CALLABLES = frozenset({
    ("collections", "deque"), ("functools", "partial"), ("gymnasium.vector.vector_env", "AutoresetMode"),
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy.random._pickle", "__bit_generator_ctor"), ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._pickle", "__randomstate_ctor"), ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
})
"""What an environment snapshot may call while it is read: containers, numpy's array and generator
rebuilders, an enum lookup. Nothing here opens a file or runs code it is handed."""
SNAPSHOT_CLASSES = frozenset({
    ("gymnasium.envs.registration", "EnvSpec"), ("gymnasium.envs.mujoco.mujoco_rendering", "MujocoRenderer"),
    ("gymnasium.spaces.box", "Box"), ("gymnasium.spaces.discrete", "Discrete"),
    ("gymnasium.spaces.multi_discrete", "MultiDiscrete"), ("gymnasium.vector.sync_vector_env", "SyncVectorEnv"),
    ("gymnasium.wrappers.common", "OrderEnforcing"), ("gymnasium.wrappers.common", "PassiveEnvChecker"),
    ("gymnasium.wrappers.common", "RecordEpisodeStatistics"), ("gymnasium.wrappers.common", "TimeLimit"),
    ("metaworld.types", "Task"), ("metaworld.wrappers", "AutoTerminateOnSuccessWrapper"),
    ("metaworld.wrappers", "CheckpointWrapper"), ("metaworld.wrappers", "RandomTaskSelectWrapper"),
    ("minatar.environment", "Environment"), ("minatar.gym", "BaseEnv"),
    ("mujoco._structs", "MjData"), ("mujoco._structs", "MjModel"),
    ("numpy.random._mt19937", "MT19937"), ("numpy.random._pcg64", "PCG64"),
    ("numpy.random.bit_generator", "SeedSequence"),
    ("scalerl.envs", "SameStepVectorEnv"), ("scalerl.envs.vector", "SameStepVectorEnv"),
    ("scalerl.envs.metaworld", "SeedOnReset"),
    ("scalerl.envs.multitask", "TaskInSet"), ("scalerl.envs.wrappers", "Float32Observations"),
    ("scalerl.envs.wrappers", "Float32Actions"), ("scalerl.envs.wrappers", "PhysicsSnapshot"),
    ("scalerl.envs.wrappers", "SeedLevels"), ("scalerl.envs.wrappers", "ActionRepeat"),
    ("scalerl.envs.wrappers", "GymnasiumSeeding"),
    *((f"minatar.environments.{game}", "Env") for game in ("asterix", "breakout", "freeway", "seaquest",
                                                          "space_invaders")),
})
"""Classes a snapshot may rebuild (without calling them: their instances are made with `__new__` and
filled in), besides the environment classes of registered Gymnasium ids and of Meta-World's tasks."""
SNAPSHOT_REFERENCES = frozenset({
    ("scalerl.envs", "_make_single"), ("scalerl.envs.metaworld", "_single"), ("scalerl.envs.multitask", "_task_env"),
})
"""Environment factories a vector env keeps (inside a `functools.partial`) but that reading never calls."""


def environment_classes() -> frozenset[tuple[str, str]]:
    """The classes of the installed Gymnasium ids and of Meta-World's tasks, each named: a snapshot of any
    environment `gym:ID` can build may rebuild its class, and nothing else in those packages."""
    registered_gym_ids()
    named = {tuple(spec.entry_point.split(":", 1)) for spec in gym.registry.values()
             if isinstance(spec.entry_point, str) and ":" in spec.entry_point}
    try:
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    except ImportError:
        ALL_V3_ENVIRONMENTS = {}
    named |= {(cls.__module__, cls.__name__) for cls in ALL_V3_ENVIRONMENTS.values()}
    return frozenset(named)


class SnapshotUnpickler(pickle._Unpickler):
    """Reads an environment snapshot and nothing else. Every global must be named in SNAPSHOT_CALLABLES,
    SNAPSHOT_CLASSES, SNAPSHOT_REFERENCES or be a registered environment's class; only SNAPSHOT_CALLABLES
    may be called while reading (a class is rebuilt through `__new__`, never its constructor), and state is
    only ever set on instances, never on a class. So a planted `numpy.memmap`, `numpy.save`, `os.system`, a
    `builtins` function, an `operator.attrgetter` or a `functools.partial` wrapped round any of them is
    refused by name before it does anything. Python's own (pure-Python) unpickler is subclassed because
    the C one cannot restrict what gets called."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self.callables: set[int] = set()
        self.named = SNAPSHOT_CALLABLES | SNAPSHOT_CLASSES | SNAPSHOT_REFERENCES
        self.environments: frozenset[tuple[str, str]] | None = None

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key not in self.named:
            if self.environments is None:
                self.environments = environment_classes()
            if key not in self.environments:
                    raise pickle.UnpicklingError(f"{module}.{name} is not allowed in an environment snapshot")
        found = super().find_class(module, name)
        if key in SNAPSHOT_CALLABLES:
            self.callables.add(id(found))
        return found

    def call(self, function: Any, args: tuple) -> Any:
        if id(function) not in self.callables:
            raise pickle.UnpicklingError(f"{describe(function)} may not be called while reading an environment "
                                         "snapshot")
        return function(*args)

    def load_reduce(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self.call(self.stack[-1], args)

    def _instantiate(self, klass: Any, args: tuple) -> None:
        self.append(self.call(klass, args) if args or not isinstance(klass, type) else klass.__new__(klass))

    def load_build(self) -> None:
        if isinstance(self.stack[-2], type):
            raise pickle.UnpicklingError(f"an environment snapshot may not change the class "
                                         f"{describe(self.stack[-2])}")
        super().load_build()

    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.BUILD[0]] = load_build


def describe(thing: Any) -> str:
    return f"{getattr(thing, '__module__', None) or type(thing).__module__}." \
           f"{getattr(thing, '__qualname__', None) or type(thing).__qualname__}"


def load_envs(data: bytes) -> Any:
    """The vector env pickled in `data`, read by SnapshotUnpickler; anything it refuses is one line."""
    try:
        return SnapshotUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, AttributeError, ImportError, EOFError, TypeError, ValueError, IndexError,
            KeyError) as error:
        raise SnapshotError(f"the checkpoint's environments cannot be restored safely ({error})") from None
