"""Melody + chord songs from what ships offline: Bach chorales (music21's corpus), a synthetic
generator of diatonic progressions, and the user's own lead sheets (MusicXML or ABC with chord symbols).

A Song holds its notes and chords as events on the 16th-note frame grid; `song_tokens` turns it into
the two token parts, and `transposed` shifts it for augmentation.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scalerl.checks import ConfigError, first_line, install_hint
from scalerl.music.vocab import (
    CHORD_HOLD,
    CHORD_ON,
    FRAMES_PER_BEAT,
    NOTE_HOLD,
    NOTE_ON,
    NUM_CHORDS,
    NUM_PITCHES,
    Frames,
    chord_id,
    chord_pitch_classes,
    chord_root_quality,
    label_chord,
    part_tokens,
    tokens_part,
)


@dataclass(frozen=True)
class Event:
    """A note (value = MIDI pitch) or chord (value = chord id) sounding over frames [start, end)."""

    start: int
    end: int
    value: int


@dataclass(frozen=True)
class Song:
    name: str
    frames: int
    notes: tuple[Event, ...]
    chords: tuple[Event, ...]
    source: str = ""

    def transposed(self, semitones: int) -> Song:
        notes = tuple(Event(n.start, n.end, n.value + semitones) for n in self.notes)
        chords = []
        for c in self.chords:
            root, quality = chord_root_quality(c.value)
            chords.append(Event(c.start, c.end, chord_id(root + semitones, quality)))
        return Song(f"{self.name} {semitones:+d}", self.frames, notes, tuple(chords), self.source)

    def fits(self) -> bool:
        return all(0 <= n.value < NUM_PITCHES for n in self.notes)

    def to_json(self) -> dict:
        return {"name": self.name, "frames": self.frames, "source": self.source,
                "notes": [[e.start, e.end, e.value] for e in self.notes],
                "chords": [[e.start, e.end, e.value] for e in self.chords]}

    @staticmethod
    def from_json(data: dict) -> Song:
        return Song(data["name"], data["frames"], tuple(Event(*e) for e in data["notes"]),
                    tuple(Event(*e) for e in data["chords"]), data.get("source", ""))


def events_to_frames(events: tuple[Event, ...], frames: int) -> Frames:
    values: list[int | None] = [None] * frames
    onsets = [False] * frames
    for event in events:
        for frame in range(max(event.start, 0), min(event.end, frames)):
            values[frame] = event.value
        if 0 <= event.start < frames:
            onsets[event.start] = True
    return Frames(tuple(values), tuple(onsets))


def frames_to_events(frames: Frames) -> tuple[Event, ...]:
    events: list[Event] = []
    start = None
    for index, (value, onset) in enumerate(zip(frames.values, frames.onsets)):
        if start is not None and (value is None or onset or value != frames.values[start]):
            events.append(Event(start, index, frames.values[start]))
            start = None
        if value is not None and start is None:
            start = index
    if start is not None:
        events.append(Event(start, len(frames.values), frames.values[start]))
    return tuple(events)


def song_tokens(song: Song) -> tuple[list[int], list[int]]:
    """(chord tokens, melody tokens), one per frame."""
    chords = part_tokens(events_to_frames(song.chords, song.frames), CHORD_ON, CHORD_HOLD)
    melody = part_tokens(events_to_frames(song.notes, song.frames), NOTE_ON, NOTE_HOLD)
    return chords, melody


def tokens_song(name: str, chords: list[int], melody: list[int]) -> Song:
    """The inverse of song_tokens."""
    chord_events = frames_to_events(tokens_part(chords, CHORD_ON, CHORD_HOLD, NUM_CHORDS))
    note_events = frames_to_events(tokens_part(melody, NOTE_ON, NOTE_HOLD, NUM_PITCHES))
    return Song(name, len(melody), note_events, chord_events)


# -- Bach chorales and lead sheets (music21) ---------------------------------------------------------


def music21():
    try:
        import music21
    except ImportError:
        raise ConfigError(f"chords data needs music21: {install_hint('music')}") from None
    return music21


def to_frames(quarters: float) -> int:
    return round(quarters * FRAMES_PER_BEAT)


def melody_events(part) -> tuple[Event, ...]:
    """Notes of a part (ties merged; the top pitch of any chord), on the frame grid."""
    notes = []
    for element in part.stripTies().flatten().notes:
        if element.quarterLength <= 0 or not element.pitches:
            continue
        start, end = to_frames(element.offset), to_frames(element.offset + element.quarterLength)
        if end > start:
            notes.append(Event(start, end, max(p.midi for p in element.pitches)))
    notes.sort(key=lambda e: e.start)
    return tuple(Event(n.start, min(n.end, nxt.start), n.value) if nxt.start < n.end else n
                 for n, nxt in zip(notes, notes[1:] + [Event(10**9, 10**9, 0)]))


def merge_repeats(events: list[Event]) -> tuple[Event, ...]:
    merged: list[Event] = []
    for event in events:
        if merged and merged[-1].value == event.value and merged[-1].end == event.start:
            merged[-1] = Event(merged[-1].start, event.end, event.value)
        else:
            merged.append(event)
    return tuple(merged)


def chorale_song(score, name: str) -> Song:
    """Soprano as the melody; per beat, the lower voices sounding at the beat labelled as a chord."""
    m21 = music21()
    parts = list(score.parts)
    if len(parts) < 3:
        raise ConfigError("fewer than three voices")
    lower = m21.stream.Score(parts[1:]).chordify().flatten().notesAndRests.stream()
    length = int(score.highestTime)
    chords = []
    for beat in range(length):
        element = lower.getElementAtOrBefore(beat)
        if element is None or element.isRest or not element.pitches:
            continue
        end = min(beat + 1, element.offset + element.quarterLength)
        if end <= beat:
            continue
        pitch_classes = {p.pitchClass for p in element.pitches}
        chords.append(Event(to_frames(beat), to_frames(beat + 1),
                            label_chord(element.root().pitchClass, pitch_classes)))
    return Song(name, to_frames(length), melody_events(parts[0]), merge_repeats(chords), "bach")


def chorale_count() -> int:
    """How many chorales music21's corpus holds (371 in music21 9), without parsing them."""
    return len(list(music21().corpus.chorales.Iterator(returnType="filename")))


