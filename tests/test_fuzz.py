"""Generated bad invocations of every command: each exits 2 with one line and no traceback."""

import itertools
import random

import pytest

from scalerl.agents import AGENTS
from scalerl.cli import main
from scalerl.config import TrainConfig
from scalerl.flags import field_types

BAD_VALUES = ["abc", "", "1e999x", "--", "[1, 2]", "None?"]


def train_flags(agent: str) -> list[str]:
    names = field_types(TrainConfig, "", AGENTS[agent].config_class)
    return sorted("--" + name.replace("_", "-") for name in names if name not in ("agent",))


def bad_train_invocations(seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    cases = []
    for agent in AGENTS:
        for flag in train_flags(agent):
            # any string names a run folder: only an empty or overlong one is bad
            values = ["", "x" * 300] if flag == "--run-dir" else BAD_VALUES
            cases.append(["train", "--agent", agent, flag, rng.choice(values)])
    cases += [["train", f"--{word}", "1"] for word in ("stepz", "algo.lr", "net.widht", "hook-opts.nope.every")]
    cases += [["train", "--env", env] for env in ("", ":", "nope:x", "classic:", "classic:CartPole-v9", "minatar")]
    return cases


OTHER_COMMANDS = [
    ["eval"], ["eval", "--episodes", "3"], ["eval", "/no/such/run"], ["eval", "/no/such/run", "--episodes", "x"],
    ["probe"], ["probe", "/no/such/run"], ["probe", "/no/such/run", "many"],
    ["report"], ["report", "/no/such/run"], ["plot", "/no/such/run"], ["plot"],
    ["sweep"], ["sweep", "/no/such/file.toml"], ["sweep", "--grid", "net.width"],
    ["study", "nope"], ["study", "cale", "--bogus"],
    ["envs", "--suite", "nope"], ["agents", "extra"], ["hooks", "extra"],
    ["chords", "fly"], ["chords", "pretrain", "--steps", "x"], ["chords", "eval", "/no/such/run"],
    ["train", "--resume"], ["train", "--resume", "/no/such/run"], ["train", "--resume", "/tmp", "--steps", "3"],
]


@pytest.mark.parametrize("group", ["train", "other"])
def test_bad_invocations_exit_with_one_line(group, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = bad_train_invocations() if group == "train" else OTHER_COMMANDS
    failures = []
    for args in cases:
        code = main(list(args))
        _, err = capsys.readouterr()
        lines = err.strip().splitlines()
        if code != 2 or len(lines) != 1 or "Traceback" in err:
            failures.append((args, code, err[-300:]))
    assert not failures, failures[:5]
    assert len(cases) >= (300 if group == "train" else 20)
    assert not (tmp_path / "runs").exists()


def test_the_generated_cases_cover_every_agent_flag():
    flags = set(itertools.chain.from_iterable(train_flags(agent) for agent in AGENTS))
    covered = {args[3] for args in bad_train_invocations() if len(args) == 5}
    assert flags == covered
