"""The multi-task scaling study (`scalerl study mtrl-scaling`): MT-SAC made wider, on more tasks.

"Multi-Task RL Enables Parameter Scaling" finds that a plain multi-head SAC gains from width, that the
critic's dormant ratio rises with width, and that more tasks keep neurons active. This study trains MT-SAC
on Meta-World sets of 1, 4 and 10 tasks at three widths (actor and critics alike), and at the middle task
count also widens the actor alone and the critic alone. It logs the success rate and the critic's
tau-dormant ratio (tau 0.1, the paper's threshold) over training, an ordinary sweep under out/runs
(finished runs are reused).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scalerl.analysis.plots import mean_and_band, pyplot, save, series
from scalerl.analysis.report import table
from scalerl.analysis.runs import find_runs
from scalerl.sweep import SweepSpec, run_sweep

TASK_SETS = {
    1: "custom/reach-v3",
    4: "custom/reach-v3,push-v3,drawer-close-v3,window-open-v3",
    10: "MT10",
}
"""Task sets by size; the smaller are the first of MT10's tasks that its scripted policies solve."""


@dataclass(frozen=True)
class Settings:
    widths: tuple[int, ...] = (64, 256, 1024)
    task_counts: tuple[int, ...] = (1, 4, 10)
    apart_tasks: int = 4
    """The task count at which actor-only and critic-only widening are run."""
    steps_per_task: int = 10_000
    """Environment steps per task (a run takes this times its task count)."""
    batch_size: int = 32
    """Transitions per task per update."""
    seeds: list[int] = field(default_factory=lambda: [0])
    evaluations: int = 4
    eval_episodes_per_task: int = 5


FULL = Settings()
"""About 1.5 hours on 2 cores (the MT10 width-1024 run alone takes 40 minutes): the numbers in the study's README."""
QUICK = Settings(widths=(8, 16), task_counts=(1, 4), steps_per_task=250, batch_size=4, evaluations=1,
                 eval_episodes_per_task=1)
"""A few minutes: every part, at a size that learns nothing."""


def variants(settings: Settings) -> list[dict[str, Any]]:
    """One variant per (width, task count), and actor-only / critic-only widening at apart_tasks."""
    def variant(name: str, tasks: int, actor: int, critic: int) -> dict[str, Any]:
        steps = settings.steps_per_task * tasks
        return {"name": name, "env": f"metaworld:{TASK_SETS[tasks]}", "steps": steps,
                "eval_every": steps // settings.evaluations, "eval_episodes": settings.eval_episodes_per_task * tasks,
                "algo.learning_starts": steps // 5, "algo.train_every": tasks,
                "algo.actor_hidden": actor, "algo.critic_hidden": critic}

    found = [variant(f"tasks{tasks}-width{width}", tasks, width, width)
             for tasks in settings.task_counts for width in settings.widths]
    small, large = settings.widths[0], settings.widths[-1]
    found += [variant(f"tasks{settings.apart_tasks}-actor{large}-critic{small}", settings.apart_tasks, large, small),
              variant(f"tasks{settings.apart_tasks}-actor{small}-critic{large}", settings.apart_tasks, small, large)]
    return found


def run_sweep_of(settings: Settings, out: Path, workers: int | None, address: str | None) -> list[Path]:
    base = {"agent": "mtsac", "log_every": 1_000, "checkpoint_every": 10_000, "algo.batch_size": settings.batch_size,
            "hooks": ["activity"], "hook_opts.activity.every": 250, "hook_opts.activity.per_layer": False}
    result = run_sweep(SweepSpec(base=base, variants=variants(settings), seeds=settings.seeds), out, workers=workers,
                       address=address, report=False)
    if result["failed"]:
        raise RuntimeError(f"{len(result['failed'])} scaling study runs failed, first: {result['failed'][0]['error']}")
    return [out / name for name in result["finished"]]


def last_values(run, metric: str, share: float = 0.25) -> float:
    """The mean of a training metric over the last `share` of its records (the dormant ratio is noisy)."""
    values = [r[metric] for r in run.metrics if metric in r]
    return float(np.mean(values[-max(1, int(len(values) * share)):])) if values else float("nan")


