"""`scalerl report`: one markdown file that compares groups of runs — the format every study uses.

It holds the config differences between groups, final scores per task with confidence intervals,
aggregates across tasks (IQM, median, mean, optimality gap) with stratified-bootstrap CIs, the
probability of improvement between groups, and the figures (learning curves against steps and wall
time, training diagnostics, aggregate bars), written beside it in `<name>_figures/`.
"""

from __future__ import annotations

import functools
import itertools
import json
import time
from pathlib import Path

import numpy as np

from scalerl.analysis.aggregate import (
    ScoreMatrix,
    aggregates,
    final_score,
    performance_profiles,
    probability_of_improvement,
    score_matrix,
    task_scores,
)
from scalerl.analysis.plots import plot_aggregates, plot_curves, plot_profiles, training_metrics
from scalerl.analysis.runs import RunRecord, differing_keys, find_runs, group_runs
from scalerl.analysis.scores import score_name
from scalerl.checks import flatten

NOT_DIAGNOSTICS = {"sps", "episodes", "updates", "episode_length", "epsilon"}
MAX_PAIRS = 15
PER_TASK_PREFIXES = ("alpha/",)
"""Per-task training scalars (MT-SAC's temperatures): in metrics.jsonl and TensorBoard, not one figure each."""


def fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def interval(estimate) -> str:
    return f"{fmt(estimate.point)} [{fmt(estimate.low)}, {fmt(estimate.high)}]"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


WIDE_TABLE_KEYS = 6
"""Past this many differing settings the config table turns: settings as rows, groups as columns."""


def config_differences(runs: list[RunRecord], groups: dict[str, list[RunRecord]]) -> list[str]:
    keys = [k for k in differing_keys(runs) if k != "env"]
    if not keys:
        return ["All runs share one config apart from the seed and the task."]
    rows = []
    for label, members in groups.items():
        flats = [flatten(run.config) for run in members]
        # a key only some agents have (SAC's algo.alpha beside TD3) reads "-" where it is absent
        values = [sorted({json.dumps(flat[key]) if key in flat else "-" for flat in flats}) for key in keys]
        rows.append([label, *[" / ".join(v) for v in values]])
    if len(keys) > WIDE_TABLE_KEYS:  # a row per setting reads better than twenty columns
        names = [f"group {index + 1}" for index in range(len(rows))]
        legend = [f"- group {index + 1}: {row[0]}" for index, row in enumerate(rows)]
        return legend + [""] + table(["setting", *names], [[key, *[row[1 + k] for row in rows]]
                                                         for k, key in enumerate(keys)])
    return table(["group", *keys], rows)


def member_task_tables(runs: list[RunRecord], groups: dict[str, list[RunRecord]]) -> list[str]:
    """For multi-task sets (metaworld:MT10, multitask:...), each member task's success rate (or mean return,
    where the tasks report no success) at the last evaluation: mean over seeds, and the seeds' range."""
    lines = []
    for env in sorted({run.env for run in runs}):
        finals = {label: [run.evals[-1] for run in members if run.env == env and run.evals and "tasks" in run.evals[-1]]
                  for label, members in groups.items()}
        finals = {label: records for label, records in finals.items() if records}
        if not finals:
            continue
        members = list(next(iter(finals.values()))[0]["tasks"])
        key = "success_mean" if "success_mean" in next(iter(finals.values()))[0]["tasks"][members[0]] else "return_mean"
        rows = []
        for label, records in finals.items():
            cells = []
            for member in members:
                values = [record["tasks"][member][key] for record in records if member in record["tasks"]]
                cells.append(f"{fmt(float(np.mean(values)))} ({fmt(min(values))}-{fmt(max(values))})" if values else "")
            rows.append([label, *cells])
        what = "success rate" if key == "success_mean" else "mean return"
        lines += [f"## Per task of {env}", "",
                  f"Each task's {what} at the last evaluation: mean over seeds (range).", "",
                  *table(["group", *members], rows), ""]
    return lines


def run_updates(run: RunRecord) -> int:
    """Gradient updates a run made: its summary's count, else its last metrics record's."""
    if run.summary and "updates" in run.summary:
        return int(run.summary["updates"])
    return int(run.metrics[-1].get("updates", 0)) if run.metrics else 0


