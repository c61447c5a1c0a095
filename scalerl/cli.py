"""`scalerl train|eval|probe|envs|agents|hooks|plot|report|chords|sweep|study`: the command line over the same
functions Python users call.

tyro builds the parser and help from the config dataclasses. Before tyro parses, every flag is
checked against the config's fields, so an unknown flag or a malformed value gets one plain line
naming it and the valid choices, and any ConfigError raised by validation prints the same way.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import tyro

from scalerl.agents import AGENTS, agent_class
from scalerl.agents.objectives import OBJECTIVES
from scalerl.analysis import find_runs, plot_curves, write_report
from scalerl.checks import ConfigError, ScalerlWarning, first_line, install_hint
from scalerl.config import TrainConfig
from scalerl.envs import describe_suites, describe_tasks
from scalerl.flags import (
    SEEDS,
    ArgumentParser,
    check_flags,
    field_types,
    integer,
    key_values,
    number,
    option_value,
    parse_value,
    tyro_cli,
    writable_path,
)
from scalerl.hooks import HOOKS
from scalerl.music.cli import main as chords_main
from scalerl.plugins import load_plugins, take_plugins_option
from scalerl.presets import describe_presets, preset_names, preset_settings, read_preset
from scalerl.probe import probe_run
from scalerl.run import evaluate, resume, train
from scalerl.studies import (
    export_study,
    quick_cost,
    report_study,
    run_study,
    study_folder,
    study_names,
    title,
    verdict_summary,
)
from scalerl.sweep import SweepSpec, load_sweep_file, run_sweep

HELP = """usage: scalerl COMMAND [OPTIONS]

commands:
  train    train an agent (scalerl train --help); continue a killed run with --resume RUN_DIR, or train a
           run on to a new budget with --resume RUN_DIR --steps N
  eval     evaluate a run's latest checkpoint: scalerl eval RUN_DIR [--episodes N] [--num-envs E] [--seed S]
  probe    mutual information of a PPO run's actor and critic latents: scalerl probe RUN_DIR [STEPS]
  envs     list environment suites and tasks; --suite NAME adds observation and action spaces
  agents   list agents and their hyperparameters
  hooks    list hooks (diagnostics, interventions) and their options
  plot     learning curves or training metrics of runs: scalerl plot RUNS... [--group-by KEY] [--metric M]
  report   a markdown report comparing groups of runs: scalerl report RUNS... -o report.md
  chords   ReaLchords, the live chord accompanist: scalerl chords data|pretrain|rewards|finetune|eval|
           accompany|jam|export (scalerl chords --help)
  sweep    config overrides x seeds on Ray: scalerl sweep FILE.toml, or --set K=V --grid K=V1,V2 --seeds 0 1
  study    reproduce a paper's effect at small scale, with a report: scalerl study --list, scalerl study NAME [--quick]

Every command takes --plugins FILE.py|MODULE ... to load your own agents, hooks, PPO objectives and environment
suites first (@register_agent, @register_hook, @register_objective, register_suite; see scalerl.plugins): they
then appear in `agents`, `hooks`, `envs`, --agent, --hooks, --algo.objectives and --env.
"""


def without_preset(args: list[str]) -> tuple[list[str], str | None]:
    """The arguments without `--preset NAME`, and the name."""
    name = option_value(args, "--preset")
    if name is None and "--preset" in args:
        raise ConfigError(f"--preset takes a name: {', '.join(preset_names())}")
    return [arg for index, arg in enumerate(args) if not (arg == "--preset" or arg.startswith("--preset=") or
                                                          (index and args[index - 1] == "--preset"))], name


def parse_train_config(args: list[str]) -> TrainConfig:
    """A TrainConfig from `scalerl train` flags: a preset's settings as defaults, the flags given over them."""
    args, preset = without_preset(args)
    settings = preset_settings(preset) if preset is not None else {}
    agent = option_value(args, "--agent") or settings.get("agent") or TrainConfig.agent
    config_class = agent_class(agent).config_class
    check_flags(args, field_types(TrainConfig, "", config_class))
    env = option_value(args, "--env") or settings.get("env") or TrainConfig.env
    try:
        default = TrainConfig(**{**settings, "agent": agent, "env": env})
    except ConfigError as error:
        needs = read_preset(preset)["needs"] if preset else ""
        raise ConfigError(f"preset {preset} ({needs} tasks, e.g. --env {needs}:...): {error}") from None
    return tyro_cli(TrainConfig[config_class], args, "scalerl train", default=default)


