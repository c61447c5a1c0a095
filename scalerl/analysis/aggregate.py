"""Aggregate scores with stratified-bootstrap confidence intervals, on rliable (Agarwal et al., 2021).

scalerl builds the score matrices itself — one (runs x tasks) array per group, runs matched by seed —
so the axes cannot be swapped by mistake, and every group must cover the same tasks.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from scalerl.analysis.runs import RunRecord, group_runs
from scalerl.analysis.scores import normalized_score
from scalerl.checks import ConfigError


@dataclass(frozen=True)
class ScoreMatrix:
    """scores[group] has shape (runs, tasks); column j is task tasks[j]."""

    tasks: tuple[str, ...]
    scores: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        for group, array in self.scores.items():
            if array.ndim != 2 or array.shape[1] != len(self.tasks):
                raise ConfigError(f"group {group!r}: scores must be (runs, {len(self.tasks)} tasks), got {array.shape}")


@contextmanager
def seeded_bootstrap(seed: int) -> Iterator[None]:
    """rliable's stratified bootstrap draws its indices from numpy's global generator (whatever
    random_state it is given), so seed that for the call and put the caller's state back after.
    Also silences arch's warning that rliable's random_state argument is deprecated."""
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="random_state is deprecated", category=FutureWarning)
            yield
    finally:
        np.random.set_state(saved)


def final_score(run: RunRecord, last: int = 1) -> float:
    """The normalized score of a run's last evaluation, or the mean over its last `last` evaluations: one
    evaluation of a few episodes swings widely between neighbours, and averaging the end of the curve is the
    usual remedy. A run with fewer evaluations is scored over all it has."""
    if last < 1:
        raise ConfigError(f"last must be >= 1 evaluation (got {last})")
    if not run.evals:
        raise ConfigError(f"{run.path} has no evaluations (eval.jsonl is empty)")
    return float(np.mean([normalized_score(run.env, record) for record in run.evals[-last:]]))


def task_scores(runs: list[RunRecord], group_by: list[str] | None = None,
                score: Callable[[RunRecord], float] = final_score) -> dict[str, dict[str, np.ndarray]]:
    """Each group's scores on each task it has runs on, ordered by seed. Groups may cover different tasks
    (a study grouped by env) or different numbers of runs (a study part-way through)."""
    scores: dict[str, dict[str, np.ndarray]] = {}
    for label, members in group_runs(runs, group_by).items():
        tasks = sorted({run.env for run in members})
        scores[label] = {task: np.array([score(run) for run in sorted((r for r in members if r.env == task),
                                                                       key=lambda r: r.seed)]) for task in tasks}
    return scores


def score_matrix(runs: list[RunRecord], group_by: list[str] | None = None,
                 score: Callable[[RunRecord], float] = final_score) -> ScoreMatrix:
    """One (runs x tasks) matrix per group; within a task, runs are ordered by seed."""
    tasks = tuple(sorted({run.env for run in runs}))
    scores = {}
    for label, by_task in task_scores(runs, group_by, score).items():
        counts = {task: len(by_task.get(task, ())) for task in tasks}
        if len(set(counts.values())) != 1 or 0 in counts.values():
            raise ConfigError(f"group {label!r} must have the same number of runs on every task; it has {counts}")
        scores[label] = np.stack([by_task[task] for task in tasks], axis=1)
    return ScoreMatrix(tasks, scores)


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean over all runs and tasks: the mean of the middle 50% of scores (rliable's
    aggregate_iqm, scipy's 25% trimmed mean, computed in numpy: a bootstrap calls it thousands of times and
    scipy's call overhead made it most of a report's time)."""
    ordered = np.sort(np.ravel(scores))
    cut = int(0.25 * ordered.size)
    return float(ordered[cut:ordered.size - cut].mean())


def improvement_probability(scores_x: np.ndarray, scores_y: np.ndarray) -> float:
    """P(X > Y) on each task, ties counting a half (the Mann-Whitney U over n_x n_y), averaged over tasks:
    rliable's probability_of_improvement, without a scipy call per task and bootstrap sample."""
    greater = (scores_x[:, None, :] > scores_y[None, :, :]).mean(axis=(0, 1))
    ties = (scores_x[:, None, :] == scores_y[None, :, :]).mean(axis=(0, 1))
    return float(np.mean(greater + 0.5 * ties))


def aggregate_functions(optimality_threshold: float) -> dict[str, Callable[[np.ndarray], float]]:
    from rliable import metrics

    return {
        "IQM": iqm,
        "Median": metrics.aggregate_median,
        "Mean": metrics.aggregate_mean,
        "Optimality gap": lambda scores: metrics.aggregate_optimality_gap(scores, optimality_threshold),
    }


@dataclass(frozen=True)
class Estimate:
    point: float
    low: float
    high: float


def aggregates(matrix: ScoreMatrix, reps: int = 2000, confidence: float = 0.95, seed: int = 0,
               optimality_threshold: float = 1.0) -> dict[str, dict[str, Estimate]]:
    """{group: {IQM|Median|Mean|Optimality gap: Estimate}} with stratified bootstrap CIs (runs resampled
    within each task). The optimality gap is the mean shortfall below `optimality_threshold` (1 = human
    level for human-normalized scores, full success for success rates)."""
    from rliable import library

    functions = aggregate_functions(optimality_threshold)
    names = list(functions)

    def all_aggregates(scores: np.ndarray) -> np.ndarray:
        return np.array([functions[name](scores) for name in names])

    with seeded_bootstrap(seed):
        points, intervals = library.get_interval_estimates(
            matrix.scores, all_aggregates, reps=reps, confidence_interval_size=confidence,
            random_state=np.random.RandomState(seed))
    return {
        group: {name: Estimate(float(points[group][i]), float(intervals[group][0, i]), float(intervals[group][1, i]))
                for i, name in enumerate(names)}
        for group in matrix.scores
    }


def performance_profiles(matrix: ScoreMatrix, taus: np.ndarray, reps: int = 2000, seed: int = 0
                         ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Fraction of runs scoring above each tau, per group, with bootstrap CIs (rliable)."""
    from rliable import library

    with seeded_bootstrap(seed):
        return library.create_performance_profile(matrix.scores, taus, reps=reps)


def probability_of_improvement(matrix: ScoreMatrix, pairs: list[tuple[str, str]], reps: int = 2000,
                               seed: int = 0) -> dict[tuple[str, str], Estimate]:
    """P(X > Y): the probability that a run of group X beats a run of group Y on a random task."""
    from rliable import library

    for pair in pairs:
        for group in pair:
            if group not in matrix.scores:
                raise ConfigError(f"no group {group!r}; groups: {', '.join(matrix.scores)}")
    data = {f"{x} > {y}": (matrix.scores[x], matrix.scores[y]) for x, y in pairs}
    with seeded_bootstrap(seed):
        points, intervals = library.get_interval_estimates(
            data, improvement_probability, reps=reps, random_state=np.random.RandomState(seed))
    estimates = {}
    for x, y in pairs:
        low, high = np.ravel(intervals[f"{x} > {y}"])
        estimates[(x, y)] = Estimate(float(np.ravel(points[f"{x} > {y}"])[0]), float(low), float(high))
    return estimates
