"""The LEAST study's shipped results: what a finished study folder turns into (`scalerl study least --export`),
and the README's tables, verdicts and figures drawn from it (`scalerl study least --report`).

Each random-stop arm runs at the rate its sweep file sets; `measured_rates` reads LEAST's own rate from the
finished LEAST runs, and the README's table shows both measured rates side by side, so a reader can check that
the control stops as often as the rule it controls for."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scalerl.analysis.plots import pyplot, save
from scalerl.analysis.results import (
    Claim,
    RunResult,
    estimate_text,
    markdown_table,
    mean_interval,
    provenance_line,
    select,
    thin,
    verdict_table,
)
from scalerl.analysis.runs import load_run
from scalerl.checks import ConfigError
from scalerl.sweep import load_sweep_file

STUDY = "least"
FOLDER = Path(__file__).parent
FIGURE = "least_returns"
AGENTS = ("td3", "sac")
ENVS = {"mujoco:Hopper-v5": "Hopper", "mujoco:HalfCheetah-v5": "HalfCheetah"}
STOPS = {"none": "no stops", "least": "LEAST", "random_stop": "random stops"}
PAPER = {"td3": "normalized score 0.58 -> 0.70 (TD3, 4 MuJoCo tasks, 5 seeds; secondary: the project's paper notes)",
         "sac": "normalized score 0.63 -> 0.71 (SAC, 4 MuJoCo tasks, 5 seeds; secondary: the project's paper notes)"}
LAST = 3
"""The final score of a run: the mean of its last three evaluations (70k-100k steps)."""


def stops_of(hooks: Sequence[str]) -> str:
    chosen = [hook for hook in hooks if hook in STOPS]
    return chosen[0] if chosen else "none"


def variants() -> list[tuple[str, dict]]:
    """(run folder, overrides) of every arm of the study's sweep file."""
    return load_sweep_file(FOLDER / "sweep.toml").overrides()


# -- export: a finished study folder -> results ----------------------------------------------------------


def run_result(run_dir: Path) -> RunResult:
    run = load_run(run_dir)
    provenance_path = run_dir / "provenance.json"
    if not provenance_path.is_file():
        raise ConfigError(f"{run_dir} has no provenance.json: it was made before runs recorded their commit")
    config = run.config
    stop = stops_of(config["hooks"])
    returns = [float(e["return_mean"]) for e in run.evals]
    logged = [r for r in run.metrics if "episode_length" in r]
    stopped = sum(float(r.get(f"{stop}/stopped", 0.0)) for r in run.metrics) if stop != "none" else 0.0
    active = config["steps"] * (1 - config["hook_opts"][stop]["start"]) if stop != "none" else 0.0
    return RunResult(
        run=f"{run_dir.parent.name}-s{run.seed}",
        arm={"agent": config["agent"], "env": config["env"], "stop": stop}, seed=run.seed,
        command=f"scalerl study {STUDY} --seeds {run.seed} --variants {run_dir.parent.name}",
        provenance=json.loads(provenance_path.read_text()),
        curves={"eval_step": [int(e["step"]) for e in run.evals], "eval_return": returns,
                "step": thin([int(r["step"]) for r in logged]),
                "episode_length": thin([float(r["episode_length"]) for r in logged])},
        finals={"return_final": returns[-1], "return_last3": float(np.mean(returns[-LAST:])),
                "return_curve_mean": float(np.mean(returns)), "episodes": float(run.metrics[-1]["episodes"]),
                "stopped": stopped, "stops_per_step": stopped / active if active else 0.0})


def export(out: Path) -> list[RunResult]:
    """Every finished run of the study folder `out`."""
    finished = sorted(summary.parent for name, _ in variants() for summary in (out / name).glob("seed*/summary.json"))
    return [run_result(run_dir) for run_dir in finished]


def measured_rates(out: Path) -> dict[tuple[str, str], float]:
    """LEAST's mean stops per step after its start, per (agent, env), over the finished LEAST runs in `out`: the
    rate each random-stop arm of the sweep file is set to."""
    rates: dict[tuple[str, str], list[float]] = {}
    for result in export(out):
        if result.arm["stop"] == "least":
            rates.setdefault((result.arm["agent"], result.arm["env"]), []).append(result.finals["stops_per_step"])
    return {key: float(np.mean(values)) for key, values in rates.items()}


# -- the README's blocks -----------------------------------------------------------------------------------


def scores(results: Sequence[RunResult], agent: str, env: str, stop: str, key: str = "return_last3") -> list[float]:
    return [r.finals[key] for r in select(results, agent=agent, env=env, stop=stop)]


