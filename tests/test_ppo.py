"""PPO: advantages worked out by hand, the encoder options, a solved CartPole, exact resumes."""

import gymnasium as gym
import numpy as np
import pytest

from scalerl import ConfigError, train
from scalerl.agents.base import AgentSpec
from scalerl.agents.ppo import PPO, PPOConfig
from scalerl.loops.on_policy import Rollout
from scalerl.nets import NetConfig, parameter_count

VECTOR = gym.spaces.Box(-1, 1, (4,), np.float32)


def test_gae_bootstraps_a_truncation_from_its_final_observation():
    """gamma 0.9, lambda 0.5, values 0.5 at every step, rewards 1. The episode is truncated after step 1
    (its final observation is worth 2) and the rollout ends after step 2 (next observation worth 3).
    Step 2: delta = 1 + 0.9 * 3 - 0.5 = 3.2, A = 3.2. Step 1 ends the episode: its reward becomes
    1 + 0.9 * 2 = 2.8, delta = 2.8 - 0.5 = 2.3, A = 2.3. Step 0: delta = 1 + 0.9 * 0.5 - 0.5 = 0.95,
    A = 0.95 + 0.45 * 2.3 = 1.985."""
    agent = PPO(PPOConfig(gamma=0.9, gae_lambda=0.5, rollout_steps=3, minibatches=1),
                AgentSpec(VECTOR, gym.spaces.Discrete(2)))
    final, following = np.full((1, 4), 0.2, np.float32), np.full((1, 4), 0.3, np.float32)
    agent.values_of = lambda obs: np.where(np.isclose(obs[:, 0], 0.2), 2.0, 3.0)
    rollout = Rollout(obs=np.zeros((3, 1, 4), np.float32), actions=np.zeros((3, 1), np.int64),
                      rewards=np.ones((3, 1), np.float32), terminated=np.zeros((3, 1), bool),
                      truncated=np.array([[False], [True], [False]]),
                      extras={"value": np.full((3, 1), 0.5, np.float32)},
                      next_obs=following, final_obs=final, final_index=np.array([[1, 0]]))
    advantages, returns = agent.advantages(rollout, rollout.rewards)
    assert advantages[:, 0].tolist() == pytest.approx([1.985, 2.3, 3.2])
    assert returns[:, 0].tolist() == pytest.approx([2.485, 2.8, 3.7])
    rollout.terminated[1, 0], rollout.truncated[1, 0] = True, False  # a termination is not bootstrapped
    advantages, _ = agent.advantages(rollout, rollout.rewards)
    assert advantages[1, 0] == pytest.approx(0.5)


def test_encoder_options_share_split_or_match_parameters():
    frames = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    spec = AgentSpec(frames, gym.spaces.Discrete(6), net=NetConfig(hidden=64, depth=1))
    shared, separate, matched = (PPO(PPOConfig(encoders=kind), spec)
                                 for kind in ("shared", "separate", "shared_matched"))
    assert shared.network.critic_trunk is shared.network.actor_trunk
    assert separate.network.critic_trunk is not separate.network.actor_trunk
    assert set(separate.modules()) == {"actor", "critic"} and set(shared.modules()) == {"encoder", "actor", "critic"}
    target = parameter_count(separate.network)
    assert parameter_count(shared.network) < 0.6 * target
    assert parameter_count(matched.network) == pytest.approx(target, rel=0.02)


def test_bad_settings_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="algo.minibatches must be a divisor of rollout_steps x envs = 128"):
        PPO(PPOConfig(minibatches=3), AgentSpec(VECTOR, gym.spaces.Discrete(2)))
    with pytest.raises(ConfigError, match="algo.normalize_obs must be off for pixel observations"):
        PPO(PPOConfig(normalize_obs=True),
            AgentSpec(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(2)))
    with pytest.raises(ConfigError, match="discrete or vector continuous actions for ppo"):
        PPO(PPOConfig(), AgentSpec(VECTOR, gym.spaces.MultiDiscrete([2, 2])))


def test_ppo_solves_cartpole(tmp_path):
    """The RL Zoo's CartPole settings (8 envs x 32 steps, 20 epochs, gamma 0.98, lambda 0.8, lr 1e-3)."""
    summary = train(env="classic:CartPole-v1", agent="ppo", steps=100_000, num_envs=8, eval_every=10_000,
                    stop_at_return=475, run_dir=str(tmp_path / "run"), progress="off",
                    algo={"rollout_steps": 32, "minibatches": 1, "epochs": 20, "gamma": 0.98, "gae_lambda": 0.8,
                          "entropy_coef": 0.0, "optim": {"lr": 1e-3}})
    assert summary["best_eval_return"] >= 475


def test_continuous_ppo_with_normalization_resumes_exactly(tmp_path, resumes_exactly, run_records):
    settings = {"env": "classic:Pendulum-v1", "agent": "ppo", "steps": 2048, "num_envs": 2, "eval_every": 1024,
                "eval_episodes": 1, "checkpoint_every": 1024, "log_every": 256, "progress": "off",
                "net": {"hidden": 16},
                "algo": {"rollout_steps": 64, "normalize_obs": True, "normalize_rewards": True, "minibatches": 2,
                         "dynamics": "actor"}}
    resumes_exactly(settings, 1024)
    assert "action_std" in run_records(tmp_path / "whole" / "metrics.jsonl")[-1]


