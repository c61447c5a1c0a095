"""ReaLchords models: the online model cannot see the current frame's melody; pretraining learns."""

import json

import pytest
import torch

from scalerl.music.metrics import invalid_holds, sounding_chords
from scalerl.music.models import MODELS, ChordModelConfig, chord_logits, generate, grammar_mask, legal_chord_mask
from scalerl.music.vocab import CHORD_HOLD, CHORD_ON, NOTE_ON, NUM_CHORDS, PAD, SILENCE, VOCAB_SIZE

pytest.importorskip("music21", reason="pip install 'scalerl[music]'")


def changed_frames(model, change_melody_from: int) -> list[bool]:
    """Per frame, whether its chord logits change when the melody changes from a given frame on."""
    torch.manual_seed(0)
    chords = torch.randint(CHORD_ON, VOCAB_SIZE, (3, 12))
    melody = torch.randint(NOTE_ON, CHORD_ON, (3, 12))
    other = melody.clone()
    other[:, change_melody_from:] = torch.randint(NOTE_ON, CHORD_ON, (3, 12 - change_melody_from))
    with torch.no_grad():
        before, after = model(chords, melody), model(chords, other)
    return [not torch.allclose(before[:, t], after[:, t]) for t in range(12)]


def test_online_model_emits_each_chord_before_hearing_that_frames_melody():
    torch.manual_seed(0)
    online = MODELS["online"](ChordModelConfig(dim=32, layers=2, heads=4, dropout=0.0)).eval()
    assert changed_frames(online, 5) == [False] * 6 + [True] * 6  # chord 5 is chosen before melody 5 is heard
    teacher = MODELS["teacher"](ChordModelConfig(dim=32, layers=2, heads=4, dropout=0.0)).eval()
    assert all(changed_frames(teacher, 5))  # the teacher hears the future melody


def test_chords_only_depend_on_earlier_chords():
    torch.manual_seed(0)
    for name in MODELS:
        model = MODELS[name](ChordModelConfig(dim=32, layers=2, heads=4, dropout=0.0)).eval()
        chords = torch.randint(CHORD_ON, VOCAB_SIZE, (2, 10))
        melody = torch.randint(NOTE_ON, CHORD_ON, (2, 10))
        changed = chords.clone()
        changed[:, 4:] = SILENCE
        with torch.no_grad():
            assert torch.allclose(model(chords, melody)[:, :5], model(changed, melody)[:, :5]), name


def test_a_hold_may_only_continue_the_chord_sounding_and_off_the_beat_nothing_else():
    c, g = 0, 7 * 11
    previous = torch.tensor([PAD, SILENCE, CHORD_ON + c, CHORD_HOLD + g])
    legal = legal_chord_mask(previous)
    holds = [set(torch.nonzero(row[CHORD_HOLD:]).flatten().tolist()) for row in legal]
    assert holds == [set(), set(), {c}, {g}]
    assert legal[:, SILENCE].all() and legal[:, CHORD_ON:CHORD_HOLD].all()  # silence and any onset, always
    assert not legal[:, :SILENCE].any() and not legal[:, NOTE_ON:CHORD_ON].any()
    assert legal.sum(-1).tolist() == [1 + NUM_CHORDS, 1 + NUM_CHORDS, 2 + NUM_CHORDS, 2 + NUM_CHORDS]
    off_beat = legal_chord_mask(previous[1:], torch.tensor(False))
    allowed = [torch.nonzero(row).flatten().tolist() for row in off_beat]
    assert allowed == [[SILENCE], [CHORD_HOLD + c], [CHORD_HOLD + g]]
    assert grammar_mask("free", previous, torch.tensor(1)) is None
    assert torch.equal(grammar_mask("beats", previous, torch.tensor(8)), legal)  # frame 8 starts a beat


