"""A run killed with SIGKILL and resumed from its checkpoint ends exactly where an uninterrupted run does."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from support import TIMING, records

from scalerl import ConfigError, resume, train
from scalerl.checkpoint import load_checkpoint, save_checkpoint
from scalerl.run import CHECKPOINT_TYPES

SETTINGS = ["--seed", "3", "--threads", "1", "--log-every", "250", "--eval-every", "1000", "--eval-episodes", "3",
            "--checkpoint-every", "1000", "--algo.learning-starts", "500", "--algo.n-step", "3",
            "--algo.target-update-every", "100", "--progress", "off"]
ARGS = ["--steps", "3000", *SETTINGS]


def scalerl(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "scalerl", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)



def last_step(path: Path) -> int:
    lines = path.read_text().splitlines() if path.exists() else []
    return json.loads(lines[-1])["step"] if lines else 0


def test_killed_and_resumed_run_matches_uninterrupted_run(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    uninterrupted = scalerl("train", "--run-dir", str(whole), *ARGS)
    victim = scalerl("train", "--run-dir", str(killed), *ARGS)
    deadline = time.time() + 120
    while last_step(killed / "metrics.jsonl") < 1500:  # past the checkpoint at 1000, before the one at 2000
        assert victim.poll() is None, victim.stderr.read()
        assert time.time() < deadline
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL
    assert load_checkpoint(killed / "checkpoints" / "latest.pt", CHECKPOINT_TYPES)["loop"].step == 1000
    assert last_step(killed / "metrics.jsonl") < 2000

    resumed = scalerl("train", "--resume", str(killed))
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.stderr.read()

    assert records(killed / "metrics.jsonl") == records(whole / "metrics.jsonl")
    assert records(killed / "eval.jsonl") == records(whole / "eval.jsonl")
    final = {k: v for k, v in json.loads(out).items() if k not in TIMING | {"run_dir"}}
    expected = {k: v for k, v in json.loads((whole / "summary.json").read_text()).items()
                if k not in TIMING | {"run_dir"}}
    assert final == expected
    assert [r["step"] for r in records(killed / "metrics.jsonl")] == list(range(250, 3001, 250))


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("short") / "run"
    train(steps=400, run_dir=str(run_dir), eval_episodes=2, log_every=200, progress="off",
          algo={"learning_starts": 100})
    return run_dir


def copy_run(run_dir: Path, destination: Path) -> Path:
    import shutil

    shutil.copytree(run_dir, destination)
    return destination


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupted_checkpoint_gives_a_clear_error(short_run, tmp_path, damage):
    run_dir = copy_run(short_run, tmp_path / "run")
    path = run_dir / "checkpoints" / "latest.pt"
    data = path.read_bytes()
    path.write_bytes({"garbage": b"not a checkpoint" * 10, "truncated": data[: len(data) // 2], "empty": b""}[damage])
    with pytest.raises(ConfigError, match="is corrupted"):
        resume(run_dir)


def test_checkpoint_from_another_config_is_refused(short_run, tmp_path):
    run_dir = copy_run(short_run, tmp_path / "run")
    config = json.loads((run_dir / "config.json").read_text())
    config["algo"]["optim"]["lr"] = 0.123
    (run_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=r"different config .*\(algo.optim.lr: 0.001 in the checkpoint, 0.123 in"):
        resume(run_dir)


def test_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "latest.pt"
    save_checkpoint(path, {"step": 1})

    def crash(obj, handle):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(ConfigError, match="could not write checkpoint .* previous checkpoint is kept"):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path, CHECKPOINT_TYPES)["step"] == 1
    assert not path.with_name("latest.pt.tmp").exists()  # the partial file is removed


def test_environments_that_cannot_be_pickled_restart_their_episodes(tmp_path, monkeypatch):
    import pickle

    import scalerl.session

    real_dumps = pickle.dumps

    def refuse_envs(obj, *args, **kwargs):
        if hasattr(obj, "num_envs"):
            raise TypeError("cannot pickle this environment")
        return real_dumps(obj, *args, **kwargs)

    monkeypatch.setattr(scalerl.session.pickle, "dumps", refuse_envs)
    run_dir = tmp_path / "run"
    train(steps=400, run_dir=str(run_dir), eval_episodes=2, log_every=200, progress="off",
          algo={"learning_starts": 100})
    assert load_checkpoint(run_dir / "checkpoints" / "latest.pt", CHECKPOINT_TYPES)["envs"] is None
    summary = resume(run_dir)
    assert summary["steps"] == 400


def test_a_run_written_before_new_config_fields_existed_still_resumes(tmp_path, crash_after_checkpoint):
    """config.json and the checkpoint hold the config as it was written; a later scalerl that resolves the
    file to more fields (new options with defaults) must still resume the run."""
    import json

    from scalerl import resume, train

    settings = {"env": "classic:CartPole-v1", "steps": 600, "eval_every": 0, "eval_episodes": 1,
                "checkpoint_every": 300, "progress": "off", "algo": {"learning_starts": 100}}
    with crash_after_checkpoint(300):
        train(run_dir=str(tmp_path / "run"), **settings)
    path = tmp_path / "run" / "config.json"
    written = json.loads(path.read_text())
    del written["net"]["init"]  # as if written before --net.init existed
    path.write_text(json.dumps(written))
    import torch

    checkpoint_path = tmp_path / "run" / "checkpoints" / "latest.pt"
    checkpoint = torch.load(checkpoint_path, weights_only=False)
    checkpoint["config"] = written
    torch.save(checkpoint, checkpoint_path)
    checkpoint_path.with_name("latest.pt.sha256").unlink()  # an older run: no checksum beside it
    assert resume(tmp_path / "run")["steps"] == 600


def test_a_diverging_run_stops_with_one_line_and_keeps_its_last_good_checkpoint(tmp_path):
    import json

    import pytest

    from scalerl import train
    from scalerl.loops.base import TrainingDiverged

    with pytest.raises(TrainingDiverged, match=r"training diverged at step \d+: .* the last checkpoint .* is kept"):
        train(env="classic:CartPole-v1", steps=20_000, run_dir=str(tmp_path / "run"), progress="off", eval_every=0,
              eval_episodes=1, checkpoint_every=200, log_every=100,
              algo={"learning_starts": 200, "optim": {"lr": 1e6}, "max_grad_norm": 0.0, "loss": "mse"})
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # valid JSON all through: NaN is written as null
    assert any(value is None for value in records[-1].values())
    import torch

    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", weights_only=False)
    assert all(torch.isfinite(v).all() for v in checkpoint["agent"]["q"].values())


def test_a_torn_last_record_is_dropped_and_a_broken_middle_one_named(tmp_path):
    import pytest

    from scalerl import ConfigError
    from scalerl.logger import parse_records

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "lo')
    assert parse_records(path) == [{"step": 1}, {"step": 2}]
    path.write_text('{"step": 1}\n{"st\n{"step": 3}\n')
    with pytest.raises(ConfigError, match="metrics.jsonl line 2 is not a JSON record"):
        parse_records(path)


def test_a_run_killed_mid_record_resumes(tmp_path, crash_after_checkpoint, run_records):
    from scalerl import resume, train

    settings = {"env": "classic:CartPole-v1", "steps": 800, "eval_every": 400, "eval_episodes": 1,
                "checkpoint_every": 400, "log_every": 100, "progress": "off", "algo": {"learning_starts": 100}}
    train(run_dir=str(tmp_path / "whole"), **settings)
    with crash_after_checkpoint(400):
        train(run_dir=str(tmp_path / "killed"), **settings)
    with open(tmp_path / "killed" / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 500, "wall_ti')
    resume(tmp_path / "killed")
    assert run_records(tmp_path / "killed" / "metrics.jsonl") == run_records(tmp_path / "whole" / "metrics.jsonl")


def test_non_finite_settings_are_refused():
    import pytest

    from scalerl import ConfigError, train

    with pytest.raises(ConfigError, match=r"algo.optim.lr must be finite \(got inf\)"):
        train(algo={"optim": {"lr": float("inf")}})
    with pytest.raises(ConfigError, match=r"algo.optim.adam_eps must be finite|algo.optim.adam_eps must be > 0"):
        train(algo={"optim": {"adam_eps": float("inf")}})
    with pytest.raises(ConfigError, match=r"algo.gamma must be in \[0.0, 1.0\] \(got nan\)"):
        train(algo={"gamma": float("nan")})


def test_runs_started_in_the_same_second_get_their_own_directories(tmp_path, monkeypatch):
    from pathlib import Path

    import scalerl.run
    from scalerl import ConfigError, train

    base = tmp_path / "runs" / "classic-CartPole-v1" / "dqn-s0-20261125-120000"
    monkeypatch.setattr(scalerl.run, "default_run_dir", lambda config: base)
    settings = {"steps": 200, "eval_every": 0, "eval_episodes": 1, "progress": "off", "algo": {"learning_starts": 100}}
    first, second = train(**settings), train(**settings)
    assert Path(first["run_dir"]) == base and Path(second["run_dir"]) == base.with_name(base.name + "-2")
    for run_dir in (base, base.with_name(base.name + "-2")):
        assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 1
    import pytest

    with pytest.raises(ConfigError, match="already holds a run"):
        train(run_dir=str(base), **settings)
    assert (base / "config.json").is_file()  # the refused run left the first one alone


class Payload:
    """Unpickling this runs a shell command that leaves a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_planted_payload_in_a_checkpoint_does_not_run(tmp_path):
    import pickle

    import pytest
    import torch

    from scalerl import ConfigError, resume, train
    from scalerl.checkpoint import file_digest, load_checkpoint

    train(env="classic:CartPole-v1", steps=300, eval_every=0, eval_episodes=1, run_dir=str(tmp_path / "run"),
          progress="off", algo={"learning_starts": 100})
    path = tmp_path / "run" / "checkpoints" / "latest.pt"
    honest = load_checkpoint(path, CHECKPOINT_TYPES)
    marker = tmp_path / "pwned"

    def plant(state):  # an attacker rewrites the checksum too: it guards against damage, not malice
        torch.save(state, path)
        path.with_name("latest.pt.sha256").write_text(file_digest(path))

    plant({**honest, "loop": Payload(marker)})  # in the checkpoint itself
    with pytest.raises(ConfigError, match="holds something other than weights and training state"):
        resume(tmp_path / "run")
    assert not marker.exists()
    plant({**honest, "envs": pickle.dumps(Payload(marker))})  # inside the environments' snapshot
    with pytest.raises(ConfigError, match="cannot be restored safely .*posix.system is not allowed"):
        resume(tmp_path / "run")
    assert not marker.exists()


