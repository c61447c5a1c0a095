"""The actor-critic representation study (`scalerl study actor-critic`): PPO with a shared encoder, separate
actor and critic encoders, and the shared encoder widened to the separate pair's parameter count, trained on
a fixed set of levels and tested on unseen ones; then mutual-information probes of each latent.

Procgen needs its own numpy<2 environment, so the study plays MinAtar with seeds as levels (a MinAtar game
draws its start state, spawns and sticky actions from the seed it is reset with): 200 training levels, test
levels from a disjoint range. Per run, at the end:
- the return of the final policy on training levels and on test levels (same number of episodes each);
- `probe_run`: I(latent; observation), I(latent; value), I(latent; action) and I(latent; level) for the actor's
  and the critic's latents (KSG / Ross estimators, k = 3), eight copies each fixed on one training level.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scalerl.analysis.plots import few_points_style, mean_and_band, pyplot, save, series
from scalerl.analysis.report import table
from scalerl.analysis.runs import find_runs
from scalerl.envs import make_env
from scalerl.evaluation import run_episodes
from scalerl.probe import probe_run
from scalerl.run import load_agent
from scalerl.session import EVAL_SEED_OFFSET
from scalerl.sweep import SweepSpec, run_sweep

ENCODERS = ("shared", "separate", "shared_matched")
LABELS = {"shared": "shared", "separate": "separate", "shared_matched": "shared, parameter-matched"}
TARGETS = ("observation", "value", "action", "level")


@dataclass(frozen=True)
class Settings:
    game: str = "breakout"
    steps: int = 500_000
    num_levels: int = 200
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    eval_every: int = 100_000
    final_episodes: int = 50
    """Episodes of the final policy on training levels and on test levels."""
    probe_steps: int = 1_024


FULL = Settings()
"""About 25 minutes a run on one core (9 runs), and a minute of measurements each."""
QUICK = Settings(steps=2_048, num_levels=8, seeds=[0], eval_every=0, final_episodes=4, probe_steps=64)
"""Every part at a size that learns nothing: about a minute."""

PPO = {"agent": "ppo", "num_envs": 8, "algo.rollout_steps": 128, "algo.epochs": 4, "algo.minibatches": 4,
       "algo.optim.lr": 2.5e-4, "algo.entropy_coef": 0.01, "algo.gamma": 0.99, "algo.gae_lambda": 0.95,
       "net.hidden": 256, "net.depth": 1, "net.init": "orthogonal"}
"""CleanRL's Atari PPO settings (8 envs x 128 steps, 4 epochs of 4 minibatches, lr 2.5e-4 annealed, entropy
0.01) with MinAtar's CNN and one hidden layer of 256."""


def run_training(settings: Settings, out: Path, workers: int | None, address: str | None) -> list[Path]:
    base = {**PPO, "env": f"minatar:{settings.game}", "steps": settings.steps, "eval_every": settings.eval_every,
            "eval_episodes": 10, "checkpoint_every": 100_000, "env_opts.num_levels": settings.num_levels}
    variants = [{"name": encoders, "algo.encoders": encoders} for encoders in ENCODERS]
    result = run_sweep(SweepSpec(base=base, variants=variants, seeds=settings.seeds), out / "runs", workers=workers,
                       address=address, report=False)
    if result["failed"]:
        raise RuntimeError(f"{len(result['failed'])} actor-critic runs failed, first: {result['failed'][0]['error']}")
    return [out / "runs" / name for name in result["finished"]]


def level_returns(run_dir: Path, level_set: str, episodes: int) -> list[float]:
    """Returns of the run's final policy on its training or its test levels (the evaluation protocol)."""
    config, agent = load_agent(run_dir, device="cpu")
    envs = make_env(config.env_spec, min(8, episodes), config.seed + EVAL_SEED_OFFSET,
                    **{**config.env_kwargs(training=False), "level_set": level_set})
    try:
        return run_episodes(agent, envs, episodes, seed=config.seed + EVAL_SEED_OFFSET).returns
    finally:
        envs.close()


def measure(settings: Settings, run_dirs: list[Path], out: Path) -> list[dict[str, Any]]:
    """Train/test returns and probes of every run, cached in out/measurements/ by run."""
    folder = out / "measurements"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for run_dir in run_dirs:
        cached = folder / f"{run_dir.parent.name}-{run_dir.name}.json"
        if not cached.is_file():
            config = json.loads((run_dir / "config.json").read_text())
            row = {"encoders": config["algo"]["encoders"], "seed": config["seed"],
                   "parameters": json.loads((run_dir / "parameters.json").read_text()),
                   "train": level_returns(run_dir, "train", settings.final_episodes),
                   "test": level_returns(run_dir, "test", settings.final_episodes),
                   "mi": probe_run(run_dir, steps=settings.probe_steps)}
            cached.write_text(json.dumps(row))
        rows.append(json.loads(cached.read_text()))
    return rows


