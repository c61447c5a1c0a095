"""k-nearest-neighbour mutual information against closed forms."""

import numpy as np
import pytest

from scalerl import ConfigError
from scalerl.diagnostics.information import discrete_mi, ksg_mi


@pytest.mark.parametrize("rho", [0.0, 0.6, 0.9])
def test_ksg_matches_the_gaussian_closed_form(rho):
    """Bivariate Gaussian with correlation rho: I = -0.5 log(1 - rho^2)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(3000)
    y = rho * x + np.sqrt(1 - rho**2) * rng.standard_normal(3000)
    assert ksg_mi(x, y) == pytest.approx(-0.5 * np.log(1 - rho**2), abs=0.03)


def test_ksg_in_several_dimensions_adds_independent_parts():
    """Two independent correlated pairs stacked: the information adds up."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 2))
    y = 0.8 * x + 0.6 * rng.standard_normal((3000, 2))
    assert ksg_mi(x, y) == pytest.approx(-np.log(1 - 0.64), abs=0.08)


def test_discrete_labels_from_independent_to_fully_determined():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, 3000)
    noise = rng.standard_normal((3000, 2))
    assert abs(discrete_mi(noise, labels)) < 0.03
    separated = noise + 20.0 * labels[:, None]
    assert discrete_mi(separated, labels) == pytest.approx(np.log(4), abs=0.03)


def test_bad_samples_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="paired samples"):
        ksg_mi(np.zeros(10), np.zeros(9))
    with pytest.raises(ConfigError, match="more than 3 samples"):
        ksg_mi(np.zeros(3), np.zeros(3))


def test_probing_a_ppo_run_measures_both_latents(tmp_path):
    from scalerl import train
    from scalerl.cli import main
    from scalerl.probe import probe_run

    train(env="classic:CartPole-v1", agent="ppo", steps=2048, num_envs=4, eval_every=0, eval_episodes=1,
          run_dir=str(tmp_path / "ppo"), progress="off", algo={"encoders": "separate"})
    result = probe_run(tmp_path / "ppo", steps=256)
    assert set(result) == {"actor", "critic"}
    for latent in result.values():
        assert set(latent) == {"observation", "value", "action", "env_copy"}
        assert latent["observation"] > 0.5  # a CartPole trunk is a smooth function of its 4 inputs
    train(env="classic:CartPole-v1", steps=300, eval_every=0, eval_episodes=1, run_dir=str(tmp_path / "dqn"),
          progress="off")
    assert main(["probe", str(tmp_path / "dqn")]) == 2


def test_a_run_on_levels_is_probed_one_level_per_copy(tmp_path):
    from scalerl import train
    from scalerl.probe import probe_envs, probe_run
    from scalerl.run import load_agent

    train(env="minatar:breakout", agent="ppo", steps=512, num_envs=4, eval_every=0, eval_episodes=1,
          run_dir=str(tmp_path / "ppo"), progress="off", env_opts={"num_levels": 8, "start_level": 20},
          algo={"rollout_steps": 64, "minibatches": 2})
    config, _ = load_agent(tmp_path / "ppo", device="cpu")
    envs, name = probe_envs(config, 8)
    assert name == "level"
    assert [int(env.reset(seed=i)[1]["level"][0]) for i, env in enumerate(envs)] == list(range(20, 28))
    result = probe_run(tmp_path / "ppo", steps=128)
    assert set(result["actor"]) == {"observation", "value", "action", "level"}
    with pytest.raises(ConfigError, match="only 8"):
        probe_run(tmp_path / "ppo", steps=128, num_envs=16)


def test_the_probe_hook_logs_both_latents_during_ppo_training(tmp_path):
    import json

    from scalerl import ConfigError, train

    train(env="classic:CartPole-v1", agent="ppo", steps=2048, num_envs=4, eval_every=0, eval_episodes=1,
          run_dir=str(tmp_path / "ppo"), progress="off", log_every=512, hooks=["probe"],
          hook_opts={"probe": {"every": 2, "samples": 128}}, algo={"encoders": "separate"})
    records = [json.loads(line) for line in (tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()]
    probed = [r for r in records if "mi/actor.observation" in r]
    assert [r["step"] for r in probed] == [512, 1536]  # updates 0 and 2 of 4 (512 steps each)
    assert {"mi/critic.value", "mi/actor.action", "mi/critic.observation"} <= set(probed[0])
    assert probed[-1]["mi/critic.value"] > 0.3  # the critic's latent determines its value
    with pytest.raises(ConfigError, match="hook probe reads an actor's and a critic's latents .*dqn names none"):
        train(env="classic:CartPole-v1", steps=100, run_dir=str(tmp_path / "dqn"), progress="off", hooks=["probe"])