@pytest.mark.parametrize("name", list(MODELS))
def test_a_grammar_decodes_only_the_accompaniments_it_allows(name):
    torch.manual_seed(0)
    melody = torch.randint(NOTE_ON, CHORD_ON, (8, 32))
    free = MODELS[name](ChordModelConfig(dim=32, layers=1, heads=2)).eval()
    assert sum(map(invalid_holds, generate(free, melody, 1.0).tolist())) > 20  # untrained: holds at random
    for grammar in ("holds", "beats"):
        model = MODELS[name](ChordModelConfig(dim=32, layers=1, heads=2, grammar=grammar)).eval()
        model.load_state_dict(free.state_dict())
        accompaniments = generate(model, melody, 1.0).tolist()
        assert sum(map(invalid_holds, accompaniments)) == 0
        starts = {event.start for chords in accompaniments for event in sounding_chords(chords)}
        assert (starts <= set(range(0, 32, 4))) == (grammar == "beats"), starts


@pytest.mark.parametrize("name", list(MODELS))
def test_cached_decoding_gives_the_logits_of_the_full_forward_pass(name):
    torch.manual_seed(0)
    model = MODELS[name](ChordModelConfig(dim=32, layers=2, heads=4, max_frames=16)).eval()
    chords = torch.randint(CHORD_ON, VOCAB_SIZE, (3, 16))
    melody = torch.randint(NOTE_ON, CHORD_ON, (3, 16))
    decoding, cached = model.decoding(melody), []
    for frame in range(16):
        cached.append(decoding.logits)
        decoding.push(chords[:, frame], melody[:, frame])
    with torch.no_grad():
        assert torch.allclose(torch.stack(cached, 1), model(chords, melody), atol=1e-5)
    if name == "online":
        assert decoding.frames_left == 0
        with pytest.raises(ValueError, match="16 frames"):
            decoding.push(chords[:, 0], melody[:, 0])


def test_short_pretraining_beats_the_untrained_model_and_resumes(tmp_path):
    from scalerl.cli import main
    from scalerl.music.pretrain import load_chord_model

    assert main(["chords", "data", "--synthetic", "60", "-o", str(tmp_path / "data")]) == 0
    args = ["chords", "pretrain", "--data", str(tmp_path / "data"), "--steps", "400", "--eval-every", "200",
            "--batch-size", "16", "--crop-frames", "32", "--net.dim", "32", "--net.layers", "1", "--net.heads", "2",
            "--lr", "3e-3"]
    assert main([*args, "--run-dir", str(tmp_path / "run")]) == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["step"] == 0 and records[-1]["step"] == 400
    assert records[-1]["valid_loss"] < 0.5 * records[0]["valid_loss"]
    assert records[-1]["valid_accuracy"] > 0.8
    # the model's own accompaniments are scored too: the untrained one changes chord on half its frames
    first, last = records[0]["valid_one_frame_chords"], records[-1]["valid_one_frame_chords"]
    assert first > 0.3 and last < first / 2
    assert records[-1]["data_one_frame_chords"] == 0.0  # synthetic chords last a bar or more
    assert 0 <= records[-1]["valid_note_in_chord"] <= 1
    cfg, model = load_chord_model(tmp_path / "run")
    assert cfg.model == "online" and not model.training
    assert main(["chords", "pretrain", "--resume", str(tmp_path / "run")]) == 0  # finished: nothing to add
    # exported, the model alone is a fraction of the checkpoint and loads to the same weights
    assert main(["chords", "export", str(tmp_path / "run"), "-o", str(tmp_path / "exported")]) == 0
    assert sorted(path.name for path in (tmp_path / "exported").iterdir()) == ["config.json", "weights.pt"]
    checkpoint_size = (tmp_path / "run" / "checkpoints" / "latest.pt").stat().st_size
    assert (tmp_path / "exported" / "weights.pt").stat().st_size < 0.5 * checkpoint_size
    exported = load_chord_model(tmp_path / "exported")[1]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), exported.state_dict().values()))

    from scalerl.music.data import load_songs
    from scalerl.music.evaluate import evaluate_model
    from scalerl.music.metrics import chord_value
    from scalerl.music.models import generate

    songs = load_songs(tmp_path / "data" / "test.jsonl")
    melody = torch.tensor([[NOTE_ON + 60] * 16, [NOTE_ON + 67] * 16])
    greedy = generate(model, melody)
    assert torch.equal(greedy, generate(model, melody))
    primed = generate(model, melody, primer=torch.full((2, 4), CHORD_ON + 5))  # joins mid-song: 4 chords given
    assert (primed[:, :4] == CHORD_ON + 5).all()
    with torch.no_grad():
        assert torch.equal(primed[:, 4], chord_logits(model(primed, melody))[:, 4].argmax(-1))
    assert all(chord_value(t) is not None or t == SILENCE for t in greedy.flatten().tolist())
    result = evaluate_model(model, songs, 128)
    assert 0 <= result["note_in_chord"] <= 1 and len(result["fit_after_shift"]) == 128
    assert result["data_note_in_chord"] > 0.7  # synthetic melodies sit on their chords
    assert main(["chords", "eval", str(tmp_path / "run"), "--data", str(tmp_path / "data"), "--limit", "2",
                 "--plot", str(tmp_path / "adaptation.png")]) == 0
    assert (tmp_path / "adaptation.png").stat().st_size > 0 and (tmp_path / "adaptation.svg").exists()
    # trained on 32-frame crops: longer windows would test untrained positions
    assert main(["chords", "eval", str(tmp_path / "run"), "--data", str(tmp_path / "data"), "--frames", "64"]) == 2
    assert main(["chords", "pretrain", "--model", "teacher", "--net.dim", "30", "--net.heads", "4"]) == 2


