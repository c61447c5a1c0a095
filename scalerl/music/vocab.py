"""Tokens for melody and chord frames, and the interleaved online sequence.

Time is a grid of frames, 4 per beat (16th notes). Each frame of a part is one token: SILENCE, an
onset token (a note or chord starts on this frame) or a hold token (it continues). Chords are a root
pitch class and one of the QUALITIES. The online model reads [BOS, c1, m1, c2, m2, ..., EOS]: the chord
of frame t comes before the melody of frame t, so it is chosen before that melody is heard.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

FRAMES_PER_BEAT = 4

QUALITIES: dict[str, tuple[int, ...]] = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6), "aug": (0, 4, 8), "sus2": (0, 2, 7), "sus4": (0, 5, 7),
    "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10), "hdim7": (0, 3, 6, 10), "dim7": (0, 3, 6, 9),
}
"""Chord qualities as intervals above the root; the order breaks ties when labelling (triads first)."""
PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
NUM_PITCHES = 128
NUM_CHORDS = 12 * len(QUALITIES)

PAD, BOS, EOS, SILENCE = 0, 1, 2, 3
NOTE_ON = 4
NOTE_HOLD = NOTE_ON + NUM_PITCHES
CHORD_ON = NOTE_HOLD + NUM_PITCHES
CHORD_HOLD = CHORD_ON + NUM_CHORDS
VOCAB_SIZE = CHORD_HOLD + NUM_CHORDS


def chord_id(root: int, quality: str) -> int:
    return (root % 12) * len(QUALITIES) + list(QUALITIES).index(quality)


def chord_root_quality(chord: int) -> tuple[int, str]:
    return chord // len(QUALITIES), list(QUALITIES)[chord % len(QUALITIES)]


def chord_pitch_classes(chord: int) -> frozenset[int]:
    root, quality = chord_root_quality(chord)
    return frozenset((root + interval) % 12 for interval in QUALITIES[quality])


def chord_name(chord: int) -> str:
    root, quality = chord_root_quality(chord)
    return PITCH_NAMES[root] + ("" if quality == "maj" else quality)


SYMBOLS = {"maj": "", "min": "m", "dim": "dim", "aug": "aug", "sus2": "sus2", "sus4": "sus4", "7": "7", "maj7": "maj7",
           "min7": "m7", "hdim7": "m7b5", "dim7": "dim7"}
"""Each quality as a lead sheet writes it after the root (Am, Bbm7, Cm7b5)."""
SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLAT_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
MAJOR_PROFILE = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
MINOR_PROFILE = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
"""Krumhansl and Kessler's key profiles: how well each scale degree fits a major or minor key (1982)."""
KEY_SIGNATURES = {0: 0, 7: 1, 2: 2, 9: 3, 4: 4, 11: 5, 6: 6, 5: -1, 10: -2, 3: -3, 8: -4, 1: -5}
"""Sharps (+) or flats (-) of each major key, by its tonic's pitch class."""


def key_signature(pitches: Iterable[int]) -> int:
    """Sharps (+) or flats (-) of the key the notes are in: the Krumhansl-Schmuckler estimate, the major or
    minor key whose profile correlates best with how often each pitch class sounds (a minor key takes its
    relative major's signature; 0 with no notes)."""
    counts = np.bincount([pitch % 12 for pitch in pitches], minlength=12).astype(float)
    if not counts.any() or counts.std() == 0:
        return 0
    best, signature = -2.0, 0
    for tonic in range(12):
        for profile, relative_major in ((MAJOR_PROFILE, tonic), (MINOR_PROFILE, (tonic + 3) % 12)):
            fit = float(np.corrcoef(counts, np.roll(profile, tonic))[0, 1])
            if fit > best + 1e-12:
                best, signature = fit, KEY_SIGNATURES[relative_major]
    return signature


