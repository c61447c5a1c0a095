"""RL finetuning pieces: the distillation KL, the rule penalties, an end-to-end run of tiny models, and
runs killed mid-way that resume to exactly where uninterrupted ones end."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from scalerl.cli import main
from scalerl.music.finetune import (
    baselined,
    chance_fits,
    fit_to_go,
    kl_to_teacher,
    penalties,
    returns_norm_state,
    windowed_reward,
)
from scalerl.music.metrics import invalid_holds
from scalerl.music.models import legal_chord_mask
from scalerl.music.vocab import CHORD_HOLD, CHORD_ON, NOTE_ON, PAD, SILENCE, VOCAB_SIZE, chord_id

pytest.importorskip("music21", reason="pip install 'scalerl[music]'")


def test_kl_is_zero_when_the_policy_equals_the_teacher_and_positive_otherwise():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, VOCAB_SIZE)
    assert torch.allclose(kl_to_teacher(logits, logits.clone()), torch.zeros(2, 5), atol=1e-6)
    other = logits + torch.randn(2, 5, VOCAB_SIZE)
    assert (kl_to_teacher(logits, other) > 0).all()
    policy = logits.clone().requires_grad_(True)
    kl_to_teacher(policy, other).sum().backward()
    assert torch.isfinite(policy.grad).all()  # the masked non-chord tokens do not poison the gradient


def test_rule_penalties_by_hand():
    melody = [NOTE_ON + 60] * 100
    held = [CHORD_ON + 5] + [CHORD_HOLD + 5] * 39  # 40 frames of one chord: 8 past the 32-frame limit
    silent = [SILENCE] * 10  # 10 silent frames under the melody: 4 allowed (4% of 100)
    chords = held + silent + [CHORD_ON + 3] + [CHORD_HOLD + 3] * 49
    assert penalties(chords, melody, silence=2.0, repetition=1.0) == -(2.0 * 6) - (1.0 * 8) - (1.0 * 18)
    # A hold of another chord changes the chord (no 40-frame run here) without an onset: invalid, into 7 and back.
    relabelled = [CHORD_ON + 5] + [CHORD_HOLD + 5] * 19 + [CHORD_HOLD + 7] + [CHORD_HOLD + 5] * 19
    assert penalties(relabelled, melody[:40], silence=0.0, repetition=1.0, invalid=3.0) == -(3.0 * 2)


def test_a_reward_model_scores_longer_accompaniments_on_half_overlapping_windows():
    class FirstChord(torch.nn.Module):
        """A stand-in reward: the first chord token of the window."""

        def forward(self, chords, melody):
            return chords[:, 0].float()

    chords = torch.tensor([[10, 11, 12, 13, 14, 15, 16, 17, 18, 19]])
    melody = torch.zeros_like(chords)
    assert windowed_reward(FirstChord(), chords, melody, 10).item() == 10
    assert windowed_reward(FirstChord(), chords, melody, 16).item() == 10
    assert windowed_reward(FirstChord(), chords, melody, 4).item() == (10 + 12 + 14 + 16) / 4  # starts 0, 2, 4, 6
    # windows start at 0 and 3, and a flush one at 4
    assert windowed_reward(FirstChord(), chords, melody, 6).item() == pytest.approx((10 + 13 + 14) / 3)


TINY_NET = ["--net.dim", "32", "--net.layers", "1", "--net.heads", "2"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """Data, a tiny online model, teacher and reward model: what finetuning starts from."""
    root = tmp_path_factory.mktemp("pretrained")
    data = root / "data"
    assert main(["chords", "data", "--synthetic", "40", "-o", str(data)]) == 0
    tiny = ["--data", str(data), "--steps", "20", "--eval-every", "20", "--batch-size", "8", "--crop-frames", "16"]
    for model in ("online", "teacher"):
        assert main(["chords", "pretrain", *tiny, "--model", model, *TINY_NET, "--run-dir", str(root / model)]) == 0
    assert main(["chords", "rewards", *tiny, "--dim", "32", "--layers", "1", "--run-dir", str(root / "reward")]) == 0
    return root


def finetune_args(root: Path, run: Path, steps: int, eval_every: int) -> list[str]:
    return ["chords", "finetune", "--policy", str(root / "online"), "--teacher", str(root / "teacher"),
            "--rewards", str(root / "reward"), "--data", str(root / "data"), "--steps", str(steps),
            "--eval-every", str(eval_every), "--batch-size", "4", "--crop-frames", "16", "--beta", "0.5",
            "--run-dir", str(run)]


def test_finetuning_runs_end_to_end_and_resumes(pretrained, tmp_path):
    data, run = pretrained / "data", tmp_path / "finetune"
    assert main(finetune_args(pretrained, run, 4, 2)) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4] and all(r["kl"] >= 0 for r in records)
    from scalerl.music.pretrain import load_chord_model

    cfg, model = load_chord_model(run)  # the finetuned policy loads like any online model
    assert cfg.model == "online"
    assert main(["chords", "finetune", "--resume", str(run)]) == 0
    assert cfg.net.grammar == "free"
    assert main(["chords", "finetune", "--policy", str(pretrained / "teacher"),
                 "--teacher", str(pretrained / "teacher"),
                 "--data", str(data), "--run-dir", str(tmp_path / "bad")]) == 2  # the policy must be an online model


def test_the_fit_reward_adds_the_accompaniments_note_in_chord_to_the_return(pretrained, tmp_path):
    for weight in (0, 10):
        run = tmp_path / f"fit-{weight}"
        assert main([*finetune_args(pretrained, run, 2, 1), "--fit-reward", str(weight)]) == 0
        for record in (json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()):
            assert record["fit_reward"] == pytest.approx(weight * record["note_in_chord"])
            parts = record["reward_models"] + record["penalties"] + record["fit_reward"]
            assert record["return"] == pytest.approx(parts)
    assert main([*finetune_args(pretrained, tmp_path / "bad", 2, 1), "--fit-reward", "-1"]) == 2


@pytest.mark.parametrize("credit", ["sequence", "frame"])
def test_the_policy_gradient_raises_a_reward_it_is_given(pretrained, tmp_path, monkeypatch, credit):
    """A reward any policy can earn (the share of frames that hold a chord rather than start one) must grow
    under finetuning, credited to whole accompaniments or frame by frame: the check that the REINFORCE
    term, not only the KL, moves the policy."""
    import scalerl.music.finetune as finetune_module

    monkeypatch.setattr(finetune_module, "frame_fit", lambda chords, melody: [float(t >= CHORD_HOLD) for t in chords])
    run = tmp_path / "holding"
    args = finetune_args(pretrained, run, 100, 1)  # the first record is after one update: near the start
    args[args.index("--beta") + 1] = "0.01"
    assert main([*args, "--fit-reward", "1", "--lr", "1e-2", "--fit-credit", credit, "--invalid-penalty", "0"]) == 0
    shares = [json.loads(line)["note_in_chord"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert shares[-1] > shares[0] + 0.3, shares


def test_a_policy_finetuned_with_a_grammar_keeps_it_when_loaded(pretrained, tmp_path):
    from scalerl.music.models import generate
    from scalerl.music.pretrain import load_chord_model

    run = tmp_path / "holds"
    assert main([*finetune_args(pretrained, run, 2, 1), "--grammar", "holds"]) == 0
    cfg, model = load_chord_model(run)
    assert cfg.net.grammar == model.cfg.grammar == "holds"
    melody = torch.randint(NOTE_ON, NOTE_ON + 128, (16, 16))
    assert sum(map(invalid_holds, generate(model, melody, 1.0).tolist())) == 0
    policy = torch.randn(2, 3, VOCAB_SIZE, requires_grad=True)
    legal = legal_chord_mask(torch.tensor([[PAD, CHORD_ON + 4, CHORD_HOLD + 4]] * 2))
    kl = kl_to_teacher(policy, policy.detach().clone(), legal)
    assert torch.allclose(kl, torch.zeros(2, 3), atol=1e-6)
    kl_to_teacher(policy, torch.randn(2, 3, VOCAB_SIZE), legal).sum().backward()
    assert torch.isfinite(policy.grad).all() and (policy.grad[..., CHORD_HOLD + 5] == 0).all()  # illegal: no gradient
    assert main([*finetune_args(pretrained, tmp_path / "bad", 2, 1), "--grammar", "bars"]) == 2


def test_returns_statistics_from_a_checkpoint_written_before_runningmeanstd_carry_on():
    """Older finetuning checkpoints kept Welford's count, mean and m2: they load as the same mean and variance."""
    from scalerl.normalization import RunningMeanStd

    returns = np.random.default_rng(0).normal(3.0, 2.0, 50)
    old = {"count": 50, "mean": float(returns.mean()), "m2": float(((returns - returns.mean()) ** 2).sum())}
    norm = RunningMeanStd()
    norm.load_state_dict(returns_norm_state(old))
    assert norm.mean == pytest.approx(returns.mean()) and norm.var == pytest.approx(returns.var())
    assert returns_norm_state(norm.state_dict()) == norm.state_dict()


