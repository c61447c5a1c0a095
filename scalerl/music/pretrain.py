"""Maximum-likelihood pretraining of the online chord model and the offline teacher.

Batches are random crops (starting on a beat) of training songs, each transposed by a random number of
semitones; the loss is the cross-entropy of each frame's chord token, with logits restricted to chord
tokens. A run writes the usual run directory (config.json, metrics.jsonl, TensorBoard, checkpoints)
and resumes after a kill with `--resume RUN_DIR`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from scalerl.checkpoint import (
    global_rng_state,
    load_checkpoint,
    restore_global_rng_state,
    save_checkpoint,
)
from scalerl.checks import ConfigError, check_choices, positive, require
from scalerl.logger import RunLogger
from scalerl.music.data import Song, load_songs, song_tokens
from scalerl.music.models import MODELS, ChordModelConfig, chord_logits
from scalerl.music.vocab import FRAMES_PER_BEAT, PAD
from scalerl.run import resolve_device


@dataclass(frozen=True)
class PretrainConfig:
    data: str = "data/chords"
    """Folder with train.jsonl and valid.jsonl (from `scalerl chords data`)."""
    model: Literal["online", "teacher"] = "online"
    """online: chord before melody at each frame; teacher: sees the whole melody."""
    net: ChordModelConfig = field(default_factory=ChordModelConfig)
    steps: int = 2_000
    """Gradient steps."""
    batch_size: int = 32
    crop_frames: int = 64
    """Frames per training crop (16 beats at 4 frames a beat)."""
    lr: float = 1e-3
    """AdamW learning rate (cosine decay to 10% over the run, after 100 warm-up steps)."""
    weight_decay: float = 0.01
    transpose: int = 6
    """Random transposition in [-transpose, +transpose] semitones per crop."""
    eval_every: int = 250
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 1
    run_dir: str | None = None
    """Default runs/chords/<model>-s<seed>-<time>."""

    def __post_init__(self) -> None:
        if isinstance(self.net, dict):
            object.__setattr__(self, "net", ChordModelConfig(**self.net))
        check_choices(self, "")
        positive("steps", self.steps)
        positive("batch_size", self.batch_size)
        positive("crop_frames", self.crop_frames)
        require(self.crop_frames <= self.net.max_frames, "crop_frames", f"<= net.max_frames ({self.net.max_frames})", self.crop_frames)
        positive("lr", self.lr)
        require(0 <= self.transpose <= 12, "transpose", "in [0, 12]", self.transpose)
        positive("eval_every", self.eval_every)


def crop_tokens(song: Song, start: int, frames: int, semitones: int) -> tuple[list[int], list[int]]:
    chords, melody = song_tokens(song.transposed(semitones) if semitones else song)
    chords, melody = chords[start:start + frames], melody[start:start + frames]
    padding = [PAD] * (frames - len(chords))
    return chords + padding, melody + padding


class Batches:
    """Random transposed crops of songs, drawn from a seeded generator."""

    def __init__(self, songs: list[Song], frames: int, transpose: int, rng: np.random.Generator) -> None:
        if not songs:
            raise ConfigError("no training songs")
        self.songs, self.frames, self.transpose, self.rng = songs, frames, transpose, rng

    def sample(self, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        chords, melody = [], []
        for _ in range(size):
            song = self.songs[self.rng.integers(len(self.songs))]
            beats = max(1, (song.frames - self.frames) // FRAMES_PER_BEAT + 1)
            start = int(self.rng.integers(beats)) * FRAMES_PER_BEAT
            for semitones in self.rng.permutation(np.arange(-self.transpose, self.transpose + 1)):
                if song.transposed(int(semitones)).fits():
                    break
            c, m = crop_tokens(song, start, self.frames, int(semitones))
            chords.append(c)
            melody.append(m)
        return torch.tensor(chords, device=device), torch.tensor(melody, device=device)


def chord_loss(model: torch.nn.Module, chords: torch.Tensor, melody: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy of the chord tokens, accuracy), PAD frames ignored."""
    logits = chord_logits(model(chords, melody))
    loss = F.cross_entropy(logits.flatten(0, 1), chords.flatten(), ignore_index=PAD)
    valid = chords != PAD
    accuracy = ((logits.argmax(-1) == chords) & valid).sum() / valid.sum().clamp(min=1)
    return loss, accuracy


