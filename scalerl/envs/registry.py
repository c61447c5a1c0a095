"""Environment suites behind one naming scheme, `suite:task`.

A suite knows its task names, how to make an environment for a task, and which extra provides it.
Most suites make single environments that `scalerl.envs.make_env` gathers into a vector env; Atari
and CALE build ale-py's native vector env. The keyword arguments of a suite's make function are the
options it takes (see `scalerl.envs.EnvOptions`).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import gymnasium as gym

from scalerl.checks import ConfigError, install_hint, unknown_name
from scalerl.envs.gym_ids import make_gym, registered_gym_ids
from scalerl.envs.metaworld import (
    check_metaworld_task,
    make_metaworld_vector,
    metaworld_members,
    metaworld_task_count,
    metaworld_tasks,
)
from scalerl.envs.multitask import check_multitask_task, make_multitask_vector, multitask_members, multitask_task_count
from scalerl.envs.procgen import GAMES as PROCGEN_GAMES
from scalerl.envs.procgen import TEST_LEVELS_START, make_procgen_vector
from scalerl.envs.wrappers import (
    ActionRepeat,
    ChannelFirstFrameStack,
    Float32Actions,
    Float32Observations,
    GymnasiumSeeding,
    SeedLevels,
    with_physics_snapshot,
)
from scalerl.plugins import load_plugins_from_environment

# Headless rendering for MuJoCo and dm_control pixels. It must be set before either is first imported,
# so it is set when scalerl.envs is; an explicit MUJOCO_GL in the environment wins.
os.environ.setdefault("MUJOCO_GL", "egl")


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    tasks: Callable[[], list[str]]
    make: Callable[..., gym.Env] | None = None
    """(task, **options) -> one environment."""
    make_vector: Callable[..., gym.vector.VectorEnv] | None = None
    """(task, num_envs, seed, **options) -> a vector env, for suites that vectorise natively (ale-py's
    C++ one) or build their own task sets (Meta-World)."""
    check_task: Callable[[str], None] | None = None
    """Raises ConfigError for a bad task name, for suites whose tasks cannot all be listed."""
    requires: str | None = None
    """Python module the suite needs; missing -> an error naming the extra to install."""
    extra: str | None = None
    any_task: bool = False
    """Accepts any task name its `make` understands (e.g. every registered Gymnasium id)."""
    fixed_options: tuple[str, ...] = ()
    """Keyword arguments of the make function that the suite itself sets (not user options)."""
    task_count: Callable[[str], tuple[int, bool] | None] | None = None
    """For suites whose tasks are sets run one environment per task (Meta-World MT10, ML10): (tasks, exact),
    where exact means num_envs must equal it, else be a multiple of it. It is also the default num_envs.
    None for a task that is not such a set."""
    films_observations: bool = False
    """A vector-only suite whose observations are stacked frames: its videos show the agent's own view (each
    observation's newest frame), played on a one-environment vector env, since that env does not render."""
    members: Callable[[str, gym.vector.VectorEnv], list[str]] | None = None
    """For multi-task sets whose observations end with a one-hot task id (MT10, multitask:...): the task
    of each environment, in order; an empty list for the suite's other tasks."""

    def task_set(self, task: str) -> tuple[int, bool] | None:
        return self.task_count(task) if self.task_count is not None else None

    def options(self) -> list[str]:
        """Names of the options this suite takes: its make function's keyword arguments."""
        function = self.make_vector or self.make
        parameters = inspect.signature(function).parameters.values()
        return [p.name for p in parameters if p.kind == p.KEYWORD_ONLY and p.name not in self.fixed_options]

    def available(self) -> bool:
        if self.requires is None:
            return True
        try:
            importlib.import_module(self.requires)
        except ImportError:
            return False
        return True

    def check_installed(self) -> None:
        if not self.available():
            raise ConfigError(
                f"suite {self.name!r} needs {self.requires!r}: {install_hint(self.extra)}"
            )


RENDER = ("render_mode",)
"""The single-environment suites' make functions take render_mode, which episode videos set (not a user option)."""

CLASSIC_TASKS = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"]


