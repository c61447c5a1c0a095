"""The stable-gradients study (`scalerl study stable-gradients`). Part (a), here: non-stationary supervised
learning; part (b), PQN on MinAtar, is in pqn_depth.py.

The paper's diagnosis runs on CIFAR with labels reshuffled across the images every 20 epochs (of 100): a
deep plain MLP stops recovering after a reshuffle and its gradients fade; multi-skip residual connections
with LayerNorm, or the Kron optimizer, keep it trainable. Here the same protocol runs on the 1,797 8x8
digits that ship with scikit-learn (no download), flattened into MLPs of 4 and 12 linear layers, 256 wide:

- plain: a ReLU MLP of 4 or 12 dense layers;
- multi-skip + LayerNorm: the paper's torso, 2 or 6 residual blocks of two dense layers each, the projected
  input added to every block, a final Linear + LayerNorm;
- each with RAdam at the paper's 2.5e-4 or Kron at 2.5e-4 / 3; orthogonal init; batch 256; 3 seeds.

Reported per configuration: training accuracy on the current labels at the end of each phase, and the
first layer's gradient norm (mean over the phase's last epoch). Each run is cached in out/runs/ by name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from scalerl.analysis.plots import pyplot, save
from scalerl.analysis.report import table
from scalerl.analysis.runs import find_runs
from scalerl.checks import ConfigError, install_hint
from scalerl.nets import NetConfig, build_network
from scalerl.optim import OptimizerConfig, make_optimizer
from scalerl.provenance import provenance
from scalerl.studies.stable_gradients import pqn_depth


@dataclass(frozen=True)
class Settings:
    epochs: int = 100
    change_every: int = 20
    """Epochs between label reshuffles (the paper's change points 20, 40, 60, 80 of 100)."""
    depths: tuple[int, ...] = (4, 12)
    width: int = 256
    batch_size: int = 256
    lr: float = 2.5e-4
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])


FULL = Settings()
QUICK = Settings(epochs=4, change_every=2, depths=(2, 4), width=32, seeds=[0])
"""Every part in a minute, at a size that shows nothing."""

ARCHITECTURES = ("plain", "multiskip")
OPTIMIZERS = ("radam", "kron")


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ConfigError("the stable-gradients study reads scikit-learn's digits: "
                          f"{install_hint('studies')}") from None
    data = load_digits()
    return torch.tensor(data.data / 16.0, dtype=torch.float32), torch.tensor(data.target)


