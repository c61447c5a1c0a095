"""ReaLchords data: tokens round-trip, chords are labelled as by hand, bad lead sheets are reported."""

import json

import numpy as np
import pytest

from scalerl.checks import ConfigError
from scalerl.cli import main
from scalerl.music.data import (
    Event,
    Song,
    bach_chorales,
    events_to_frames,
    lead_sheets,
    song_tokens,
    split_songs,
    synthetic_songs,
    tokens_song,
    transpositions,
)
from scalerl.music.vocab import (
    BOS,
    CHORD_HOLD,
    CHORD_ON,
    EOS,
    NOTE_HOLD,
    NOTE_ON,
    PAD,
    SILENCE,
    VOCAB_SIZE,
    chord_id,
    chord_name,
    chord_pitch_classes,
    chord_root_quality,
    deinterleave,
    interleave,
    label_chord,
)

pytest.importorskip("music21", reason="pip install 'scalerl[music]'")

SONG = Song("hand", 12, notes=(Event(0, 4, 60), Event(4, 6, 62), Event(8, 12, 62)),
            chords=(Event(0, 8, chord_id(0, "maj")), Event(8, 12, chord_id(7, "7"))))


def test_tokens_of_a_hand_made_song():
    chords, melody = song_tokens(SONG)
    c_major, g7 = chord_id(0, "maj"), chord_id(7, "7")
    assert melody == [NOTE_ON + 60, *[NOTE_HOLD + 60] * 3, NOTE_ON + 62, NOTE_HOLD + 62, SILENCE, SILENCE,
                      NOTE_ON + 62, *[NOTE_HOLD + 62] * 3]
    assert chords == [CHORD_ON + c_major, *[CHORD_HOLD + c_major] * 7, CHORD_ON + g7, *[CHORD_HOLD + g7] * 3]
    sequence = interleave(chords, melody)
    assert sequence[:3] == [BOS, CHORD_ON + c_major, NOTE_ON + 60] and sequence[-1] == EOS  # chord first
    assert deinterleave(sequence) == (chords, melody)
    assert max(sequence) < VOCAB_SIZE


def test_repeated_notes_keep_their_onsets_through_the_round_trip():
    song = Song("repeats", 8, (Event(0, 2, 64), Event(2, 4, 64), Event(4, 8, 64)), (Event(0, 8, chord_id(4, "min")),))
    assert tokens_song("repeats", *song_tokens(song)) == song


@pytest.mark.parametrize("source", ["synthetic", "bach"])
def test_round_trip_of_real_and_synthetic_songs(source):
    songs = synthetic_songs(20, seed=3) if source == "synthetic" else [s for s, _, _ in bach_chorales(4)]
    for song in songs:
        back = tokens_song(song.name, *song_tokens(song))
        assert (back.notes, back.chords, back.frames) == (song.notes, song.chords, song.frames)


def test_chord_labels_by_hand():
    assert chord_name(label_chord(0, {0, 4, 7})) == "C"
    assert chord_name(label_chord(9, {9, 0, 4})) == "Amin"
    assert chord_name(label_chord(7, {7, 11, 2, 5})) == "G7"
    assert chord_name(label_chord(11, {11, 2, 5})) == "Bdim"
    assert chord_name(label_chord(0, {0, 4, 7, 2})) == "C"  # a passing D does not change the triad
    assert chord_name(label_chord(2, {2, 5})) == "Dmin"  # a missing fifth: still minor
    assert chord_pitch_classes(chord_id(7, "7")) == {7, 11, 2, 5}


def test_transposition_shifts_notes_and_roots_and_stays_in_range():
    up = SONG.transposed(6)
    assert [n.value for n in up.notes] == [66, 68, 68]
    assert [chord_name(c.value) for c in up.chords] == ["F#", "C#7"]
    assert len(transpositions(SONG)) == 13
    high = Song("high", 4, (Event(0, 4, 125),), ())
    assert [max(n.value for n in s.notes) for s in transpositions(high)] == list(range(119, 128))


