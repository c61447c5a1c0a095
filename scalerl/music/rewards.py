"""ReaLchords reward models: how well a chord part fits a melody, learned from real pairings.

- contrastive: separate melody and chord encoders, projected and L2-normalised; trained with InfoNCE
  (CLIP-style, learned temperature) so each melody is closest to its own chords in the batch.
  Reward = cosine similarity of the two embeddings.
- discriminative: one encoder over the interleaved pair, trained to tell real pairings from chords
  re-paired with another song's melody. Reward = P(real).
- rhythm=True maps every token to onset / hold / silence first, so the model judges only the
  temporal fit (when chords change against when notes start), not the harmony.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scalerl.checks import check_choices, in_range, positive, require
from scalerl.music.data import Song
from scalerl.music.training import (
    TrainingSettings,
    fit,
    latest_weights,
    read_run,
    validation_crops,
)
from scalerl.music.vocab import (
    BOS,
    CHORD_HOLD,
    CHORD_ON,
    NOTE_HOLD,
    NOTE_ON,
    NUM_CHORDS,
    NUM_PITCHES,
    PAD,
    VOCAB_SIZE,
)
from scalerl.session import resolve_device


@dataclass(frozen=True)
class RewardConfig(TrainingSettings):
    """A reward model: how well chords go with a melody.

    At the defaults (500 steps of 32 64-frame crops) a contrastive model takes about 3 minutes and a
    discriminative one about 6 on one core of a 2-core machine with the other busy; the discriminative one's
    validation loss rises after about 200 steps, so longer training buys nothing."""

    steps: int = 500
    kind: Literal["contrastive", "discriminative"] = "contrastive"
    rhythm: bool = False
    """Judge only onsets/holds/silences (temporal fit), not pitches and chords."""
    dim: int = 96
    layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    max_frames: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choices(self, "")
        positive("dim", self.dim)
        positive("layers", self.layers)
        require(self.dim % self.heads == 0, "dim", f"a multiple of heads ({self.heads})", self.dim)
        in_range("dropout", self.dropout, 0.0, 0.9)
        require(self.crop_frames <= self.max_frames, "crop_frames", f"<= max_frames ({self.max_frames})",
                self.crop_frames)
        require(self.history_noise == 0, "history_noise", "0 for a reward model (it judges true chord histories)",
                self.history_noise)


def rhythm_tokens(tokens: torch.Tensor) -> torch.Tensor:
    """Every note onset becomes NOTE_ON+0, every hold NOTE_HOLD+0, and likewise for chords."""
    out = tokens.clone()
    out[(tokens >= NOTE_ON) & (tokens < NOTE_ON + NUM_PITCHES)] = NOTE_ON
    out[(tokens >= NOTE_HOLD) & (tokens < NOTE_HOLD + NUM_PITCHES)] = NOTE_HOLD
    out[(tokens >= CHORD_ON) & (tokens < CHORD_ON + NUM_CHORDS)] = CHORD_ON
    out[(tokens >= CHORD_HOLD) & (tokens < CHORD_HOLD + NUM_CHORDS)] = CHORD_HOLD
    return out


class SequenceEncoder(nn.Module):
    """Bidirectional Transformer; the output at a leading BOS summarises the sequence."""

    def __init__(self, cfg: RewardConfig, length: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB_SIZE, cfg.dim)
        self.position = nn.Embedding(length + 1, cfg.dim)
        layer = nn.TransformerEncoderLayer(cfg.dim, cfg.heads, 4 * cfg.dim, cfg.dropout, batch_first=True,
                                           norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, cfg.layers, norm=nn.LayerNorm(cfg.dim),
                                                 enable_nested_tensor=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = torch.cat([torch.full_like(tokens[:, :1], BOS), tokens], 1)
        hidden = self.embed(tokens) + self.position(torch.arange(tokens.shape[1], device=tokens.device))
        return self.transformer(hidden, src_key_padding_mask=tokens == PAD)[:, 0]


class ContrastiveReward(nn.Module):
    def __init__(self, cfg: RewardConfig) -> None:
        super().__init__()
        self.rhythm = cfg.rhythm
        self.melody_encoder = SequenceEncoder(cfg, cfg.max_frames)
        self.chord_encoder = SequenceEncoder(cfg, cfg.max_frames)
        self.melody_head = nn.Sequential(nn.Linear(cfg.dim, cfg.dim), nn.ReLU(), nn.Linear(cfg.dim, cfg.dim))
        self.chord_head = nn.Sequential(nn.Linear(cfg.dim, cfg.dim), nn.ReLU(), nn.Linear(cfg.dim, cfg.dim))
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def embeddings(self, chords: torch.Tensor, melody: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.rhythm:
            chords, melody = rhythm_tokens(chords), rhythm_tokens(melody)
        m = F.normalize(self.melody_head(self.melody_encoder(melody)), dim=-1)
        c = F.normalize(self.chord_head(self.chord_encoder(chords)), dim=-1)
        return m, c

    def forward(self, chords: torch.Tensor, melody: torch.Tensor) -> torch.Tensor:
        """Reward per pair: cosine similarity in [-1, 1]."""
        m, c = self.embeddings(chords, melody)
        return (m * c).sum(-1)

    def loss(self, chords: torch.Tensor, melody: torch.Tensor) -> torch.Tensor:
        """Symmetric InfoNCE over the batch: pair i's positives are each other, the rest negatives."""
        m, c = self.embeddings(chords, melody)
        logits = self.log_scale.exp().clamp(max=100) * m @ c.T
        labels = torch.arange(len(m), device=m.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


class DiscriminativeReward(nn.Module):
    def __init__(self, cfg: RewardConfig) -> None:
        super().__init__()
        self.rhythm = cfg.rhythm
        self.encoder = SequenceEncoder(cfg, 2 * cfg.max_frames)
        self.head = nn.Linear(cfg.dim, 1)

    def logits(self, chords: torch.Tensor, melody: torch.Tensor) -> torch.Tensor:
        if self.rhythm:
            chords, melody = rhythm_tokens(chords), rhythm_tokens(melody)
        pairs = torch.stack([chords, melody], 2).reshape(len(chords), -1)
        return self.head(self.encoder(pairs)).squeeze(-1)

    def forward(self, chords: torch.Tensor, melody: torch.Tensor) -> torch.Tensor:
        """Reward per pair: the probability that the chords are the melody's real accompaniment."""
        return torch.sigmoid(self.logits(chords, melody))

    def loss(self, chords: torch.Tensor, melody: torch.Tensor) -> torch.Tensor:
        real = self.logits(chords, melody)
        fake = self.logits(chords.roll(1, 0), melody)  # each melody with another crop's chords
        return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))) / 2