def test_the_recent_notes_rule_plays_the_triad_of_what_it_heard_on_each_beat_by_hand():
    from scalerl.music.models import generate
    from scalerl.music.rule import RecentNotesRule
    from scalerl.music.vocab import CHORD_HOLD, NOTE_HOLD, chord_id

    # A beat each of E4, G4 and B4, then a beat of silence.
    melody = [NOTE_ON + 64] + [NOTE_HOLD + 64] * 3 + [NOTE_ON + 67] + [NOTE_HOLD + 67] * 3
    melody += [NOTE_ON + 71] + [NOTE_HOLD + 71] * 3 + [SILENCE] * 4
    chords = generate(RecentNotesRule(), torch.tensor([melody]), temperature=1.0)[0].tolist()
    c_major, e_minor = chord_id(0, "maj"), chord_id(4, "min")
    assert chords[:4] == [SILENCE] * 4  # nothing heard yet
    assert chords[4:8] == [CHORD_ON + c_major] + [CHORD_HOLD + c_major] * 3  # E: C major, the first triad holding it
    assert chords[8:12] == [CHORD_HOLD + c_major] * 4  # E and G: C major and E minor tie, C major holds
    assert chords[12:] == [CHORD_ON + e_minor] + [CHORD_HOLD + e_minor] * 3  # E, G and B: E minor


def test_eval_puts_the_rule_beside_the_models(tmp_path, capsys):
    from scalerl.cli import main

    data = tmp_path / "data"
    assert main(["chords", "data", "--synthetic", "20", "-o", str(data)]) == 0
    tiny = ["--data", str(data), "--steps", "2", "--eval-every", "2", "--batch-size", "4", "--crop-frames", "16",
            "--net.dim", "16", "--net.layers", "1", "--net.heads", "2"]
    assert main(["chords", "pretrain", *tiny, "--run-dir", str(tmp_path / "online")]) == 0
    assert main(["chords", "eval", str(tmp_path / "online"), "--data", str(data), "--split", "train", "--limit", "8",
                 "--rule", "-o", str(tmp_path / "eval.json")]) == 0
    results = json.loads((tmp_path / "eval.json").read_text())
    assert list(results) == ["online (online)", "rule (recent notes)"]
    assert 0.0 <= results["rule (recent notes)"]["note_in_chord"] <= 1.0