def test_the_written_out_distributions_match_torch_distributions():
    import torch

    torch.manual_seed(0)
    discrete = PPO(PPOConfig(), AgentSpec(VECTOR, gym.spaces.Discrete(5)))
    logits, actions = torch.randn(7, 5), torch.randint(0, 5, (7,))
    reference = torch.distributions.Categorical(logits=logits)
    assert torch.allclose(discrete.log_prob(logits, actions), reference.log_prob(actions), atol=1e-6)
    assert torch.allclose(discrete.entropy(logits), reference.entropy(), atol=1e-6)
    continuous = PPO(PPOConfig(), AgentSpec(VECTOR, gym.spaces.Box(-1, 1, (3,), np.float32)))
    with torch.no_grad():
        continuous.log_std.copy_(torch.tensor([-0.5, 0.0, 0.3]))
    mean, sample = torch.randn(7, 3), torch.randn(7, 3)
    normal = torch.distributions.Normal(mean, continuous.log_std.exp())
    assert torch.allclose(continuous.log_prob(mean, sample), normal.log_prob(sample).sum(-1), atol=1e-5)
    assert torch.allclose(continuous.entropy(mean), normal.entropy().sum(-1), atol=1e-5)
    draws, log_probs = discrete.sample(logits[:1].expand(4000, 5))
    frequencies = np.bincount(draws, minlength=5) / len(draws)
    assert np.allclose(frequencies, logits[0].softmax(-1).numpy(), atol=0.03)
    assert np.allclose(log_probs, logits[0].log_softmax(-1).numpy()[draws], atol=1e-6)


def test_gaussian_draws_have_the_policy_log_density():
    import torch

    agent = PPO(PPOConfig(), AgentSpec(VECTOR, gym.spaces.Box(-1, 1, (2,), np.float32)))
    with torch.no_grad():
        agent.log_std.copy_(torch.tensor([-1.0, 0.5]))
    mean = torch.tensor([[0.3, -0.2]]).expand(5000, 2)
    actions, log_probs = agent.sample(mean)
    assert np.allclose(actions.mean(0), [0.3, -0.2], atol=0.05)
    assert np.allclose(actions.std(0), np.exp([-1.0, 0.5]), rtol=0.05)
    assert np.allclose(log_probs, agent.log_prob(mean, torch.as_tensor(actions)).detach().numpy(), atol=1e-5)


def test_running_statistics_match_numpy_over_batches():
    from scalerl.normalization import RunningMeanStd

    data = np.random.default_rng(0).normal(3.0, 2.0, (300, 4))
    stats = RunningMeanStd((4,))
    for start in range(0, 300, 7):
        stats.update(data[start:start + 7])
    assert np.allclose(stats.mean, data.mean(0), atol=1e-4) and np.allclose(stats.var, data.var(0), rtol=1e-3)


def test_dynamics_prediction_trains_the_chosen_trunk_and_its_models(tmp_path):
    """On the critic's separate trunk, the objective's gradient reaches that trunk and not the actor's; in a
    run on the actor's trunk, the forward and inverse models learn (their loss falls)."""
    import torch

    agent = PPO(PPOConfig(encoders="separate", dynamics="critic", rollout_steps=8, minibatches=1),
                AgentSpec(VECTOR, gym.spaces.Discrete(3), num_envs=2))
    obs = torch.randn(6, 4)
    latent, following = agent.network.critic_trunk(obs[:3]), agent.network.critic_trunk(obs[3:])
    agent.objective("dynamics").dynamics.loss(latent, following, torch.tensor([0, 1, 2])).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.network.critic_trunk.parameters())
    assert all(p.grad is None for p in agent.network.actor_trunk.parameters())
    summary = train(env="classic:CartPole-v1", agent="ppo", steps=4096, num_envs=4, eval_every=0, eval_episodes=1,
                    run_dir=str(tmp_path / "run"), progress="off", log_every=512,
                    algo={"encoders": "separate", "dynamics": "actor", "rollout_steps": 128})
    import json

    losses = [json.loads(line)["dynamics_loss"]
              for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0]
    assert "dynamics" in summary["parameters"]


def test_value_distillation_phase_fits_returns_into_the_actor_and_holds_the_policy(tmp_path, resumes_exactly,
                                                                                   run_records):
    import torch

    agent = PPO(PPOConfig(encoders="separate", value_distillation="actor", aux_every=2, aux_epochs=20,
                          rollout_steps=16, minibatches=1), AgentSpec(VECTOR, gym.spaces.Discrete(3), num_envs=2))
    torch.manual_seed(0)
    obs = torch.randn(64, 4)
    returns = obs[:, 0] * 2.0 + 1.0  # a value the actor's latents can carry
    ppg = agent.objective("value_distillation")
    ppg.aux_memory = [(obs[:32], returns[:32]), (obs[32:], returns[32:])]
    before_policy = agent.network(obs)[0].detach()
    before = ((ppg.aux_value(agent.network.actor_trunk(obs)).squeeze(-1) - returns) ** 2).mean().item()
    metrics = ppg.phase()
    after = ((ppg.aux_value(agent.network.actor_trunk(obs)).squeeze(-1) - returns) ** 2).mean().item()
    assert after < 0.5 * before and ppg.aux_memory == []
    assert agent.policy_kl(before_policy, agent.network(obs)[0].detach(), None).mean() < 0.05
    assert set(metrics) == {"aux_distill_loss", "aux_clone_kl"}

    settings = {"env": "classic:CartPole-v1", "agent": "ppo", "steps": 1024, "num_envs": 2, "eval_every": 512,
                "eval_episodes": 1, "checkpoint_every": 512, "log_every": 128, "progress": "off",
                "algo": {"rollout_steps": 64, "minibatches": 2, "value_distillation": "actor", "aux_every": 3}}
    resumes_exactly(settings, 512)
    assert any("aux_clone_kl" in record for record in run_records(tmp_path / "whole" / "metrics.jsonl"))