def test_a_damaged_checkpoint_falls_back_to_the_previous_one(tmp_path, run_records):
    """Flip one bit in the latest checkpoint: its SHA-256 no longer matches, and resume continues from the
    checkpoint before it, with a warning, ending where an uninterrupted run ends."""
    settings = {"env": "classic:CartPole-v1", "steps": 900, "eval_every": 0, "eval_episodes": 1,
                "checkpoint_every": 300, "log_every": 100, "progress": "off", "algo": {"learning_starts": 100}}
    train(run_dir=str(tmp_path / "whole"), **settings)
    from scalerl.checkpoint import load_checkpoint

    run_dir = tmp_path / "damaged"
    train(run_dir=str(run_dir), **{**settings, "steps": 600})
    latest = run_dir / "checkpoints" / "latest.pt"
    assert (run_dir / "checkpoints" / "previous.pt").is_file()
    assert (run_dir / "checkpoints" / "latest.pt.sha256").is_file()
    data = bytearray(latest.read_bytes())
    data[len(data) // 2] ^= 0x10
    latest.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=r"SHA-256 does not match.*previous checkpoint .* \(step 300\)"):
        assert load_checkpoint(latest, CHECKPOINT_TYPES)["step"] == 300
    import json

    config = json.loads((run_dir / "config.json").read_text())
    config["steps"] = 900  # as if the run had been killed at 600 of 900
    (run_dir / "config.json").write_text(json.dumps(config))
    for name in ("latest.pt", "previous.pt"):
        path = run_dir / "checkpoints" / name
        import torch

        state = torch.load(path, weights_only=False) if name == "previous.pt" else None
        if state is not None:
            state["config"] = config
            torch.save(state, path)
            (run_dir / "checkpoints" / (name + ".sha256")).unlink()
    with pytest.warns(UserWarning, match="previous checkpoint"):
        resume(run_dir)
    assert run_records(run_dir / "metrics.jsonl") == run_records(tmp_path / "whole" / "metrics.jsonl")