def make_classic(task: str, *, max_episode_steps: int | None = None, render_mode: str | None = None) -> gym.Env:
    return gym.make(task, max_episode_steps=max_episode_steps, render_mode=render_mode)


MINATAR_IDS = {
    "breakout": "MinAtar/Breakout-v1",
    "asterix": "MinAtar/Asterix-v1",
    "freeway": "MinAtar/Freeway-v1",
    "seaquest": "MinAtar/Seaquest-v1",
    "space_invaders": "MinAtar/SpaceInvaders-v1",
}


MINATAR_MAX_EPISODE_STEPS = 10_000
"""MinAtar sets no time limit, and a good Breakout player can go on for ever: cap episodes so that
evaluation always ends (pass max_episode_steps to change it)."""


def make_minatar(task: str, *, max_episode_steps: int | None = None, sticky_actions: float | None = None,
                 full_action_space: bool = False, num_levels: int = 0, start_level: int = 0,
                 level_set: Literal["train", "test"] = "train", render_mode: str | None = None) -> gym.Env:
    """MinAtar games; observations are (10, 10, channels) booleans. Sticky actions 0.1 by default.
    The game's minimal action set, or with full_action_space all six (no-op, four moves, fire) as the
    MinAtar paper's agents had them.
    num_levels > 0 plays Procgen-style levels: every random draw of a MinAtar game (start state, spawns,
    sticky actions) comes from the seed it is reset with, so a level is a seed, and each episode plays one of
    `num_levels` levels from `start_level`; level_set 'test' shifts them to a disjoint range."""
    import minatar.gym


    if MINATAR_IDS[task] not in gym.registry:
        minatar.gym.register_envs()
    kwargs = {} if sticky_actions is None else {"sticky_action_prob": sticky_actions}
    env = GymnasiumSeeding(gym.make(MINATAR_IDS[task], max_episode_steps=max_episode_steps or
                                    MINATAR_MAX_EPISODE_STEPS, use_minimal_action_set=not full_action_space,
                                    render_mode=render_mode, **kwargs))
    if num_levels == 0:
        return env
    return SeedLevels(env, num_levels, start_level + (TEST_LEVELS_START if level_set == "test" else 0))


def mujoco_tasks() -> list[str]:
    return sorted(
        env_id for env_id, spec in gym.registry.items()
        if "mujoco" in str(spec.entry_point) and env_id.endswith("-v5")
    )


def make_mujoco(task: str, *, max_episode_steps: int | None = None, render_mode: str | None = None) -> gym.Env:
    """Gymnasium MuJoCo v5 tasks, observations cast to float32."""

    return Float32Observations(with_physics_snapshot(gym.make(task, max_episode_steps=max_episode_steps,
                                                              render_mode=render_mode)))


def dmc_tasks() -> list[str]:
    from dm_control import suite

    return [f"{domain}-{task}" for domain, task in suite.ALL_TASKS]


def make_dmc(task: str, *, pixels: bool = False, image_size: int = 84, frame_stack: int = 3,
             action_repeat: int = 1, camera_id: int | None = None, render_mode: str | None = None) -> gym.Env:
    """DeepMind Control suite task `domain-task`: flattened float32 state observations, or with
    pixels=True, (3 * frame_stack, image_size, image_size) uint8 frames, channel-first.
    Episodes are 1000 control steps (divided by action_repeat); they end by truncation."""
    import shimmy  # noqa: F401  (registers the dm_control/* ids)
    from gymnasium.wrappers import FlattenObservation


    domain = task.split("-")[0]
    camera = camera_id if camera_id is not None else (2 if domain == "quadruped" else 0)
    kwargs = {"render_mode": "rgb_array",
              "render_kwargs": {"height": image_size, "width": image_size, "camera_id": camera}} if pixels else {}
    if render_mode is not None and not pixels:  # a video of a state-based run: a camera the size of MuJoCo's
        kwargs = {"render_mode": render_mode, "render_kwargs": {"height": 240, "width": 320, "camera_id": camera}}
    env = Float32Actions(gym.make(f"dm_control/{task}-v0", **kwargs))
    if action_repeat > 1:
        env = ActionRepeat(env, action_repeat)
    if pixels:
        from gymnasium.wrappers import AddRenderObservation

        return ChannelFirstFrameStack(AddRenderObservation(env, render_only=True), frame_stack)
    return Float32Observations(FlattenObservation(env))