def chord_symbol(chord: int, accidentals: int = 0) -> str:
    """The chord as a lead sheet names it, its root spelled in a key of `accidentals` sharps (+) or flats (-):
    Bbm7 under a melody in flats, A#m7 under one in sharps."""
    root, quality = chord_root_quality(chord)
    names = FLAT_NAMES if accidentals < 0 else SHARP_NAMES if accidentals > 0 else PITCH_NAMES
    return names[root] + SYMBOLS[quality]


def chord_voicing(chord: int) -> list[int]:
    """MIDI pitches of the chord in close position from its root in octave 3 (C3 = 48)."""
    root, quality = chord_root_quality(chord)
    return [48 + root + interval for interval in QUALITIES[quality]]


def label_chord(root: int, pitch_classes: set[int]) -> int:
    """The QUALITY that best explains the pitch classes above `root`: two points per chord tone
    present, minus one per chord tone missing and one per extra pitch class."""
    relative = {(pc - root) % 12 for pc in pitch_classes} | {0}
    best = max(QUALITIES, key=lambda q: 2 * len(relative & set(QUALITIES[q])) - len(set(QUALITIES[q]) - relative)
               - len(relative - set(QUALITIES[q])))
    return chord_id(root, best)


def is_melody(token: int) -> bool:
    return token == SILENCE or NOTE_ON <= token < CHORD_ON


def is_chord(token: int) -> bool:
    return token == SILENCE or CHORD_ON <= token < VOCAB_SIZE


def token_name(token: int) -> str:
    if token in (PAD, BOS, EOS, SILENCE):
        return ("PAD", "BOS", "EOS", "SILENCE")[token]
    if token < NOTE_HOLD:
        return f"NOTE_ON_{token - NOTE_ON}"
    if token < CHORD_ON:
        return f"NOTE_{token - NOTE_HOLD}"
    if token < CHORD_HOLD:
        return f"CHORD_ON_{chord_name(token - CHORD_ON)}"
    return f"CHORD_{chord_name(token - CHORD_HOLD)}"


@dataclass(frozen=True)
class Frames:
    """One part on the frame grid: per frame, the sounding value (pitch or chord id, None for silence)
    and whether it starts on that frame."""

    values: tuple[int | None, ...]
    onsets: tuple[bool, ...]


def part_tokens(frames: Frames, on: int, hold: int) -> list[int]:
    return [SILENCE if value is None else (on if onset else hold) + value
            for value, onset in zip(frames.values, frames.onsets)]


def tokens_part(tokens: list[int], on: int, hold: int, size: int) -> Frames:
    values: list[int | None] = []
    onsets: list[bool] = []
    for token in tokens:
        if token == SILENCE:
            values.append(None)
            onsets.append(False)
        elif on <= token < on + size:
            values.append(token - on)
            onsets.append(True)
        elif hold <= token < hold + size:
            values.append(token - hold)
            onsets.append(False)
        else:
            raise ValueError(f"token {token_name(token)} does not belong to this part")
    return Frames(tuple(values), tuple(onsets))


def as_onset(token: int) -> int:
    """A hold token as the onset of the same note or chord (other tokens unchanged)."""
    if NOTE_HOLD <= token < CHORD_ON:
        return token - NUM_PITCHES
    if CHORD_HOLD <= token < VOCAB_SIZE:
        return token - NUM_CHORDS
    return token


def interleave(chords: list[int], melody: list[int]) -> list[int]:
    """[BOS, c1, m1, ..., cT, mT, EOS]: chord first in each frame."""
    if len(chords) != len(melody):
        raise ValueError(f"chord and melody parts differ in length ({len(chords)} and {len(melody)} frames)")
    sequence = [BOS]
    for chord, note in zip(chords, melody):
        sequence += [chord, note]
    return sequence + [EOS]


def deinterleave(sequence: list[int]) -> tuple[list[int], list[int]]:
    body = sequence[1:-1] if sequence and sequence[0] == BOS and sequence[-1] == EOS else sequence
    return body[0::2], body[1::2]
