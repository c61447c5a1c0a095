"""Accompany a melody file (MIDI, MusicXML or ABC) with an online chord model and write MIDI.

The melody is read with music21 (its first part with notes), put on the 16th-note grid, and the model
chooses each frame's chord from the past only, as it would live: the melody goes through the jam page's own
session, whose context is refreshed from the last half of the song when it fills. The output keeps the
tune's tempo, meter and key marks, and
a pickup stays a pickup: the first bar is completed with a rest, so the bar lines fall where they did.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from scalerl.checks import ConfigError, first_line
from scalerl.music.data import (
    Song,
    frames_to_events,
    melody_of,
    music21,
    parse_score,
    song_tokens,
)
from scalerl.music.jam import JamSession
from scalerl.music.pretrain import load_chord_model
from scalerl.music.vocab import (
    CHORD_HOLD,
    CHORD_ON,
    FRAMES_PER_BEAT,
    NUM_CHORDS,
    chord_voicing,
    tokens_part,
)
from scalerl.progress import progress

MAX_FRAMES = 20_000
"""The longest melody accompanied: about 42 minutes at 120 bpm (a stray note at beat 200,000 would
otherwise mean hours of generation and a huge file)."""


def too_long(path: Path, beats: float) -> ConfigError:
    return ConfigError(f"{path.name} lasts {beats:,.0f} beats; accompany takes melodies of up to "
                       f"{MAX_FRAMES // FRAMES_PER_BEAT:,} beats (is there a stray note far after the end?)")


def midi_beats(path: Path) -> float:
    """A MIDI file's length in beats, from its event times alone: music21's full parse of a file with a
    note at beat 200,000 fills the gap with measures of rests, for hours."""
    midi = music21().midi
    file = midi.MidiFile()
    try:
        file.open(str(path))
        file.read()
    except Exception as error:  # the MIDI reader raises several types for a damaged file; all mean "cannot read"
        raise ConfigError(f"cannot parse {path.name}: {first_line(error)}") from None
    finally:
        file.close()
    ticks = max((sum(e.time for e in track.events if isinstance(e, midi.DeltaTime)) for track in file.tracks),
                default=0)
    return ticks / max(file.ticksPerQuarterNote or 1, 1)


def abc_beats(path: Path) -> float:
    """An ABC file's length in beats from its tokens alone (under a second for any size): music21's full
    parse of a 160,000-beat tune takes longer than five minutes before the length could be refused. Voices
    sound together, so the notes' total length is shared among them."""
    abc = music21().abcFormat
    handler = abc.ABCHandler()
    try:
        handler.process(path.read_text(errors="replace"))
    except Exception as error:  # the ABC reader raises several types for a malformed file
        raise ConfigError(f"cannot parse {path.name}: {first_line(error)}") from None
    total = sum(float(token.quarterLength or 0) for token in handler.tokens if isinstance(token, abc.ABCNote))
    voices = {token.data.split()[0] for token in handler.tokens
              if isinstance(token, abc.ABCMetadata) and token.tag == "V" and token.data.split()}
    return total / max(1, len(voices))


@dataclass(frozen=True)
class Marks:
    """How a melody file says it is played: its tempo, meter and key marks (music21 objects of the parsed
    score, each with its offset in quarter notes; copied where they are written), and the rest that
    completes a pickup bar (0 without a pickup)."""

    marks: tuple[tuple[float, Any], ...] = ()
    pickup_rest: float = 0.0


def read_marks(score) -> Marks:
    m21 = music21()
    kinds = (m21.tempo.MetronomeMark, m21.meter.TimeSignature, m21.key.KeySignature)
    seen, marks = set(), []
    for element in score.flatten().getElementsByClass(kinds):
        key = (type(element).__name__, float(element.offset), str(element))
        if key not in seen:  # every part repeats the meter and the key
            seen.add(key)
            marks.append((float(element.offset), element))
    first_bar = next(iter(score.recurse().getElementsByClass(m21.stream.Measure)), None)
    return Marks(tuple(marks), float(first_bar.paddingLeft) if first_bar is not None else 0.0)