def test_a_samples_baseline_is_the_mean_of_its_melodys_other_samples():
    returns = np.array([1.0, 2.0, 6.0, 10.0, 10.0, 13.0])
    np.testing.assert_allclose(baselined(returns, 3), [1 - 4, 2 - 3.5, 6 - 1.5, 10 - 11.5, 10 - 11.5, 13 - 10])
    np.testing.assert_allclose(baselined(returns, 1), returns - 7.0)
    frames = np.stack([returns, 2 * returns], 1)  # per frame: each frame column is baselined on its own
    np.testing.assert_allclose(baselined(frames, 3), np.stack([baselined(returns, 3), 2 * baselined(returns, 3)], 1))


def test_a_random_notes_fit_is_the_share_of_pitch_classes_the_chord_covers():
    triad, seventh = chord_id(0, "maj"), chord_id(7, "7")
    chords = [CHORD_ON + triad, CHORD_HOLD + triad, SILENCE, CHORD_ON + seventh]
    np.testing.assert_allclose(chance_fits([chords]), [[3 / 12, 3 / 12, 0.0, 4 / 12]])


def test_frame_fit_to_go_discounts_the_fits_after_each_frame():
    fits = np.array([[1.0, np.nan, 0.0, 1.0]])  # silent frames earn nothing
    np.testing.assert_allclose(fit_to_go(fits, 0.5), [[1 + 0.125, 0.25, 0.5, 1.0]])
    np.testing.assert_allclose(fit_to_go(fits, 0.0), [[1.0, 0.0, 0.0, 1.0]])