SHORT_TRAIN_OPTIONS = ("env", "agent", "steps", "seed", "num_envs", "run_dir", "device", "threads", "precision",
                       "eval_every", "eval_episodes", "checkpoint_every", "hooks", "stop_at_return", "progress",
                       "capture_video", "track")
"""What `scalerl train --help` shows; `--help-all` shows every option of the agent's config too."""


def short_train_help(agent: str) -> str:
    """The options most runs set, each with its default and meaning, read from TrainConfig itself."""
    defaults = TrainConfig(agent=agent)
    meanings = field_docstrings(TrainConfig)
    lines = ["usage: scalerl train [OPTIONS]   (every option: scalerl train --help-all)", "",
             "Train an agent; the run writes a folder (config, metrics, TensorBoard, checkpoints).", "",
             "options (default, meaning):"]
    for name in SHORT_TRAIN_OPTIONS:
        meaning = " ".join(meanings.get(name, "").split())
        lines.append(f"  --{name.replace('_', '-'):18s} {getattr(defaults, name)!r:>24}   {meaning[:90]}")
    lines += ["", f"  --algo.NAME VALUE     the agent's settings ({agent}'s: scalerl agents, or --agent X --help-all)",
              "  --net.NAME VALUE      the network (encoder, width, depth, bottleneck, ...: --help-all)",
              "  --env-opts.NAME VALUE the suite's options (scalerl envs --suite NAME)",
              "  --hook-opts.NAME.X V  a hook's options (scalerl hooks)",
              "  --resume RUN_DIR [--steps N]   continue a killed run, or train a finished one on to N steps",
              "  --preset NAME         a paper's or benchmark's settings as defaults; flags given beside it win:",
              *(f"      {line}" for line in describe_presets()),
              "  --plugins FILE.py|MODULE ...   load your own agents, hooks, objectives and suites first"]
    return "\n".join(lines)


def field_docstrings(cls: type) -> dict[str, str]:
    """A dataclass's field docstrings (the string right after each field), as tyro reads them for --help."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    found = {}
    for node, following in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(following, ast.Expr) \
                and isinstance(following.value, ast.Constant) and isinstance(following.value.value, str):
            found[node.target.id] = following.value.value
    return found


def cmd_train(args: list[str]) -> int:
    if "--help-all" in args:
        args = [("--help" if arg == "--help-all" else arg) for arg in args]
    elif "-h" in args or "--help" in args:
        print(short_train_help(option_value(args, "--agent") or TrainConfig.agent))
        return 0
    run_dir = option_value(args, "--resume")
    if run_dir is not None or "--resume" in args:
        steps = option_value(args, "--steps")
        others = [arg for arg in args if arg not in ("--resume", run_dir, "--steps", steps)
                  and not arg.startswith(("--resume=", "--steps="))]
        if run_dir is None or others or (steps is None and "--steps" in args):
            raise ConfigError("--resume RUN_DIR takes one other option, --steps N (train on to a new budget): "
                              "the run's config.json is used as is")
        if steps is not None and not steps.isdigit():
            raise ConfigError(f"--steps must be a whole number of steps; got {steps!r}")
        summary = resume(run_dir, None if steps is None else int(steps))
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
    num_envs: int | None = None
    """Environments the episodes are spread over; default: as many as the run's evaluations used."""
    seed: int | None = None
    """Seed of the evaluation environments; default: the run's own evaluation seed."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where the network runs."""
    video: bool = False
    """Also film one episode from the evaluation seed into RUN_DIR/videos/eval-seed-S.mp4."""


