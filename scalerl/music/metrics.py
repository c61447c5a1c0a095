"""Accompaniment metrics over frame tokens (ReaLchords, Section 5).

- note_in_chord: over frames where melody and chord both sound, the fraction whose melody pitch class
  belongs to the chord (harmonic fit).
- onset_interval_histogram / onset_emd: for every chord onset, the distance in frames to the nearest
  melody onset (clipped); the earth mover's distance between two such histograms compares rhythmic fit.
- chord_length_entropy: entropy (nats) of the distribution of chord durations in frames; one_frame_share:
  the share of chords lasting one frame.
- chord_entropy: entropy (nats) of chord usage, a diversity measure.

Lengths and usage count chords as they sound (sounding_chords), not only their onset tokens.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from scalerl.music.data import Event, frames_to_events
from scalerl.music.vocab import (
    CHORD_HOLD,
    CHORD_ON,
    NOTE_HOLD,
    NOTE_ON,
    NUM_CHORDS,
    NUM_PITCHES,
    chord_pitch_classes,
    tokens_part,
)

MAX_INTERVAL = 16
"""Onset intervals are clipped at 16 frames (one 4/4 bar)."""


def melody_pitch(token: int) -> int | None:
    if NOTE_ON <= token < NOTE_ON + NUM_PITCHES:
        return token - NOTE_ON
    if NOTE_HOLD <= token < NOTE_HOLD + NUM_PITCHES:
        return token - NOTE_HOLD
    return None


def chord_value(token: int) -> int | None:
    if CHORD_ON <= token < CHORD_ON + NUM_CHORDS:
        return token - CHORD_ON
    if CHORD_HOLD <= token < CHORD_HOLD + NUM_CHORDS:
        return token - CHORD_HOLD
    return None


def frame_fit(chords: list[int], melody: list[int]) -> list[float]:
    """Per frame: 1 if the melody note is in the chord, 0 if not, NaN where either is silent."""
    fits = []
    for chord_token, note_token in zip(chords, melody):
        pitch, chord = melody_pitch(note_token), chord_value(chord_token)
        fits.append(float("nan") if pitch is None or chord is None else float(pitch % 12 in chord_pitch_classes(chord)))
    return fits


def note_in_chord(chords: list[int], melody: list[int]) -> float:
    """NaN when no frame has both a note and a chord."""
    fits = [fit for fit in frame_fit(chords, melody) if fit == fit]
    return sum(fits) / len(fits) if fits else float("nan")


def onsets(tokens: list[int], on: int, size: int) -> list[int]:
    return [t for t, token in enumerate(tokens) if on <= token < on + size]


def onset_interval_histogram(chords: list[int], melody: list[int]) -> np.ndarray:
    """Counts of |chord onset - nearest melody onset| in frames, 0..MAX_INTERVAL."""
    note_onsets = np.array(onsets(melody, NOTE_ON, NUM_PITCHES))
    histogram = np.zeros(MAX_INTERVAL + 1)
    for onset in (event.start for event in sounding_chords(chords)):
        distance = MAX_INTERVAL if not len(note_onsets) else min(MAX_INTERVAL, int(np.abs(note_onsets - onset).min()))
        histogram[distance] += 1
    return histogram


def onset_emd(first: np.ndarray, second: np.ndarray) -> float:
    """Earth mover's distance between two histograms on the same 1-D bins (normalized to sum 1)."""
    if first.sum() == 0 or second.sum() == 0:
        return float("nan")
    return float(np.abs(np.cumsum(first / first.sum()) - np.cumsum(second / second.sum())).sum())


def entropy(counts: Counter) -> float:
    total = sum(counts.values())
    if not total:
        return float("nan")
    probabilities = np.array(list(counts.values())) / total
    return float(-(probabilities * np.log(probabilities)).sum())


def sounding_chords(chords: list[int]) -> list[Event]:
    """Each chord as it sounds, as a MIDI rendering plays it: a chord starts at its onset token, and also
    wherever a hold token names a chord other than the one sounding (a change without an onset); silence
    ends it. Reading only onset tokens would take such silent changes for one long chord."""
    return list(frames_to_events(tokens_part(chords, CHORD_ON, CHORD_HOLD, NUM_CHORDS)))


def invalid_holds(chords: list[int]) -> int:
    """Hold tokens that do not continue the chord sounding in the frame before: a hold of another chord, or
    of nothing (after silence, or in the first frame). A well-formed accompaniment has none."""
    count, previous = 0, None
    for token in chords:
        if CHORD_HOLD <= token < CHORD_HOLD + NUM_CHORDS and token - CHORD_HOLD != previous:
            count += 1
        previous = chord_value(token)
    return count


def chord_lengths(chords: list[int]) -> list[int]:
    return [event.end - event.start for event in sounding_chords(chords)]


LENGTH_BUCKETS = {"1": (1, 1), "2-3": (2, 3), "4": (4, 4), "5-7": (5, 7), "8": (8, 8), "9-15": (9, 15),
                  "16": (16, 16), "17-32": (17, 32), "33+": (33, np.inf)}
"""Chord durations in frames, grouped: a 16th, less than a beat, a beat, less than half a bar, half a bar,
less than a bar, a bar, up to two bars, longer."""


def chord_length_shares(accompaniments: list[list[int]]) -> dict[str, float]:
    """The share of chords, over all the accompaniments, in each of LENGTH_BUCKETS."""
    lengths = np.array([length for chords in accompaniments for length in chord_lengths(chords)])
    return {label: float(np.mean((lengths >= low) & (lengths <= high))) if len(lengths) else float("nan")
            for label, (low, high) in LENGTH_BUCKETS.items()}


def one_frame_share(accompaniments: list[list[int]]) -> float:
    """The share of chords that last a single frame (a 16th note): chords changed before they could be heard."""
    return chord_length_shares(accompaniments)["1"]


def chord_length_entropy(chords: list[int]) -> float:
    return entropy(Counter(chord_lengths(chords)))


def chord_entropy(chords: list[int]) -> float:
    return entropy(Counter(event.value for event in sounding_chords(chords)))
