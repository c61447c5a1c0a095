"""Part (b) of the stable-gradients study: PQN on MinAtar with a shallow and a deep torso, the paper's
baseline against its two interventions together.

The paper's PQN runs put dense torsos of 1, 3 or 5 residual blocks behind a CNN and find that the plain
torso collapses with depth (return and gradient norm fall), while multi-skip residual connections with
LayerNorm and the Kron optimizer keep the deep network learning. Here, on one MinAtar game:

- baseline: a plain LayerNorm MLP torso of 4 or 12 dense layers (the depths a 1- or 5-block multi-skip
  torso has: projection, two per block, final layer), RAdam at the paper's 2.5e-4;
- multi-skip + Kron: 1 or 5 blocks, the projected input added to every block, Kron at 2.5e-4 / 3;

both orthogonal-initialised, 256 wide, with PQN's settings from the paper (128 envs x 32 steps, 32
minibatches, 2 epochs, lambda 0.65). The norms hook logs each layer's gradient norm; the report reads the
first layer's (the encoder's convolution, which every gradient must reach through the whole torso).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scalerl.analysis.plots import few_points_style, mean_and_band, pyplot, save, series
from scalerl.analysis.report import table
from scalerl.sweep import SweepSpec, run_sweep

LEARNING_RATE = 2.5e-4


@dataclass(frozen=True)
class RLSettings:
    game: str = "breakout"
    steps: int = 300_000
    blocks: tuple[int, ...] = (1, 5)
    hidden: int = 256
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    num_envs: int = 128
    eval_every: int = 25_000
    eval_episodes: int = 10
    norms_every: int = 4
    """PQN updates (one per rollout of num_envs x 32 steps) between gradient-norm measurements."""


FULL = RLSettings()
"""About 20 minutes a seed on one core (the 5-block Kron run takes most of it)."""
QUICK = RLSettings(steps=512, blocks=(1, 2), hidden=32, seeds=[0], num_envs=16, eval_every=0, eval_episodes=1,
                   norms_every=1)
"""Every variant for one rollout: seconds, nothing learned."""

VARIANTS = {
    "baseline": {"net.torso": "mlp", "algo.optim.kind": "radam", "algo.optim.lr": LEARNING_RATE},
    "multiskip_kron": {"net.torso": "multiskip", "algo.optim.kind": "kron", "algo.optim.lr": LEARNING_RATE / 3},
}
LABELS = {"baseline": "plain + RAdam", "multiskip_kron": "multi-skip + LN + Kron"}


def dense_layers(blocks: int) -> int:
    """Dense layers of a multi-skip torso of `blocks` blocks: the plain torso matched to it."""
    return 2 * blocks + 2


def sweep_variants(settings: RLSettings) -> list[dict[str, Any]]:
    variants = []
    for blocks in settings.blocks:
        for name, overrides in VARIANTS.items():
            depth = blocks if overrides["net.torso"] == "multiskip" else dense_layers(blocks)
            variants.append({"name": f"{name}-{blocks}blocks", **overrides, "net.depth": depth})
    return variants


def run_training(settings: RLSettings, out: Path, workers: int | None, address: str | None,
                 variants: Sequence[str] | None = None) -> list[Path]:
    """Train (or continue) the PQN runs into `out`, only the named `variants` when given, in the order given;
    the finished runs' folders, every one in `out` (runs finished earlier included)."""
    base = {"agent": "pqn", "env": f"minatar:{settings.game}", "steps": settings.steps, "num_envs": settings.num_envs,
            "net.hidden": settings.hidden, "net.init": "orthogonal", "eval_every": settings.eval_every,
            "eval_episodes": settings.eval_episodes, "checkpoint_every": 50_000, "log_every": 4_096 * 4,
            "hooks": ["norms"], "hook_opts.norms.every": settings.norms_every}
    every = {variant["name"]: variant for variant in sweep_variants(settings)}
    chosen = list(every.values()) if variants is None else [every[name] for name in variants if name in every]
    if chosen:
        spec = SweepSpec(base=base, variants=chosen, seeds=settings.seeds)
        result = run_sweep(spec, out, workers=workers, address=address, report=False)
        if result["failed"]:
            raise RuntimeError(f"{len(result['failed'])} PQN runs failed, first: {result['failed'][0]['error']}")
    return sorted(summary.parent for summary in out.glob("*/seed*/summary.json"))