def test_a_full_disk_keeps_the_old_checkpoint_and_says_so(tmp_path, monkeypatch):
    import errno

    import torch

    from scalerl.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "checkpoints" / "latest.pt"
    save_checkpoint(path, {"step": 1})

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(ConfigError, match="no space left on device.*previous checkpoint is kept"):
        save_checkpoint(path, {"step": 2})
    assert sorted(p.name for p in path.parent.iterdir()) == ["latest.pt", "latest.pt.sha256"]
    monkeypatch.undo()
    assert load_checkpoint(path, CHECKPOINT_TYPES)["step"] == 1


def test_a_run_killed_before_its_first_checkpoint_resumes_afresh(tmp_path, run_records):
    import shutil

    settings = {"env": "classic:CartPole-v1", "steps": 600, "eval_every": 0, "eval_episodes": 1,
                "checkpoint_every": 0, "log_every": 100, "progress": "off", "algo": {"learning_starts": 100}}
    train(run_dir=str(tmp_path / "whole"), **settings)
    killed = tmp_path / "killed"
    shutil.copytree(tmp_path / "whole", killed)
    shutil.rmtree(killed / "checkpoints")  # as if killed before the first checkpoint: records but no checkpoint
    (killed / "summary.json").unlink()
    resume(killed)
    assert run_records(killed / "metrics.jsonl") == run_records(tmp_path / "whole" / "metrics.jsonl")