@pytest.mark.parametrize("form", ["loop", "walk"])
def test_synthetic_melodies_put_chord_tones_on_the_beats(form):
    for song in synthetic_songs(10, seed=1, form=form):
        for note in song.notes:
            if note.start % 4 == 0:
                chord = next(c for c in song.chords if c.start <= note.start < c.end)
                assert note.value % 12 in chord_pitch_classes(chord.value), (song.name, note)


def test_looping_songs_repeat_a_two_bar_progression_and_walking_ones_do_not():
    def chord_frames(song):
        return events_to_frames(song.chords, song.frames).values

    loops, walks = synthetic_songs(50, seed=2), synthetic_songs(50, seed=2, form="walk")
    assert all(chord_frames(song)[32:] == chord_frames(song)[:-32] for song in loops)
    assert sum(chord_frames(song)[32:] == chord_frames(song)[:-32] for song in walks) < 10
    # a walk is the generator the datasets were first built with: seed 0 gives the song it always gave
    assert [c.start for c in synthetic_songs(1, form="walk")[0].chords] == [0, 8, 24, 40, 48, 64, 80, 96, 112, 120]
    with pytest.raises(ConfigError, match="form must be one of loop, walk, got 'rondo'"):
        synthetic_songs(1, form="rondo")


def test_bach_chorales_give_soprano_and_per_beat_chords():
    song, name, problem = next(bach_chorales(1))
    assert problem == "" and song.source == "bach"
    assert all(c.start % 4 == 0 and c.end % 4 == 0 for c in song.chords)  # beat-aligned
    assert min(n.value for n in song.notes) >= 55  # a soprano line
    in_chord = sum(n.value % 12 in chord_pitch_classes(c.value) for n in song.notes for c in song.chords
                   if c.start <= n.start < c.end)
    assert in_chord / len(song.notes) > 0.6  # Bach's soprano mostly sounds chord tones


def test_lead_sheets_are_read_and_bad_ones_reported(tmp_path):
    (tmp_path / "good.abc").write_text('X:1\nT:Good\nM:4/4\nL:1/4\nK:C\n"C"C E G E|"F"F A "G7"G B|"C"c4|\n')
    (tmp_path / "chordless.abc").write_text("X:1\nT:No chords\nM:4/4\nL:1/4\nK:C\nC D E F|G4|\n")
    (tmp_path / "broken.musicxml").write_text("<score-partwise><part id='P1'><measure")
    results = {name.split("/")[-1]: (song, problem) for song, name, problem in lead_sheets([tmp_path])}
    song, problem = results["good.abc"]
    assert problem == "" and [chord_name(c.value) for c in song.chords] == ["C", "F", "G7", "C"]
    assert [(c.start, c.end) for c in song.chords] == [(0, 16), (16, 24), (24, 32), (32, 48)]
    assert [n.value for n in song.notes[:4]] == [60, 64, 67, 64]
    assert results["chordless.abc"] == (None, "no chord symbols")
    assert results["broken.musicxml"][0] is None and results["broken.musicxml"][1].startswith("cannot parse")


def test_data_command_splits_by_song_and_reports_skips(tmp_path, capsys):
    (tmp_path / "sheets").mkdir()
    (tmp_path / "sheets" / "chordless.abc").write_text("X:1\nT:No chords\nM:4/4\nL:1/4\nK:C\nC D E F|\n")
    code = main(["chords", "data", "--synthetic", "30", "--leadsheets", str(tmp_path / "sheets"), "-o",
                 str(tmp_path / "data")])
    assert code == 0
    captured = capsys.readouterr()
    assert "skipped" in captured.err and "no chord symbols" in captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["songs"] == {"valid": 3, "test": 3, "train": 24}
    names = [json.loads(line)["name"] for split in ("train", "valid", "test")
             for line in (tmp_path / "data" / f"{split}.jsonl").read_text().splitlines()]
    assert len(names) == len(set(names)) == 30
    first, again = (split_songs(synthetic_songs(30), seed=0)["test"][0].name for _ in range(2))
    assert first == again
    assert main(["chords", "data"]) == 2


def test_an_empty_chord_symbol_leaves_its_bar_without_a_chord(tmp_path):
    (tmp_path / "empty.abc").write_text('X:1\nT:Empty\nM:4/4\nL:1/4\nK:C\n""C D E F|"G"G A B c|"C"c4|\n')
    (song, name, problem), = lead_sheets([tmp_path / "empty.abc"])
    assert problem == ""
    assert [(c.start, c.end, chord_name(c.value)) for c in song.chords] == [(16, 32, "G"), (32, 48, "C")]


