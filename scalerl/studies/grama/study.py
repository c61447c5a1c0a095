"""The GraMa study (`scalerl study grama`): where activation-based and gradient-based neuron activity agree,
where they part, and what resetting by each does to SAC.

(a) Continual classification (labels redrawn every phase, so the network must keep adapting): a plain ReLU
    MLP and a residual MLP with LayerNorm, each measured at the end of every phase on a batch of the phase's
    data, at tau 0 and 0.1: how many neurons are ReDo-dormant, GraMa-inactive, both, and dormant without
    being inactive (which a ReLU MLP at tau 0 can never have: a unit that is zero on the whole batch passes
    no gradient to its incoming weights).
(b) SAC with tanh activations on HalfCheetah: no reset, ReDo (tau 0.1, its paper's SAC setting) and ReGraMa
    (tau 0.01, the GraMa paper's BRO-net setting), every 1,000 updates, 3 seeds, an ordinary sweep under
    out/runs (finished runs are reused).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from scalerl.diagnostics.activity import grama_scores, inactive, neuron_layers, redo_scores
from scalerl.nets import NetConfig, build_network


@dataclass(frozen=True)
class Settings:
    phases: int = 10
    steps_per_phase: int = 400
    samples: int = 2_048
    inputs: int = 32
    classes: int = 10
    hidden: int = 256
    sac_steps: int = 20_000
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    eval_every: int = 5_000
    sac_learning_starts: int = 5_000
    reset_every: int = 1_000
    """Updates between ReDo's or ReGraMa's resets."""


FULL = Settings()
"""About 40 minutes on 2 cores: the numbers in the study's README."""
QUICK = Settings(phases=2, steps_per_phase=20, samples=256, hidden=32, sac_steps=600, seeds=[0], eval_every=0,
                 sac_learning_starts=100, reset_every=100)
"""A couple of minutes: every part, with 500 SAC updates and five resets a run, at a size that learns nothing."""

NETWORKS = {
    "relu_mlp": NetConfig(depth=4, activation="relu"),
    "residual_layernorm": NetConfig(depth=2, torso="residual", norm="layer", activation="relu"),
}
THRESHOLDS = (0.0, 0.1)


def activity_counts(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, dict[str, int]]:
    """Per tau: neurons scored by both metrics, ReDo-dormant, GraMa-inactive, both, dormant-but-active."""
    layers = neuron_layers(net)[:-1]  # the output layer's units are the logits
    outputs: dict[int, torch.Tensor] = {}
    handles = [layer.layer.register_forward_hook(lambda m, a, out, i=i: outputs.__setitem__(i, out.detach()))
               for i, layer in enumerate(layers)]
    net.zero_grad()
    F.cross_entropy(net(x), y).backward()
    for handle in handles:
        handle.remove()
    counts = {}
    for tau in THRESHOLDS:
        row = {"neurons": 0, "dormant": 0, "inactive": 0, "both": 0, "dormant_not_inactive": 0,
               "inactive_only_layers": 0}
        for index, layer in enumerate(layers):
            grama = inactive(grama_scores(layer.layer), tau)
            if not layer.activated:  # no activation of its own (it feeds a residual stream): GraMa only
                row["inactive_only_layers"] += int(grama.sum())
                continue
            dormant = inactive(redo_scores(layer.post_activation(outputs[index])), tau)
            row["neurons"] += layer.neurons
            row["dormant"] += int(dormant.sum())
            row["inactive"] += int(grama.sum())
            row["both"] += int((dormant & grama).sum())
            row["dormant_not_inactive"] += int((dormant & ~grama).sum())
        counts[f"{tau:g}"] = row
    return counts