def cmd_eval(args: list[str]) -> int:
    if not args or args[0] not in ("-h", "--help"):
        if not args or args[0].startswith("-"):
            raise ConfigError("usage: scalerl eval RUN_DIR [--episodes N] [--num-envs E] [--seed S] [--device D] "
                              "[--video]")
        options = {name: kind for name, kind in field_types(EvalArgs, "", type(None)).items() if name != "run_dir"}
        check_flags(args[1:], options)
    parsed = tyro_cli(EvalArgs, args, "scalerl eval")
    print(json.dumps(evaluate(parsed.run_dir, parsed.episodes, parsed.seed, parsed.device, parsed.num_envs,
                              video=parsed.video)))
    return 0


def cmd_probe(args: list[str]) -> int:
    """Mutual information of a PPO run's actor and critic latents (see scalerl.diagnostics.information)."""
    if args and args[0] in ("-h", "--help"):
        print("usage: scalerl probe RUN_DIR [STEPS]: mutual information (nats, KSG k=3) of a PPO run's actor and "
              "critic latents with the observation, the value, the action and the level (or environment copy)")
        return 0
    if not args or args[0].startswith("-"):
        raise ConfigError("usage: scalerl probe RUN_DIR [STEPS]")
    if len(args) > 2 or (len(args) == 2 and not args[1].isdigit()):
        raise ConfigError("usage: scalerl probe RUN_DIR [STEPS]")
    print(json.dumps(probe_run(args[0], int(args[1]) if len(args) == 2 else 512)))
    return 0


def cmd_envs(args: list[str]) -> int:
    suite = option_value(args, "--suite")
    if suite is not None:
        for row in describe_tasks(suite):
            print(f"{row['env']:36s} obs {row['observation']:28s} action {row['action']}")
        return 0
    for row in describe_suites():
        vector = "  [vector env only: no single env for gymnasium's check_env]" if row["vector_only"] else ""
        print(f"{row['suite']}: {row['description']}{vector}")
        if not row["installed"]:
            print(f"    not installed: {install_hint(row['extra'])}")
        elif row["tasks"]:
            print(textwrap.fill(" ".join(row["tasks"]), width=100, initial_indent="    ", subsequent_indent="    "))
    print("\nscalerl envs --suite NAME lists each task's observation and action spaces.")
    return 0


def flag_defaults(config: object, prefix: str) -> list[tuple[str, object]]:
    """(flag, default) of every field of a config instance, nested configs flattened."""
    rows = []
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if dataclasses.is_dataclass(value):
            rows += flag_defaults(value, f"{prefix}{item.name}.")
        else:
            rows.append((f"--{prefix}{item.name}".replace("_", "-"), value))
    return rows


def no_arguments(command: str, args: list[str]) -> None:
    if args:
        raise ConfigError(f"scalerl {command} takes no arguments (got {' '.join(args)})")


def cmd_agents(args: list[str]) -> int:
    no_arguments("agents", args)
    for name, cls in AGENTS.items():
        print(f"{name:8s} {cls.description}  [{cls.loop.replace('_', '-')}]")
        for flag, default in flag_defaults(cls.config_class(), "algo."):
            print(f"    {flag:30s} default {default!r}")
    print("\nPPO's objectives (dynamics and value_distillation by their own flags, others by --algo.objectives NAME):")
    for name, cls in OBJECTIVES.items():
        print(f"    {name:30s} {cls.description}")
    return 0


