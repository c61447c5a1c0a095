"""The Meta-World+ study (`scalerl study metaworld`): what the reward version does to the numbers.

(a) Meta-World's own scripted policies on the MT10 tasks, under reward v1 (the original Meta-World's) and
    v2 (Meta-World+'s default): the same behaviour, the same successes, and returns on scales that differ
    by orders of magnitude from task to task under v1.
(b) MT-SAC on a few tasks under v1 and under v2: the same method and budget, scored by success rate (the
    protocol's metric, which does not depend on the reward version), an ordinary sweep under out/runs
    (finished runs are reused).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scalerl.analysis.plots import few_points_style, mean_and_band, pyplot, save, series
from scalerl.analysis.report import fmt, table
from scalerl.analysis.runs import find_runs
from scalerl.envs import make_env
from scalerl.envs.metaworld import metaworld_task_count, task_names
from scalerl.evaluation import step_successes
from scalerl.sweep import SweepSpec, run_sweep

VERSIONS = ("v1", "v2")


@dataclass(frozen=True)
class Settings:
    scripted_episodes: int = 10
    """Episodes of each scripted policy per task and reward version."""
    tasks: str = "custom/reach-v3,push-v3,drawer-close-v3"
    sac_steps: int = 150_000
    seeds: list[int] = field(default_factory=lambda: [0])
    eval_every: int = 15_000
    eval_episodes: int = 15
    hidden: int = 256
    batch_size: int = 64


FULL = Settings()
"""About an hour on 2 cores (each MT-SAC run about 30 minutes on one): the numbers in the study's README."""
QUICK = Settings(scripted_episodes=1, sac_steps=900, seeds=[0], eval_every=0, eval_episodes=3, hidden=16, batch_size=8)
"""A few minutes: every part, at a size that learns nothing."""


def scripted_returns(episodes: int, max_steps: int = 500) -> dict[str, dict[str, dict[str, float]]]:
    """For each MT10 task and reward version: the scripted policy's mean return, success rate and largest
    one-step reward over `episodes` episodes (the same goals under both versions)."""
    from metaworld.policies import ENV_POLICY_MAP

    results: dict[str, dict[str, dict[str, float]]] = {}
    for version in VERSIONS:
        envs = make_env("metaworld:MT10", 10, 0, reward_function_version=version, max_episode_steps=max_steps)
        names = task_names(envs)
        policies = [ENV_POLICY_MAP[name]() for name in names]
        returns, successes, largest = np.zeros((episodes, 10)), np.zeros((episodes, 10)), np.zeros(10)
        obs, _ = envs.reset(seed=0)
        for episode in range(episodes):
            for _ in range(max_steps):  # every task's episode lasts max_steps: they end together
                actions = np.stack([policy.get_action(obs[i, :39]) for i, policy in enumerate(policies)])
                obs, rewards, _, _, infos = envs.step(actions.astype(np.float32))
                returns[episode] += rewards
                largest = np.maximum(largest, rewards)
                successes[episode] = np.maximum(successes[episode], step_successes(infos, 10))
        envs.close()
        for index, name in enumerate(names):
            results.setdefault(name, {})[version] = {"return_mean": float(returns[:, index].mean()),
                                                     "success_rate": float(successes[:, index].mean()),
                                                     "largest_reward": float(largest[index])}
    return results


