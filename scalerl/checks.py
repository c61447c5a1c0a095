"""Validation helpers shared by every config: errors name the field and the valid range."""

from __future__ import annotations

from typing import Any


class ConfigError(Exception):
    """A setting is invalid; the message names the field and what it accepts.

    Deliberately not a ValueError: tyro wraps ValueErrors raised while parsing into a box, and we
    want the CLI to print this message as one plain line.
    """


def require(ok: bool, name: str, expected: str, value: Any) -> None:
    """Raise ConfigError('name must be expected (got value)') unless ok."""
    if not ok:
        raise ConfigError(f"{name} must be {expected} (got {value!r})")


def positive(name: str, value: float) -> None:
    require(value > 0, name, "> 0", value)


def non_negative(name: str, value: float) -> None:
    require(value >= 0, name, ">= 0", value)


def in_range(name: str, value: float, low: float, high: float) -> None:
    require(low <= value <= high, name, f"in [{low}, {high}]", value)


def check_choices(config: Any, prefix: str) -> None:
    """Check every Literal-typed field of a config dataclass holds one of its choices, so a bad string
    from Python fails like one from the command line does."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(type(config))
    for item in dataclasses.fields(config):
        kind = hints[item.name]
        choices = [c for arg in [kind, *typing.get_args(kind)] if typing.get_origin(arg) is typing.Literal
                   for c in typing.get_args(arg)]
        if choices and (value := getattr(config, item.name)) is not None and value not in choices:
            name = f"{prefix}.{item.name}" if prefix else item.name
            raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))} (got {value!r})")