def cmd_hooks(args: list[str]) -> int:
    no_arguments("hooks", args)
    for name, cls in HOOKS.items():
        print(f"{name:8s} {cls.description}")
        for flag, default in flag_defaults(cls.config_class(), f"hook-opts.{name}."):
            print(f"    {flag:30s} default {default!r}")
    print("\nRun hooks with scalerl train --hooks NAME [NAME ...].")
    return 0


def analysis_parser(command: str, description: str) -> ArgumentParser:
    parser = ArgumentParser(prog=f"scalerl {command}", description=description)
    parser.add_argument("runs", nargs="+", help="run directories, or folders holding them (e.g. a sweep)")
    parser.add_argument("--group-by", nargs="+", default=None, metavar="KEY",
                        help="config keys that define the groups, e.g. net.bottleneck "
                             "(default: every key that differs)")
    return parser


def cmd_plot(args: list[str]) -> int:
    parser = analysis_parser("plot", "Learning curves or training metrics, mean and 95% band over seeds, per group.")
    parser.add_argument("--metric", default="score",
                        help="score (normalized), return_mean, success_mean, "
                             "or any key of metrics.jsonl (loss, grad_norm, ...)")
    parser.add_argument("--x", choices=["step", "wall_time"], default="step")
    parser.add_argument("-o", "--out", type=writable_path("folder"), default=Path("plots"),
                        help="folder for the PNG and SVG")
    parsed = parser.parse_args(args)
    runs = find_runs(parsed.runs)
    path = parsed.out / f"{parsed.metric.replace('/', '_')}_vs_{parsed.x}"
    for written in plot_curves(runs, parsed.metric, path, parsed.group_by, parsed.x):
        print(written)
    return 0


def cmd_report(args: list[str]) -> int:
    parser = analysis_parser("report", "A markdown report comparing groups of runs, with figures.")
    parser.add_argument("-o", "--out", type=writable_path("file"), default=Path("report.md"))
    parser.add_argument("--reps", type=integer(1, 100_000), default=2000, help="bootstrap resamples")
    parser.add_argument("--last", type=integer(1, 10_000), default=1, metavar="N",
                        help="score each run by the mean of its last N evaluations (default 1: the last one)")
    parsed = parser.parse_args(args)
    print(write_report(parsed.runs, parsed.out, parsed.group_by, reps=parsed.reps, last=parsed.last))
    return 0


def cmd_sweep(args: list[str]) -> int:
    parser = ArgumentParser(prog="scalerl sweep", description="Run a grid of config overrides x seeds on Ray; "
                            "started again, it skips finished runs and resumes unfinished ones.")
    parser.add_argument("file", nargs="?", type=Path, help="sweep file (.toml or .yaml): base, grid, variants, seeds")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="shared settings, e.g. env=minatar:breakout steps=100000")
    parser.add_argument("--grid", nargs="+", default=[], metavar="KEY=V1,V2",
                        help="values to sweep, e.g. net.width=1,4")
    parser.add_argument("--seeds", nargs="+", type=SEEDS, default=None)
    parser.add_argument("--max-retries", type=integer(0, 100), default=None,
                        help="retries of a failed trial (default 1)")
    parser.add_argument("-o", "--out", type=Path, default=None,
                        help="sweep folder (default sweeps/<file name or time>)")
    parser.add_argument("--workers", type=integer(1, 4096), default=None,
                        help="local Ray CPUs, one trial each (default: all cores)")
    parser.add_argument("--address", default=None, help="a Ray cluster to run on, e.g. auto or ray://host:10001")
    parser.add_argument("--gpus-per-run", type=number(0, 64), default=0.0,
                        help="GPU share per trial; > 0 trains on cuda")
    parser.add_argument("--no-report", action="store_true", help="skip the report.md written at the end")
    parsed = parser.parse_args(args)
    if parsed.file is None and not parsed.set and not parsed.grid:
        raise ConfigError("scalerl sweep needs a sweep file or --set/--grid overrides (see scalerl sweep --help)")
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