def summarize(runs: list) -> list[dict[str, Any]]:
    rows = []
    for run in runs:
        algo = run.config["algo"]
        parameters = sum((run.summary or {}).get("parameters", {}).values())
        rows.append({"variant": run.path.parent.name, "seed": run.seed, "tasks": run.config["num_envs"],
                     "actor": algo["actor_hidden"], "critic": algo["critic_hidden"], "parameters": parameters,
                     "success": run.evals[-1].get("success_mean", float("nan")) if run.evals else float("nan"),
                     "best_success": max((e.get("success_mean", 0.0) for e in run.evals), default=float("nan")),
                     "critic_dormant": last_values(run, "dormant/critic1"),
                     "actor_dormant": last_values(run, "dormant/actor")})
    return sorted(rows, key=lambda r: (r["tasks"], r["actor"] != r["critic"], r["critic"], r["actor"], r["seed"]))


def write_report(settings: Settings, runs: list, out: Path, quick: bool) -> Path:
    rows = summarize(runs)
    lines = [f"# Multi-task scaling study{' (quick: every part, nothing learned)' if quick else ''}", "",
             (f"MT-SAC, {settings.steps_per_task:,} environment steps per task, batch {settings.batch_size} per task, "
              "3 hidden layers for actor and critics. Success: mean over tasks at the last evaluation (and the best "
              "evaluation). Dormant: the share of tau-dormant neurons (tau 0.1) over the last quarter of "
              "training."), "",
             *table(["variant", "seed", "tasks", "actor width", "critic width", "parameters", "success (best)",
                     "critic dormant", "actor dormant"],
                    [[r["variant"], str(r["seed"]), str(r["tasks"]), str(r["actor"]), str(r["critic"]),
                      f"{r['parameters']:,}", f"{r['success']:.0%} ({r['best_success']:.0%})",
                      f"{r['critic_dormant']:.1%}", f"{r['actor_dormant']:.1%}"] for r in rows]), ""]
    if runs:
        plt = pyplot()
        figure, axes = plt.subplots(1, 2, figsize=(12, 3.8))
        groups: dict[str, list] = {}
        for run in runs:
            groups.setdefault(run.path.parent.name, []).append(run)
        widths = sorted({run.config["algo"]["critic_hidden"] for run in runs})
        styles = {count: style for count,
                  style in zip(sorted({run.config["num_envs"] for run in runs}), (":", "--", "-"))}
        for axis, (metric, label) in zip(axes,
                                         (("success_mean", "success rate"),
                                          ("dormant/critic1", "critic dormant ratio"))):
            for name, members in sorted(groups.items()):
                curves = [c for c in (series(r, metric, "step") for r in members) if len(c[0])]
                if curves:
                    grid, mean, _, _ = mean_and_band(curves)
                    algo, tasks = members[0].config["algo"], members[0].config["num_envs"]
                    apart = algo["actor_hidden"] != algo["critic_hidden"]
                    axis.plot(np.asarray(grid) / tasks, mean, label=name, linestyle=styles.get(tasks, "-"),
                              color="C7" if apart and algo["critic_hidden"] == widths[0] else
                              f"C{widths.index(algo['critic_hidden'])}",
                              marker="o" if apart or len(grid) == 1 else None, markersize=3)
            axis.set_xlabel("environment steps per task")
            axis.set_title(label)
            axis.grid(alpha=0.3)
        axes[1].legend(fontsize=7, ncol=2)
        save(figure, out / "report_figures" / "scaling")
        lines += [("Colour: the critic's width; line: the task count (dotted 1, dashed 4, solid 10); "
                   "dots: actor and critic widths apart (grey: the wide actor with narrow critics)."), "",
                  "![success and dormant ratio](report_figures/scaling.png)", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    return report


def run(out: Path, quick: bool = False, workers: int | None = None, address: str | None = None) -> Path:
    settings = QUICK if quick else FULL
    out.mkdir(parents=True, exist_ok=True)
    runs = find_runs(run_sweep_of(settings, out / "runs", workers, address))
    return write_report(settings, runs, out, quick)
