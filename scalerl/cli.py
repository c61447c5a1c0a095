"""`scalerl train|eval|envs|agents`: the command line over the same functions Python users call.

tyro builds the parser and help from the config dataclasses. Before tyro parses, every flag is
checked against the config's fields, so an unknown flag or a malformed value gets one plain line
naming it and the valid choices, and any ConfigError raised by validation prints the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import sys
import textwrap
import time
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import tyro

from scalerl.agents import AGENTS, agent_class
from scalerl.checks import ConfigError
from scalerl.config import TrainConfig
from scalerl.envs import describe_suites, describe_tasks

HELP = """usage: scalerl COMMAND [OPTIONS]

commands:
  train    train an agent (scalerl train --help); continue a killed run with --resume RUN_DIR
  eval     evaluate a run's latest checkpoint: scalerl eval RUN_DIR [--episodes N] [--seed S]
  envs     list environment suites and tasks; --suite NAME adds observation and action spaces
  agents   list agents and their hyperparameters
  plot     learning curves or training metrics of runs: scalerl plot RUNS... [--group-by KEY] [--metric M]
  report   a markdown report comparing groups of runs: scalerl report RUNS... -o report.md
  chords   ReaLchords: scalerl chords data (melody + chord datasets)
  sweep    config overrides x seeds on Ray: scalerl sweep FILE.toml, or --set K=V --grid K=V1,V2 --seeds 0 1
"""


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
                raise ConfigError(f"--{flag} must be {'an integer' if number is int else 'a number'} (got {value!r})") from None


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


def parse_train_config(args: list[str]) -> TrainConfig:
    agent = option_value(args, "--agent") or TrainConfig.agent
    config_class = agent_class(agent).config_class
    check_flags(args, field_types(TrainConfig, "", config_class))
    default = TrainConfig(agent=agent)
    return tyro.cli(TrainConfig[config_class], default=default, args=args, prog="scalerl train")


def cmd_train(args: list[str]) -> int:
    from scalerl.run import resume, train

    run_dir = option_value(args, "--resume")
    if run_dir is not None or "--resume" in args:
        others = [arg for arg in args if arg not in ("--resume", run_dir) and not arg.startswith("--resume=")]
        if run_dir is None or others:
            raise ConfigError("--resume RUN_DIR takes no other options: the run's config.json is used as is")
        summary = resume(run_dir)
    else:
        summary = train(parse_train_config(args))
    print(json.dumps(summary))
    return 0


@dataclasses.dataclass(frozen=True)
class EvalArgs:
    """Evaluate a run's latest checkpoint with the deterministic policy."""

    run_dir: tyro.conf.Positional[Path]
    """The run directory."""
    episodes: int = 10
    """Episodes to run."""
    seed: int | None = None
    """Seed of the evaluation environments; default: the run's own evaluation seed."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where the network runs."""


def cmd_eval(args: list[str]) -> int:
    from scalerl.run import evaluate

    if args and args[0] not in ("-h", "--help"):
        if args[0].startswith("-"):
            raise ConfigError("usage: scalerl eval RUN_DIR [--episodes N] [--seed S] [--device D]")
        options = {name: kind for name, kind in field_types(EvalArgs, "", type(None)).items() if name != "run_dir"}
        check_flags(args[1:], options)
    parsed = tyro.cli(EvalArgs, args=args, prog="scalerl eval")
    print(json.dumps(evaluate(parsed.run_dir, parsed.episodes, parsed.seed, parsed.device)))
    return 0


def cmd_envs(args: list[str]) -> int:
    suite = option_value(args, "--suite")
    if suite is not None:
        for row in describe_tasks(suite):
            print(f"{row['env']:36s} obs {row['observation']:28s} action {row['action']}")
        return 0
    for row in describe_suites():
        print(f"{row['suite']}: {row['description']}")
        if not row["installed"]:
            print(f"    not installed: pip install 'scalerl[{row['extra']}]'")
        elif row["tasks"]:
            print(textwrap.fill(" ".join(row["tasks"]), width=100, initial_indent="    ", subsequent_indent="    "))
    print("\nscalerl envs --suite NAME lists each task's observation and action spaces.")
    return 0