def bach_chorales(limit: int | None = None) -> Iterator[tuple[Song | None, str, str]]:
    """(song, name, problem) for each chorale of music21's corpus; problem is "" when it parsed."""
    m21 = music21()
    for index, score in enumerate(m21.corpus.chorales.Iterator()):
        if limit is not None and index >= limit:
            return
        name = f"bach {score.metadata.title if score.metadata else index}"
        try:
            yield chorale_song(score, name), name, ""
        except (ConfigError, AttributeError, m21.exceptions21.Music21Exception) as error:
            yield None, name, str(error)


def parse_score(path: Path):
    """A music file (MIDI, MusicXML, ABC) as a music21 score; an ABC file with several tunes gives its first."""
    m21 = music21()
    try:
        score = m21.converter.parse(str(path))
    except Exception as error:  # music21 raises many types for malformed input; all mean "cannot parse"
        raise ConfigError(f"cannot parse {path.name}: {first_line(error)}") from None
    return score.scores[0] if hasattr(score, "scores") else score


def melody_of(score) -> tuple[Event, ...]:
    """The notes of the score's first part that has any: the melody."""
    m21 = music21()
    parts = [p for p in getattr(score, "parts", [score]) if p.flatten().notes.getElementsByClass(m21.note.Note)]
    if not parts:
        raise ConfigError("no melody notes")
    return melody_events(parts[0])


def lead_sheet_song(path: Path) -> Song:
    """A MusicXML or ABC file with chord symbols: the first part with notes is the melody, and each
    chord symbol lasts until the next one. Files without chord symbols are refused."""
    m21 = music21()
    score = parse_score(path)
    symbols = sorted(score.flatten().getElementsByClass(m21.harmony.ChordSymbol), key=lambda s: s.offset)
    if not symbols:
        raise ConfigError("no chord symbols")
    notes = melody_of(score)
    length = max(to_frames(score.highestTime), max((n.end for n in notes), default=0))
    chords = []
    for symbol, following in zip(symbols, symbols[1:] + [None]):
        end = to_frames(following.offset) if following is not None else length
        if isinstance(symbol, m21.harmony.NoChord) or not symbol.pitches or symbol.root() is None:
            continue  # "N.C." and empty symbols ("" in ABC) leave their span without a chord
        pitch_classes = {p.pitchClass for p in symbol.pitches}
        if end > to_frames(symbol.offset):
            chords.append(Event(to_frames(symbol.offset), end, label_chord(symbol.root().pitchClass, pitch_classes)))
    if not chords:
        raise ConfigError("no usable chord symbols")
    return Song(path.stem, length, notes, merge_repeats(chords), "leadsheet")


def lead_sheets(paths: list[Path]) -> Iterator[tuple[Song | None, str, str]]:
    """(song, name, problem) for each .xml/.musicxml/.mxl/.abc file under the paths."""
    suffixes = {".xml", ".musicxml", ".mxl", ".abc"}
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.suffix.lower() in suffixes)
        if not root.exists():
            yield None, str(root), "does not exist"
            continue
        for path in files:
            try:
                yield lead_sheet_song(path), str(path), ""
            except ConfigError as error:
                yield None, str(path), str(error)


# -- synthetic songs -----------------------------------------------------------------------------

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
DEGREE_QUALITY = ("maj", "min", "min", "maj", "maj", "min", "dim")
NEXT_DEGREES = {0: (3, 4, 5, 1), 1: (4, 6), 2: (5, 3), 3: (4, 0, 1), 4: (0, 5), 5: (1, 3, 4), 6: (0,)}
"""Common-practice moves between scale degrees (I -> IV, V, vi, ii; ii -> V; V -> I, vi; ...)."""