def test_data_command_names_every_skipped_file_when_none_is_left(tmp_path, capsys):
    (tmp_path / "chordless.abc").write_text("X:1\nT:No chords\nM:4/4\nL:1/4\nK:C\nC D E F|\n")
    assert main(["chords", "data", "--leadsheets", str(tmp_path / "chordless.abc"), str(tmp_path / "gone.abc"),
                 "-o", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"skipped {tmp_path / 'chordless.abc'}: no chord symbols",
                   f"skipped {tmp_path / 'gone.abc'}: does not exist",
                   "scalerl: error: no songs: every file was skipped (2, reasons above)"]


@pytest.mark.parametrize("bars", ["0", "-2"])
def test_songs_need_bars(tmp_path, bars, capsys):
    assert main(["chords", "data", "--synthetic", "5", "--bars", bars, "-o", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (f"scalerl: error: argument --bars: must be in [1, 1,000] (got {bars}) "
                                               "(see scalerl chords data --help)")


def test_few_songs_still_give_every_split_a_song():
    sizes = {split: len(songs) for split, songs in split_songs(synthetic_songs(5)).items()}
    assert sizes == {"valid": 1, "test": 1, "train": 3}
    with pytest.raises(ConfigError, match="2 songs cannot make train, validation and test splits: give at least 3"):
        split_songs(synthetic_songs(2))


def test_metrics_on_a_hand_made_example():
    from scalerl.music.evaluate import distinct_chords
    from scalerl.music.metrics import (
        chord_entropy,
        chord_length_entropy,
        chord_length_shares,
        chord_lengths,
        invalid_holds,
        note_in_chord,
        one_frame_share,
        onset_emd,
        onset_interval_histogram,
        sounding_chords,
    )

    c, g = chord_id(0, "maj"), chord_id(7, "maj")
    # frames:  0       1        2        3       4        5        6        7
    melody = [NOTE_ON + 60, NOTE_HOLD + 60, NOTE_ON + 62, SILENCE, NOTE_ON + 67, NOTE_ON + 71, NOTE_HOLD + 71,
              NOTE_ON + 65]
    chords = [CHORD_ON + c, CHORD_HOLD + c, CHORD_HOLD + c, CHORD_HOLD + c, CHORD_ON + g, CHORD_HOLD + g, SILENCE,
              CHORD_ON + g]
    # sounding together: C/C yes, C/C yes, D/C no, G/G yes, B/G yes, F/G no (frame 3: no melody, frame 6: no chord)
    assert note_in_chord(chords, melody) == pytest.approx(4 / 6)
    assert chord_lengths(chords) == [4, 2, 1]
    assert chord_length_entropy(chords) == pytest.approx(np.log(3))
    assert one_frame_share([chords, [CHORD_ON + c] * 3]) == pytest.approx(4 / 6)  # 1 of 3 chords, then 3 of 3
    shares = chord_length_shares([chords, [CHORD_ON + g] + [CHORD_HOLD + g] * 39])
    assert shares == {"1": 0.25, "2-3": 0.25, "4": 0.25, "5-7": 0, "8": 0, "9-15": 0, "16": 0, "17-32": 0, "33+": 0.25}
    assert chord_entropy(chords) == pytest.approx(-(1 / 3) * np.log(1 / 3) - (2 / 3) * np.log(2 / 3))  # onsets C, G, G
    assert distinct_chords([chords, [CHORD_ON + chord_id(9, "min")]]) == 3
    # A hold naming another chord changes the chord without an onset; a hold after silence starts one too.
    silent_changes = [CHORD_ON + c, CHORD_HOLD + c, CHORD_HOLD + g, CHORD_HOLD + g, SILENCE, CHORD_HOLD + c,
                      CHORD_ON + c]
    sounding = [(e.start, e.end, e.value) for e in sounding_chords(silent_changes)]
    assert sounding == [(0, 2, c), (2, 4, g), (5, 6, c), (6, 7, c)]
    assert chord_lengths(silent_changes) == [2, 2, 1, 1]
    assert chord_entropy(silent_changes) == pytest.approx(-(3 / 4) * np.log(3 / 4) - (1 / 4) * np.log(1 / 4))
    assert invalid_holds(silent_changes) == 2 and invalid_holds(chords) == 0 and invalid_holds([CHORD_HOLD + c]) == 1
    histogram = onset_interval_histogram(chords, melody)
    assert histogram[0] == 3 and histogram.sum() == 3  # every chord onset lands on a melody onset
    late = onset_interval_histogram([SILENCE, CHORD_ON + c, CHORD_HOLD + c, CHORD_HOLD + c], [NOTE_ON + 60] * 4)
    assert onset_emd(histogram, histogram) == 0.0 and onset_emd(histogram, late) == pytest.approx(0.0)
    off = onset_interval_histogram([SILENCE, CHORD_ON + c, SILENCE, SILENCE],
                                   [NOTE_ON + 60, SILENCE, SILENCE, NOTE_ON + 62])
    assert onset_emd(histogram, off) == pytest.approx(1.0)  # all mass moved one bin


def test_key_change_augmentation_moves_the_rest_of_a_crop_and_restarts_what_sounds_at_the_seam():
    import torch

    from scalerl.music.training import Batches

    song = Song("long", 32, notes=(Event(0, 32, 60),), chords=(Event(0, 32, chord_id(0, "maj")),))
    plain_chords, plain_melody = song_tokens(song)
    seams = set()
    for seed in range(20):
        batches = Batches([song], 32, 0, np.random.default_rng(seed), key_change=1.0)
        chords, melody, targets = batches.sample(1, torch.device("cpu"))
        assert torch.equal(chords, targets)
        chords, melody = chords[0].tolist(), melody[0].tolist()
        seam = next(t for t in range(1, 32) if melody[t] != plain_melody[t])
        shift = melody[seam] - (NOTE_ON + 60)
        seams.add(seam)
        assert seam % 4 == 0 and shift != 0 and -6 <= shift <= 6
        assert melody[:seam] == plain_melody[:seam] and chords[:seam] == plain_chords[:seam]
        assert melody[seam:] == [NOTE_ON + 60 + shift] + [NOTE_HOLD + 60 + shift] * (31 - seam)
        moved = chord_id(shift % 12, "maj")
        assert chords[seam:] == [CHORD_ON + moved] + [CHORD_HOLD + moved] * (31 - seam)
    assert len(seams) > 3  # the seam falls on different beats
    never = Batches([song], 32, 0, np.random.default_rng(0), key_change=0.0).sample(1, torch.device("cpu"))
    assert never[1][0].tolist() == plain_melody


def test_history_noise_reads_the_chords_before_a_beat_in_a_wrong_key_and_learns_only_after_it():
    import torch

    from scalerl.music.training import Batches

    song = Song("long", 32, notes=(Event(0, 32, 60),), chords=(Event(0, 32, chord_id(0, "maj")),))
    plain_chords, plain_melody = song_tokens(song)
    seams = set()
    for seed in range(20):
        chords, melody, targets = (part[0].tolist() for part in Batches(
            [song], 32, 0, np.random.default_rng(seed), history_noise=1.0).sample(1, torch.device("cpu")))
        assert melody == plain_melody  # the melody is never moved
        seam = next(t for t in range(32) if targets[t] != PAD)
        seams.add(seam)
        wrong = chords[0] - CHORD_ON
        assert seam % 4 == 0 and 0 < seam < 32 and wrong != chord_id(0, "maj") and chord_root_quality(wrong)[1] == "maj"
        assert chords[:seam] == [CHORD_ON + wrong] + [CHORD_HOLD + wrong] * (seam - 1)
        # from the seam on the true chord, restarted: the model reads it and learns to predict it
        true = [CHORD_ON + chord_id(0, "maj")] + [CHORD_HOLD + chord_id(0, "maj")] * (31 - seam)
        assert chords[seam:] == targets[seam:] == true
    assert len(seams) > 3
    chords, _, targets = Batches([song], 32, 0, np.random.default_rng(0)).sample(1, torch.device("cpu"))
    assert torch.equal(chords, targets) and chords[0].tolist() == plain_chords
