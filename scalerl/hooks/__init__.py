"""Hooks chosen by name (`--hooks norms ...`), each with its options under `--hook-opts.NAME.*`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scalerl.checks import ConfigError, build_nested
from scalerl.diagnostics.information import ProbeConfig, ProbeHook
from scalerl.diagnostics.monitor import ActivityConfig, ActivityHook
from scalerl.diagnostics.norms import NormsConfig, NormsHook
from scalerl.hooks.base import Episode, Hook, HookList, MeasuringHook
from scalerl.interventions.least import LEASTConfig, LEASTHook, RandomStopConfig, RandomStopHook
from scalerl.interventions.resets import ReDoConfig, ReDoHook, ReGraMaConfig, ReGraMaHook
from scalerl.plugins import check_plugin_class, load_plugins_from_environment

HOOKS: dict[str, type[Hook]] = {hook.name: hook
                                for hook in [NormsHook, ActivityHook, ReDoHook, ReGraMaHook, LEASTHook, RandomStopHook,
                                             ProbeHook]}


@dataclass(frozen=True)
class HookOptions:
    """The options of every hook, one field per hook name; only the hooks listed in --hooks run."""

    norms: NormsConfig = field(default_factory=NormsConfig)
    activity: ActivityConfig = field(default_factory=ActivityConfig)
    redo: ReDoConfig = field(default_factory=ReDoConfig)
    regrama: ReGraMaConfig = field(default_factory=ReGraMaConfig)
    least: LEASTConfig = field(default_factory=LEASTConfig)
    random_stop: RandomStopConfig = field(default_factory=RandomStopConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)

    def __post_init__(self) -> None:
        build_nested(self, "hook_opts")


def register_hook(cls: type[Hook]) -> type[Hook]:
    """Make a hook class of your own usable by its `name` in --hooks (a class decorator; see
    scalerl.plugins). It runs with its config class's defaults: --hook-opts.NAME.* is for scalerl's hooks."""
    if not (isinstance(cls, type) and issubclass(cls, Hook)):
        raise ConfigError(f"register_hook takes a subclass of scalerl.hooks.Hook (got {cls!r})")
    check_plugin_class(cls, "hook", ("name", "config_class", "description"), HOOKS)
    HOOKS[cls.name] = cls
    return cls


def check_hook_names(names: list[str]) -> None:
    if any(name not in HOOKS for name in names):
        load_plugins_from_environment()
    for name in names:
        if name not in HOOKS:
            raise ConfigError(f"unknown hook {name!r}; valid: {', '.join(HOOKS)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"hooks lists a hook twice: {', '.join(names)}")


def make_hooks(names: list[str], options: HookOptions, agent: Any, run_steps: int = 0) -> HookList:
    check_hook_names(names)
    hooks = [HOOKS[name](getattr(options, name, None) or HOOKS[name].config_class(), agent) for name in names]
    for hook in hooks:
        hook.run_steps = run_steps
    return HookList(hooks)


__all__ = ["HOOKS", "Episode", "Hook", "HookList", "HookOptions", "MeasuringHook", "check_hook_names", "make_hooks",
           "register_hook"]