def claims() -> list[Claim]:
    found = []
    for agent in AGENTS:
        for env, task in ENVS.items():
            def arm(stop: str, agent=agent, env=env):
                return lambda rs: scores(rs, agent, env, stop)

            def stopping(rs, agent=agent, env=env) -> str:
                least = select(rs, agent=agent, env=env, stop="least")
                none = select(rs, agent=agent, env=env, stop="none")
                if not least or not none:
                    return ""
                share = np.mean([r.finals["stopped"] / r.finals["episodes"] for r in least])
                return (f"LEAST ends {share:.0%} of its training episodes early (they last "
                        f"{np.mean([r.curves['episode_length'][-1] for r in least]):.0f} steps at the end, against "
                        f"{np.mean([r.curves['episode_length'][-1] for r in none]):.0f} without stops)")

            def improves(d, rs, stopping=stopping) -> str:
                if d.low > 0:
                    return f"LEAST leads; {stopping(rs)}"
                lead = "LEAST leads by less than the seeds' spread" if d.point > 0 else "LEAST does not lead"
                return f"{lead}: {stopping(rs)}, and at 100k steps the returns do not separate"

            found += [
                Claim(f"LEAST improves {agent.upper()} on {task}", PAPER[agent], arm("least"), arm("none"),
                      f"mean of the last {LAST} evaluations, LEAST minus no stops", improves),
                Claim(f"LEAST's choice of stops, not the stopping, helps {agent.upper()} on {task}",
                      "not in the paper: the control the audit asked for", arm("least"), arm("random_stop"),
                      f"mean of the last {LAST} evaluations, LEAST minus random stops at LEAST's rate",
                      lambda d, rs: "the rule's choice beats stopping as often at random" if d.low > 0 else
                      "the rule leads random stops at its rate by less than the seeds' spread" if d.point > 0 else
                      "random stops at the same rate do as well: the stopping, not the choice, sets the result"),
            ]
    return found


def arms_table(results: Sequence[RunResult]) -> str:
    rows = []
    for agent in AGENTS:
        for env, task in ENVS.items():
            for stop, label in STOPS.items():
                members = select(results, agent=agent, env=env, stop=stop)
                if not members:
                    continue
                last = mean_interval([r.finals["return_last3"] for r in members])
                curve = np.mean([r.finals["return_curve_mean"] for r in members])
                episodes = np.mean([r.finals["episodes"] for r in members])
                stopped = np.mean([r.finals["stopped"] for r in members])
                rate = np.mean([r.finals["stops_per_step"] for r in members])
                length = np.mean([r.curves["episode_length"][-1] for r in members])
                rows.append([agent.upper(), task, label, str(len(members)), estimate_text(last), f"{curve:,.0f}",
                             f"{episodes:,.0f}", f"{stopped:,.0f}" if stop != "none" else "",
                             f"{rate:.4f}" if stop != "none" else "", f"{length:,.0f}"])
    return markdown_table(["agent", "task", "stops", "seeds", f"mean of the last {LAST} evaluations [95% CI]",
                           "mean over all evaluations", "episodes", "of them stopped",
                           "stops per step (after the start)", "episode length at the end"], rows)


def blocks(results: Sequence[RunResult], figures: Path | None) -> dict[str, str]:
    """The README's generated blocks; the figure is drawn into `figures` when given."""
    if figures is not None:
        plot(results, figures / FIGURE)
    return {"verdict": verdict_table(claims(), results), "provenance": provenance_line(results),
            "arms": arms_table(results)}


def plot(results: Sequence[RunResult], path: Path) -> None:
    """Per agent and task with results: the evaluation return above, the training episodes' length below."""
    shown = [(agent, env, task) for agent in AGENTS for env, task in ENVS.items()
             if select(results, agent=agent, env=env)]
    plt = pyplot()
    figure, axes = plt.subplots(2, max(1, len(shown)), figsize=(4 * max(1, len(shown)), 7), squeeze=False)
    for column, (agent, env, task) in enumerate(shown):
        for color, (stop, label) in enumerate(STOPS.items()):
            members = select(results, agent=agent, env=env, stop=stop)
            for row, (x, y) in enumerate((("eval_step", "eval_return"), ("step", "episode_length"))):
                if not members:
                    continue
                length = min(len(r.curves[y]) for r in members)
                curves = np.asarray([r.curves[y][:length] for r in members])
                steps = members[0].curves[x][:length]
                axes[row, column].plot(steps, curves.mean(axis=0), color=f"C{color}", label=label,
                                       marker="o" if length < 20 else None, markersize=3)
                axes[row, column].fill_between(steps, curves.min(axis=0), curves.max(axis=0), color=f"C{color}",
                                               alpha=0.12)
        axes[0, column].set_title(f"{agent.upper()} {task}: evaluation return", fontsize=10)
        axes[1, column].set_title(f"{agent.upper()} {task}: training episode length", fontsize=10)
        axes[1, column].set_yscale("log")
        axes[1, column].set_xlabel("environment steps")
    for axis in axes.ravel():
        axis.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    figure.tight_layout()
    save(figure, path, suffixes=(".png",))