@torch.no_grad()
def validation(model: torch.nn.Module, songs: list[Song], frames: int, device: torch.device) -> dict[str, float]:
    """Loss and accuracy over every full crop of the validation songs, untransposed."""
    model.eval()
    crops = [crop_tokens(song, start, frames, 0) for song in songs for start in range(0, max(1, song.frames), frames)]
    losses, accuracies, weights = [], [], []
    for index in range(0, len(crops), 64):
        chunk = crops[index:index + 64]
        chords = torch.tensor([c for c, _ in chunk], device=device)
        melody = torch.tensor([m for _, m in chunk], device=device)
        loss, accuracy = chord_loss(model, chords, melody)
        losses.append(loss.item())
        accuracies.append(accuracy.item())
        weights.append(int((chords != PAD).sum()))
    model.train()
    return {"valid_loss": float(np.average(losses, weights=weights)), "valid_accuracy": float(np.average(accuracies, weights=weights))}


def learning_rate(cfg: PretrainConfig, step: int) -> float:
    warmup = min(100, cfg.steps // 10 or 1)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, cfg.steps - warmup)
    return cfg.lr * (0.1 + 0.45 * (1 + np.cos(np.pi * progress)))


def build_model(cfg: PretrainConfig | dict[str, Any], device: torch.device) -> torch.nn.Module:
    if isinstance(cfg, dict):
        cfg = PretrainConfig(**cfg)
    return MODELS[cfg.model](cfg.net).to(device)


def pretrain(cfg: PretrainConfig, resume_from: dict[str, Any] | None = None) -> dict[str, Any]:
    run_dir = Path(cfg.run_dir or f"runs/chords/{cfg.model}-s{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}")
    cfg = dataclasses.replace(cfg, run_dir=str(run_dir))
    if resume_from is None and (run_dir / "config.json").exists():
        raise ConfigError(f"{run_dir} already holds a run; resume it with --resume {run_dir}")
    torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    data = Path(cfg.data)
    train_songs, valid_songs = load_songs(data / "train.jsonl"), load_songs(data / "valid.jsonl")
    model = build_model(cfg, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    step, started = 0, time.perf_counter()
    if resume_from is not None:
        model.load_state_dict(resume_from["model"])
        optimizer.load_state_dict(resume_from["optimizer"])
        rng.bit_generator.state = resume_from["rng"]
        restore_global_rng_state(resume_from["global_rng"])
        step = resume_from["step"]
    batches = Batches(train_songs, cfg.crop_frames, cfg.transpose, rng)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    (run_dir / "parameters.json").write_text(json.dumps({cfg.model: sum(p.numel() for p in model.parameters())}) + "\n")
    logger = RunLogger(run_dir, resume_step=step if resume_from else None)
    record: dict[str, float] = {}
    if step == 0:  # the untrained model's validation loss: the baseline every later record improves on
        logger.log_metrics(0, {**validation(model, valid_songs, cfg.crop_frames, device), "wall_time": 0.0})
    while step < cfg.steps:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        chords, melody = batches.sample(cfg.batch_size, device)
        loss, accuracy = chord_loss(model, chords, melody)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        if step % cfg.eval_every == 0 or step == cfg.steps:
            record = {"loss": loss.item(), "accuracy": accuracy.item(), "lr": optimizer.param_groups[0]["lr"],
                      **validation(model, valid_songs, cfg.crop_frames, device),
                      "wall_time": time.perf_counter() - started}
            logger.log_metrics(step, record)
            save_checkpoint(run_dir / "checkpoints" / "latest.pt", {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": rng.bit_generator.state,
                "global_rng": global_rng_state(), "step": step})
    logger.close()
    summary = {"run_dir": str(run_dir), "model": cfg.model, "steps": step, **record}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def resume_pretraining(run_dir: str | Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise ConfigError(f"{run_dir} is not a chords run directory: config.json is missing")
    cfg = PretrainConfig(**json.loads(config_path.read_text()))
    return pretrain(cfg, load_checkpoint(run_dir / "checkpoints" / "latest.pt"))


def load_chord_model(run_dir: str | Path, device: str = "cpu") -> tuple[PretrainConfig, torch.nn.Module]:
    """A pretrained model from its run directory's latest checkpoint, in eval mode."""
    run_dir = Path(run_dir)
    cfg = PretrainConfig(**json.loads((run_dir / "config.json").read_text()))
    model = build_model(cfg, resolve_device(device))
    model.load_state_dict(load_checkpoint(run_dir / "checkpoints" / "latest.pt")["model"])
    return cfg, model.eval()
