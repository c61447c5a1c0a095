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
            # any string names a run folder or a W&B project: only an empty, overlong or ill-formed one is bad
            values = {"--run-dir": ["", "x" * 300], "--wandb-project": ["", "x" * 300, "a/b", "my project"],
                      "--wandb-entity": ["", "x" * 300, "a:b"]}.get(flag, BAD_VALUES)
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


HUGE = "1" + "0" * 29


def test_what_the_second_reliability_round_found_exits_with_one_line(capsys, tmp_path, monkeypatch):
    """The invocations the hostile test of issue 44 found tracebacks or endless runs in: unwritable or odd
    output paths, a broken config.json, a mixed-type grid, out-of-range seeds and counts. Each exits 2 with
    one line, and none writes anything."""
    from scalerl import train

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    train(env="classic:CartPole-v1", steps=200, eval_every=0, eval_episodes=1, run_dir=str(run), progress="off",
          algo={"learning_starts": 100})
    long_tune = tmp_path / "long.abc"
    long_tune.write_text("X:1\nT:long\nM:4/4\nL:1/8\nK:C\n" + "C4 D4 | " * 20000 + "\n")  # 80,000 beats
    (tmp_path / "empty.toml").write_text("")
    (tmp_path / "text.toml").write_text('[base]\nsteps = "abc"\n')
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{broken")
    cases = [
        ["plot", str(run), "-o", "/proc/x.png"], ["plot", str(run), "-o", str(tmp_path / ("a" * 5000))],
        ["report", str(run), "-o", ""], ["report", str(run), "-o", "/proc/x.md"],
        ["plot", str(broken)], ["report", str(broken)],
        ["sweep", "--grid", "net.width=1,abc"], ["sweep", "--set", "algo.optim.lr=nan"],
        ["eval", str(run), "--seed", "-1"], ["eval", str(run), "--episodes", HUGE],
        ["eval", str(run), "--num-envs", "1000000"],
        ["train", "--run-dir", "/sys/kernel/x", "--steps", "10"], ["train", "--steps", HUGE],
        ["chords", "data", "--bach", "-7"], ["chords", "data", "--bars", HUGE, "--synthetic", "2"],
        ["chords", "data", "--synthetic", HUGE],
        ["chords", "accompany", str(long_tune), "-o", str(tmp_path / "out.mid")],
        ["sweep", str(tmp_path / "empty.toml")], ["sweep", str(tmp_path / "text.toml")],
        ["sweep", "--set", f"run_dir={tmp_path / 'x'}"], ["sweep", "--set", "steps=100", "--gpus-per-run", "1"],
    ]
    before = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*"))
    failures = []
    for args in cases:
        code = main(list(args))
        _, err = capsys.readouterr()
        if code != 2 or len(err.strip().splitlines()) != 1 or "Traceback" in err:
            failures.append((args[:3], code, err[-300:]))
    assert not failures, failures
    assert sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*")) == before


def numeric_train_invocations() -> list[list[str]]:
    """Every numeric flag of every agent given a 30-digit integer (int fields) or NaN and infinity (float
    fields): values that parse, but that no run can use."""
    import typing

    cases = []
    for agent in AGENTS:
        for name, kind in field_types(TrainConfig, "", AGENTS[agent].config_class).items():
            options = set(typing.get_args(kind)) or {kind}
            flag = "--" + name.replace("_", "-")
            if int in options:
                cases.append(["train", "--agent", agent, flag, HUGE])
            elif float in options:
                cases += [["train", "--agent", agent, flag, value] for value in ("nan", "inf")]
    return cases


def test_every_numeric_flag_refuses_values_no_run_can_use(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = numeric_train_invocations()
    failures = []
    for args in cases:
        code = main(list(args))
        _, err = capsys.readouterr()
        if code != 2 or len(err.strip().splitlines()) != 1 or "Traceback" in err:
            failures.append((args[2:], code, err[-200:]))
    assert not failures, failures[:5]
    assert len(cases) > 300 and not (tmp_path / "runs").exists()


OTHER_NUMERIC_FLAGS = {
    ("eval", "RUN"): ["--episodes", "--num-envs", "--seed"],
    ("report", "RUN"): ["--reps", "--last"],
    ("sweep",): ["--workers", "--max-retries", "--gpus-per-run", "--seeds"],
    ("study", "stable-gradients"): ["--workers", "--seeds"],
    ("chords", "data"): ["--bach", "--synthetic", "--bars", "--seed"],
    ("chords", "eval", "RUN"): ["--frames", "--temperature", "--limit", "--threads"],
    ("chords", "accompany", "RUN", "MELODY", "-o", "OUT"): ["--temperature", "--seed"],
    ("chords", "jam", "RUN"): ["--port", "--temperature", "--bpm", "--threads"],
}
"""Every numeric option of the commands besides train, after the positional arguments each needs."""


def test_every_other_commands_numeric_options_refuse_what_no_run_can_use(capsys, tmp_path, monkeypatch):
    """A 30-digit number, a word, NaN and a negative number, for every numeric option of every other command:
    exit 2, one line, nothing started and nothing written. And a sweep file giving each numeric setting of a
    run a string, a 30-digit number, NaN or infinity (TOML has both) is refused the same way."""
    import typing

    monkeypatch.chdir(tmp_path)
    places = {"RUN": str(tmp_path / "no-run"), "MELODY": str(tmp_path / "no.mid"), "OUT": str(tmp_path / "o.mid")}
    cases = [[places.get(word, word) for word in command] + [flag, value]
             for command, flags in OTHER_NUMERIC_FLAGS.items() for flag in flags
             for value in (HUGE, "abc", "nan", "-5")]
    names = [name for name, kind in field_types(TrainConfig, "", AGENTS["dqn"].config_class).items()
             if {int, float} & (set(typing.get_args(kind)) or {kind}) and name != "seed"]
    for index, (name, value) in enumerate((name, value) for name in names for value in ('"abc"', HUGE, "nan", "inf")):
        sweep_file = tmp_path / f"sweep{index}.toml"
        sweep_file.write_text(f'[base]\n"{name}" = {value}\n')
        cases.append(["sweep", str(sweep_file), "-o", str(tmp_path / "never")])
    failures = []
    for args in cases:
        code = main(list(args))
        _, err = capsys.readouterr()
        if code != 2 or len(err.strip().splitlines()) != 1 or "Traceback" in err:
            failures.append((args[-3:], code, err[-200:]))
    assert not failures, failures[:5]
    assert len(cases) > 250
    assert not (tmp_path / "never").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", ["pretrain", "rewards", "finetune"])
def test_every_numeric_flag_of_the_chords_training_commands_refuses_a_30_digit_number(command, capsys, tmp_path,
                                                                                      monkeypatch):
    """The chords training configs hold every number finite and within 1e12 too, nested model included."""
    import typing

    from scalerl.music.finetune import FinetuneConfig
    from scalerl.music.pretrain import PretrainConfig
    from scalerl.music.rewards import RewardConfig

    monkeypatch.chdir(tmp_path)
    config = {"pretrain": PretrainConfig, "rewards": RewardConfig, "finetune": FinetuneConfig}[command]
    given = ["--policy", "p", "--rewards", "r", "--beta", "0"] if command == "finetune" else []
    failures = []
    for name, kind in field_types(config, "", type(None)).items():
        if int in (set(typing.get_args(kind)) or {kind}) and name not in ("seed",):
            code = main(["chords", command, *given, "--" + name.replace("_", "-"), HUGE])
            err = capsys.readouterr().err.strip()
            if code != 2 or len(err.splitlines()) != 1 or "must be" not in err:
                failures.append((name, code, err[-150:]))
    assert not failures, failures
    assert not (tmp_path / "runs").exists()