def atari_tasks() -> list[str]:
    from ale_py.roms import get_all_rom_ids

    return get_all_rom_ids()


def make_atari_vector(
    task: str,
    num_envs: int,
    seed: int,
    *,
    continuous: bool = False,
    sticky_actions: float = 0.25,
    episodic_life: bool = False,
    reward_clipping: bool = False,
    noop_max: int = 30,
    frame_skip: int = 4,
    frame_stack: int = 4,
    image_size: int = 84,
    grayscale: bool = True,
    full_action_space: bool = False,
    fire_reset: bool = True,
    max_episode_frames: int = 108_000,
    continuous_action_threshold: float = 0.5,
) -> gym.vector.VectorEnv:
    """ALE games through ale-py's threaded C++ vector env, with the standard preprocessing (Machado et
    al., 2018): frame skip 4 with max-pooling, 84x84 grayscale, 4 stacked frames (channel-first), up to
    30 no-op starts, sticky actions 0.25, 108k-frame episodes. Episodic life and reward clipping are
    off unless asked for: they are training tricks, and evaluation must see the true game.

    continuous=True is the Continuous Arcade Learning Environment (Farebrother & Castro, 2024):
    actions are (radius, angle, fire) in [0, 1] x [-pi, pi] x [0, 1]; with x = r cos(angle) and
    y = r sin(angle), the joystick goes right/left when |x| > continuous_action_threshold, up/down
    when |y| > it, and fire is pressed when fire > it."""
    from ale_py.vector_env import AtariVectorEnv
    from gymnasium.vector import AutoresetMode

    return AtariVectorEnv(
        task, num_envs,
        num_threads=min(num_envs, os.cpu_count() or 1),
        autoreset_mode=AutoresetMode.SAME_STEP,
        continuous=continuous, continuous_action_threshold=continuous_action_threshold,
        repeat_action_probability=sticky_actions, episodic_life=episodic_life, reward_clipping=reward_clipping,
        noop_max=noop_max, frameskip=frame_skip, stack_num=frame_stack, img_height=image_size,
        img_width=image_size, grayscale=grayscale, full_action_space=full_action_space, use_fire_reset=fire_reset,
        max_num_frames_per_episode=max_episode_frames,
    )


SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in [
        Suite("classic", "Gymnasium classic control", lambda: list(CLASSIC_TASKS), make=make_classic,
              fixed_options=RENDER),
        Suite("minatar", "MinAtar miniature Atari (10x10 grids)", lambda: list(MINATAR_IDS), make=make_minatar,
              requires="minatar", extra="minatar", fixed_options=RENDER),
        Suite("atari", "Atari 2600 games through ale-py (ROMs bundled)", atari_tasks,
              make_vector=make_atari_vector, requires="ale_py", extra="atari",
              fixed_options=("continuous", "continuous_action_threshold"), films_observations=True),
        Suite("cale", "Continuous Arcade Learning Environment: Atari with (radius, angle, fire) actions",
              atari_tasks, make_vector=functools.partial(make_atari_vector, continuous=True),
              requires="ale_py", extra="atari", fixed_options=("continuous",), films_observations=True),
        Suite("mujoco", "Gymnasium MuJoCo v5 (HalfCheetah, Hopper, Walker2d, Ant, Humanoid, ...)", mujoco_tasks,
              make=make_mujoco, requires="mujoco", extra="mujoco", fixed_options=RENDER),
        Suite("dmc", "DeepMind Control suite, domain-task (states, or pixels=True)", dmc_tasks, make=make_dmc,
              requires="dm_control", extra="dmc", fixed_options=RENDER),
        Suite("metaworld", "Meta-World v3: MT1/<env>, MT10, MT25, MT50, ML10/train|test, ..., custom/<env>,<env>",
              metaworld_tasks, make_vector=make_metaworld_vector, check_task=check_metaworld_task,
              requires="metaworld", extra="metaworld", task_count=metaworld_task_count, members=metaworld_members),
        Suite("multitask", "any Gymnasium ids as one multi-task set: multitask:<id>,<id>,... (one-hot task ids)",
              list, make_vector=make_multitask_vector, check_task=check_multitask_task,
              task_count=multitask_task_count, members=multitask_members, any_task=True),
        Suite("procgen", "Procgen (procgen-mirror; its own numpy<2 environment)", lambda: list(PROCGEN_GAMES),
              make_vector=make_procgen_vector, requires="procgen", extra="procgen"),
        Suite("gym", "any registered Gymnasium id", registered_gym_ids, make=make_gym, any_task=True,
              fixed_options=RENDER),
    ]
}