def test_a_second_process_cannot_train_in_a_run_directory_in_use(tmp_path):
    run_dir = tmp_path / "run"
    first = scalerl("train", "--run-dir", str(run_dir), "--steps", "6000", *SETTINGS)  # still training when killed
    deadline = time.time() + 120
    while last_step(run_dir / "metrics.jsonl") < 250:
        assert first.poll() is None, first.stderr.read()
        assert time.time() < deadline
        time.sleep(0.01)
    second = scalerl("train", "--resume", str(run_dir))
    _, err = second.communicate(timeout=120)
    first.kill()
    first.wait()
    assert second.returncode == 2
    assert err.strip() == (f"scalerl: error: {run_dir} is in use: another process is training there; "
                           "wait for it to end or stop it")
    reached = last_step(run_dir / "metrics.jsonl")
    third = scalerl("train", "--resume", str(run_dir))  # free once its holder is gone: it trains past where it was
    while last_step(run_dir / "metrics.jsonl") < reached + 500:
        assert third.poll() is None, third.stderr.read()
        assert time.time() < deadline + 120
        time.sleep(0.01)
    third.kill()
    third.wait()


def test_a_run_trained_on_to_a_longer_budget_matches_one_started_with_that_budget(tmp_path, run_records):
    """Rainbow's prioritized replay anneals beta over the budget: the continued run keeps its first budget for
    that schedule (schedule_steps), and so ends exactly where a run started with both budgets does."""
    settings = {"env": "classic:CartPole-v1", "agent": "rainbow", "seed": 5, "eval_every": 500, "eval_episodes": 2,
                "checkpoint_every": 500, "log_every": 250, "progress": "off",
                "algo": {"learning_starts": 200, "target_update_every": 100}}
    first = tmp_path / "first"
    assert train(run_dir=str(first), steps=1000, **settings)["steps"] == 1000
    continued = resume(first, steps=2000)
    whole = train(run_dir=str(tmp_path / "whole"), steps=2000, schedule_steps=1000, **settings)

    assert continued["steps"] == 2000
    for name in ("metrics.jsonl", "eval.jsonl"):
        assert run_records(first / name) == run_records(tmp_path / "whole" / name)
    assert {k: v for k, v in continued.items() if k not in TIMING | {"run_dir"}} == \
        {k: v for k, v in whole.items() if k not in TIMING | {"run_dir"}}
    written = json.loads((first / "config.json").read_text())
    assert (written["steps"], written["schedule_steps"]) == (2000, 1000)
    assert json.loads((first / "summary.json").read_text())["steps"] == 2000


