"""Sweeps on a local Ray: a 2x2 sweep finishes and reports, failures are retried and reported, and a
killed sweep started again runs only what was missing."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scalerl import ConfigError
from scalerl.cli import main
from scalerl.sweep import SweepSpec, load_sweep_file

# Under pytest-xdist every test that starts Ray runs on one worker, one after another
# (pyproject.toml: -n 2 --dist loadgroup).
pytestmark = pytest.mark.xdist_group("ray")

pytest.importorskip("ray", reason="pip install 'scalerl[sweep]'")

TINY = ["env=classic:CartPole-v1", "steps=1200", "eval_every=600", "eval_episodes=2", "checkpoint_every=300",
        "log_every=300", "algo.learning_starts=200"]


def test_sweep_file_expands_grid_and_variants(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text('seeds = [0, 1]\n[base]\nenv = "classic:CartPole-v1"\n"net.depth" = 1\n'
                    '[grid]\n"net.hidden" = [16, 32]\n[[variants]]\nnet = {hidden = 8, norm = "layer"}\n')
    spec = load_sweep_file(path)
    trials = spec.trials(tmp_path / "out")
    assert [(t.name, t.seed) for t in trials] == [
        ("net.hidden=16", 0), ("net.hidden=16", 1), ("net.hidden=32", 0), ("net.hidden=32", 1),
        ("net.hidden=8,net.norm=layer", 0), ("net.hidden=8,net.norm=layer", 1)]
    assert trials[0].config["net"] == {"depth": 1, "hidden": 16}
    assert trials[1].run_dir == tmp_path / "out" / "net.hidden=16" / "seed1"
    with pytest.raises(ConfigError, match="trial net.hidden=-1 seed 0: net.hidden must be > 0"):
        SweepSpec(base={"env": "classic:CartPole-v1"}, grid={"net.hidden": [-1]}).trials(tmp_path)
    named = SweepSpec(base={"env": "classic:CartPole-v1"}, variants=[{"name": "wide net/x4", "net": {"hidden": 512}}])
    assert [(t.name, t.config["net"]) for t in named.trials(tmp_path)] == [("wide_net_x4", {"hidden": 512})]
    (tmp_path / "bad.toml").write_text("seeds = [0]\nbase = 3\n[tune]\n")
    with pytest.raises(ConfigError, match="unknown sweep file keys tune"):
        load_sweep_file(tmp_path / "bad.toml")


def test_two_by_two_sweep_on_local_ray_finishes_and_reports(tmp_path, capsys):
    out = tmp_path / "sweep"
    code = main(["sweep", "--set", *TINY, "--grid", "net.hidden=16,32", "algo.double=true,false",
                 "--seeds", "0", "-o", str(out), "--workers", "2"])
    assert code == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(result["finished"]) == 4 and result["failed"] == []
    assert (out / "net.hidden=32,algo.double=False" / "seed0" / "summary.json").is_file()
    report = (out / "report.md").read_text()
    assert "# Report: 4 runs, 4 groups, 1 tasks" in report and "| group | algo.double | net.hidden |" in report


def test_failed_trials_are_retried_then_reported(tmp_path, capsys):
    out = tmp_path / "sweep"
    code = main(["sweep", "--set", *TINY, "steps=300", "--grid", "net.bottleneck=flatten,gap", "--seeds", "0",
                 "--max-retries", "1", "-o", str(out), "--workers", "2", "--no-report"])
    assert code == 1
    captured = capsys.readouterr()
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert result["finished"] == ["net.bottleneck=flatten/seed0"]
    assert result["failed"][0]["trial"] == "net.bottleneck=gap/seed0"
    assert "net.bottleneck must be flatten for vector observations" in result["failed"][0]["error"]
    assert "retry 1/1" in captured.out and "no retries left" in captured.out


def wait_until_quiet(folder: Path, quiet_seconds: float = 3.0, limit: float = 60.0) -> None:
    """Ray's workers outlive a SIGKILLed driver for a moment (a trial may even finish): wait until no
    file under the sweep changes, so the snapshot is what the next sweep will find."""
    def snapshot():
        times = {}
        for path in folder.rglob("*"):
            try:
                times[path] = path.stat().st_mtime_ns
            except FileNotFoundError:  # a checkpoint being replaced as we list: the folder is not quiet
                times[path] = None
        return times

    deadline, last, since = time.time() + limit, snapshot(), time.time()
    while time.time() - since < quiet_seconds:
        assert time.time() < deadline
        time.sleep(0.5)
        current = snapshot()
        if current != last:
            last, since = current, time.time()


def test_killed_sweep_resumed_runs_only_what_was_missing(tmp_path):
    out = tmp_path / "sweep"
    args = [sys.executable, "-m", "scalerl", "sweep", "--set", *TINY, "steps=2000", "--grid", "net.hidden=16,32",
            "--seeds", "0", "1", "-o", str(out), "--workers", "2", "--no-report"]
    sweep = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

    def summaries():
        return sorted(out.glob("*/seed*/summary.json"))

    def checkpoints():
        return [p for p in out.glob("*/seed*/checkpoints/latest.pt") if not (p.parent.parent / "summary.json").exists()]

    deadline = time.time() + 240
    while not (summaries() and checkpoints()):
        assert sweep.poll() is None, sweep.stderr.read()
        assert time.time() < deadline
        time.sleep(0.05)
    os.killpg(sweep.pid, signal.SIGKILL)
    sweep.wait()
    wait_until_quiet(out)
    finished_before = {p: p.stat().st_mtime_ns for p in summaries()}
    resumable = len(checkpoints())
    assert 0 < len(finished_before) < 4

    again = subprocess.run([*args[:-1], "--no-report"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    new = 4 - len(finished_before) - resumable
    assert f"4 trials, {len(finished_before)} finished, {resumable} to resume, {new} to start" in again.stdout
    assert len(summaries()) == 4
    for path, mtime in finished_before.items():
        assert path.stat().st_mtime_ns == mtime  # finished trials were not run again
    for run in out.glob("*/seed*"):
        steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert steps == sorted(set(steps)) and steps[-1] == 2000  # resumed runs continue, nothing twice


def test_a_second_driver_on_a_running_sweep_says_so_and_leaves(tmp_path):
    """The first driver holds the lock (here: a process that takes it and waits); a second run_sweep on the
    same folder refuses in one line, and can drive it once the first process is gone."""
    import subprocess
    import sys
    import time

    from scalerl.sweep import SweepSpec, driver_lock, run_sweep

    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from scalerl.sweep import driver_lock\n"
        f"with driver_lock(Path({str(sweep_dir)!r})):\n    print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    spec = SweepSpec(base={"env": "classic:CartPole-v1", "steps": 100, "eval_episodes": 1})
    with pytest.raises(ConfigError, match=rf"another sweep driver \(pid {holder.pid}\) is running on"):
        run_sweep(spec, sweep_dir, workers=1, report=False, log=lambda message: None)
    holder.kill()
    holder.wait()
    deadline = time.time() + 10
    while True:  # the lock died with its process
        try:
            with driver_lock(sweep_dir):
                break
        except ConfigError:
            assert time.time() < deadline
            time.sleep(0.1)


def test_a_local_ray_slow_to_start_is_tried_again_and_then_said_in_one_line(tmp_path, monkeypatch, capsys):
    """Ray raises a bare Exception when its local start times out (an overloaded machine): the sweep waits and
    tries again, saying so; a start that fails every time ends in one error line that says the finished runs
    are kept; one that succeeds on a later try runs the sweep."""
    import ray

    from scalerl import cluster

    real_init, calls = ray.init, []

    def timed_out(**kwargs):
        calls.append(kwargs)
        if len(calls) < failures:
            raise Exception("The current node timed out during startup.\nThis could happen because ...")
        return real_init(**kwargs)

    monkeypatch.setattr(cluster.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(ray, "init", timed_out)
    if ray.is_initialized():
        ray.shutdown()
    monkeypatch.setattr(cluster, "_ray_address", "not started")
    failures = 99
    assert main(["sweep", "--set", *TINY, "--seeds", "0", "-o", str(tmp_path / "a"), "--no-report"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line for line in lines if line.startswith("scalerl: error:")] == [
        "scalerl: error: could not start a local Ray for the sweep (The current node timed out during startup.) "
        f"in {cluster.LOCAL_START_ATTEMPTS} tries; runs already finished are kept: run the same command again to go on"]
    assert sum("trying again" in line for line in lines) == cluster.LOCAL_START_ATTEMPTS - 1
    calls.clear()
    failures = 2  # the first start times out, the second comes up
    assert main(["sweep", "--set", *TINY, "--seeds", "0", "-o", str(tmp_path / "b"), "--no-report"]) == 0
    assert len(calls) == 2 and (tmp_path / "b" / "base" / "seed0" / "summary.json").is_file()
    ray.shutdown()


def test_nodes_that_do_not_answer_the_folder_check_are_named_in_one_line(tmp_path, monkeypatch):
    """On a slow cluster the shared-folder check used to die with Ray's GetTimeoutError after 120 s. With
    no time to answer (a real local Ray, the wait cut to zero) it names the silent node and what to check."""
    import ray

    from scalerl import cluster

    monkeypatch.setattr(cluster, "PROBE_SECONDS", 0.0)
    if ray.is_initialized():  # an earlier sweep test's local Ray
        ray.shutdown()
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        with pytest.raises(ConfigError, match=r"timed out after 0 s: 1 of 1 nodes did not answer .*ray status"):
            cluster.check_shared_folder(ray, tmp_path, ray.nodes())
    finally:
        ray.shutdown()
    assert not list(tmp_path.glob(".probe-*"))


def test_a_trial_started_again_keeps_the_record_of_its_earlier_attempts(tmp_path):
    """A trial killed before its first checkpoint starts afresh in an emptied folder; its attempts.jsonl
    (which node tried when) survives, one whole line per attempt."""
    from scalerl.config import TrainConfig
    from scalerl.sweep import append_line, run_attempt

    run_dir = tmp_path / "trial"
    run_dir.mkdir()
    append_line(run_dir / "attempts.jsonl", json.dumps({"node": "first", "resume": False, "time": "t"}))
    (run_dir / "metrics.jsonl").write_text('{"step": 100}\n')  # what the killed attempt left
    config = TrainConfig(env="classic:CartPole-v1", steps=300, eval_every=0, eval_episodes=1, progress="off",
                         run_dir=str(run_dir), algo={"learning_starts": 100}).to_dict()
    run_attempt(config, "second")
    lines = [json.loads(line) for line in (run_dir / "attempts.jsonl").read_text().splitlines()]
    assert [line["node"] for line in lines] == ["first", "second"]
    assert (run_dir / "summary.json").is_file()


def test_variant_folders_read_as_their_settings():
    from scalerl.sweep import trial_name

    assert trial_name({"hooks": ["redo", "activity"], "hook_opts.redo.tau": 0.1}) == \
        "hooks=redo+activity,hook_opts.redo.tau=0.1"
    assert trial_name({"hooks": []}) == "hooks=none" and trial_name({}) == "base"
    assert trial_name({"env": "gym:ALE/Pong-v5"}) == "env=gym_ALE_Pong-v5"  # nothing a path dislikes