def register_suite(suite: Suite) -> Suite:
    """Make an environment suite of your own usable as `--env NAME:TASK` and listed by `scalerl envs` (call it in
    a --plugins file; see scalerl.plugins). Its `make(task, *, options...)` builds one Gymnasium env (its
    keyword-only arguments become --env-opts; take `render_mode` too, and list it in fixed_options, for
    videos), or its `make_vector(task, num_envs, seed, *, options...)` a vector env in SAME_STEP autoreset mode."""
    if not isinstance(suite, Suite):
        raise ConfigError(f"register_suite takes a scalerl.envs.Suite (got {suite!r})")
    if not suite.name or not all(c.isalnum() or c in "-_" for c in suite.name):
        raise ConfigError(f"suite name {suite.name!r}: letters, digits, - and _ only (it is the part before ':')")
    if suite.make is None and suite.make_vector is None:
        raise ConfigError(f"suite {suite.name!r} needs make (one env) or make_vector (a vector env)")
    if suite.name in SUITES and SUITES[suite.name] is not suite:
        raise ConfigError(f"suite name {suite.name!r} is taken; pick another")
    SUITES[suite.name] = suite
    return suite


class EnvSpec(NamedTuple):
    """An --env string parsed and checked once (`parse_spec`): its suite and the task as the suite spells it.
    It travels from the config to every environment built for the run instead of the string; pickled (Ray,
    checkpoints), it is parsed again from its text, since suites hold functions."""

    suite: Suite
    task: str

    def __str__(self) -> str:
        return f"{self.suite.name}:{self.task}"

    def __reduce__(self) -> tuple:
        return parse_spec, (str(self),)


def parse_spec(spec: str | EnvSpec) -> EnvSpec:
    """Split and check `suite:task` (a parsed EnvSpec passes through), raising ConfigError that lists the
    valid choices."""
    if isinstance(spec, EnvSpec):
        return spec
    return parse_text(spec)


@functools.lru_cache(maxsize=256)
def parse_text(spec: str) -> EnvSpec:
    """The parse itself, kept per string: a config and its copies (`resolved`, sweeps) share it. Errors are
    not kept, so an id registered with Gymnasium after a failed attempt parses."""
    suite_name, sep, task = spec.partition(":")
    if not sep or not task:
        raise ConfigError(f"env must look like suite:task (got {spec!r}); suites: {', '.join(SUITES)}")
    if suite_name not in SUITES:
        load_plugins_from_environment()  # a suite of a plug-in the parent process loaded (a sweep's trial)
    if suite_name not in SUITES:
        raise ConfigError(f"unknown env suite {suite_name!r}; valid suites: {', '.join(SUITES)}")
    suite = SUITES[suite_name]
    suite.check_installed()
    if suite.check_task is not None:
        suite.check_task(task)
        return EnvSpec(suite, task)
    tasks = suite.tasks()
    if task in tasks:
        return EnvSpec(suite, task)
    spelled = [name for name in tasks if squash(name) == squash(task)]
    if len(spelled) == 1:  # atari:Pong, atari:MsPacman, classic:cartpole-v1
        return EnvSpec(suite, spelled[0])
    if suite.any_task:
        error = unknown_name("Gymnasium id", task, tasks)
        raise ConfigError(f"{error} (see `scalerl envs --suite gym`)")
    raise unknown_name(f"{suite_name} task", task, tasks)


def squash(name: str) -> str:
    """A task name without case and separators: MsPacman, ms_pacman and ms-pacman are one name."""
    return "".join(character for character in name.lower() if character.isalnum())
