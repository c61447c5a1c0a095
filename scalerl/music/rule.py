"""An online accompaniment rule with no learning, as a yardstick for the online models.

On every beat it plays the major or minor triad holding the most of the melody's recent pitch classes, each
heard frame weighted by `decay` per frame since; between beats the chord holds, and before the first note it
is silent. It hears only the melody before the current frame, as the online model does, so it measures what
following the melody alone is worth on a dataset: a trained online model below it is not using the melody.
It plugs into `generate` like a model (`decoding(melody)` with `logits` and `push`), so `scalerl chords eval
--rule` puts it in the same table.
"""

from __future__ import annotations

import numpy as np
import torch

from scalerl.music.metrics import chord_value, melody_pitch
from scalerl.music.vocab import (
    CHORD_HOLD,
    CHORD_ON,
    FRAMES_PER_BEAT,
    SILENCE,
    VOCAB_SIZE,
    chord_id,
    chord_pitch_classes,
)

TRIADS = [chord_id(root, quality) for root in range(12) for quality in ("maj", "min")]
TRIAD_TONES = np.array([[pc in chord_pitch_classes(chord) for pc in range(12)] for chord in TRIADS], dtype=float)


class RecentNotesRule:
    """The rule as a stand-in for a chord model (see the module docstring)."""

    def __init__(self, decay: float = 0.9) -> None:
        self.decay = decay

    def decoding(self, melody: torch.Tensor) -> RecentNotesDecoding:
        return RecentNotesDecoding(melody.shape[0], self.decay, melody.device)


class RecentNotesDecoding:
    def __init__(self, batch: int, decay: float, device: torch.device) -> None:
        self.decay, self.device, self.frame = decay, device, 0
        self.heard = np.zeros((batch, 12))
        self.current: list[int | None] = [None] * batch
        self.logits = self.choose()

    def choose(self) -> torch.Tensor:
        """One-hot logits (0 for the chosen token, -inf elsewhere) for the coming frame."""
        tokens = []
        best = (self.heard @ TRIAD_TONES.T).argmax(1)
        for row, chord in enumerate(self.current):
            if self.frame % FRAMES_PER_BEAT == 0 and self.heard[row].any():
                new = TRIADS[best[row]]
                tokens.append(CHORD_HOLD + new if new == chord else CHORD_ON + new)
            else:
                tokens.append(SILENCE if chord is None else CHORD_HOLD + chord)
        logits = torch.full((len(tokens), VOCAB_SIZE), float("-inf"), device=self.device)
        logits[torch.arange(len(tokens)), torch.tensor(tokens)] = 0.0
        return logits

    def push(self, chord: torch.Tensor, note: torch.Tensor) -> None:
        self.heard *= self.decay
        for row, (chord_token, note_token) in enumerate(zip(chord.tolist(), note.tolist())):
            self.current[row] = chord_value(chord_token)
            if (pitch := melody_pitch(note_token)) is not None:
                self.heard[row, pitch % 12] += 1.0
        self.frame += 1
        self.logits = self.choose()