def write_report(paths: list[str | Path], out: str | Path, group_by: list[str] | None = None,
                 reps: int = 2000, seed: int = 0, last: int = 1) -> Path:
    """Compare groups of runs; each run is scored by its last evaluation, or the mean of its last `last`."""
    out = Path(out)
    runs = find_runs(paths)
    groups = group_runs(runs, group_by)
    scored = functools.partial(final_score, last=last)
    by_task = task_scores(runs, group_by, score=scored)
    tasks = tuple(sorted({run.env for run in runs}))
    # groups compare across tasks only when each has the same number of runs on every task
    matrix = score_matrix(runs, group_by, score=scored) if all(
        sorted(group) == list(tasks) and len({len(values) for values in group.values()}) == 1
        for group in by_task.values()) else None
    evaluations = "the last evaluation" if last == 1 else f"the mean of the last {last} evaluations"
    scores = sorted({score_name(task) for task in tasks})
    figures = out.parent / f"{out.stem}_figures"
    updates = {label: [run_updates(run) for run in members] for label, members in groups.items()}
    idle = [label for label, counts in updates.items() if not any(counts)]
    lines = [f"# Report: {len(runs)} runs, {len(groups)} groups, {len(tasks)} tasks", ""]
    if idle:
        lines += [f"**{'No group' if len(idle) == len(groups) else ', '.join(idle)} made a single gradient update**"
                  " (the budget ended before learning started): its scores are those of the untrained network.", ""]
    lines += [f"Written {time.strftime('%Y-%m-%d %H:%M')} from: {', '.join(map(str, paths))}.",
              f"Score: {', '.join(scores)}, {evaluations} of each run. Intervals are 95% "
              f"stratified-bootstrap confidence intervals ({reps} resamples, rliable).", "",
              "## Groups and their config differences", "",
              *table(["group", "runs", "seeds", "updates per run"],
                     [[label, str(len(m)), ", ".join(str(s) for s in sorted({r.seed for r in m})),
                       ", ".join(f"{count:,}" for count in sorted(set(updates[label])))]
                      for label, m in groups.items()]), "",
             *config_differences(runs, groups), "", "## Final scores per task", ""]
    per_task_rows = []
    for label in groups:
        cells = []
        for task in tasks:
            if task not in by_task[label]:
                cells.append("-")
                continue
            single = ScoreMatrix((task,), {label: by_task[label][task][:, None]})
            cells.append(interval(aggregates(single, reps=reps, seed=seed)[label]["Mean"]))
        per_task_rows.append([label, *cells])
    lines += table(["group", *[f"{t} (mean)" for t in tasks]], per_task_rows) + [""]
    lines += member_task_tables(runs, groups)

    comparable = matrix is not None and (len(tasks) == 1 or scores != ["return"])
    estimates = aggregates(matrix, reps=reps, seed=seed) if comparable else None
    if estimates and scores == ["return"]:  # the optimality gap needs a target score: 1 for normalized ones
        estimates = {group: {k: v for k, v in e.items() if k != "Optimality gap"} for group, e in estimates.items()}
    if estimates:
        names = list(next(iter(estimates.values())))
        lines += ["## Aggregates across tasks", "",
                  *table(["group", *names], [[g, *[interval(e[n]) for n in names]] for g, e in estimates.items()]), ""]
        plot_aggregates(estimates, figures / "aggregates", scores[0])
        lines += ["![aggregates](" + f"{figures.name}/aggregates.png)", ""]
        everything = np.concatenate([m.ravel() for m in matrix.scores.values()])
        taus = np.linspace(min(everything.min(), 0.0), everything.max(), 50)
        profiles, bands = performance_profiles(matrix, taus, reps=min(reps, 1000), seed=seed)
        plot_profiles(taus, profiles, bands, figures / "performance_profiles", scores[0])
        lines += ["Performance profiles: the fraction of runs (over tasks and seeds) scoring above each threshold.", "",
                  f"![performance profiles]({figures.name}/performance_profiles.png)", ""]
    elif matrix is None:
        lines += ["The groups cover different tasks, or different numbers of runs on a task, so they are compared "
                  "per task only (the table above).", ""]
    else:
        lines += ["Raw returns of different tasks are on different scales, so no aggregate across tasks is "
                  "reported; use normalized suites (atari, cale, metaworld) or compare per task.", ""]
    pairs = list(itertools.permutations(groups, 2))
    if comparable and 1 < len(groups) and len(pairs) <= MAX_PAIRS:
        improvement = probability_of_improvement(matrix, pairs, reps=reps, seed=seed)
        lines += ["## Probability of improvement", "",
                  "P(X > Y): the chance a run of X beats a run of Y on a random task.", "",
                  *table(["X", "Y", "P(X > Y)"], [[x, y, interval(e)] for (x, y), e in improvement.items()]), ""]

    lines += ["## Learning curves", ""]
    for x in ("step", "wall_time"):
        plot_curves(runs, "score", figures / f"score_vs_{x}", group_by, x)
        lines += [f"![score against {x}]({figures.name}/score_vs_{x}.png)", ""]
    diagnostics = [m for m in training_metrics(runs) if m not in NOT_DIAGNOSTICS
                   and not m.startswith(PER_TASK_PREFIXES)]
    if diagnostics:
        lines += ["## Training metrics and diagnostics", ""]
        for metric in diagnostics:
            safe = metric.replace("/", "_")
            plot_curves(runs, metric, figures / f"train_{safe}", group_by, "step")
            lines += [f"![{metric}]({figures.name}/train_{safe}.png)", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return out