def read_melody(path: Path) -> tuple[Song, Marks]:
    if not path.is_file():
        raise ConfigError(f"{path} does not exist")
    measure = {".mid": midi_beats, ".midi": midi_beats, ".abc": abc_beats}.get(path.suffix.lower())
    if measure is not None and (beats := measure(path)) * FRAMES_PER_BEAT > MAX_FRAMES:
        raise too_long(path, beats)
    score = parse_score(path)
    notes = melody_of(score)
    frames = max(n.end for n in notes)
    frames += -frames % FRAMES_PER_BEAT
    if frames > MAX_FRAMES:
        raise too_long(path, frames / FRAMES_PER_BEAT)
    return Song(path.stem, frames, notes, ()), read_marks(score)


def check_output(path: Path) -> None:
    """Refuse an output path that cannot be written before generating anything."""
    if str(path) in ("", "."):
        raise ConfigError("-o must name the MIDI file to write")
    if path.is_dir():
        raise ConfigError(f"-o {path} is a folder; name the MIDI file to write, e.g. {path / 'accompanied.mid'}")
    folder = next((p for p in path.parents if p.exists()), Path("."))
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise ConfigError(f"-o {path}: cannot write under {folder}")


def accompany_song(model: torch.nn.Module, song: Song, temperature: float, seed: int) -> Song:
    """The melody played to the model frame by frame, as the jam page plays it (the same session: no chord
    before the first note, the chord held through a beat of silence, the context refreshed from the last half
    of the song when it fills, never restarted cold), so a seed gives the page's chords."""
    _, melody = song_tokens(song)
    session = JamSession(model, temperature, seed)
    for note in progress(melody, total=len(melody), desc="accompany", unit="frame"):
        session.hear(note)
    chords = session.chords[:len(melody)]  # chords[t] was chosen before frame t was heard
    events = frames_to_events(tokens_part(chords, CHORD_ON, CHORD_HOLD, NUM_CHORDS))
    return Song(song.name, song.frames, song.notes, events)


def write_midi(song: Song, path: Path, marks: Marks = Marks()) -> None:
    """Melody and chords as two MIDI tracks; chords voiced in close position from the root in octave 3.
    The tune's marks go in both (tempo in the melody's only), everything after a pickup's rest."""
    m21 = music21()
    shift = marks.pickup_rest
    score = m21.stream.Score()
    for events, chordal in ((song.notes, False), (song.chords, True)):
        part = m21.stream.Part()
        for offset, mark in marks.marks:
            if not (chordal and isinstance(mark, m21.tempo.MetronomeMark)):
                part.insert(offset + shift if offset > 0 else 0.0, copy.deepcopy(mark))
        cursor = 0.0
        for event in events:
            start = event.start / FRAMES_PER_BEAT + shift
            if start > cursor:
                part.insert(cursor, m21.note.Rest(quarterLength=start - cursor))
            length = (event.end - event.start) / FRAMES_PER_BEAT
            if chordal:
                element = m21.chord.Chord(chord_voicing(event.value), quarterLength=length)
            else:
                element = m21.note.Note(event.value, quarterLength=length)
            part.insert(start, element)
            cursor = start + length
        score.insert(0, part)
    path.parent.mkdir(parents=True, exist_ok=True)
    score.write("midi", fp=str(path))


def accompany(run_dir: str | Path | None, melody_path: str | Path, out: str | Path, temperature: float = 1.0,
              seed: int = 0) -> Song:
    """Chords for the melody file by the online model in run_dir (None: the model that ships), written to `out`
    as MIDI with the melody's tempo, meter, key and pickup."""
    check_output(Path(out))
    cfg, model = load_chord_model(run_dir)
    if cfg.model != "online":
        raise ConfigError(f"{run_dir} holds a {cfg.model} model; accompaniment in real time needs an online one")
    melody, marks = read_melody(Path(melody_path))
    song = accompany_song(model, melody, temperature, seed)
    write_midi(song, Path(out), marks)
    return song


