"""The CALE study (`scalerl study cale`): the joystick threshold's dead zone, measured, and pixel SAC against
DQN on one game at CPU scale.

Three parts, written into one report:
1. Event shares: for thresholds 0.25 / 0.5 / 0.75, the share of uniformly random actions that leave the
   stick centred, move one axis, move both, or press fire; exact values (`scalerl.envs.cale.event_shares`)
   beside the shares counted from the events ale-py's own `env.step` sends to the emulator.
2. Pixel SAC on `cale:GAME` against DQN on `atari:GAME`: the same frames (84x84 grey, 4 stacked, sticky
   actions, frame skip 4), the same network (Nature CNN, one hidden layer), the same replay, batch, n-step,
   update cadence and learning rate, a few seeds.
3. The threshold's effect on SAC: the same SAC runs at thresholds 0.25 and 0.75.
Random play (uniform CALE actions at the default threshold, and uniform discrete actions) is scored with
the evaluation protocol of the runs, so "above random" compares like with like.

The training runs are an ordinary sweep under out/runs (finished runs are reused, so an interrupted study
continues where it stopped).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scalerl.analysis.plots import few_points_style, mean_and_band, pyplot, save, series
from scalerl.analysis.report import table
from scalerl.analysis.runs import find_runs
from scalerl.checkpoint import load_checkpoint
from scalerl.envs import make_env
from scalerl.envs.cale import EVENTS, action_events, event_shares, recorded_events, shares_of, uniform_actions
from scalerl.evaluation import run_episodes
from scalerl.run import CHECKPOINT_TYPES
from scalerl.session import EVAL_SEED_OFFSET
from scalerl.sweep import SweepSpec, run_sweep


@dataclass(frozen=True)
class Settings:
    game: str = "KungFuMaster"
    steps: int = 25_000
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    thresholds: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75])
    threshold_seeds: list[int] = field(default_factory=lambda: [0, 1])
    """Seeds of the SAC runs at thresholds other than the default (fewer: they fit the budget)."""
    share_samples: int = 20_000
    random_episodes: int = 10
    eval_every: int = 5_000
    eval_episodes: int = 5
    learning_starts: int = 1_600
    """Warm-up steps before the first update (the CALE paper's 1,600)."""


FULL = Settings()
"""About 80 minutes on 2 cores: the numbers in the study's README."""
QUICK = Settings(steps=1_200, seeds=[0], thresholds=[0.5], share_samples=2_000, random_episodes=1,
                 eval_every=0, eval_episodes=1, learning_starts=200)
"""A few minutes: every part of the study, with a few hundred updates per run, at a size that learns nothing."""

SHARED = {
    "algo.batch_size": 32, "algo.buffer_size": 100_000, "algo.train_every": 2,
    "algo.n_step": 10, "algo.gamma": 0.99, "net.encoder": "nature_cnn", "net.hidden": 512, "net.depth": 1,
    "env_opts.reward_clipping": True, "log_every": 1_000, "checkpoint_every": 10_000,
}
"""Both agents: the CALE paper's 100k-regime settings (batch 32, n-step 10, 1,600 warm-up steps, one
hidden layer of 512, clipped rewards) with one update every two steps to fit a CPU."""
LEARNING_RATE = 1e-4
DQN = {"agent": "dqn", "algo.optim.lr": LEARNING_RATE, "algo.target_update_every": 1_000, "algo.epsilon_end": 0.01,
       "algo.epsilon_decay_steps": 10_000}
SAC = {"agent": "sac", "algo.actor_optim.lr": LEARNING_RATE, "algo.critic_optim.lr": LEARNING_RATE,
       "algo.alpha_optim.lr": LEARNING_RATE, "algo.target_entropy_scale": 0.5}
"""SAC as in the CALE baseline: target entropy -|A|/2, the encoder trained by the critic only."""


def share_rows(settings: Settings, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows = []
    for threshold in settings.thresholds:
        actions = uniform_actions(rng, settings.share_samples)
        measured = shares_of(recorded_events(settings.game, actions, threshold, seed))
        rows.append({"threshold": threshold, "exact": event_shares(threshold).as_dict(),
                     "measured": measured.as_dict()})
    return rows


def sweep_variants(settings: Settings) -> list[dict[str, Any]]:
    game = settings.game
    variants = [{"env": f"atari:{game}", **DQN}]
    for threshold in settings.thresholds:
        variants.append({"env": f"cale:{game}", "env_opts.continuous_action_threshold": threshold, **SAC})
    return variants


def run_training(settings: Settings, out: Path, workers: int | None, address: str | None) -> list[Path]:
    """DQN and SAC at the default threshold under out/runs; SAC at the other thresholds, with their own
    seeds, under out/thresholds."""
    base = {**SHARED, "steps": settings.steps, "eval_every": settings.eval_every,
            "eval_episodes": settings.eval_episodes, "algo.learning_starts": settings.learning_starts}
    default = [v for v in sweep_variants(settings) if v.get("env_opts.continuous_action_threshold", 0.5) == 0.5]
    others = [v for v in sweep_variants(settings) if v not in default]
    finished = []
    for folder, variants, seeds in (("runs", default, settings.seeds),
                                    ("thresholds", others, settings.threshold_seeds)):
        if not variants or not seeds:
            continue
        result = run_sweep(SweepSpec(base=base, variants=variants, seeds=seeds), out / folder, workers=workers,
                           address=address, report=False)
        if result["failed"]:
            raise RuntimeError(f"{len(result['failed'])} CALE study runs failed, first: {result['failed'][0]['error']}")
        finished += [out / folder / name for name in result["finished"]]
    return finished


class UniformPolicy:
    """Uniformly random actions, for the random-play reference."""

    def __init__(self, space, seed: int) -> None:
        self.space = space
        self.space.seed(seed)

    def act(self, obs: np.ndarray, *, explore: bool) -> tuple[np.ndarray, dict]:
        return np.stack([self.space.sample() for _ in range(len(obs))]), {}


def random_play(settings: Settings) -> dict[str, list[float]]:
    """Returns of uniformly random play, evaluation protocol (true rewards, no episodic life)."""
    scores = {}
    for suite in ("atari", "cale"):
        envs = make_env(f"{suite}:{settings.game}", min(settings.random_episodes, 8), EVAL_SEED_OFFSET)
        policy = UniformPolicy(envs.single_action_space, seed=0)
        scores[suite] = run_episodes(policy, envs, settings.random_episodes, seed=EVAL_SEED_OFFSET).returns
        envs.close()
    return scores


def label(run) -> str:
    if run.config["agent"] == "dqn":
        return "DQN (atari)"
    return f"SAC (cale, tau {threshold_of(run):g})"


def final_returns(runs: list) -> dict[str, dict[int, float]]:
    table: dict[str, dict[int, float]] = {}
    for run in runs:
        if run.evals:
            table.setdefault(label(run), {})[run.seed] = float(run.evals[-1]["return_mean"])
    return dict(sorted(table.items()))


def training_returns(runs: list, last: int = 5_000) -> dict[str, list[float]]:
    """Mean training episode return (clipped rewards, exploring policy) over each run's last `last` steps."""
    table: dict[str, list[float]] = {}
    for run in runs:
        end = run.metrics[-1]["step"] if run.metrics else 0
        values = [r["episode_return"] for r in run.metrics if "episode_return" in r and r["step"] > end - last]
        if values:
            table.setdefault(label(run), []).append(float(np.mean(values)))
    return table


def threshold_of(run) -> float:
    return run.config["env_opts"].get("continuous_action_threshold") or 0.5


def policy_shares(run, last: int = 5_000) -> dict[str, float] | None:
    """Event shares of the actions SAC took in its last `last` training steps, read from the replay buffer
    of its final checkpoint."""
    path = run.path / "checkpoints" / "latest.pt"
    if run.config["agent"] != "sac" or not path.is_file():
        return None
    buffer = load_checkpoint(path, CHECKPOINT_TYPES)["buffer"]
    actions = np.asarray(buffer["data"]["actions"]).reshape(-1, 3)
    end = buffer["position"] * buffer["num_envs"] if not buffer["full"] else len(actions)
    taken = actions[max(0, end - last):end]
    return shares_of(action_events(taken, threshold_of(run))).as_dict() if len(taken) else None


def plot_returns(runs: list, random_scores: dict[str, list[float]], path: Path) -> None:
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    groups: dict[str, list] = {}
    for run in runs:
        groups.setdefault(label(run), []).append(run)
    for color, (name, members) in enumerate(sorted(groups.items())):
        curves = [c for c in (series(run, "return_mean", "step") for run in members) if len(c[0])]
        if not curves:
            continue
        grid, mean, low, high = mean_and_band(curves)
        axis.plot(grid, mean, color=f"C{color}", label=f"{name} ({len(curves)})", **few_points_style(len(grid)))
        if len(curves) > 1:
            axis.fill_between(grid, low, high, color=f"C{color}", alpha=0.2)
    for style, (suite, returns) in zip(("--", ":"), random_scores.items()):
        axis.axhline(np.mean(returns), color="grey", linestyle=style, label=f"random ({suite})")
    axis.set_xlabel("environment steps")
    axis.set_ylabel("evaluation return")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    save(figure, path)


def fmt(value: float) -> str:
    return f"{value:,.1f}"


def write_report(settings: Settings, shares: list[dict], runs: list, random_scores: dict[str, list[float]], out: Path,
                 quick: bool) -> Path:
    lines = [f"# CALE study on {settings.game}{' (quick: every part, nothing learned)' if quick else ''}", "",
             "## 1. Joystick events under uniformly random actions", "",
             f"Exact shares beside those counted from {settings.share_samples:,} random actions stepped through "
             "ale-py's `env.step` (the events it sends to the emulator).", ""]
    rows = [[f"{row['threshold']:g}", *[f"{row['exact'][e]:.3f} / {row['measured'][e]:.3f}" for e in EVENTS]]
            for row in shares]
    lines += table(["threshold", *[f"{e} (exact / measured)" for e in EVENTS]], rows) + [""]
    finals = final_returns(runs)
    seeds = sorted({seed for per_seed in finals.values() for seed in per_seed})
    lines += ["## 2-3. Pixel SAC against DQN, and the threshold", "",
              f"{settings.steps:,} environment steps per run; the last evaluation's mean return over "
              f"{settings.eval_episodes} episodes (true rewards, no episodic life).", ""]
    training = training_returns(runs)
    rows = [[name, *[fmt(per_seed[s]) if s in per_seed else "" for s in seeds], fmt(np.mean(list(per_seed.values()))),
             fmt(np.mean(training[name])) if name in training else ""]
            for name, per_seed in finals.items()]
    rows += [[f"random ({suite}, {len(returns)} episodes)", *[""] * len(seeds), fmt(np.mean(returns)), ""]
             for suite, returns in random_scores.items()]
    lines += table(["agent", *[f"seed {s}" for s in seeds], "mean",
                    "training return, last 5k steps (clipped, exploring)"], rows) + [""]
    behaviour = {}
    for run in runs:
        if (shares_taken := policy_shares(run)) is not None:
            behaviour.setdefault(label(run), []).append(shares_taken)
    if behaviour:
        lines += ["What SAC's own actions did in its last 5,000 training steps (mean over seeds), beside the shares "
                  "of uniformly random actions at the same threshold:", ""]
        rows = []
        for name, taken in sorted(behaviour.items()):
            random_shares = event_shares(float(name.split("tau ")[1][:-1])).as_dict()
            rows.append([name, *[f"{np.mean([b[e] for b in taken]):.3f} / {random_shares[e]:.3f}" for e in EVENTS]])
        lines += table(["agent", *[f"{e} (policy / random)" for e in EVENTS]], rows) + [""]
    figures = out / "report_figures"
    if runs:
        plot_returns(runs, random_scores, figures / "returns")
        lines += ["![evaluation return](report_figures/returns.png)", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps({"shares": shares, "final_returns": finals, "random": random_scores},
                                                 indent=1))
    return report


def run(out: Path, quick: bool = False, workers: int | None = None, address: str | None = None) -> Path:
    """Run (or continue) the study in `out` and write out/report.md; returns its path."""
    settings = QUICK if quick else FULL
    out.mkdir(parents=True, exist_ok=True)
    shares = share_rows(settings)
    random_scores = random_play(settings)
    runs = find_runs(run_training(settings, out, workers, address))
    return write_report(settings, shares, runs, random_scores, out, quick)
