"""Figures from run directories (matplotlib, written as PNG and SVG).

- learning curves: a metric against environment steps or wall time, one line per group with the mean
  over seeds and a 95% bootstrap band, one panel per task; a tick marks where a run ended before the
  group's longest, and past it the line is the mean of the runs still going;
- diagnostics: the same for any training metric in metrics.jsonl (loss, grad_norm, dormant ratio, ...);
- aggregate bars: IQM, median, mean and optimality gap per group, with their confidence intervals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from scalerl.analysis.aggregate import Estimate
from scalerl.analysis.runs import RunRecord, group_runs
from scalerl.analysis.scores import normalized_score, score_name
from scalerl.checks import ConfigError

EVAL_METRICS = ("score", "return_mean", "success_mean", "length_mean")
"""Metrics read from eval.jsonl; `score` is the task's normalized score. Anything else is looked up
in metrics.jsonl."""


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def series(run: RunRecord, metric: str, x: str) -> tuple[np.ndarray, np.ndarray]:
    """(x values, metric values) of one run; records without the metric are skipped."""
    if metric in EVAL_METRICS:
        records = run.evals
        values = [normalized_score(run.env, r) if metric == "score" else r.get(metric) for r in records]
    else:
        records = run.metrics
        values = [r.get(metric) for r in records]
    pairs = [(r[x], v) for r, v in zip(records, values) if v is not None and x in r]
    if not pairs:
        return np.empty(0), np.empty(0)
    xs, ys = zip(*pairs)
    return np.asarray(xs, float), np.asarray(ys, float)


def mean_and_band(curves: list[tuple[np.ndarray, np.ndarray]], points: int = 100, reps: int = 1000,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Interpolate runs onto a common grid that reaches the longest run's end; at each point, the mean over
    the runs that reach it and a 95% percentile-bootstrap band over those runs. Runs end at different
    steps when they stop at a target return or are still training: cutting every curve at the shortest
    would hide the rest, and padding would invent evaluations."""
    start = max(xs[0] for xs, _ in curves)
    end = max(xs[-1] for xs, _ in curves)
    grid = np.linspace(start, end, points) if end > start else np.asarray([start], float)
    grid = np.unique(np.concatenate([grid, [xs[-1] for xs, _ in curves if xs[-1] >= start]]))
    values = np.stack([np.where(grid <= xs[-1], np.interp(grid, xs, ys), np.nan) for xs, ys in curves])
    rng = np.random.default_rng(seed)
    resampled = values[rng.integers(0, len(values), size=(reps, len(values)))]
    reached = (~np.isnan(resampled)).sum(axis=1)
    resampled_means = np.where(reached > 0, np.nansum(resampled, axis=1) / np.maximum(reached, 1), np.nan)
    low, high = np.nanpercentile(resampled_means, [2.5, 97.5], axis=0)
    return grid, np.nanmean(values, axis=0), low, high


