"""Presets: the settings a paper or a standard benchmark protocol runs an agent with, by name
(`scalerl train --preset atari100k --env atari:pong`). A preset gives defaults; flags given beside it win.

Each preset is a TOML file in this folder: a `description`, the `source` of its settings, the extra it `needs`,
and a `[settings]` table of dotted config keys as a sweep file's `[base]` has them.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from scalerl.checks import ConfigError, unknown_name
from scalerl.sweep import nest

FOLDER = Path(__file__).parent


def preset_names() -> list[str]:
    return sorted(path.stem for path in FOLDER.glob("*.toml"))


def read_preset(name: str) -> dict[str, Any]:
    """The preset's file as data: description, source, needs and settings."""
    if name not in preset_names():
        raise unknown_name("preset", name, preset_names())
    return tomllib.loads((FOLDER / f"{name}.toml").read_text())


def preset_settings(name: str) -> dict[str, Any]:
    """The preset's settings as TrainConfig's nested fields (e.g. {"agent": "der", "env_opts": {...}})."""
    settings = read_preset(name)["settings"]
    if not isinstance(settings, dict):
        raise ConfigError(f"preset {name}: [settings] must be a table")
    return nest(settings)


def describe_presets() -> list[str]:
    """One line per preset: its name and description."""
    return [f"{name:12s} {read_preset(name)['description']}" for name in preset_names()]