REWARD_MODELS = {"contrastive": ContrastiveReward, "discriminative": DiscriminativeReward}


def reward_loss(model: nn.Module, chords: torch.Tensor, melody: torch.Tensor,
                targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """A reward model learns from true pairs only: the targets are the chords it reads."""
    return model.loss(chords, melody), {}


def ranking_accuracy(model: nn.Module, crops: list[tuple[list[int], list[int]]], device: torch.device) -> float:
    """Over held-out crops: how often the true pairing scores above the same melody with the chords of
    the next crop (another passage, usually another song)."""
    chords = torch.tensor([c for c, _ in crops], device=device)
    melody = torch.tensor([m for _, m in crops], device=device)
    true = torch.cat([model(chords[i:i + 64], melody[i:i + 64]) for i in range(0, len(crops), 64)])
    shuffled_chords = chords.roll(1, 0)
    shuffled = torch.cat([model(shuffled_chords[i:i + 64], melody[i:i + 64]) for i in range(0, len(crops), 64)])
    return float((true > shuffled).float().mean())


def validation(frames: int):
    def validate(model: nn.Module, songs: list[Song], device: torch.device) -> dict[str, float]:
        crops = [c for c in validation_crops(songs, frames) if c[0].count(PAD) < frames // 2]
        chords = torch.tensor([c for c, _ in crops], device=device)
        melody = torch.tensor([m for _, m in crops], device=device)
        losses = [model.loss(chords[i:i + 64], melody[i:i + 64]).item() for i in range(0, len(crops), 64)]
        return {"valid_loss": float(np.mean(losses)), "valid_ranking_accuracy": ranking_accuracy(model, crops, device)}
    return validate


def reward_kind(cfg: RewardConfig) -> str:
    return f"{cfg.kind}{'-rhythm' if cfg.rhythm else ''}"


def train_reward_model(cfg: RewardConfig, resume: bool = False) -> dict[str, Any]:
    return fit(cfg, reward_kind(cfg), lambda device: REWARD_MODELS[cfg.kind](cfg).to(device), reward_loss,
               validation(cfg.crop_frames), resume)


def resume_reward_training(run_dir: str | Path) -> dict[str, Any]:
    cfg, run_dir = read_run(run_dir, RewardConfig)
    return train_reward_model(cfg, resume=True)


def load_reward_model(run_dir: str | Path, device: str = "cpu") -> tuple[RewardConfig, nn.Module]:
    cfg, run_dir = read_run(run_dir, RewardConfig)
    model = REWARD_MODELS[cfg.kind](cfg).to(resolve_device(device))
    model.load_state_dict(latest_weights(run_dir)["model"])
    return cfg, model.eval()
