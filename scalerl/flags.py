"""Command-line flags checked against config dataclasses before tyro parses them, so an unknown flag or a
malformed value gets one plain line naming it (and the close matches), never a traceback or a box.
Shared by `scalerl` and `scalerl chords`."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import io
import json
import typing
from typing import Any, Literal

from scalerl.checks import ConfigError


def field_types(cls: type, prefix: str, algo_class: type) -> dict[str, Any]:
    """Map each CLI flag name (dotted, underscores) of a config dataclass to its type."""
    hints = typing.get_type_hints(cls)
    flags: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        kind = algo_class if item.name == "algo" else hints[item.name]
        if dataclasses.is_dataclass(kind):
            flags.update(field_types(kind, f"{prefix}{item.name}.", algo_class))
        else:
            flags[f"{prefix}{item.name}"] = kind
    return flags


def check_value(flag: str, kind: Any, value: str) -> None:
    options = typing.get_args(kind)
    if typing.get_origin(kind) is Literal and value not in options:
        raise ConfigError(f"--{flag} must be one of {', '.join(map(str, options))} (got {value!r})")
    for number in (int, float):
        if kind is number or (number in options and type(None) in options and value != "None"):
            try:
                number(value)
            except ValueError:
                kind = "an integer" if number is int else "a number"
                raise ConfigError(f"--{flag} must be {kind} (got {value!r})") from None


def check_flags(args: list[str], flags: dict[str, Any]) -> None:
    """Reject unknown flags and values of the wrong type before tyro sees them."""
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg in ("-h", "--help"):
            return
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument {arg!r}: options look like --name value")
        name, _, inline = arg[2:].partition("=")
        name = name.replace("-", "_")
        head, dot, last = name.rpartition(".")
        if name not in flags and flags.get(f"{head}{dot}{last.removeprefix('no_')}") is bool:
            continue
        if name not in flags:
            close = difflib.get_close_matches(name, flags, n=3)
            hint = f"; did you mean {', '.join('--' + c.replace('_', '-') for c in close)}?" if close else ""
            raise ConfigError(f"unknown option --{arg[2:].partition('=')[0]}{hint} (see scalerl train --help)")
        if flags[name] is bool:
            continue
        if typing.get_origin(flags[name]) is list:  # --name v1 v2 ...: the values run to the next option
            while index < len(args) and not args[index].startswith("--"):
                index += 1
            continue
        if not inline:
            if index >= len(args):
                raise ConfigError(f"--{arg[2:]} needs a value")
            inline = args[index]
            index += 1
        check_value(name.replace("_", "-"), flags[name], inline)


def option_value(args: list[str], name: str) -> str | None:
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are ConfigErrors, so they print as one line like every other error."""

    def error(self, message: str):
        raise ConfigError(f"{message} (see {self.prog} --help)")


def integer(low: int, high: int) -> Any:
    """An argparse type for a whole number in [low, high]: anything else is one clear line, a 5,000-digit
    number included (past Python's conversion limit, int() itself fails)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number in [{low:,}, {high:,}] (got {text[:30]!r})") \
                from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in [{low:,}, {high:,}] (got {text[:30]})")
        return value

    return parse


def number(low: float, high: float) -> Any:
    """An argparse type for a finite number in [low, high]."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number in [{low:g}, {high:g}] (got {text[:30]!r})") from None
        if not low <= value <= high:  # NaN fails this too
            raise argparse.ArgumentTypeError(f"must be in [{low:g}, {high:g}] (got {text[:30]})")
        return value

    return parse


SEEDS = integer(0, 2**31 - 1)


def writable_path(kind: str) -> Any:
    """An argparse type for an output path (`kind` file or folder), checked before any work is done: not
    empty, of names the file system takes, a file not an existing folder, and under a folder that exists
    and can be written (or can be made)."""
    import os
    from pathlib import Path

    def check(text: str) -> Path:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"an output {kind} path may not be empty")
        path = Path(text)
        if len(text) > 4096 or any(len(part.encode()) > 255 for part in path.parts):
            raise argparse.ArgumentTypeError(f"output path too long: {text[:80]}...")
        if kind == "file" and path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
        existing = next(parent for parent in [path if kind == "folder" else path.parent, *path.parents]
                        if parent.exists() or parent == Path(parent.anchor or "."))
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise argparse.ArgumentTypeError(f"cannot write under {existing}")
        return path

    return check


def parse_value(text: str) -> Any:
    """A CLI value as JSON where it parses (numbers, true/false, lists), else as a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def key_values(items: list[str], flag: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} takes KEY=VALUE items (got {item!r})")
        pairs.append((key.replace("-", "_"), value))
    return pairs


BOX_CHARACTERS = " \t│╭╮╰╯─━┃┏┓┗┛╴╶-"


def tyro_cli(cls: Any, args: list[str], prog: str, **kwargs: Any) -> Any:
    """tyro.cli, with a parse error turned into one ConfigError line instead of tyro's box and an exit (the
    flag checks above catch most errors first; this catches the rest, e.g. a bad choice for an optional)."""
    import tyro

    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return tyro.cli(cls, args=args, prog=prog, **kwargs)
    except SystemExit as exit:
        if not exit.code:
            raise
        pieces = [" ".join(line.strip(BOX_CHARACTERS).split()) for line in captured.getvalue().splitlines()]
        pieces = [piece for piece in pieces if piece and not piece.startswith("For full helptext")
                  and not piece.endswith("--help")]
        raise ConfigError(f"{prog}: {'; '.join(pieces)[:300]} (see {prog} --help)") from None
