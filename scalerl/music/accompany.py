"""Accompany a melody file (MIDI, MusicXML or ABC) with an online chord model and write MIDI.

The melody is read with music21 (its first part with notes), put on the 16th-note grid, and the model
chooses each frame's chord from the past only, as it would live. Melodies longer than the model's
`max_frames` are accompanied window by window.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from scalerl.checks import ConfigError
from scalerl.music.data import (
    Song,
    frames_to_events,
    melody_of,
    music21,
    parse_score,
    song_tokens,
)
from scalerl.music.models import generate
from scalerl.music.pretrain import load_chord_model
from scalerl.music.vocab import (
    CHORD_HOLD,
    CHORD_ON,
    FRAMES_PER_BEAT,
    NUM_CHORDS,
    chord_voicing,
    tokens_part,
)

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
        raise ConfigError(f"cannot parse {path.name}: {str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
    finally:
        file.close()
    ticks = max((sum(e.time for e in track.events if isinstance(e, midi.DeltaTime)) for track in file.tracks), default=0)
    return ticks / max(file.ticksPerQuarterNote or 1, 1)


def read_melody(path: Path) -> Song:
    if not path.is_file():
        raise ConfigError(f"{path} does not exist")
    if path.suffix.lower() in (".mid", ".midi") and (beats := midi_beats(path)) * FRAMES_PER_BEAT > MAX_FRAMES:
        raise too_long(path, beats)
    notes = melody_of(parse_score(path))
    frames = max(n.end for n in notes)
    frames += -frames % FRAMES_PER_BEAT
    if frames > MAX_FRAMES:
        raise too_long(path, frames / FRAMES_PER_BEAT)
    return Song(path.stem, frames, notes, ())


def check_output(path: Path) -> None:
    """Refuse an output path that cannot be written before generating anything."""
    if str(path) in ("", "."):
        raise ConfigError("-o must name the MIDI file to write")
    if path.is_dir():
        raise ConfigError(f"-o {path} is a folder; name the MIDI file to write, e.g. {path / 'accompanied.mid'}")
    folder = next((p for p in path.parents if p.exists()), Path("."))
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise ConfigError(f"-o {path}: cannot write under {folder}")


def accompany_song(model: torch.nn.Module, song: Song, window: int, temperature: float, seed: int) -> Song:
    _, melody = song_tokens(song)
    chords: list[int] = []
    for start in range(0, len(melody), window):
        chunk = torch.tensor([melody[start:start + window]])
        chords += generate(model, chunk, temperature, seed=seed + start)[0].tolist()
    events = frames_to_events(tokens_part(chords, CHORD_ON, CHORD_HOLD, NUM_CHORDS))
    return Song(song.name, song.frames, song.notes, events)


def write_midi(song: Song, path: Path) -> None:
    """Melody and chords as two MIDI tracks; chords voiced in close position from the root in octave 3."""
    m21 = music21()
    score = m21.stream.Score()
    for events, chordal in ((song.notes, False), (song.chords, True)):
        part = m21.stream.Part()
        cursor = 0
        for event in events:
            if event.start > cursor:
                part.insert(cursor / FRAMES_PER_BEAT, m21.note.Rest(quarterLength=(event.start - cursor) / FRAMES_PER_BEAT))
            length = (event.end - event.start) / FRAMES_PER_BEAT
            if chordal:
                element = m21.chord.Chord(chord_voicing(event.value), quarterLength=length)
            else:
                element = m21.note.Note(event.value, quarterLength=length)
            part.insert(event.start / FRAMES_PER_BEAT, element)
            cursor = event.end
        score.insert(0, part)
    path.parent.mkdir(parents=True, exist_ok=True)
    score.write("midi", fp=str(path))


def accompany(run_dir: str | Path, melody_path: str | Path, out: str | Path, temperature: float = 1.0, seed: int = 0) -> Song:
    check_output(Path(out))
    cfg, model = load_chord_model(run_dir)
    if cfg.model != "online":
        raise ConfigError(f"{run_dir} holds a {cfg.model} model; accompaniment in real time needs an online one")
    song = accompany_song(model, read_melody(Path(melody_path)), cfg.net.max_frames, temperature, seed)
    write_midi(song, Path(out))
    return song


