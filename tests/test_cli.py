import importlib.util
import json
from pathlib import Path

import pytest

from scalerl import ConfigError, TrainConfig
from scalerl.cli import main, parse_train_config


@pytest.mark.parametrize("args, message", [
    (["train", "--agent", "a2c"], "unknown agent 'a2c'; valid: dqn, rainbow, der, sac, td3, mtsac, ppo, pqn"),
    (["train", "--env", "foo:bar"], "unknown env suite 'foo'; valid suites: classic, minatar, atari"),
    (["train", "--env", "minatar:pong"], "unknown minatar task 'pong'"),
    (["train", "--algo.optim.lr", "-1"], "algo.optim.lr must be > 0 (got -1.0)"),
    (["train", "--algo.batch-size", "0"], "algo.batch_size must be > 0 (got 0)"),
    (["train", "--steps", "0"], "steps must be in [1, 1e+12] (got 0)"),
    (["train", "--algo.gamma", "1.5"], "algo.gamma must be in [0.0, 1.0]"),
    (["train", "--stepz", "5"], "unknown option --stepz; did you mean --steps?"),
    (["train", "--algo.learning-rate", "3"], "unknown option --algo.learning-rate"),
    (["train", "--steps", "many"], "--steps must be an integer (got 'many')"),
    (["train", "--device", "gpu"], "--device must be one of auto, cpu, cuda"),
    (["train", "--resume", "/nonexistent/run"], "not a run directory"),
    (["train", "--resume", "run", "--steps", "lots"], "--steps must be a whole number of steps; got 'lots'"),
    (["train", "--resume", "run", "--seed", "3"], "--resume RUN_DIR takes one other option, --steps N"),
    (["train", "--resume", "/nonexistent/run", "--steps", "500"], "not a run directory"),
    (["train", "--env", "classic:Pendulum-v1", "--steps", "10"], "discrete actions for dqn"),
    (["eval", "/nonexistent/run"], "not a run directory"),
    (["fly"], "unknown command 'fly'"),
    (["train", "--algo.buffer-size", "1000000000000"], "needs about 42,840.8 GiB of replay memory"),
    (["train", "--net.width", "100000"], "net.width must be in [0.001, 256.0]"),
    (["train", "--net.capacity", "inf"], "net.capacity must be finite (got inf)"),
    (["train", "--algo.optim.lr", "inf"], "algo.optim.lr must be finite (got inf)"),
    (["train", "--threads", "100000"], "threads must be in [0, 512]"),
    (["train", "--seed", str(2**70)], "seed must be in [0, 2**31)"),
    (["train", "--eval-episodes", "100000000000"], "eval_episodes must be in [0, 1,000,000]"),
    (["train", "--run-dir", "x" * 300], "run_dir must be made of names of at most 255 bytes"),
    (["train", "--run-dir", "taken.txt/run"], "run_dir must be a folder, not under or at an existing file"),
    (["train", "--algo.optim.weight-decay", "-1"], "algo.optim.weight_decay must be >= 0"),
])
def test_bad_input_exits_with_one_clear_line(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken.txt").write_text("a file where a run folder would go")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("scalerl: error: ")
    assert message in err
    assert not (tmp_path / "runs").exists(), "a rejected run must not leave a run directory behind"


def test_python_api_validates_the_same_way():
    with pytest.raises(ConfigError, match="algo.optim.lr must be > 0"):
        TrainConfig(algo={"optim": {"lr": 0.0}})
    with pytest.raises(ConfigError, match="unknown field 'algo.optim.learning_rate'"):
        TrainConfig(algo={"optim": {"learning_rate": 0.1}})
    with pytest.raises(ConfigError, match="unknown field 'algo.learning_rate'"):
        TrainConfig(algo={"learning_rate": 0.1})
    with pytest.raises(ConfigError, match="net.depth must be >= 0"):
        TrainConfig(net={"depth": -1})
    with pytest.raises(ConfigError, match="net.bottleneck must be one of flatten, gap, project, per_conv"):
        TrainConfig(net={"bottleneck": "pool"})


def test_whole_numbers_for_float_fields_are_stored_as_floats():
    """`--set algo.v_max=100` in one sweep and `100.0` in another are the same setting: config.json holds one
    spelling, so comparing configs (the report's config differences) does not tell them apart."""
    config = TrainConfig.from_dict({"agent": "rainbow", "steps": 500, "stop_at_return": 5,
                                    "algo": {"v_max": 100, "double": True, "optim": {"lr": 1}}, "net": {"width": 2}})
    written = json.loads(config.to_json())
    assert json.dumps([written["algo"]["v_max"], written["algo"]["optim"]["lr"], written["net"]["width"],
                       written["stop_at_return"]]) == "[100.0, 1.0, 2.0, 5.0]"
    assert json.dumps([written["steps"], written["algo"]["double"], written["algo"]["atoms"]]) == "[500, true, 51]"


def test_a_network_that_does_not_fit_the_env_is_one_line(tmp_path, capsys):
    code = main(["train", "--env", "classic:CartPole-v1", "--net.bottleneck", "gap", "--steps", "10",
                 "--run-dir", str(tmp_path / "run")])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "scalerl: error: net.bottleneck must be flatten for vector observations "
        "(the MLP input has no feature map) (got 'gap')"]


