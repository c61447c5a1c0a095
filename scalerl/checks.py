"""Validation helpers shared by every config: errors name the field and the valid range."""

from __future__ import annotations

import math
import typing
from typing import Any


class ConfigError(Exception):
    """A setting is invalid; the message names the field and what it accepts.

    Deliberately not a ValueError: tyro wraps ValueErrors raised while parsing into a box, and we
    want the CLI to print this message as one plain line.
    """


class ScalerlWarning(UserWarning):
    """Something a user should know about a run that is not an error (a budget rounded up, a run that
    cannot update); the command line prints it as one `scalerl: warning:` line."""


def install_hint(extra: str) -> str:
    """How to install an optional part, from PyPI and from a checkout (where the editable form is needed)."""
    return f"pip install 'scalerl[{extra}]' (from a checkout: pip install -e '.[{extra}]')"


def first_line(error: BaseException) -> str:
    """An exception's message cut to its first line, or its type's name when it has none: libraries raise
    many-line messages (or bare types) that a one-line error has to quote."""
    message = str(error)
    return message.splitlines()[0] if message else type(error).__name__


def read_json(path: Any, what: str = "") -> Any:
    """A JSON file's data; a file that is not JSON (or not UTF-8 text) is one ConfigError naming it."""
    import json

    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}{' (' + what + ')' if what else ''} is not valid JSON: {first_line(error)}") from None


def require(ok: bool, name: str, expected: str, value: Any) -> None:
    """Raise ConfigError('name must be expected (got value)') unless ok."""
    if not ok:
        raise ConfigError(f"{name} must be {expected} (got {value!r})")


def finite(name: str, value: float) -> None:
    require(math.isfinite(value), name, "finite", value)


def positive(name: str, value: float) -> None:
    require(value > 0, name, "> 0", value)
    finite(name, value)


def non_negative(name: str, value: float) -> None:
    require(value >= 0, name, ">= 0", value)
    finite(name, value)


def in_range(name: str, value: float, low: float, high: float) -> None:
    require(low <= value <= high, name, f"in [{low}, {high}]", value)


MAX_COUNT = 10**12
"""No number in a config (steps, sizes, intervals, rates) goes past this: a 30-digit value is a typo."""


def check_magnitudes(config: Any, prefix: str) -> None:
    """Every number in a (nested) config dataclass is finite and within +-MAX_COUNT, each field named in the
    error; the configs' own checks hold each to its range first."""
    import dataclasses

    for item in dataclasses.fields(config):
        value, name = getattr(config, item.name), f"{prefix}.{item.name}" if prefix else item.name
        values = value if isinstance(value, list | tuple) else [value]
        for entry in values:
            if dataclasses.is_dataclass(entry):
                check_magnitudes(entry, name)
            elif isinstance(entry, int) and not isinstance(entry, bool) and abs(entry) > MAX_COUNT:
                raise ConfigError(f"{name} must be at most {MAX_COUNT:.0e} in size (got {entry})")
            elif isinstance(entry, float) and not math.isfinite(entry):
                raise ConfigError(f"{name} must be a finite number (got {entry})")
            elif isinstance(entry, float) and abs(entry) > MAX_COUNT:
                raise ConfigError(f"{name} must be at most {MAX_COUNT:.0e} in size (got {entry:g})")


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


def config_from_dict(cls: type, data: Any, prefix: str) -> Any:
    """Build a (nested) config dataclass from plain data, rejecting unknown keys by name."""
    import dataclasses

    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'} must be a mapping (got {type(data).__name__})")
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            name = f"{prefix}.{key}" if prefix else key
            raise ConfigError(f"unknown field {name!r}; valid: {', '.join(sorted(known))}")
    hints = typing.get_type_hints(cls)
    # A whole number given for a float field (`--set algo.v_max=100`, JSON's 100) is stored as that float, so
    # config.json and the report's config differences read the same value one way.
    data = {key: float(value) if type(value) is int and takes_float(hints[key]) else value
            for key, value in data.items()}
    for key, value in data.items():
        if not of_type(value, hints[key]):
            name = f"{prefix}.{key}" if prefix else key
            raise ConfigError(f"{name} must be {type_name(hints[key])} (got {value!r})")
    return cls(**data)


def of_type(value: Any, hint: Any) -> bool:
    """Whether plain data (from JSON, TOML or a sweep's --set) fits a config field's type hint; nested
    configs, literals and the values' ranges are checked by the configs themselves."""
    import dataclasses

    origin = typing.get_origin(hint)
    if hint is Any or dataclasses.is_dataclass(hint) or origin is typing.Literal:
        return True
    if origin in (typing.Union, getattr(__import__("types"), "UnionType")):
        return any(of_type(value, option) for option in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple):
        return isinstance(value, list | tuple)
    if origin is dict:
        return isinstance(value, dict)
    return True


def type_name(hint: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "None"}
    options = typing.get_args(hint) if typing.get_origin(hint) is not None and typing.get_origin(hint) not in (
        list, tuple, dict) else (hint,)
    return " or ".join(names.get(option, "a list" if typing.get_origin(option) in (list, tuple) else
                                 getattr(option, "__name__", str(option))) for option in options)


def takes_float(hint: Any) -> bool:
    """A field typed float, or float | None, and not also int."""
    options = typing.get_args(hint) or (hint,)
    return float in options and int not in options


def build_nested(config: Any, prefix: str) -> None:
    """Replace each dict held by a dataclass-typed field of a frozen config with that dataclass, so that
    configs read back from JSON (or given as keywords in Python) hold the same types as parsed ones."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(type(config))
    for item in dataclasses.fields(config):
        kind, value = hints[item.name], getattr(config, item.name)
        if dataclasses.is_dataclass(kind) and isinstance(value, dict):
            object.__setattr__(config, item.name, config_from_dict(kind, value, f"{prefix}.{item.name}".lstrip(".")))


def unknown_name(kind: str, name: str, valid: Any, limit: int = 12) -> ConfigError:
    """The error for a name that is not one of `valid`: the whole list when it is short, else the
    closest matches (a suite with a hundred tasks should not print them all)."""
    import difflib

    valid = list(valid)
    if len(valid) <= limit:
        return ConfigError(f"unknown {kind} {name!r}; valid: {', '.join(valid)}")
    by_lower = {choice.lower(): choice for choice in valid}
    close = [by_lower[c] for c in difflib.get_close_matches(name.lower(), by_lower, n=5, cutoff=0.5)]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"unknown {kind} {name!r}{hint} ({len(valid)} choices)")


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"net": {"width": 2}} -> {"net.width": 2}."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