def cmd_study(args: list[str]) -> int:
    parser = ArgumentParser(prog="scalerl study", description="Reproduce a paper's headline effect at small scale "
                            "and write a report with figures; started again, a study continues where it stopped.")
    parser.add_argument("name", nargs="?", help="the study (see --list)")
    parser.add_argument("--list", action="store_true", help="list the studies")
    parser.add_argument("--readme", action="store_true", help="print the study's README: the paper, its claim, its "
                        "numbers and ours")
    parser.add_argument("--quick", action="store_true", help="a few minutes: every step at a size that shows nothing")
    parser.add_argument("-o", "--out", type=Path, default=None, help="folder (default studies/NAME[-quick])")
    parser.add_argument("--workers", type=integer(1, 4096), default=None, help="runs in parallel (default: all cores)")
    parser.add_argument("--address", default=None, help="a Ray cluster to run on (see scalerl sweep --address)")
    parser.add_argument("--seeds", type=SEEDS, nargs="+", default=None, metavar="SEED",
                        help="run only these seeds of a sweep study (a long study a seed at a time, into the same "
                        "--out); the report covers every finished run there")
    parser.add_argument("--variants", nargs="+", default=None, metavar="NAME",
                        help="run only these variants of a sweep study, named as their run folders (e.g. "
                        "flatten-512); with --seeds, a long study in parts")
    parser.add_argument("--export", action="store_true", help="turn the finished study folder (--out) into the "
                        "study's shipped results.jsonl, trains nothing")
    parser.add_argument("--report", action="store_true", help="rewrite the study README's tables, verdicts and "
                        "figures from its shipped results.jsonl, trains nothing")
    parsed = parser.parse_args(args)
    if parsed.list or parsed.name is None:
        width = max(map(len, study_names()))
        for name in study_names():
            cost = quick_cost(name)
            print(f"{name:{width}s}  {title(name)}  [{verdict_summary(name)}]" + (f"  ({cost})" if cost else ""))
        return 0
    if parsed.readme:
        print((study_folder(parsed.name) / "README.md").read_text())
        return 0
    if parsed.export:
        print(export_study(parsed.name, parsed.out))
        return 0
    if parsed.report:
        print(report_study(parsed.name))
        return 0
    print(run_study(parsed.name, parsed.out, parsed.quick, parsed.workers, parsed.address, seeds=parsed.seeds,
                    variants=parsed.variants))
    return 0


def cmd_chords(args: list[str]) -> int:
    return chords_main(args)


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "train": cmd_train,
    "eval": cmd_eval,
    "probe": cmd_probe,
    "envs": cmd_envs,
    "agents": cmd_agents,
    "hooks": cmd_hooks,
    "plot": cmd_plot,
    "report": cmd_report,
    "sweep": cmd_sweep,
    "study": cmd_study,
    "chords": cmd_chords,
}


def show_warnings_as_lines() -> None:
    """scalerl's own warnings (ScalerlWarning) as one `scalerl: warning:` line each, not Python's two."""
    import warnings

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, ScalerlWarning):
            print(f"scalerl: warning: {message}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(HELP)
        return 0
    command, *args = argv
    show_warnings_as_lines()
    try:
        plugins, args = take_plugins_option(args)
        load_plugins(plugins)
    except ConfigError as error:
        print(f"scalerl: error: {error}", file=sys.stderr)
        return 2
    if command not in COMMANDS:
        print(f"scalerl: error: unknown command {command!r}; valid: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[command](args)
    except ConfigError as error:
        print(f"scalerl: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a path the user gave that cannot be written or read: say which, in one line
        where = f"{error.filename}: " if error.filename else ""
        print(f"scalerl: error: {where[:200]}{error.strerror or first_line(error)}", file=sys.stderr)
        return 2
    except MemoryError:
        print("scalerl: error: out of memory: lower the sizes asked for (batch size, buffer size, environments)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("scalerl: interrupted; continue with scalerl train --resume RUN_DIR", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
