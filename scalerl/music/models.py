"""The two chord models of ReaLchords.

- OnlineChordModel: a causal Transformer over the interleaved sequence [BOS, c1, m1, c2, m2, ...]. The
  chord of frame t is predicted from the position of m_{t-1}, so it depends only on chords and melody
  before frame t: the model must commit to a chord before it hears that frame's melody.
- OfflineChordModel (the teacher): a bidirectional encoder reads the whole melody, and a causal decoder
  predicts c_t from c_<t and, through cross-attention, every melody frame, future ones included.

Both return logits over the whole vocabulary for the chord of every frame, shape (batch, frames, vocab);
`chord_logits` restricts them to the chord part of the vocabulary (SILENCE and chord tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from scalerl.checks import in_range, positive, require
from scalerl.music.vocab import BOS, CHORD_ON, PAD, SILENCE, VOCAB_SIZE


@dataclass(frozen=True)
class ChordModelConfig:
    """Transformer sizes. The defaults train on 2 CPU cores in minutes; the paper used 512 wide, 8 layers."""

    dim: int = 128
    """Width of token embeddings and attention."""
    layers: int = 3
    """Transformer layers (the teacher has this many in its encoder and in its decoder)."""
    heads: int = 4
    """Attention heads."""
    dropout: float = 0.1
    max_frames: int = 256
    """Longest sequence in frames (crops are taken up to this length)."""

    def __post_init__(self) -> None:
        positive("model.dim", self.dim)
        positive("model.layers", self.layers)
        positive("model.heads", self.heads)
        require(self.dim % self.heads == 0, "model.dim", f"a multiple of model.heads ({self.heads})", self.dim)
        in_range("model.dropout", self.dropout, 0.0, 0.9)
        positive("model.max_frames", self.max_frames)


def causal_mask(length: int, device: torch.device) -> torch.Tensor:
    return torch.triu(torch.full((length, length), float("-inf"), device=device), diagonal=1)


def chord_vocabulary_mask(device: torch.device) -> torch.Tensor:
    """True for the tokens a chord frame may take: SILENCE and the chord tokens."""
    mask = torch.zeros(VOCAB_SIZE, dtype=torch.bool, device=device)
    mask[SILENCE] = True
    mask[CHORD_ON:] = True
    return mask


def chord_logits(logits: torch.Tensor) -> torch.Tensor:
    """Logits with every non-chord token set to -inf."""
    return logits.masked_fill(~chord_vocabulary_mask(logits.device), float("-inf"))


class OnlineChordModel(nn.Module):
    def __init__(self, cfg: ChordModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(VOCAB_SIZE, cfg.dim)
        self.position = nn.Embedding(2 * cfg.max_frames + 1, cfg.dim)
        layer = nn.TransformerEncoderLayer(cfg.dim, cfg.heads, 4 * cfg.dim, cfg.dropout, batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.dim)
        self.out = nn.Linear(cfg.dim, VOCAB_SIZE)

    def forward(self, chords: torch.Tensor, melody: torch.Tensor) -> torch.Tensor:
        """chords, melody: (batch, frames) tokens -> (batch, frames, vocab) logits for each frame's chord."""
        batch, frames = chords.shape
        sequence = torch.stack([chords, melody], dim=2).reshape(batch, 2 * frames)
        inputs = torch.cat([torch.full((batch, 1), BOS, device=chords.device, dtype=chords.dtype), sequence[:, :-1]], 1)
        positions = torch.arange(inputs.shape[1], device=chords.device)
        hidden = self.embed(inputs) + self.position(positions)
        hidden = self.transformer(hidden, mask=causal_mask(inputs.shape[1], chords.device), is_causal=True)
        return self.out(self.norm(hidden[:, 0::2]))  # inputs at even positions end in m_{t-1}: they predict c_t


class OfflineChordModel(nn.Module):
    def __init__(self, cfg: ChordModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(VOCAB_SIZE, cfg.dim)
        self.position = nn.Embedding(cfg.max_frames + 1, cfg.dim)
        encoder_layer = nn.TransformerEncoderLayer(cfg.dim, cfg.heads, 4 * cfg.dim, cfg.dropout, batch_first=True, norm_first=True)
        decoder_layer = nn.TransformerDecoderLayer(cfg.dim, cfg.heads, 4 * cfg.dim, cfg.dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(encoder_layer, cfg.layers, norm=nn.LayerNorm(cfg.dim), enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(decoder_layer, cfg.layers)
        self.norm = nn.LayerNorm(cfg.dim)
        self.out = nn.Linear(cfg.dim, VOCAB_SIZE)

    def forward(self, chords: torch.Tensor, melody: torch.Tensor) -> torch.Tensor:
        batch, frames = chords.shape
        positions = torch.arange(frames, device=chords.device)
        memory_in = self.embed(melody) + self.position(positions)
        shifted = torch.cat([torch.full((batch, 1), BOS, device=chords.device, dtype=chords.dtype), chords[:, :-1]], 1)
        target_in = self.embed(shifted) + self.position(positions)
        memory = self.encoder(memory_in)  # no mask: every frame of the melody sees every other
        hidden = self.decoder(target_in, memory, tgt_mask=causal_mask(frames, chords.device), tgt_is_causal=True)
        return self.out(self.norm(hidden))


@torch.no_grad()
def generate(model: nn.Module, melody: torch.Tensor, temperature: float = 0.0, seed: int = 0,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Chords for each frame of `melody` (batch, frames), one frame at a time: frame t's chord is chosen
    from the chords before it (and, for the online model, the melody before it). temperature 0 is greedy;
    sampling draws from `generator`, or from one seeded with `seed`."""
    if generator is None:
        generator = torch.Generator(device=melody.device).manual_seed(seed)
    chords = torch.full_like(melody, PAD)
    for frame in range(melody.shape[1]):
        logits = chord_logits(model(chords, melody)[:, frame])
        if temperature > 0:
            choice = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator).squeeze(1)
        else:
            choice = logits.argmax(-1)
        chords[:, frame] = choice
    return chords


MODELS = {"online": OnlineChordModel, "teacher": OfflineChordModel}
