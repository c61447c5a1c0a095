"""The two chord models of ReaLchords.

- OnlineChordModel: a causal Transformer over the interleaved sequence [BOS, c1, m1, c2, m2, ...]. The
  chord of frame t is predicted from the position of m_{t-1}, so it depends only on chords and melody
  before frame t: the model must commit to a chord before it hears that frame's melody.
- OfflineChordModel (the teacher): a bidirectional encoder reads the whole melody, and a causal decoder
  predicts c_t from c_<t and, through cross-attention, every melody frame, future ones included.

Both return logits over the whole vocabulary for the chord of every frame, shape (batch, frames, vocab);
`chord_logits` restricts them to the chord part of the vocabulary (SILENCE and chord tokens).

Generation goes a frame at a time through `model.decoding(melody)`, which caches each layer's attention
keys and values: a frame costs one pass over the new tokens instead of a pass over the whole sequence, so
T frames cost O(T) rather than O(T^2) (a batch of 16 64-frame accompaniments: 4.8 s -> 0.38 s on one CPU
thread). It reuses the trained layers' weights, so it needs no separate checkpoint and gives the same logits
as `forward` in eval mode (a test checks this).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from scalerl.checks import in_range, positive, require
from scalerl.music.vocab import BOS, CHORD_HOLD, CHORD_ON, FRAMES_PER_BEAT, NUM_CHORDS, PAD, SILENCE, VOCAB_SIZE


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
    grammar: Literal["free", "holds", "beats"] = "free"
    """Which accompaniments decoding may produce. free (the paper's): any chord token in any frame, so a
    hold may name a chord other than the one sounding, a change with no onset, which the reward models read
    as one long chord and a fit-rewarded policy learns to exploit. holds: a hold only continues the chord
    sounding. beats: as holds, and the chord changes (or falls silent) only on beats, every FRAMES_PER_BEAT
    frames from the first, as the data's chords do. holds and beats are not in the paper."""

    def __post_init__(self) -> None:
        positive("model.dim", self.dim)
        positive("model.layers", self.layers)
        positive("model.heads", self.heads)
        require(self.dim % self.heads == 0, "model.dim", f"a multiple of model.heads ({self.heads})", self.dim)
        in_range("model.dropout", self.dropout, 0.0, 0.9)
        positive("model.max_frames", self.max_frames)
        require(self.grammar in ("free", "holds", "beats"), "model.grammar", "free, holds or beats", self.grammar)


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


def legal_chord_mask(previous: torch.Tensor, on_beat: torch.Tensor | None = None) -> torch.Tensor:
    """(..., vocab), True for the tokens that may follow the chord tokens `previous` (...) in a well-formed
    accompaniment: silence, any onset, and the hold of the chord sounding (no hold after silence or PAD).
    Where `on_beat` (broadcast to `previous`) is False, only what continues the frame before: that hold,
    or silence after silence."""
    onset = (previous >= CHORD_ON) & (previous < CHORD_HOLD)
    sounding = onset | (previous >= CHORD_HOLD)
    continuation = torch.where(onset, previous + NUM_CHORDS, torch.where(sounding, previous, SILENCE))
    continues = F.one_hot(continuation, VOCAB_SIZE).bool()
    changes = chord_vocabulary_mask(previous.device).clone()
    changes[CHORD_HOLD:] = False
    legal = changes | continues
    return legal if on_beat is None else torch.where(on_beat.unsqueeze(-1), legal, continues)


def grammar_mask(grammar: str, previous: torch.Tensor, frames: torch.Tensor) -> torch.Tensor | None:
    """The tokens ChordModelConfig.grammar allows after the chords `previous` at frame indices `frames`
    (broadcast together); None for the free grammar."""
    if grammar == "free":
        return None
    return legal_chord_mask(previous, frames % FRAMES_PER_BEAT == 0 if grammar == "beats" else None)


def previous_chords(chords: torch.Tensor) -> torch.Tensor:
    """Each frame's preceding chord token, PAD before the first: (batch, frames)."""
    return torch.cat([torch.full_like(chords[:, :1], PAD), chords[:, :-1]], 1)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    batch, length, dim = x.shape
    return x.view(batch, length, heads, dim // heads).transpose(1, 2)


def _project(attention: nn.MultiheadAttention, x: torch.Tensor, part: int) -> torch.Tensor:
    """The query (0), key (1) or value (2) projection of a packed nn.MultiheadAttention, split into heads."""
    dim = attention.embed_dim
    rows = slice(part * dim, (part + 1) * dim)
    return _split_heads(F.linear(x, attention.in_proj_weight[rows], attention.in_proj_bias[rows]), attention.num_heads)


def _attend(attention: nn.MultiheadAttention, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
            mask: torch.Tensor | None = None) -> torch.Tensor:
    out = F.scaled_dot_product_attention(_project(attention, x, 0), keys, values, attn_mask=mask)
    return attention.out_proj(out.transpose(1, 2).reshape(x.shape))


def _feed_forward(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return layer.linear2(layer.activation(layer.linear1(x)))


class _SelfAttentionCache:
    """Keys and values of every token fed so far, per layer."""

    def __init__(self, layers: int) -> None:
        self.keys: list[torch.Tensor | None] = [None] * layers
        self.values: list[torch.Tensor | None] = [None] * layers

    def extend(self, index: int, attention: nn.MultiheadAttention,
               x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = _project(attention, x, 1), _project(attention, x, 2)
        if self.keys[index] is not None:
            keys = torch.cat([self.keys[index], keys], 2)
            values = torch.cat([self.values[index], values], 2)
        self.keys[index], self.values[index] = keys, values
        return keys, values


class _CachedDecoding:
    """One token at a time through a model's layers, with a self-attention cache: the shared part of the
    two decodings below, which differ only in their layers' blocks."""

    def __init__(self, model: nn.Module, layers: nn.ModuleList) -> None:
        self.model, self.layers, self.length = model, layers, 0
        self.cache = _SelfAttentionCache(len(layers))

    def _block(self, index: int, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _self_attention(self, index: int, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        h = layer.norm1(x)
        keys, values = self.cache.extend(index, layer.self_attn, h)
        new, total = x.shape[1], keys.shape[2]
        # Several new tokens at once: each sees the cache and the new tokens up to itself.
        mask = None if new == 1 else torch.ones(new, total, dtype=torch.bool, device=x.device).tril(total - new)
        return x + _attend(layer.self_attn, h, keys, values, mask)

    def _feed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed (batch,) tokens, or (batch, steps) of them in one pass, after those fed so far; returns the
        logits after the last one."""
        tokens = tokens.unsqueeze(1) if tokens.dim() == 1 else tokens
        steps = tokens.shape[1]
        x = self.model.embed(tokens) + self.model.position.weight[self.length:self.length + steps]
        for index, layer in enumerate(self.layers):
            x = self._block(index, layer, x)
        self.length += steps
        return self.model.out(self.model.norm(x[:, -1]))


class OnlineDecoding(_CachedDecoding):
    """The online model run forward one token at a time. `logits` (batch, vocab) is the distribution of the
    current frame's chord; `push(chord, note)` plays that chord, hears the frame's melody note, and moves
    `logits` to the next frame. The melody arrives only through push, as it would from a live player."""

    def __init__(self, model: OnlineChordModel, batch: int, device: torch.device) -> None:
        super().__init__(model, model.transformer.layers)
        self.logits = self._feed(torch.full((batch,), BOS, dtype=torch.long, device=device))

    @property
    def frames_left(self) -> int:
        """Frames that still fit in the position table."""
        return (self.model.position.num_embeddings - self.length) // 2

    def _block(self, index: int, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        x = self._self_attention(index, layer, x)
        return x + _feed_forward(layer, layer.norm2(x))

    @torch.no_grad()
    def push(self, chord: torch.Tensor, note: torch.Tensor) -> None:
        if self.frames_left < 1:
            raise ValueError(f"the model's context holds {self.model.cfg.max_frames} frames; start a new decoding")
        self._feed(chord)
        self.logits = self._feed(note)

    @torch.no_grad()
    def prefill(self, chords: torch.Tensor, notes: torch.Tensor) -> None:
        """`push` of every frame of (batch, frames) chords and notes, in one pass over their tokens: how a
        live session refills a fresh context without a stall of one pass per token."""
        if chords.shape[1] > self.frames_left:
            raise ValueError(f"the model's context holds {self.model.cfg.max_frames} frames; prefill fewer")
        if chords.shape[1]:
            self.logits = self._feed(torch.stack([chords, notes], dim=2).flatten(1))


class TeacherDecoding(_CachedDecoding):
    """The teacher run one chord at a time over a melody it has encoded whole: the same interface as
    OnlineDecoding, with `push`'s note ignored because the teacher already heard it."""

    def __init__(self, model: OfflineChordModel, melody: torch.Tensor) -> None:
        super().__init__(model, model.decoder.layers)
        positions = torch.arange(melody.shape[1], device=melody.device)
        memory = model.encoder(model.embed(melody) + model.position(positions))
        self.memory = [(_project(layer.multihead_attn, memory, 1), _project(layer.multihead_attn, memory, 2))
                       for layer in self.layers]
        self.logits = self._feed(torch.full((melody.shape[0],), BOS, dtype=torch.long, device=melody.device))

    def _block(self, index: int, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        x = self._self_attention(index, layer, x)
        x = x + _attend(layer.multihead_attn, layer.norm2(x), *self.memory[index])
        return x + _feed_forward(layer, layer.norm3(x))

    @torch.no_grad()
    def push(self, chord: torch.Tensor, note: torch.Tensor) -> None:
        self.logits = self._feed(chord)


class OnlineChordModel(nn.Module):
    def __init__(self, cfg: ChordModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(VOCAB_SIZE, cfg.dim)
        self.position = nn.Embedding(2 * cfg.max_frames + 1, cfg.dim)
        layer = nn.TransformerEncoderLayer(cfg.dim, cfg.heads, 4 * cfg.dim, cfg.dropout, batch_first=True,
                                           norm_first=True)
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

    @torch.no_grad()
    def decoding(self, melody: torch.Tensor) -> OnlineDecoding:
        """Frame-by-frame generation; only the melody's batch size is read now, its notes come through push."""
        return OnlineDecoding(self, melody.shape[0], melody.device)


class OfflineChordModel(nn.Module):
    def __init__(self, cfg: ChordModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(VOCAB_SIZE, cfg.dim)
        self.position = nn.Embedding(cfg.max_frames + 1, cfg.dim)
        encoder_layer = nn.TransformerEncoderLayer(cfg.dim, cfg.heads, 4 * cfg.dim, cfg.dropout, batch_first=True,
                                                   norm_first=True)
        decoder_layer = nn.TransformerDecoderLayer(cfg.dim, cfg.heads, 4 * cfg.dim, cfg.dropout, batch_first=True,
                                                   norm_first=True)
        self.encoder = nn.TransformerEncoder(encoder_layer, cfg.layers, norm=nn.LayerNorm(cfg.dim),
                                             enable_nested_tensor=False)
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
    def decoding(self, melody: torch.Tensor) -> TeacherDecoding:
        return TeacherDecoding(self, melody)


@torch.no_grad()
def generate(model: nn.Module, melody: torch.Tensor, temperature: float = 0.0, seed: int = 0,
             generator: torch.Generator | None = None, primer: torch.Tensor | None = None) -> torch.Tensor:
    """Chords for each frame of `melody` (batch, frames), one frame at a time: frame t's chord is chosen
    from the chords before it (and, for the online model, the melody before it). temperature 0 is greedy;
    sampling draws from `generator`, or from one seeded with `seed`. Dropout is never applied. A `primer`
    (batch, k) of chords is played as given for the first k frames, as when the model joins mid-song."""
    if generator is None:
        generator = torch.Generator(device=melody.device).manual_seed(seed)
    chords = torch.full_like(melody, PAD)
    decoding = model.decoding(melody)
    grammar = getattr(model, "cfg", ChordModelConfig()).grammar  # the recent-notes rule has no config
    for frame in range(melody.shape[1]):
        if primer is not None and frame < primer.shape[1]:
            chords[:, frame] = primer[:, frame]
        else:
            previous = chords[:, frame - 1] if frame else torch.full_like(chords[:, 0], PAD)
            legal = grammar_mask(grammar, previous, torch.tensor(frame))
            chords[:, frame] = choose_chord(decoding.logits, temperature, generator, legal)
        decoding.push(chords[:, frame], melody[:, frame])
    return chords


def choose_chord(logits: torch.Tensor, temperature: float, generator: torch.Generator,
                 legal: torch.Tensor | None = None) -> torch.Tensor:
    """A chord token per row of (batch, vocab) logits: greedy at temperature 0, else sampled; only among
    the `legal` tokens (batch, vocab) when given (grammar_mask)."""
    logits = chord_logits(logits)
    if legal is not None:
        logits = logits.masked_fill(~legal, float("-inf"))
    if temperature > 0:
        return torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator).squeeze(1)
    return logits.argmax(-1)


MODELS = {"online": OnlineChordModel, "teacher": OfflineChordModel}