def network(architecture: str, depth: int, width: int) -> torch.nn.Module:
    """`depth` counts dense layers: a multi-skip block holds two."""
    import gymnasium as gym

    space = gym.spaces.Box(0.0, 1.0, (64,), np.float32)
    if architecture == "plain":
        spec = NetConfig(torso="mlp", depth=depth, hidden=width, init="orthogonal")
    else:
        spec = NetConfig(torso="multiskip", depth=max(1, depth // 2), hidden=width, norm="layer", init="orthogonal")
    return build_network(spec, space, 10)


def train_one(name: str, architecture: str, optimizer_kind: str, depth: int, seed: int,
              settings: Settings) -> dict[str, Any]:
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    x, labels = digits()
    net = network(architecture, depth, settings.width)
    optimizer = make_optimizer(net.parameters(), OptimizerConfig(kind=optimizer_kind, lr=settings.lr))
    first = next(m for m in net.modules() if isinstance(m, torch.nn.Linear))
    rng = np.random.default_rng(seed)
    y = labels.clone()
    accuracy, gradient = [], []
    for epoch in range(settings.epochs):
        if epoch and epoch % settings.change_every == 0:
            y = labels[torch.from_numpy(rng.permutation(len(labels)))]  # every image takes another one's label
        norms = []
        for batch in torch.from_numpy(rng.permutation(len(x))).split(settings.batch_size):
            loss = F.cross_entropy(net(x[batch]), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norms.append(float(first.weight.grad.norm()))
            optimizer.step()
        with torch.no_grad():
            accuracy.append(float((net(x).argmax(1) == y).float().mean()))
        gradient.append(float(np.mean(norms)))
    return {"name": name, "architecture": architecture, "optimizer": optimizer_kind, "depth": depth, "seed": seed,
            "accuracy": accuracy, "first_layer_grad_norm": gradient, "settings": asdict(settings) | {"seeds": None},
            "provenance": provenance()}


def network_names(settings: Settings) -> list[str]:
    """Part (a)'s networks as `--variants` names them, e.g. plain-radam-d4."""
    return [f"{a}-{o}-d{d}" for d in settings.depths for a in ARCHITECTURES for o in OPTIMIZERS]


def run_all(settings: Settings, out: Path, workers: int | None, variants: Sequence[str] | None = None
            ) -> list[dict[str, Any]]:
    jobs = [(f"{a}-{o}-d{d}-s{s}", a, o, d, s) for d in settings.depths for a in ARCHITECTURES for o in OPTIMIZERS
            for s in settings.seeds if variants is None or f"{a}-{o}-d{d}" in variants]
    folder = out / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    todo = [job for job in jobs if not (folder / f"{job[0]}.json").is_file()]
    with ProcessPoolExecutor(workers or 2) as pool:
        for result in pool.map(train_one, *zip(*todo), [settings] * len(todo)) if todo else []:
            (folder / f"{result['name']}.json").write_text(json.dumps(result))
    return [json.loads((folder / f"{job[0]}.json").read_text()) for job in jobs]


def label(result: dict[str, Any]) -> str:
    architecture = "multi-skip + LN" if result["architecture"] == "multiskip" else "plain"
    optimizer = result["optimizer"].replace("radam", "RAdam").replace("kron", "Kron")
    return f"{architecture}, {optimizer}, {result['depth']} layers"


def write_report(settings: Settings, results: list[dict[str, Any]], out: Path, quick: bool,
                 more: Sequence[str] = ()) -> Path:
    groups: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        groups.setdefault(label(result), []).append(result)
    ends = [min(e, settings.epochs) - 1
            for e in range(settings.change_every, settings.epochs + 1, settings.change_every)]
    lines = ["# Stable-gradients study, (a) non-stationary supervised learning"
             + (" (quick: nothing learned)" if quick else ""),
             "", f"Digits (1,797 images), labels reshuffled across the images every {settings.change_every} epochs of "
             f"{settings.epochs}; width {settings.width}, batch {settings.batch_size}, "
             f"seeds {settings.seeds}. Training "
             "accuracy on the current labels at the end of each phase (mean over seeds), and the first layer's "
             "gradient norm in the phase's last epoch.", ""]
    rows = []
    for name, members in sorted(groups.items(), key=lambda item: (item[1][0]["depth"], item[0])):
        accuracy = np.mean([m["accuracy"] for m in members], axis=0)
        gradient = np.mean([m["first_layer_grad_norm"] for m in members], axis=0)
        rows.append([name, *[f"{accuracy[e]:.2f}" for e in ends], *[f"{gradient[e]:.3g}" for e in (ends[0], ends[-1])]])
    lines += table(["network, optimizer", *[f"acc. phase {k + 1}" for k in range(len(ends))],
                    "grad norm, phase 1", f"grad norm, phase {len(ends)}"], rows) + [""]
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(13, 4))
    for color, (name, members) in enumerate(sorted(groups.items())):
        style = "-" if members[0]["depth"] == max(settings.depths) else ":"
        for axis, key in zip(axes, ("accuracy", "first_layer_grad_norm")):
            axis.plot(np.mean([m[key] for m in members], axis=0), style, color=f"C{color % 10}", label=name)
    axes[0].set_title("training accuracy on the current labels")
    axes[1].set_title("first layer's gradient norm")
    axes[1].set_yscale("log")
    for axis in axes:
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        for change in range(settings.change_every, settings.epochs, settings.change_every):
            axis.axvline(change, color="grey", lw=0.5)
    axes[0].legend(fontsize=7)
    save(figure, out / "report_figures" / "nonstationary")
    lines += ["![accuracy and gradient norm](report_figures/nonstationary.png)", "", *more]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    (out / "settings.json").write_text(json.dumps(asdict(settings), indent=1))
    return report


def run(out: Path, quick: bool = False, workers: int | None = None, address: str | None = None,
        seeds: Sequence[int] | None = None, variants: Sequence[str] | None = None) -> Path:
    """Run (or continue) both parts in `out` and write out/report.md. Part (a) trains small supervised
    networks in local processes; part (b)'s PQN runs are a sweep, on a Ray cluster when given its address.
    `seeds` runs those seeds of both parts; `variants` runs only the named networks of part (a) (e.g.
    plain-radam-d4) or runs of part (b) (e.g. baseline-5blocks), so one run can be made again alone."""
    settings = QUICK if quick else FULL
    rl_settings = pqn_depth.QUICK if quick else pqn_depth.FULL
    if seeds is not None:
        settings = replace(settings, seeds=list(seeds))
        rl_settings = replace(rl_settings, seeds=list(seeds))
    if variants is not None:
        known = network_names(settings) + [variant["name"] for variant in pqn_depth.sweep_variants(rl_settings)]
        unknown = [name for name in variants if name not in known]
        if unknown:
            raise ConfigError(f"--variants: no variant {unknown[0]!r}; this study's are {', '.join(known)}")
    out.mkdir(parents=True, exist_ok=True)
    results = run_all(settings, out, workers, variants)
    finished = pqn_depth.run_training(rl_settings, out / "pqn", workers, address, variants)
    runs = find_runs(finished) if finished else []
    return write_report(settings, results, out, quick, pqn_depth.report_lines(rl_settings, runs, out, quick))