def continual_classification(settings: Settings, seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(settings.samples, settings.inputs, generator=generator)
    space = gym.spaces.Box(-np.inf, np.inf, (settings.inputs,), np.float32)
    results: dict[str, list[dict[str, Any]]] = {}
    for name, spec in NETWORKS.items():
        torch.manual_seed(seed)
        net = build_network(NetConfig(**{**spec.__dict__, "hidden": settings.hidden}), space, settings.classes)
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        label_generator = torch.Generator().manual_seed(seed + 1)
        rows = []
        for phase in range(settings.phases):
            y = torch.randint(0, settings.classes, (settings.samples,), generator=label_generator)
            for _ in range(settings.steps_per_phase):
                batch = torch.randint(0, settings.samples, (128,), generator=label_generator)
                optimizer.zero_grad()
                loss = F.cross_entropy(net(x[batch]), y[batch])
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                accuracy = float((net(x).argmax(1) == y).float().mean())
            rows.append({"phase": phase, "accuracy": accuracy, "counts": activity_counts(net, x[:512], y[:512])})
        results[name] = rows
    return results


def sweep_variants(every: int = FULL.reset_every) -> list[dict[str, Any]]:
    return [{"hooks": []},
            {"hooks": ["redo"], "hook_opts.redo.tau": 0.1, "hook_opts.redo.every": every},
            {"hooks": ["regrama"], "hook_opts.regrama.tau": 0.01, "hook_opts.regrama.every": every}]


def run_sac(settings: Settings, out: Path, workers: int | None, address: str | None) -> list[Path]:
    from scalerl.sweep import SweepSpec, run_sweep

    base = {"env": "mujoco:HalfCheetah-v5", "agent": "sac", "steps": settings.sac_steps, "net.activation": "tanh",
            "net.hidden": 256, "eval_every": settings.eval_every, "eval_episodes": 5, "log_every": 1_000,
            "checkpoint_every": 10_000, "hook_opts.activity.every": settings.reset_every,
            "algo.learning_starts": settings.sac_learning_starts}
    variants = [{**v, "hooks": [*v["hooks"], "activity"]} for v in sweep_variants(settings.reset_every)]
    result = run_sweep(SweepSpec(base=base, variants=variants, seeds=settings.seeds), out, workers=workers,
                       address=address, report=False)
    if result["failed"]:
        raise RuntimeError(f"{len(result['failed'])} GraMa study runs failed, first: {result['failed'][0]['error']}")
    return [out / name for name in result["finished"]]


def method(run) -> str:
    hooks = [h for h in run.config["hooks"] if h != "activity"]
    return {"redo": "ReDo", "regrama": "ReGraMa"}.get(hooks[0], hooks[0]) if hooks else "no reset"


def write_report(settings: Settings, classification: dict, runs: list, out: Path, quick: bool) -> Path:
    from scalerl.analysis.plots import few_points_style, mean_and_band, pyplot, save, series
    from scalerl.analysis.report import table

    lines = [f"# GraMa study{' (quick: every part, nothing learned)' if quick else ''}", "",
             "## (a) Continual classification: ReDo-dormant against GraMa-inactive", "",
             f"{settings.phases} phases of {settings.steps_per_phase} Adam steps; labels redrawn each phase; "
             f"counts at the end of each phase on 512 samples, summed over the hidden layers that have an activation "
             f"of their own (GraMa-only: inactive neurons in layers that feed a residual stream, "
             "which ReDo cannot score).", ""]
    for name, rows in classification.items():
        lines += [f"**{name}**", ""]
        body = []
        for row in rows:
            for tau, c in row["counts"].items():
                body.append([str(row["phase"]), f"{row['accuracy']:.2f}", tau, str(c["neurons"]), str(c["dormant"]),
                             str(c["inactive"]), str(c["both"]), str(c["dormant_not_inactive"]),
                             str(c["inactive_only_layers"])])
        lines += table(["phase", "accuracy", "tau", "neurons", "ReDo-dormant", "GraMa-inactive", "both",
                        "dormant, not inactive", "GraMa-only layers"], body) + [""]
    finals: dict[str, dict[int, float]] = {}
    for run in runs:
        if run.evals:
            finals.setdefault(method(run), {})[run.seed] = float(run.evals[-1]["return_mean"])
    seeds = sorted({s for per_seed in finals.values() for s in per_seed})
    lines += ["## (b) SAC (tanh) on HalfCheetah: no reset, ReDo, ReGraMa", "",
              f"{settings.sac_steps:,} steps; the last evaluation's mean return over 5 episodes.", ""]
    lines += table(["method", *[f"seed {s}" for s in seeds], "mean"],
                   [[m, *[f"{v[s]:,.0f}" if s in v else "" for s in seeds], f"{np.mean(list(v.values())):,.0f}"]
                    for m, v in sorted(finals.items())]) + [""]
    if runs:
        plt = pyplot()
        figure, axes = plt.subplots(1, 3, figsize=(15, 3.8))
        groups: dict[str, list] = {}
        for run in runs:
            groups.setdefault(method(run), []).append(run)
        for axis, (metric, source) in zip(axes, (("return_mean", "eval"), ("dormant/critic1", "train"),
                                                 ("grama/critic1", "train"))):
            for color, (name, members) in enumerate(sorted(groups.items())):
                curves = [c for c in (series(r, metric, "step") for r in members) if len(c[0])]
                if curves:
                    grid, mean, low, high = mean_and_band(curves)
                    axis.plot(grid, mean, color=f"C{color}", label=name, **few_points_style(len(grid)))
                    axis.fill_between(grid, low, high, color=f"C{color}", alpha=0.2)
            axis.set_title(metric if source == "train" else "evaluation return")
            axis.set_xlabel("environment steps")
            axis.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        save(figure, out / "report_figures" / "sac")
        lines += ["Evaluation return, and critic 1's ReDo-dormant and GraMa-inactive shares at tau 0.1 (the activity "
                  "monitor's), mean and 95% bootstrap band over seeds:", "", "![SAC](report_figures/sac.png)", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps({"classification": classification, "sac_final_returns": finals},
                                                 indent=1))
    return report


def run(out: Path, quick: bool = False, workers: int | None = None, address: str | None = None) -> Path:
    from scalerl.analysis.runs import find_runs

    settings = QUICK if quick else FULL
    out.mkdir(parents=True, exist_ok=True)
    cached = out / "classification.json"
    if cached.is_file():
        classification = json.loads(cached.read_text())
    else:
        classification = continual_classification(settings)
        cached.write_text(json.dumps(classification))
    runs = find_runs(run_sac(settings, out / "runs", workers, address))
    return write_report(settings, classification, runs, out, quick)
