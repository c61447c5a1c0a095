"""Maximum-likelihood pretraining of the online chord model and the offline teacher: the cross-entropy
of each frame's chord token, logits restricted to chord tokens (scalerl.music.training runs the loop)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from scalerl.checks import check_choices, require
from scalerl.music.data import Song
from scalerl.music.models import MODELS, ChordModelConfig, chord_logits
from scalerl.music.training import (
    TrainingSettings,
    fit,
    latest_weights,
    read_run,
    validation_crops,
)
from scalerl.music.vocab import PAD
from scalerl.session import resolve_device


@dataclass(frozen=True)
class PretrainConfig(TrainingSettings):
    model: Literal["online", "teacher"] = "online"
    """online: chord before melody at each frame; teacher: sees the whole melody."""
    net: ChordModelConfig = field(default_factory=ChordModelConfig)

    def __post_init__(self) -> None:
        if isinstance(self.net, dict):
            object.__setattr__(self, "net", ChordModelConfig(**self.net))
        super().__post_init__()
        check_choices(self, "")
        require(self.crop_frames <= self.net.max_frames, "crop_frames", f"<= net.max_frames ({self.net.max_frames})", self.crop_frames)


def chord_loss(model: torch.nn.Module, chords: torch.Tensor, melody: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean cross-entropy of the chord tokens (PAD frames ignored), and the accuracy."""
    logits = chord_logits(model(chords, melody))
    loss = F.cross_entropy(logits.flatten(0, 1), chords.flatten(), ignore_index=PAD)
    valid = chords != PAD
    accuracy = ((logits.argmax(-1) == chords) & valid).sum() / valid.sum().clamp(min=1)
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
                "valid_accuracy": float(np.average(accuracies, weights=weights))}
    return validate


def pretrain(cfg: PretrainConfig, resume: bool = False) -> dict[str, Any]:
    return fit(cfg, cfg.model, lambda device: MODELS[cfg.model](cfg.net).to(device), chord_loss,
               validation(cfg.crop_frames), resume)


def resume_pretraining(run_dir: str | Path) -> dict[str, Any]:
    cfg, run_dir = read_run(run_dir, PretrainConfig)
    return pretrain(cfg, resume=True)


def load_chord_model(run_dir: str | Path, device: str = "cpu") -> tuple[PretrainConfig, torch.nn.Module]:
    """A pretrained model from its run directory's latest checkpoint, in eval mode."""
    cfg, run_dir = read_run(run_dir, PretrainConfig)
    model = MODELS[cfg.model](cfg.net).to(resolve_device(device))
    model.load_state_dict(latest_weights(run_dir)["model"])
    return cfg, model.eval()