def save(figure, path: Path, suffixes: tuple[str, ...] = (".png", ".svg")) -> list[Path]:
    """`path` + .png and + .svg (or the given `suffixes`). The suffix is appended, not swapped: metric names
    such as dormant/q.torso.0 make stems with dots in them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in suffixes:
        target = path.with_name(path.name + suffix)
        figure.savefig(target, dpi=120, bbox_inches="tight")
        written.append(target)
    pyplot().close(figure)
    return written


def plot_curves(runs: list[RunRecord], metric: str, path: Path, group_by: list[str] | None = None,
                x: str = "step") -> list[Path]:
    """One panel per task, one line (mean and band over seeds) per group."""
    if x not in ("step", "wall_time"):
        raise ConfigError(f"x must be step or wall_time (got {x!r})")
    plt = pyplot()
    tasks = sorted({run.env for run in runs})
    groups = group_runs(runs, group_by)
    figure, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    plotted = False
    for axis, task in zip(axes[0], tasks):
        for color, (label, members) in enumerate(groups.items()):
            curves = [series(run, metric, x) for run in members if run.env == task]
            curves = [c for c in curves if len(c[0])]
            if not curves:
                continue
            grid, mean, low, high = mean_and_band(curves)
            measured = max(len(xs) for xs, _ in curves)
            axis.plot(grid, mean, color=f"C{color}", label=f"{label} ({len(curves)})", **few_points_style(measured))
            if measured < FEW_POINTS:  # the interpolating grid would hide which points were measured
                xs = np.unique(np.concatenate([xs for xs, _ in curves]))
                axis.plot(xs, np.interp(xs, grid, mean), "o", color=f"C{color}", markersize=4)
            early_ends = [xs[-1] for xs, _ in curves if xs[-1] < grid[-1]]
            axis.plot(early_ends, np.interp(early_ends, grid, mean), "|", color=f"C{color}", markersize=10)
            if len(curves) > 1:
                axis.fill_between(grid, low, high, color=f"C{color}", alpha=0.2)
            plotted = True
        axis.set_title(task)
        axis.set_xlabel("environment steps" if x == "step" else "wall time (s)")
        axis.set_ylabel(score_name(task) if metric == "score" else metric)
        axis.grid(alpha=0.3)
    if not plotted:
        plt.close(figure)
        raise ConfigError(f"no run records metric {metric!r}; eval metrics: {', '.join(EVAL_METRICS)}, "
                          f"training metrics: {', '.join(training_metrics(runs)) or 'none'}")
    axes[0][0].legend(fontsize=8)
    return save(figure, path)


FEW_POINTS = 20
"""Below this many measurements a series is drawn with markers: one point as a line draws nothing."""


def few_points_style(points: int) -> dict[str, Any]:
    return {"marker": "o", "markersize": 4} if points == 1 else {}


def training_metrics(runs: list[RunRecord]) -> list[str]:
    """Numeric keys of metrics.jsonl records (loss, grad_norm, diagnostics, ...), from every record: a hook that
    measures every N updates writes its keys into some records only, often neither the first nor the last."""
    keys: set[str] = set()
    for run in runs:
        for record in run.metrics:
            keys |= {k for k, v in record.items() if isinstance(v, int | float) and k not in ("step", "wall_time")}
    return sorted(keys)


def plot_aggregates(estimates: dict[str, dict[str, Estimate]], path: Path, score: str) -> list[Path]:
    """One panel per aggregate (IQM, median, mean, optimality gap): a bar per group with its CI."""
    plt = pyplot()
    groups = list(estimates)
    names = list(next(iter(estimates.values())))
    figure, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 0.5 + 0.45 * len(groups) + 1), squeeze=False)
    for axis, name in zip(axes[0], names):
        points = [estimates[g][name].point for g in groups]
        errors = [[estimates[g][name].point - estimates[g][name].low for g in groups],
                  [estimates[g][name].high - estimates[g][name].point for g in groups]]
        axis.barh(range(len(groups)), points, xerr=errors, color=[f"C{i}" for i in range(len(groups))], alpha=0.8)
        axis.set_yticks(range(len(groups)), groups if axis is axes[0][0] else [""] * len(groups), fontsize=8)
        axis.set_title(name)
        axis.set_xlabel(score)
        axis.grid(alpha=0.3, axis="x")
    return save(figure, path)


def plot_profiles(taus: np.ndarray, profiles: dict[str, np.ndarray], intervals: dict[str, np.ndarray], path: Path,
                  score: str) -> list[Path]:
    """Performance profiles: the fraction of runs scoring above tau, per group, with CI bands."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(5, 3.6))
    for color, group in enumerate(profiles):
        axis.plot(taus, profiles[group], color=f"C{color}", label=group)
        axis.fill_between(taus, intervals[group][0], intervals[group][1], color=f"C{color}", alpha=0.2)
    axis.set_xlabel(f"{score} (tau)")
    axis.set_ylabel("fraction of runs with score > tau")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return save(figure, path)