FRAMES_PER_BAR = 4 * FRAMES_PER_BEAT
"""Synthetic songs are in 4/4."""
SYNTHETIC_FORMS = ("loop", "walk")
"""How a synthetic song's chords go on: `loop` repeats a two-bar progression through the song, as pop
songs and lead sheets do (the online setting the paper's Hooktheory data poses: once the loop has been
heard, the next chord can be known before its melody is); `walk` draws every next chord afresh, so no model
that cannot hear the coming melody can know it."""


@dataclass
class SyntheticSongs:
    """Diatonic progressions in random major keys, one chord per bar or half bar (V sometimes a
    dominant seventh), with melodies of chord tones on the beats and steps between them; the chords either
    loop or walk (SYNTHETIC_FORMS)."""

    bars: int = 8
    seed: int = 0
    form: str = "loop"
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        if self.form not in SYNTHETIC_FORMS:
            raise ConfigError(f"form must be one of {', '.join(SYNTHETIC_FORMS)}, got {self.form!r}")
        self.rng = random.Random(self.seed)

    def song(self, index: int) -> Song:
        key = self.rng.randrange(12)
        total = self.bars * FRAMES_PER_BAR
        walk = self.progression(key, total)
        if self.form == "walk":
            chords = walk
        else:
            period = 2 * FRAMES_PER_BAR
            loop = [Event(event.start, min(event.end, period), event.value) for event in walk if event.start < period]
            chords = [Event(event.start + offset, min(event.end + offset, total), event.value)
                      for offset in range(0, total, period) for event in loop if event.start + offset < total]
        notes = self.melody(key, chords)
        return Song(f"synthetic {index}", total, notes, merge_repeats(chords), "synthetic")

    def progression(self, key: int, total: int) -> list[Event]:
        """A walk through common-practice moves from I, a bar or half a bar a chord, `total` frames long."""
        rng = self.rng
        degree, chords, start = 0, [], 0
        while start < total:
            length = min(FRAMES_PER_BAR if rng.random() < 0.7 else FRAMES_PER_BAR // 2, total - start)
            quality = "7" if degree == 4 and rng.random() < 0.4 else DEGREE_QUALITY[degree]
            chords.append(Event(start, start + length, chord_id(key + MAJOR_SCALE[degree], quality)))
            start += length
            degree = rng.choice(NEXT_DEGREES[degree])
        return chords

    def melody(self, key: int, chords: list[Event]) -> tuple[Event, ...]:
        """A chord tone on every beat, near the previous pitch; a third of the beats split into two
        eighths, the second a scale step away (a passing or neighbour tone on the off-beat)."""
        rng = self.rng
        scale = [p for p in range(55, 86) if (p - key) % 12 in MAJOR_SCALE]
        pitch = rng.choice([p for p in scale if 64 <= p <= 72])
        notes = []
        for chord in chords:
            tones = [p for p in scale[1:-1] if p % 12 in chord_pitch_classes(chord.value)]
            for beat in range(chord.start, chord.end, FRAMES_PER_BEAT):
                pitch = min(tones, key=lambda p: abs(p - pitch) + rng.random() * 4)
                if rng.random() < 0.35:
                    half = FRAMES_PER_BEAT // 2
                    step = scale[scale.index(pitch) + rng.choice((-1, 1))]
                    notes += [Event(beat, beat + half, pitch), Event(beat + half, beat + FRAMES_PER_BEAT, step)]
                else:
                    notes.append(Event(beat, beat + FRAMES_PER_BEAT, pitch))
        return tuple(notes)


def synthetic_songs(count: int, bars: int = 8, seed: int = 0, form: str = "loop") -> list[Song]:
    generator = SyntheticSongs(bars, seed, form)
    return [generator.song(index) for index in range(count)]


def save_songs(songs: list[Song], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(song.to_json()) + "\n" for song in songs))


def load_songs(path: Path) -> list[Song]:
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: make it with scalerl chords data")
    songs = [Song.from_json(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
    if not songs:
        raise ConfigError(f"{path} holds no songs: make the dataset again with scalerl chords data")
    return songs


def transpositions(song: Song, low: int = -6, high: int = 6) -> list[Song]:
    """The song shifted by every semitone in [low, high] that keeps the melody in MIDI range
    (training-time augmentation: each key then sees every chord root)."""
    shifted = [song.transposed(k) if k else song for k in range(low, high + 1)]
    return [s for s in shifted if s.fits()]


def split_songs(songs: list[Song], seed: int = 0, valid: float = 0.1, test: float = 0.1) -> dict[str, list[Song]]:
    """Train/valid/test by song (never by fragment), shuffled with a seed; each split gets at least one."""
    if len(songs) < 3:
        raise ConfigError(f"{len(songs)} songs cannot make train, validation and test splits: give at least 3")
    order = list(songs)
    random.Random(seed).shuffle(order)
    n_valid, n_test = max(1, round(len(order) * valid)), max(1, round(len(order) * test))
    return {"valid": order[:n_valid], "test": order[n_valid:n_valid + n_test], "train": order[n_valid + n_test:]}