def test_a_new_budget_below_the_checkpoint_is_refused_and_the_run_left_as_it_was(short_run, tmp_path):
    run_dir = copy_run(short_run, tmp_path / "run")
    before = (run_dir / "config.json").read_text()
    with pytest.raises(ConfigError, match="steps must be at least 400"):
        resume(run_dir, steps=300)
    assert (run_dir / "config.json").read_text() == before
    assert (run_dir / "summary.json").exists()


def test_editing_the_budget_by_hand_is_refused_because_the_schedules_would_change(short_run, tmp_path):
    run_dir = copy_run(short_run, tmp_path / "run")
    config = json.loads((run_dir / "config.json").read_text())
    config["steps"] = 800
    (run_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=r"different config .*\(steps: 400 in the checkpoint, 800 in config.json\)"):
        resume(run_dir)


def test_a_run_that_stopped_at_its_return_is_not_given_a_new_budget(tmp_path):
    run_dir = tmp_path / "run"
    summary = train(run_dir=str(run_dir), steps=600, eval_every=300, eval_episodes=1, stop_at_return=-1.0,
                    progress="off", algo={"learning_starts": 100})
    assert summary["stopped_at_return"] and summary["steps"] == 300
    with pytest.raises(ConfigError, match="stopped when an evaluation reached its stop_at_return"):
        resume(run_dir, steps=1000)


def test_a_kill_between_the_renames_of_a_save_resumes_from_the_newest_checkpoint(tmp_path, monkeypatch,
                                                                                  run_records):
    """save_checkpoint moves latest.pt to previous.pt, then the finished .tmp to latest.pt: a kill between the
    two leaves no latest.pt. Resume goes on from the .tmp (the newest whole checkpoint), says so, and ends
    where an uninterrupted run ends; it neither restarts from step 0 nor falls back to previous.pt."""
    import scalerl.checkpoint as checkpoint

    settings = {"env": "classic:CartPole-v1", "steps": 900, "eval_every": 0, "eval_episodes": 1,
                "checkpoint_every": 300, "log_every": 100, "progress": "off", "algo": {"learning_starts": 100}}
    train(run_dir=str(tmp_path / "whole"), **settings)
    replace, moves = os.replace, []

    def killed_before_the_second_rename(source, target):
        moves.append(Path(source).name)
        if moves.count("latest.pt.tmp") == 2:  # the save at step 600, after latest.pt became previous.pt
            raise KeyboardInterrupt
        replace(source, target)

    monkeypatch.setattr(checkpoint.os, "replace", killed_before_the_second_rename)
    run_dir = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        train(run_dir=str(run_dir), **settings)
    monkeypatch.setattr(checkpoint.os, "replace", replace)
    assert not (run_dir / "checkpoints" / "latest.pt").exists()
    with pytest.warns(UserWarning, match=r"latest.pt is missing; continuing from .*latest.pt.tmp \(step 600\)"):
        resume(run_dir)
    assert run_records(run_dir / "metrics.jsonl") == run_records(tmp_path / "whole" / "metrics.jsonl")