def cmd_agents(args: list[str]) -> int:
    for name, cls in AGENTS.items():
        print(f"{name:8s} {cls.description}  [{cls.loop.replace('_', '-')}]")
        for item in dataclasses.fields(cls.config_class):
            print(f"    --algo.{item.name.replace('_', '-'):24s} default {item.default!r}")
    return 0


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are ConfigErrors, so they print as one line like every other error."""

    def error(self, message: str):
        raise ConfigError(f"{message} (see {self.prog} --help)")


def analysis_parser(command: str, description: str) -> ArgumentParser:
    parser = ArgumentParser(prog=f"scalerl {command}", description=description)
    parser.add_argument("runs", nargs="+", help="run directories, or folders holding them (e.g. a sweep)")
    parser.add_argument("--group-by", nargs="+", default=None, metavar="KEY",
                        help="config keys that define the groups, e.g. net.bottleneck (default: every key that differs)")
    return parser


def cmd_plot(args: list[str]) -> int:
    from scalerl.analysis import find_runs, plot_curves

    parser = analysis_parser("plot", "Learning curves or training metrics, mean and 95% band over seeds, per group.")
    parser.add_argument("--metric", default="score",
                        help="score (normalized), return_mean, success_mean, or any key of metrics.jsonl (loss, grad_norm, ...)")
    parser.add_argument("--x", choices=["step", "wall_time"], default="step")
    parser.add_argument("-o", "--out", type=Path, default=Path("plots"), help="folder for the PNG and SVG")
    parsed = parser.parse_args(args)
    runs = find_runs(parsed.runs)
    path = parsed.out / f"{parsed.metric.replace('/', '_')}_vs_{parsed.x}"
    for written in plot_curves(runs, parsed.metric, path, parsed.group_by, parsed.x):
        print(written)
    return 0


def cmd_report(args: list[str]) -> int:
    from scalerl.analysis import write_report

    parser = analysis_parser("report", "A markdown report comparing groups of runs, with figures.")
    parser.add_argument("-o", "--out", type=Path, default=Path("report.md"))
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    parsed = parser.parse_args(args)
    print(write_report(parsed.runs, parsed.out, parsed.group_by, reps=parsed.reps))
    return 0


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


def cmd_sweep(args: list[str]) -> int:
    from scalerl.sweep import SweepSpec, load_sweep_file, run_sweep

    parser = ArgumentParser(prog="scalerl sweep", description="Run a grid of config overrides x seeds on Ray; "
                            "started again, it skips finished runs and resumes unfinished ones.")
    parser.add_argument("file", nargs="?", type=Path, help="sweep file (.toml or .yaml): base, grid, variants, seeds")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="shared settings, e.g. env=minatar:breakout steps=100000")
    parser.add_argument("--grid", nargs="+", default=[], metavar="KEY=V1,V2", help="values to sweep, e.g. net.width=1,4")
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--max-retries", type=int, default=None, help="retries of a failed trial (default 1)")
    parser.add_argument("-o", "--out", type=Path, default=None, help="sweep folder (default sweeps/<file name or time>)")
    parser.add_argument("--workers", type=int, default=None, help="local Ray CPUs, one trial each (default: all cores)")
    parser.add_argument("--address", default=None, help="a Ray cluster to run on, e.g. auto or ray://host:10001")
    parser.add_argument("--gpus-per-run", type=float, default=0.0, help="GPU share per trial; > 0 trains on cuda")
    parser.add_argument("--no-report", action="store_true", help="skip the report.md written at the end")
    parsed = parser.parse_args(args)
    if parsed.file is not None:
        spec = load_sweep_file(parsed.file)
    else:
        spec = SweepSpec()
    base = {**spec.base, **{k: parse_value(v) for k, v in key_values(parsed.set, "--set")}}
    grid = {**spec.grid, **{k: [parse_value(x) for x in v.split(",")] for k, v in key_values(parsed.grid, "--grid")}}
    spec = SweepSpec(base=base, grid=grid, variants=spec.variants, seeds=parsed.seeds or spec.seeds,
                     max_retries=spec.max_retries if parsed.max_retries is None else parsed.max_retries)
    out = parsed.out or Path("sweeps") / (parsed.file.stem if parsed.file else time.strftime("sweep-%Y%m%d-%H%M%S"))
    result = run_sweep(spec, out, workers=parsed.workers, address=parsed.address, gpus_per_run=parsed.gpus_per_run,
                       report=not parsed.no_report)
    print(json.dumps(result))
    return 1 if result["failed"] else 0


def cmd_chords(args: list[str]) -> int:
    from scalerl.music.cli import main as chords_main

    return chords_main(args)


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "train": cmd_train,
    "eval": cmd_eval,
    "envs": cmd_envs,
    "agents": cmd_agents,
    "plot": cmd_plot,
    "report": cmd_report,
    "sweep": cmd_sweep,
    "chords": cmd_chords,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(HELP)
        return 0
    command, *args = argv
    if command not in COMMANDS:
        print(f"scalerl: error: unknown command {command!r}; valid: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[command](args)
    except ConfigError as error:
        print(f"scalerl: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("scalerl: interrupted; continue with scalerl train --resume RUN_DIR", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