def test_several_samples_per_melody_share_its_melody_and_must_divide_the_batch(pretrained, tmp_path, monkeypatch):
    import scalerl.music.finetune as finetune_module

    melodies = []
    original = finetune_module.generate

    def keep(policy, melody, *args, **kwargs):
        melodies.append(melody.clone())
        return original(policy, melody, *args, **kwargs)

    monkeypatch.setattr(finetune_module, "generate", keep)
    assert main([*finetune_args(pretrained, tmp_path / "grouped", 2, 1), "--samples-per-melody", "2"]) == 0
    assert len(melodies) == 2
    for melody in melodies:  # batch 4: two melodies, each twice in a row
        assert torch.equal(melody[0], melody[1]) and torch.equal(melody[2], melody[3])
        assert not torch.equal(melody[1], melody[2])
    assert main([*finetune_args(pretrained, tmp_path / "bad", 2, 1), "--samples-per-melody", "3"]) == 2


def last_step(path: Path) -> int:
    lines = path.read_text().splitlines() if path.exists() else []
    return json.loads(lines[-1])["step"] if lines else 0


def untimed(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "wall_time"} for line in path.read_text().splitlines()]


@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_a_killed_chords_run_resumes_to_the_uninterrupted_result(pretrained, tmp_path, command):
    steps, every = 300, 20
    def args(run: Path) -> list[str]:
        if command == "finetune":
            return finetune_args(pretrained, run, steps, every)
        return ["chords", "pretrain", "--data", str(pretrained / "data"), "--steps", str(steps),
                "--eval-every", str(every), "--batch-size", "4", "--crop-frames", "16", *TINY_NET,
                "--run-dir", str(run)]

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main(args(whole)) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    victim = subprocess.Popen([sys.executable, "-m", "scalerl", *args(killed)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while last_step(killed / "metrics.jsonl") < 50:
        assert victim.poll() is None, victim.stderr.read()
        assert time.time() < deadline
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL
    stopped_at = torch.load(killed / "checkpoints" / "latest.pt", weights_only=False)["step"]
    assert 40 <= stopped_at < steps

    assert main(["chords", command, "--resume", str(killed)]) == 0
    assert untimed(killed / "metrics.jsonl") == untimed(whole / "metrics.jsonl")
    final = [torch.load(run / "checkpoints" / "latest.pt", weights_only=False)["model"] for run in (whole, killed)]
    assert all(torch.equal(final[0][name], final[1][name]) for name in final[0])


def test_accompany_writes_a_two_track_midi_file(tmp_path):
    from music21 import converter

    data = tmp_path / "data"
    assert main(["chords", "data", "--synthetic", "20", "-o", str(data)]) == 0
    assert main(["chords", "pretrain", "--data", str(data), "--steps", "5", "--eval-every", "5", "--batch-size", "4",
                 "--crop-frames", "16", "--net.dim", "32", "--net.layers", "1", "--net.heads", "2",
                 "--net.max-frames", "32", "--run-dir", str(tmp_path / "online")]) == 0
    melody = tmp_path / "tune.abc"
    melody.write_text("X:1\nT:Tune\nM:4/4\nL:1/4\nK:C\nC E G E|F A G2|E G c B|c4|D F A F|G4|\n")
    out = tmp_path / "tune.mid"
    assert main(["chords", "accompany", str(tmp_path / "online"), str(melody), "-o", str(out)]) == 0
    parsed = converter.parse(str(out))
    melody_part, chord_part = parsed.parts[0], parsed.parts[1]
    assert [n.pitch.midi for n in melody_part.flatten().notes][:4] == [60, 64, 67, 64]
    chords = chord_part.flatten().getElementsByClass("Chord")
    assert len(chords) >= 1 and chord_part.highestTime <= 24.0  # 6 bars; windows of 32 frames joined
    assert main(["chords", "accompany", str(tmp_path / "online"), str(tmp_path / "missing.mid"), "-o", str(out)]) == 2


def test_accompany_refuses_what_it_cannot_do_in_one_line(tmp_path, capsys):
    from music21 import note, stream

    data, run = tmp_path / "data", tmp_path / "online"
    assert main(["chords", "data", "--synthetic", "20", "-o", str(data)]) == 0
    assert main(["chords", "pretrain", "--data", str(data), "--steps", "1", "--batch-size", "2", "--crop-frames", "16",
                 "--net.dim", "16", "--net.layers", "1", "--net.heads", "2", "--net.max-frames", "16",
                 "--run-dir", str(run)]) == 0
    tune = tmp_path / "tune.abc"
    tune.write_text("X:1\nT:Tune\nM:4/4\nL:1/4\nK:C\nC E G E|\n")
    stray = stream.Stream([note.Note("C4", quarterLength=1)])
    stray.insert(200_000, note.Note("D4", quarterLength=1))  # one note at beat 200,000
    stray.write("midi", fp=str(tmp_path / "stray.mid"))
    unwritable = tmp_path / "locked"
    unwritable.mkdir(mode=0o500)
    capsys.readouterr()
    cases = [([str(tmp_path / "stray.mid"), "-o", str(tmp_path / "x.mid")],
              "stray.mid lasts 200,002 beats; accompany takes "
              "melodies of up to 5,000 beats (is there a stray note far after the end?)"),
             ([str(tune), "-o", str(tmp_path)], f"-o {tmp_path} is a folder; name the MIDI file to write"),
             ([str(tune), "-o", ""], "-o must name the MIDI file to write"),
             ([str(tune), "--temperature", "-1", "-o", str(tmp_path / "x.mid")],
              "argument --temperature: must be in [0, 5] (got -1)"),
             ([str(tune), "--temperature", "nan", "-o", str(tmp_path / "x.mid")],
              "argument --temperature: must be in [0, 5] (got nan)")]
    if os.geteuid() != 0:  # root writes anywhere
        cases.append(([str(tune), "-o", str(unwritable / "x.mid")],
                      f"-o {unwritable / 'x.mid'}: cannot write under {unwritable}"))
    for args, message in cases:
        assert main(["chords", "accompany", str(run), *args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"scalerl: error: {message}") and "\n" not in err, err


def test_accompany_keeps_the_tunes_tempo_meter_key_and_pickup(tmp_path):
    from music21 import converter, key, meter, tempo

    data, run = tmp_path / "data", tmp_path / "online"
    assert main(["chords", "data", "--synthetic", "20", "-o", str(data)]) == 0
    assert main(["chords", "pretrain", "--data", str(data), "--steps", "1", "--batch-size", "2", "--crop-frames", "16",
                 "--net.dim", "16", "--net.layers", "1", "--net.heads", "2", "--net.max-frames", "32",
                 "--run-dir", str(run)]) == 0
    tune = tmp_path / "waltz.abc"  # 3/4 at 100 bpm in G, with a one-beat pickup
    tune.write_text("X:1\nT:Waltz\nM:3/4\nL:1/4\nQ:1/4=100\nK:G\nD|G2 B|A2 G|F2 A|G3|\n")
    out = tmp_path / "waltz.mid"
    assert main(["chords", "accompany", str(run), str(tune), "-o", str(out)]) == 0
    parsed = converter.parse(str(out)).flatten()
    assert {mark.getQuarterBPM() for mark in parsed.getElementsByClass(tempo.MetronomeMark)} == {100}
    assert {mark.ratioString for mark in parsed.getElementsByClass(meter.TimeSignature)} == {"3/4"}
    assert {mark.sharps for mark in parsed.getElementsByClass(key.KeySignature)} == {1}
    melody = converter.parse(str(out)).parts[0].flatten().notes
    # bar 2 at beat 3
    assert [(n.pitch.name, float(n.offset)) for n in melody][:3] == [("D", 2.0), ("G", 3.0), ("B", 5.0)]
    plain = tmp_path / "plain.mid"  # a MIDI melody keeps its marks too
    converter.parse(str(out)).parts[0].write("midi", fp=str(plain))
    assert main(["chords", "accompany", str(run), str(plain), "-o", str(tmp_path / "again.mid")]) == 0
    again = converter.parse(str(tmp_path / "again.mid")).flatten()
    assert {mark.getQuarterBPM() for mark in again.getElementsByClass(tempo.MetronomeMark)} == {100}
    assert {mark.ratioString for mark in again.getElementsByClass(meter.TimeSignature)} == {"3/4"}


def test_long_chords_commands_show_progress_on_a_terminal_or_when_asked(tmp_path):
    def chords(*args: str, setting: str) -> str:
        env = {**os.environ, "SCALERL_PROGRESS": setting}
        result = subprocess.run([sys.executable, "-m", "scalerl", "chords", *args], capture_output=True, text=True,
                                env=env, timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stderr

    data = str(tmp_path / "data")
    shown = chords("data", "--bach", "2", "--synthetic", "20", "-o", data, setting="on")
    assert "chorales: 100%" in shown and "2/2" in shown
    pretrain = ["pretrain", "--data", data, "--steps", "6", "--eval-every", "3", "--batch-size", "2",
                "--crop-frames", "16", "--net.dim", "16", "--net.layers", "1", "--net.heads", "2",
                "--net.max-frames", "16"]
    shown = chords(*pretrain, "--run-dir", str(tmp_path / "a"), setting="on")
    assert "online: 100%" in shown and "6/6" in shown and "step/s" in shown
    assert chords(*pretrain, "--run-dir", str(tmp_path / "b"), setting="auto") == ""  # not a terminal: nothing


def test_the_shipped_model_accompanies_a_tune_without_a_run_directory(tmp_path):
    """The package carries an online ReaLchords policy: accompany (and jam) use it when no run is named. On a
    plain C-major tune its greedy chords, played frame by frame as the page plays them, fit the melody better
    than chance (0.3); the page's own greedy fit on Twinkle in C was 0.45 when issue 45 measured it."""
    from scalerl.music.accompany import accompany
    from scalerl.music.data import song_tokens
    from scalerl.music.metrics import note_in_chord
    from scalerl.music.pretrain import DEFAULT_MODEL, load_chord_model

    cfg, model = load_chord_model()
    assert cfg.model == "online" and not model.training
    assert sum(path.stat().st_size for path in DEFAULT_MODEL.iterdir()) < 5_000_000
    assert "finetune" in json.loads((DEFAULT_MODEL / "config.json").read_text())  # it records how it was trained
    tune = tmp_path / "tune.abc"
    tune.write_text("X:1\nT:Tune\nM:4/4\nL:1/4\nK:C\nC C G G|A A G2|F F E E|D D C2|G G F F|E E D2|G G F F|E E D2|"
                    "C C G G|A A G2|F F E E|D D C2|\n")
    assert main(["chords", "accompany", str(tune), "-o", str(tmp_path / "cli.mid")]) == 0
    song = accompany(None, tune, tmp_path / "greedy.mid", temperature=0.0)
    assert len(song.chords) > 1 and note_in_chord(*song_tokens(song)) > 0.4