def variant_of(run) -> tuple[str, int]:
    """(variant name, blocks) from the run's sweep folder, e.g. multiskip_kron-5blocks."""
    name, blocks = run.path.parent.name.rsplit("-", 1)
    return name, int(blocks.removesuffix("blocks"))


def first_layer_norms(run) -> tuple[np.ndarray, np.ndarray]:
    """(steps, gradient norm of the network's first layer) over training."""
    steps, norms = [], []
    for record in run.metrics:
        layers = [key for key in record if key.startswith("grad_norm/q.")]
        if layers:
            steps.append(record["step"])
            norms.append(record[layers[0]])
    return np.asarray(steps, float), np.asarray(norms, float)


def summarize(runs: list) -> dict[tuple[str, int], dict[str, list[float]]]:
    """Per (variant, blocks): each seed's final evaluation return, mean of its last three evaluations, and
    first-layer gradient norm at the first measurement and over the last quarter of training."""
    table: dict[tuple[str, int], dict[str, list[float]]] = {}
    for run in sorted(runs, key=lambda r: r.seed):
        row = table.setdefault(variant_of(run), {"final": [], "last3": [], "grad_start": [], "grad_end": []})
        returns = [e["return_mean"] for e in run.evals]
        if returns:
            row["final"].append(float(returns[-1]))
            row["last3"].append(float(np.mean(returns[-3:])))
        steps, norms = first_layer_norms(run)
        if len(norms):
            row["grad_start"].append(float(norms[0]))
            row["grad_end"].append(float(norms[steps >= 0.75 * steps[-1]].mean()))
    return table


def plot(runs: list, path: Path) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(12, 4))
    groups: dict[tuple[str, int], list] = {}
    for run in runs:
        groups.setdefault(variant_of(run), []).append(run)
    for (name, blocks), members in sorted(groups.items()):
        color = f"C{list(VARIANTS).index(name)}"
        style = "-" if blocks == max(b for _, b in groups) else ":"
        label = f"{LABELS[name]}, {blocks} block{'s' if blocks > 1 else ''}"
        for axis, curves in zip(axes, ([series(run, "return_mean", "step") for run in members],
                                       [first_layer_norms(run) for run in members])):
            curves = [c for c in curves if len(c[0])]
            if curves:
                grid, mean, _, _ = mean_and_band(curves)
                axis.plot(grid, mean, style, color=color, label=label, **few_points_style(len(grid)))
    axes[0].set_title("evaluation return")
    axes[1].set_title("first layer's gradient norm")
    axes[1].set_yscale("log")
    for axis in axes:
        axis.set_xlabel("environment steps")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    save(figure, path)


def cell(values: list[float], digits: str = ".2f") -> str:
    """The mean over seeds, then each seed's value when there are several."""
    if not values:
        return ""
    each = f" ({', '.join(f'{v:{digits}}' for v in values)})" if len(values) > 1 else ""
    return f"{np.mean(values):{digits}}{each}"


def report_lines(settings: RLSettings, runs: list, out: Path, quick: bool) -> list[str]:
    lines = [f"## (b) PQN on MinAtar {settings.game}{' (quick: nothing learned)' if quick else ''}", "",
             f"{settings.steps:,} environment steps ({settings.num_envs} envs x 32 steps a rollout), width "
             f"{settings.hidden}, seeds {settings.seeds}; evaluation return over {settings.eval_episodes} episodes "
             f"every {settings.eval_every:,} steps. A plain torso of "
             f"{' / '.join(str(dense_layers(b)) for b in settings.blocks)} dense layers matches "
             f"{' / '.join(map(str, settings.blocks))} multi-skip blocks.", ""]
    rows = []
    for (name, blocks), row in sorted(summarize(runs).items(), key=lambda item: (item[0][1], item[0][0])):
        rows.append([LABELS[name], str(blocks), cell(row["final"]), cell(row["last3"]), cell(row["grad_start"], ".3g"),
                     cell(row["grad_end"], ".3g")])
    lines += table(["network, optimizer", "blocks", "final return, mean (seeds)", "mean of last 3 evaluations",
                    "first-layer grad norm, start", "last quarter"], rows) + [""]
    if runs:
        plot(runs, out / "report_figures" / "pqn_minatar")
        lines += ["![PQN return and gradient norm](report_figures/pqn_minatar.png)", ""]
    return lines