def test_cli_flags_reach_the_config():
    from scalerl.cli import parse_train_config

    config = parse_train_config(["--env", "minatar:breakout", "--algo.no-double", "--algo.n_step", "3",
                                 "--net.width", "2", "--seed=4"])
    assert config.env == "minatar:breakout" and config.seed == 4
    assert config.algo.double is False and config.algo.n_step == 3
    assert config.net.width == 2.0


def test_envs_and_agents_list(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    assert "minatar: MinAtar" in out and "breakout asterix freeway seaquest space_invaders" in out
    assert main(["envs", "--suite", "minatar"]) == 0
    out = capsys.readouterr().out
    assert "minatar:breakout" in out and "Box(10, 10, 4) bool" in out and "Discrete(3)" in out
    assert main(["envs", "--suite", "nope"]) == 2
    assert main(["agents"]) == 0
    out = capsys.readouterr().out
    assert "dqn" in out and "--algo.n-step" in out


def test_train_then_eval_from_the_cli(capsys, tmp_path):
    run_dir = tmp_path / "run"
    assert main(["train", "--steps", "600", "--run-dir", str(run_dir), "--algo.learning-starts", "200",
                 "--eval-episodes", "2", "--log-every", "200"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 600 and summary["updates"] == 401
    for name in ["config.json", "metrics.jsonl", "eval.jsonl", "summary.json", "checkpoints/latest.pt"]:
        assert (run_dir / name).exists(), name
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [200, 400, 600]
    assert all(r["sps"] > 0 for r in records)
    assert json.loads((run_dir / "config.json").read_text())["run_dir"] == str(run_dir)
    assert main(["eval", str(run_dir), "--episodes", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["returns"]) == 3
    assert main(["train", "--steps", "600", "--run-dir", str(run_dir)]) == 2
    assert "already holds a run" in capsys.readouterr().err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_is_a_clear_error(capsys, tmp_path):
    assert main(["train", "--device", "cuda", "--run-dir", str(tmp_path / "run")]) == 2
    assert "device 'cuda' was requested but torch sees no GPU" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_run_with_learning_starting_at_once_waits_for_a_whole_n_step_window(tmp_path):
    from scalerl import train

    summary = train(env="classic:CartPole-v1", steps=50, run_dir=str(tmp_path / "run"), progress="off",
                    eval_episodes=1, algo={"learning_starts": 0, "n_step": 3})
    assert summary["updates"] == 48  # steps 3 to 50: the first update needs 3 written transitions


def test_every_learning_recipe_is_a_valid_train_config():
    """A recipe's flags are read only when its queue reaches it, hours later: a typo should fail here."""
    path = Path(__file__).parents[1] / "benchmarks" / "learning.py"
    spec = importlib.util.spec_from_file_location("learning_recipes", path)
    learning = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(learning)
    for name, recipe in learning.RECIPES.items():
        config = parse_train_config(recipe["args"])
        assert config.steps == learning.recipe_steps(name), name


def test_a_loaded_policy_acts_as_evaluation_does(tmp_path):
    """scalerl.load_policy(run_dir).act(obs) plays the same episode as `scalerl eval` does, from one
    observation at a time."""
    import numpy as np

    from scalerl import evaluate, load_policy, train

    train(env="classic:CartPole-v1", steps=1500, eval_every=0, eval_episodes=1, run_dir=str(tmp_path / "run"),
          progress="off", algo={"learning_starts": 200})
    policy = load_policy(tmp_path / "run")
    envs = policy.make_env(num_envs=1, seed=7)
    obs, _ = envs.reset(seed=7)
    total, done = 0.0, False
    while not done:
        action = policy.act(obs[0])
        assert np.shape(action) == policy.action_space.shape
        obs, reward, terminated, truncated, _ = envs.step(np.asarray([action]))
        total += float(reward[0])
        done = bool(terminated[0] or truncated[0])
    assert total == evaluate(tmp_path / "run", episodes=1, num_envs=1, seed=7)["return_mean"]
    assert policy.act(np.zeros((3, 4), np.float32)).shape == (3,)


def test_train_help_is_short_and_points_to_every_option(capsys):
    """`scalerl train --help` shows the options most runs set with their defaults and meanings in one screen;
    `--help-all` shows every option, the agent's included."""
    from scalerl.cli import main

    assert main(["train", "--help"]) == 0
    short = capsys.readouterr().out
    assert len(short.splitlines()) < 40 and "--help-all" in short
    assert "--steps" in short and "100000" in short and "Environment steps to train for" in short
    with pytest.raises(SystemExit):
        main(["train", "--agent", "sac", "--help-all"])
    full = capsys.readouterr().out
    assert "algo.critic-optim.lr" in full and len(full.splitlines()) > 100
