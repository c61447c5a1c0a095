"""Maximum-likelihood pretraining of the online chord model and the offline teacher: the cross-entropy
of each frame's chord token, logits restricted to chord tokens (scalerl.music.training runs the loop)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from scalerl.checks import check_choices, require
from scalerl.music.data import Song
from scalerl.music.metrics import note_in_chord, one_frame_share
from scalerl.music.models import MODELS, ChordModelConfig, chord_logits, generate
from scalerl.music.training import (
    TrainingSettings,
    fit,
    latest_weights,
    read_run,
    validation_crops,
)
from scalerl.music.vocab import PAD
from scalerl.session import read_run_config, resolve_device


@dataclass(frozen=True)
class PretrainConfig(TrainingSettings):
    """Maximum-likelihood pretraining of the online chord model or the offline teacher.

    At the defaults (dim 128, 3 layers, 2,000 steps of 32 crops) a model takes about 17 minutes on one core
    of a 2-core machine, with the other core busy; validation loss and the note-in-chord of the model's own
    accompaniments flatten by then (the realchords study's budget.png)."""

    model: Literal["online", "teacher"] = "online"
    """online: chord before melody at each frame; teacher: sees the whole melody."""
    net: ChordModelConfig = field(default_factory=ChordModelConfig)

    def __post_init__(self) -> None:
        if isinstance(self.net, dict):
            object.__setattr__(self, "net", ChordModelConfig(**self.net))
        super().__post_init__()
        check_choices(self, "")
        require(self.crop_frames <= self.net.max_frames, "crop_frames", f"<= net.max_frames ({self.net.max_frames})",
                self.crop_frames)


def chord_loss(model: torch.nn.Module, chords: torch.Tensor, melody: torch.Tensor,
               targets: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean cross-entropy of the target chord tokens (PAD frames ignored) given the chords read, and the
    accuracy; the targets are the chords read unless history noise made some of those wrong."""
    targets = chords if targets is None else targets
    logits = chord_logits(model(chords, melody))
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=PAD)
    valid = targets != PAD
    accuracy = ((logits.argmax(-1) == targets) & valid).sum() / valid.sum().clamp(min=1)
    return loss, {"accuracy": accuracy.item()}


def validation(frames: int):
    def validate(model: torch.nn.Module, songs: list[Song], device: torch.device) -> dict[str, float]:
        crops = validation_crops(songs, frames)
        losses, accuracies, weights = [], [], []
        for index in range(0, len(crops), 64):
            chords = torch.tensor([c for c, _ in crops[index:index + 64]], device=device)
            melody = torch.tensor([m for _, m in crops[index:index + 64]], device=device)
            loss, scalars = chord_loss(model, chords, melody)
            losses.append(loss.item())
            accuracies.append(scalars["accuracy"])
            weights.append(int((chords != PAD).sum()))
        return {"valid_loss": float(np.average(losses, weights=weights)),
                "valid_accuracy": float(np.average(accuracies, weights=weights)),
                **accompaniment_metrics(model, [crop for crop in crops if PAD not in crop[1]], device)}
    return validate


def accompaniment_metrics(model: torch.nn.Module, crops: list[tuple[list[int], list[int]]], device: torch.device,
                          batch: int = 64) -> dict[str, float]:
    """What the loss does not show: the model's own accompaniments of the melodies (sampled at temperature 1
    from a fixed seed, so records of one run compare): note-in-chord, and the share of chords that last a
    single frame against the data's (a model unsure when to hold a chord changes it every 16th note)."""
    if not crops:
        return {}
    generated = []
    for index in range(0, len(crops), batch):
        melody = torch.tensor([m for _, m in crops[index:index + batch]], device=device)
        generated += generate(model, melody, 1.0, seed=index).tolist()
    return {"valid_note_in_chord": float(np.nanmean([note_in_chord(c, m) for c, (_, m) in zip(generated, crops)])),
            "valid_one_frame_chords": one_frame_share(generated),
            "data_one_frame_chords": one_frame_share([c for c, _ in crops])}


def pretrain(cfg: PretrainConfig, resume: bool = False) -> dict[str, Any]:
    return fit(cfg, cfg.model, lambda device: MODELS[cfg.model](cfg.net).to(device), chord_loss,
               validation(cfg.crop_frames), resume)


def resume_pretraining(run_dir: str | Path) -> dict[str, Any]:
    cfg, run_dir = read_run(run_dir, PretrainConfig)
    return pretrain(cfg, resume=True)


DEFAULT_MODEL = Path(__file__).parent / "model"
"""The online ReaLchords policy that ships with the package (docs/realchords.md says how it was trained)."""
EXPORTED_WEIGHTS = "weights.pt"


def load_chord_model(run_dir: str | Path | None = None, device: str = "cpu") -> tuple[PretrainConfig, torch.nn.Module]:
    """A chord model in eval mode: a run directory's latest checkpoint, a folder written by export_model, or
    (None) the model that ships with the package."""
    cfg, run_dir = read_run(DEFAULT_MODEL if run_dir is None else run_dir, PretrainConfig)
    model = MODELS[cfg.model](cfg.net).to(resolve_device(device))
    exported = run_dir / EXPORTED_WEIGHTS
    if exported.is_file():
        weights = torch.load(exported, map_location="cpu", weights_only=True)
    else:
        weights = latest_weights(run_dir)["model"]
    model.load_state_dict(weights)
    return cfg, model.eval()


def export_model(run_dir: str | Path, out: str | Path) -> Path:
    """A run's model alone, to ship or share: its config.json (which says how it was trained) and its
    weights, without the optimizer state and random streams a checkpoint keeps to resume. load_chord_model(out)
    reads it."""
    cfg, run_dir = read_run(run_dir, PretrainConfig)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(latest_weights(run_dir)["model"], out / EXPORTED_WEIGHTS)
    config = relative_paths(read_run_config(run_dir), run_dir.resolve().parent)
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return out


RUN_PATHS = ("data", "run_dir", "policy", "teacher", "rewards")
"""The config fields that name folders (the finetune section's included)."""


def relative_paths(config: dict[str, Any], base: Path) -> dict[str, Any]:
    """The config with the folders it names written relative to `base` (the folder the run was in), so an
    exported model says how it was trained without naming the machine it was trained on."""
    def relative(value: str) -> str:
        return os.path.relpath(Path(value).resolve(), base) if value else value

    config = dict(config)
    for key in RUN_PATHS:
        if isinstance(config.get(key), str):
            config[key] = relative(config[key])
        elif isinstance(config.get(key), list):
            config[key] = [relative(value) for value in config[key]]
    if isinstance(config.get("finetune"), dict):
        config["finetune"] = relative_paths(config["finetune"], base)
    return config
