"""Part (a) of the GraMa study: continual classification, where the labels are redrawn every phase and the
network must keep fitting new ones, with no reset, ReDo or ReGraMa.

Both reset rules use the same threshold on their own normalized score (activations for ReDo, the incoming
weights' gradient for ReGraMa), the same schedule and the same reset (`scalerl.interventions.resets`), so the
arms differ only in which neurons they pick. At every reset the run also records how many of the picked
neurons the other metric would have kept: for ReDo, neurons still receiving gradient (its misfires).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from scalerl.diagnostics.activity import grama_scores, inactive, neuron_layers, redo_scores
from scalerl.interventions.resets import reset_neurons
from scalerl.nets import NetConfig, build_network
from scalerl.provenance import provenance

NETWORKS = {
    "relu_mlp": NetConfig(depth=4, activation="relu"),
    "residual_layernorm": NetConfig(depth=2, torso="residual", norm="layer", activation="relu"),
}
METHODS = ("none", "redo", "regrama")
THRESHOLDS = (0.0, 0.1)
"""The taus at which each phase's activity counts are taken."""


@dataclass(frozen=True)
class Settings:
    phases: int = 20
    steps_per_phase: int = 400
    samples: int = 2_048
    inputs: int = 32
    classes: int = 10
    hidden: int = 256
    batch: int = 128
    learning_rate: float = 1e-3
    reset_every: int = 200
    """Adam steps between resets (the first after half of that, so a phase's end is never a reset's step)."""
    tau: float = 0.1
    """Both rules' threshold on their normalized score (ReDo's SAC setting)."""
    record_every: int = 25
    """Adam steps between measurements of the accuracy on the phase's whole data."""


def run_name(network: str, method: str, seed: int) -> str:
    return f"{network}-{method}-s{seed}"


def activity_counts(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, dict[str, int]]:
    """Per tau: neurons scored by both metrics, ReDo-dormant, GraMa-inactive, both, dormant-but-active, and
    GraMa-inactive neurons of layers that feed a residual stream (which ReDo cannot score)."""
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
            if not layer.activated:
                row["inactive_only_layers"] += int(grama.sum())
                continue
            dormant = inactive(redo_scores(layer.post_activation(outputs[index])), tau)
            row["neurons"] += layer.neurons
            row["dormant"] += int(dormant.sum())
            row["inactive"] += int(grama.sum())
            row["both"] += int((dormant & grama).sum())
            row["dormant_not_inactive"] += int((dormant & ~grama).sum())
        counts[f"{tau:g}"] = row
    net.zero_grad()
    return counts


def reset_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, method: str, tau: float,
               x: torch.Tensor, y: torch.Tensor) -> dict[str, int]:
    """Score the resettable layers on the batch (x, y) by both metrics and reset the neurons `method` picks;
    returns how many it reset and how many of those the other metric would have kept."""
    layers = [layer for layer in neuron_layers(net) if layer.resettable and layer.activated]
    outputs: dict[int, torch.Tensor] = {}
    handles = [layer.layer.register_forward_hook(lambda m, a, out, i=i: outputs.__setitem__(i, out.detach()))
               for i, layer in enumerate(layers)]
    net.zero_grad()
    F.cross_entropy(net(x), y).backward()
    for handle in handles:
        handle.remove()
    counts = {"reset": 0, "kept_by_other": 0}
    for index, layer in enumerate(layers):
        dormant = inactive(redo_scores(layer.post_activation(outputs[index])), tau)
        without_gradient = inactive(grama_scores(layer.layer), tau)
        chosen, other = (dormant, without_gradient) if method == "redo" else (without_gradient, dormant)
        counts["reset"] += reset_neurons(layer, chosen, optimizer, reset_norm=method == "regrama")
        counts["kept_by_other"] += int((chosen & ~other).sum())
    net.zero_grad()
    return counts


def train(settings: Settings, network: str, method: str, seed: int) -> dict[str, Any]:
    """One run: the accuracy on the current phase's data every `record_every` steps, the accuracy and the
    activity counts at the end of each phase, and every reset's counts."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} (got {method!r})")
    data_generator = torch.Generator().manual_seed(seed)
    x = torch.randn(settings.samples, settings.inputs, generator=data_generator)
    space = gym.spaces.Box(-np.inf, np.inf, (settings.inputs,), np.float32)
    torch.manual_seed(seed)
    net = build_network(NetConfig(**{**NETWORKS[network].__dict__, "hidden": settings.hidden}), space,
                        settings.classes)
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.learning_rate)
    label_generator = torch.Generator().manual_seed(seed + 1)  # the same labels and batches in every arm
    curve_step, curve_accuracy, phase_accuracy, phase_counts, resets = [], [], [], [], []
    step = 0
    for phase in range(settings.phases):
        y = torch.randint(0, settings.classes, (settings.samples,), generator=label_generator)
        for _ in range(settings.steps_per_phase):
            batch = torch.randint(0, settings.samples, (settings.batch,), generator=label_generator)
            optimizer.zero_grad()
            F.cross_entropy(net(x[batch]), y[batch]).backward()
            optimizer.step()
            step += 1
            if method != "none" and step % settings.reset_every == settings.reset_every // 2:
                resets.append({"step": step, **reset_step(net, optimizer, method, settings.tau, x[batch], y[batch])})
            if step % settings.record_every == 0:
                with torch.no_grad():
                    curve_step.append(step)
                    curve_accuracy.append(float((net(x).argmax(1) == y).float().mean()))
        phase_accuracy.append(curve_accuracy[-1])
        phase_counts.append(activity_counts(net, x[:512], y[:512]))
    return {"network": network, "method": method, "seed": seed, "settings": asdict(settings),
            "provenance": provenance(), "step": curve_step, "accuracy": curve_accuracy,
            "phase_accuracy": phase_accuracy, "phase_counts": phase_counts, "resets": resets}


def run_all(settings: Settings, seeds: list[int], out: Path) -> list[Path]:
    """Every network x method x seed into out/NAME.json; finished runs are kept (a resumed study skips them)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in seeds:
        for network in NETWORKS:
            for method in METHODS:
                path = out / f"{run_name(network, method, seed)}.json"
                if not path.is_file():
                    result = train(settings, network, method, seed)
                    temporary = path.with_suffix(".tmp")
                    temporary.write_text(json.dumps(result))
                    temporary.replace(path)
                paths.append(path)
    return paths