def base_settings(settings: Settings) -> dict[str, Any]:
    """The MT-SAC runs' settings but the reward version: 4,000 random steps per task (at most a third of
    the run) and one update per vector step, as the reference."""
    tasks = metaworld_task_count(settings.tasks)[0]
    return {"env": f"metaworld:{settings.tasks}", "agent": "mtsac", "steps": settings.sac_steps,
            "eval_every": settings.eval_every, "eval_episodes": settings.eval_episodes, "log_every": 3_000,
            "checkpoint_every": 15_000, "algo.learning_starts": min(4_000 * tasks, settings.sac_steps // 3),
            "algo.train_every": tasks, "algo.actor_hidden": settings.hidden, "algo.critic_hidden": settings.hidden,
            "algo.batch_size": settings.batch_size}


def run_mtsac(settings: Settings, out: Path, workers: int | None, address: str | None) -> list[Path]:
    variants = [{"name": version, "env_opts.reward_function_version": version} for version in VERSIONS]
    result = run_sweep(SweepSpec(base=base_settings(settings), variants=variants, seeds=settings.seeds), out,
                       workers=workers, address=address, report=False)
    if result["failed"]:
        raise RuntimeError(f"{len(result['failed'])} Meta-World study runs failed, "
                           f"first: {result['failed'][0]['error']}")
    return [out / name for name in result["finished"]]


def write_report(settings: Settings, scripted: dict[str, Any], runs: list, out: Path, quick: bool) -> Path:
    lines = [f"# Meta-World+ study{' (quick: every part, nothing learned)' if quick else ''}", "",
             "## (a) Scripted policies under reward v1 and v2", "",
             (f"Meta-World's scripted policy for each MT10 task, {settings.scripted_episodes} episode(s) of 500 steps "
              "per version on the same goals: mean return, success rate, and the largest one-step reward seen."), ""]
    rows = [[name, *[fmt(r[v]["return_mean"]) for v in VERSIONS], *[fmt(r[v]["largest_reward"]) for v in VERSIONS],
             " / ".join(f"{r[v]['success_rate']:.0%}" for v in VERSIONS)] for name, r in scripted.items()]
    lines += table(["task", "return v1", "return v2", "largest reward v1", "largest reward v2", "success v1 / v2"],
                   rows)
    spans = {v: [r[v]["return_mean"] for r in scripted.values()] for v in VERSIONS}
    lines += ["", f"Returns range over {fmt(min(spans['v1']))} .. {fmt(max(spans['v1']))} under v1 and "
              f"{fmt(min(spans['v2']))} .. {fmt(max(spans['v2']))} under v2.", ""]

    finals: dict[str, dict[int, dict[str, Any]]] = {}
    for run in runs:
        if run.evals:
            version = run.config["env_opts"]["reward_function_version"]
            finals.setdefault(version, {})[run.seed] = run.evals[-1]
    lines += [f"## (b) MT-SAC on {settings.tasks.removeprefix('custom/')} under v1 and v2", "",
              (f"{settings.sac_steps:,} environment steps in all, actor and critics {settings.hidden} x 3, batch "
               f"{settings.batch_size} per task; success rate over {settings.eval_episodes} evaluation episodes at "
               "the last evaluation, per task and overall (mean over tasks)."), ""]
    if finals:
        members = list(next(iter(next(iter(finals.values())).values()))["tasks"])
        rows = []
        for version, per_seed in sorted(finals.items()):
            for seed, record in sorted(per_seed.items()):
                rows.append([version, str(seed), *[f"{record['tasks'][m]['success_mean']:.0%}" for m in members],
                             f"{record['success_mean']:.0%}"])
        lines += table(["reward", "seed", *members, "overall"], rows) + [""]
        plt = pyplot()
        figure, axis = plt.subplots(figsize=(6, 3.8))
        for color, version in enumerate(VERSIONS):
            curves = [c for c in (series(r, "success_mean", "step") for r in runs
                                  if r.config["env_opts"]["reward_function_version"] == version) if len(c[0])]
            if curves:
                grid, mean, low, high = mean_and_band(curves)
                axis.plot(grid, mean, color=f"C{color}", label=f"reward {version}", **few_points_style(len(grid)))
                axis.fill_between(grid, low, high, color=f"C{color}", alpha=0.2)
        axis.set_xlabel("environment steps")
        axis.set_ylabel("success rate (mean over tasks)")
        axis.grid(alpha=0.3)
        axis.legend()
        save(figure, out / "report_figures" / "mtsac")
        lines += ["![MT-SAC success under v1 and v2](report_figures/mtsac.png)", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps({"scripted": scripted, "mtsac_final": finals}, indent=1))
    return report


def run(out: Path, quick: bool = False, workers: int | None = None, address: str | None = None) -> Path:
    settings = QUICK if quick else FULL
    out.mkdir(parents=True, exist_ok=True)
    cached = out / "scripted.json"
    if cached.is_file():
        scripted = json.loads(cached.read_text())
    else:
        scripted = scripted_returns(settings.scripted_episodes)
        cached.write_text(json.dumps(scripted))
    runs = find_runs(run_mtsac(settings, out / "runs", workers, address))
    return write_report(settings, scripted, runs, out, quick)