def plot(runs: list, rows: list[dict[str, Any]], path: Path) -> None:
    plt = pyplot()
    figure, (curves_axis, *mi_axes) = plt.subplots(1, 1 + len(TARGETS), figsize=(4 * (1 + len(TARGETS)), 3.6))
    for color, encoders in enumerate(ENCODERS):
        curves = [c for c in (series(run, "return_mean", "step") for run in runs if run.path.parent.name == encoders)
                  if len(c[0])]
        if curves:
            grid, mean, low, high = mean_and_band(curves)
            curves_axis.plot(grid, mean, color=f"C{color}", label=LABELS[encoders], **few_points_style(len(grid)))
            curves_axis.fill_between(grid, low, high, color=f"C{color}", alpha=0.2)
    curves_axis.set_title("return on test levels")
    curves_axis.set_xlabel("environment steps")
    curves_axis.legend(fontsize=8)
    for axis, target in zip(mi_axes, TARGETS):
        for offset, latent in enumerate(("actor", "critic")):
            means = [np.mean([r["mi"][latent][target] for r in rows if r["encoders"] == e] or [np.nan])
                     for e in ENCODERS]
            axis.bar(np.arange(len(ENCODERS)) + 0.4 * offset - 0.2, means, 0.4, label=latent)
        axis.set_xticks(range(len(ENCODERS)), [LABELS[e].replace(", ", ",\n") for e in ENCODERS], fontsize=7)
        axis.set_title(f"I(latent; {target}), nats")
    mi_axes[0].legend(fontsize=8)
    for axis in (curves_axis, *mi_axes):
        axis.grid(alpha=0.3)
    save(figure, path)


def write_report(settings: Settings, runs: list, rows: list[dict[str, Any]], out: Path, quick: bool) -> Path:
    def cell(values: list[float]) -> str:
        return f"{np.mean(values):.2f} ± {np.std(values):.2f}" if values else ""

    lines = [f"# Actor-critic representations on MinAtar {settings.game}{' (quick: nothing learned)' if quick else ''}",
             "", f"PPO, {settings.steps:,} steps on {settings.num_levels} training levels, seeds {settings.seeds}. "
             f"Final policy on {settings.final_episodes} episodes of training levels and of unseen test levels; "
             "mean ± std over seeds of each seed's mean.", ""]
    result_rows = []
    for encoders in ENCODERS:
        members = [r for r in rows if r["encoders"] == encoders]
        if not members:
            continue
        train, test = [float(np.mean(r["train"])) for r in members], [float(np.mean(r["test"])) for r in members]
        result_rows.append([LABELS[encoders], f"{sum(members[0]['parameters'].values()):,}", cell(train), cell(test),
                            cell([a - b for a, b in zip(train, test)])])
    lines += table(["encoders", "parameters", "train levels", "test levels", "gap (train - test)"], result_rows) + [""]
    lines += ["Mutual information (nats, mean over seeds) of each latent with the observation (a fixed random "
              "projection to 64 dimensions), the critic's value, the action taken and the level:", ""]
    mi_rows = []
    for encoders in ENCODERS:
        members = [r for r in rows if r["encoders"] == encoders]
        for latent in ("actor", "critic") if members else ():
            mi_rows.append([LABELS[encoders], latent,
                            *[f"{np.mean([r['mi'][latent][t] for r in members]):.3f}" for t in TARGETS]])
    lines += table(["encoders", "latent", *TARGETS], mi_rows) + [""]
    if rows:
        plot(runs, rows, out / "report_figures" / "actor_critic")
        lines += ["![returns and mutual information](report_figures/actor_critic.png)", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    (out / "settings.json").write_text(json.dumps(asdict(settings), indent=1))
    return report


def run(out: Path, quick: bool = False, workers: int | None = None, address: str | None = None) -> Path:
    """Run (or continue) the study in `out` and write out/report.md; returns its path."""
    settings = QUICK if quick else FULL
    out.mkdir(parents=True, exist_ok=True)
    run_dirs = run_training(settings, out, workers, address)
    rows = measure(settings, run_dirs, out)
    return write_report(settings, find_runs(run_dirs), rows, out, quick)
