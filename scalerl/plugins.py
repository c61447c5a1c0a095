"""A researcher's own agents, hooks, PPO objectives and environment suites, in their own files, without editing
scalerl.

    # my_agent.py
    from scalerl import register_agent
    from scalerl.agents import DQN

    @register_agent
    class MyDQN(DQN):
        name = "my-dqn"
        description = "DQN with my change"

    scalerl train --plugins my_agent.py --agent my-dqn          # a file, or an importable module name

Registered agents and hooks appear in `scalerl agents`, `scalerl hooks` and `--help` like scalerl's own, and
`--agent` / `--hooks` take their names; `@register_objective` (scalerl.agents.objectives) adds a PPO
objective for `--algo.objectives`, and `register_suite(Suite(...))` (scalerl.envs) a suite for `--env` and
`scalerl envs`. `--plugins` also sets SCALERL_PLUGINS, so processes a run starts
(Ray's trial workers in a sweep) load the same plugins. A plug-in file is the user's own code, run as any
Python import is; scalerl never loads one from a run folder or checkpoint.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from scalerl.checks import ConfigError

ENV_VARIABLE = "SCALERL_PLUGINS"
"""os.pathsep-separated files or modules to load; set by --plugins for the processes a run starts."""
loaded: set[str] = set()


def load_plugin(source: str) -> None:
    """Import a plug-in: a .py file by its path, or an importable module by its dotted name."""
    if source in loaded:
        return
    path = Path(source)
    if source.endswith(".py"):
        if not path.is_file():
            raise ConfigError(f"--plugins: no file {source}")
        name = f"scalerl_plugin_{len(loaded)}_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    else:
        try:
            importlib.import_module(source)
        except ModuleNotFoundError as error:
            raise ConfigError(f"--plugins: cannot import {source!r} ({error})") from None
    loaded.add(source)


def load_plugins(sources: list[str]) -> None:
    """Load `sources` and hand them on to the processes this one starts."""
    for source in sources:
        load_plugin(str(Path(source).resolve()) if source.endswith(".py") else source)
    known = [s for s in os.environ.get(ENV_VARIABLE, "").split(os.pathsep) if s]
    os.environ[ENV_VARIABLE] = os.pathsep.join(dict.fromkeys([*known, *sorted(loaded)]))


def load_plugins_from_environment() -> None:
    """The plug-ins a parent process named in SCALERL_PLUGINS (a sweep's trial worker)."""
    for source in os.environ.get(ENV_VARIABLE, "").split(os.pathsep):
        if source:
            load_plugin(source)


def take_plugins_option(args: list[str]) -> tuple[list[str], list[str]]:
    """Split `--plugins A B ...` (up to the next option) out of a command's arguments."""
    if "--plugins" not in args:
        return [], args
    start = args.index("--plugins")
    end = start + 1
    while end < len(args) and not args[end].startswith("-"):
        end += 1
    if end == start + 1:
        raise ConfigError("--plugins needs at least one file or module")
    return args[start + 1:end], args[:start] + args[end:]


def check_plugin_class(cls: Any, kind: str, needs: tuple[str, ...], taken: dict[str, Any]) -> None:
    missing = [attribute for attribute in needs if not hasattr(cls, attribute)]
    if missing:
        raise ConfigError(f"{kind} {cls.__name__} must set {', '.join(missing)}")
    if cls.name in taken and taken[cls.name] is not cls:
        raise ConfigError(f"{kind} name {cls.name!r} is taken by {taken[cls.name].__module__}."
                          f"{taken[cls.name].__name__}; pick another")