def test_damaged_bytes_without_a_checksum_fall_back_or_stop_in_one_line(tmp_path):
    """Without its .sha256 a damaged latest.pt is caught by the reader itself (a bad zip, a broken pickle, a
    string that is not UTF-8): each goes on from previous.pt with a warning, never with another exception."""
    import warnings

    train(env="classic:CartPole-v1", steps=600, eval_every=0, eval_episodes=1, checkpoint_every=300,
          run_dir=str(tmp_path / "run"), progress="off", algo={"learning_starts": 100})
    latest = tmp_path / "run" / "checkpoints" / "latest.pt"
    (tmp_path / "run" / "checkpoints" / "latest.pt.sha256").unlink()
    honest = latest.read_bytes()
    for position in range(0, len(honest), max(1, len(honest) // 60)):
        damaged = bytearray(honest)
        damaged[position] ^= 0xFF
        latest.write_bytes(bytes(damaged))
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            state = load_checkpoint(latest, CHECKPOINT_TYPES)
        assert state["step"] in (300, 600)
    import zipfile

    latest.write_bytes(honest)
    with zipfile.ZipFile(latest) as archive:  # a bit flipped inside a tensor's bytes, which torch reads silently
        record = max(archive.infolist(), key=lambda info: info.file_size)
    damaged = bytearray(honest)
    damaged[record.header_offset + 200 + record.file_size // 2] ^= 0x01
    latest.write_bytes(bytes(damaged))
    with pytest.warns(UserWarning, match=rf"CRC of its record {record.filename} does not match.*\(step 300\)"):
        assert load_checkpoint(latest, CHECKPOINT_TYPES)["step"] == 300
    latest.write_bytes(honest[: len(honest) // 2])
    (tmp_path / "run" / "checkpoints" / "previous.pt").unlink()
    with pytest.raises(ConfigError, match="corrupted or unreadable") as refused:
        load_checkpoint(latest, CHECKPOINT_TYPES)
    assert "\n" not in str(refused.value)


def test_a_checkpoint_whose_network_is_not_finite_is_not_evaluated(tmp_path):
    from scalerl import evaluate
    from scalerl.checkpoint import file_digest

    train(env="classic:CartPole-v1", steps=300, eval_every=0, eval_episodes=1, run_dir=str(tmp_path / "run"),
          progress="off", algo={"learning_starts": 100})
    path = tmp_path / "run" / "checkpoints" / "latest.pt"
    state = load_checkpoint(path, CHECKPOINT_TYPES)

    def poisoned(value):
        if isinstance(value, dict):
            return {key: poisoned(inner) for key, inner in value.items()}
        return value.fill_(float("nan")) if torch.is_tensor(value) and value.is_floating_point() else value

    state["agent"] = poisoned(state["agent"])
    torch.save(state, path)
    path.with_name("latest.pt.sha256").write_text(file_digest(path))
    with pytest.raises(ConfigError, match="non-finite weights"):
        evaluate(tmp_path / "run", episodes=1)


@pytest.mark.parametrize("limit_kb, every, written", [(24, "100000", "cannot write"), (200, "500", "checkpoint")])
def test_a_write_that_fails_mid_run_stops_it_in_one_line(tmp_path, limit_kb, every, written):
    """A file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored) makes writes fail as a full disk does, without
    root: the TensorBoard thread, the JSONL records or the checkpoint fail first. Whichever it is, the run
    stops with exit 2 and one line naming what was not written, with no thread's traceback on stderr."""
    import resource

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_kb * 1024, limit_kb * 1024))

    args = [sys.executable, "-m", "scalerl", "train", "--steps", "3000", "--run-dir", str(tmp_path / "run"),
            "--progress", "off", "--algo.learning-starts", "100", "--checkpoint-every", every, "--log-every", "10"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, preexec_fn=limited)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and written in lines[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
