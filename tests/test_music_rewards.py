"""Reward models rank a true melody/chord pairing above a shuffled one on held-out songs after a short
training. The learning test takes 1-2 minutes per model on 2 cores, so it is marked slow (pytest -m slow)."""

import json

import pytest
import torch

from scalerl.cli import main
from scalerl.music.vocab import CHORD_HOLD, CHORD_ON, NOTE_HOLD, NOTE_ON, SILENCE

pytest.importorskip("music21", reason="pip install 'scalerl[music]'")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chords") / "data"
    assert main(["chords", "data", "--synthetic", "200", "-o", str(folder)]) == 0
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["contrastive", "discriminative"])
def test_reward_model_ranks_true_pairs_above_shuffled_ones(kind, data, tmp_path):
    run = tmp_path / kind
    code = main(["chords", "rewards", "--data", str(data), "--kind", kind, "--steps", "300", "--eval-every", "300",
                 "--batch-size", "32", "--crop-frames", "64", "--dim", "96", "--layers", "2", "--lr", "1e-3",
                 "--run-dir", str(run)])
    assert code == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["valid_ranking_accuracy"] < 0.65  # untrained: a coin flip
    assert records[-1]["valid_ranking_accuracy"] > 0.65, records[-1]
    assert records[-1]["valid_loss"] < records[0]["valid_loss"]

    from scalerl.music.rewards import load_reward_model

    cfg, model = load_reward_model(run)
    assert cfg.kind == kind and not model.training


def test_rhythm_view_keeps_only_onsets_holds_and_silences():
    from scalerl.music.rewards import rhythm_tokens

    tokens = torch.tensor([[NOTE_ON + 60, NOTE_HOLD + 60, SILENCE, CHORD_ON + 17, CHORD_HOLD + 17, NOTE_ON + 72]])
    assert rhythm_tokens(tokens).tolist() == [[NOTE_ON, NOTE_HOLD, SILENCE, CHORD_ON, CHORD_HOLD, NOTE_ON]]
