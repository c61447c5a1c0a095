"""--track: the run's records also go to Weights & Biases (offline here: no network is needed or used)."""

import pytest

from scalerl import resume, train
from scalerl.checks import ConfigError

pytest.importorskip("wandb")


def wandb_file(run_dir):
    files = sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert files, f"no offline W&B run in {run_dir}"
    return files


def test_a_tracked_run_writes_its_metrics_and_evaluations_to_wandb_and_resumes_the_same_wandb_run(
        tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    summary = train(env="classic:CartPole-v1", agent="dqn", steps=600, eval_every=300, eval_episodes=1,
                    log_every=100, run_dir=str(run), progress="off", track=True, wandb_project="tests",
                    algo={"learning_starts": 100})
    run_id = (run / "wandb_id").read_text().strip()
    first = wandb_file(run)
    assert first[0].name == f"run-{run_id}.wandb"
    data = first[0].read_bytes()  # W&B's records are protobufs: key names and JSON values are stored as text
    for key in (b"train/loss", b"train/episode_return", b"eval/return_mean", b"tests"):
        assert key in data
    final = f"{summary['final_eval_return']:g}".encode()  # W&B's JSON writes 288.0 as 288
    last = data.rfind(b"eval/return_mean")
    assert final in data[last:last + 16 + 8]  # the last evaluation's key, then its value
    resume(run, steps=900)
    assert {path.name for path in wandb_file(run)} == {f"run-{run_id}.wandb"}  # the same W&B run goes on


def test_tracking_that_cannot_start_is_one_line_and_leaves_no_run_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run = tmp_path / "run"
    run.mkdir()
    (run / "wandb_id").write_text("../../etc\n")  # a stranger's run folder: the id is checked, never used as a path
    with pytest.raises(ConfigError, match="does not hold a W&B run id"):
        train(env="classic:CartPole-v1", steps=100, run_dir=str(run), progress="off", track=True)
    assert not (run / "config.json").exists()
