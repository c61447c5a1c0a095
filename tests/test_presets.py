"""Presets: a paper's settings as defaults under `scalerl train --preset NAME`; the flags given beside them win."""

import pytest

from scalerl.checks import ConfigError
from scalerl.cli import parse_train_config
from scalerl.presets import preset_names, read_preset


def test_a_preset_sets_the_protocol_and_flags_beside_it_win():
    pytest.importorskip("ale_py")
    config = parse_train_config(["--preset", "atari100k", "--env", "atari:pong", "--steps", "500"])
    assert (config.agent, config.steps, config.eval_every, config.eval_episodes) == ("der", 500, 0, 100)
    assert config.env_opts.sticky_actions == 0.0 and config.env_opts.episodic_life
    assert config.algo.n_step == 10  # DER's own settings come with its agent
    assert not config.env_kwargs(training=False).get("episodic_life")  # evaluation plays the plain game


def test_every_preset_builds_a_valid_config_on_its_suite():
    tasks = {"atari": "atari:pong", "mujoco": "mujoco:Hopper-v5"}
    for name in preset_names():
        needs = read_preset(name)["needs"]
        pytest.importorskip({"atari": "ale_py", "mujoco": "mujoco"}[needs])
        config = parse_train_config([f"--preset={name}", "--env", tasks[needs], "--algo.learning-starts", "7"])
        assert config.algo.learning_starts == 7


def test_a_preset_on_the_wrong_suite_or_an_unknown_one_is_one_line():
    with pytest.raises(ConfigError, match="preset atari100k \\(atari tasks"):
        parse_train_config(["--preset", "atari100k"])
    with pytest.raises(ConfigError, match="unknown preset 'nope'; valid: atari100k"):
        parse_train_config(["--preset", "nope"])
