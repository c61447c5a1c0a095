"""SAC and TD3: their targets and log-probabilities against explicit formulas, exact resume, and learning."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from scalerl import ConfigError, train
from scalerl.agents import SAC, TD3, AgentSpec, SACConfig, TD3Config
from scalerl.nets import NetConfig
from scalerl.replay import Batch

OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
ACTIONS = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32))


def spec() -> AgentSpec:
    return AgentSpec(OBS, ACTIONS, net=NetConfig(hidden=16, depth=1))


def batch(size: int = 8) -> Batch:
    return Batch(obs=torch.randn(size, 3),
                 actions=torch.rand(size, 2) * torch.tensor([4.0, 1.0]) - torch.tensor([2.0, 0.0]),
                 rewards=torch.randn(size), next_obs=torch.randn(size, 3), discounts=torch.full((size,), 0.9))


def test_the_squashed_gaussian_log_probability_is_the_change_of_variables():
    torch.manual_seed(0)
    sac = SAC(SACConfig(), spec())
    obs = torch.randn(64, 3)
    action, log_prob = sac.actor.sample(obs)
    mean, log_std = sac.actor.distribution(obs)
    squashed = torch.distributions.TransformedDistribution(torch.distributions.Normal(mean, log_std.exp()),
                                                           [torch.distributions.TanhTransform()])
    clipped = action.clamp(-1 + 1e-6, 1 - 1e-6)
    assert torch.allclose(log_prob, squashed.log_prob(clipped).sum(-1), atol=1e-3)
    assert action.abs().max() <= 1


def test_actions_reach_the_environment_within_its_bounds():
    sac = SAC(SACConfig(learning_starts=0), spec())
    actions, extras = sac.act(np.random.default_rng(0).uniform(-1, 1, (256, 3)).astype(np.float32), explore=True)
    assert extras == {} and actions.shape == (256, 2)
    assert np.all(actions >= ACTIONS.low) and np.all(actions <= ACTIONS.high)
    corners = sac.scaling.to_env(torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))
    assert np.allclose(corners, [ACTIONS.low, ACTIONS.high])  # the unit box's corners are the env's bounds
    unit = sac.scaling.to_unit(torch.as_tensor(actions))
    assert unit.abs().max() <= 1 + 1e-6
    assert np.allclose(sac.scaling.to_env(unit), actions, atol=1e-6)


class Constant(nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, obs, action=None):
        shape = (len(obs),) if action is not None else (len(obs), 2)
        return torch.full(shape, self.value)


def test_td3_target_is_the_smaller_target_critic_without_smoothing_noise():
    td3 = TD3(TD3Config(policy_noise=0.0), spec())
    td3.target1, td3.target2, td3.target_actor = Constant(5.0), Constant(3.0), Constant(0.0)
    data = batch()
    assert torch.allclose(td3.critic_target(data), data.rewards + 0.9 * 3.0)


def test_td3_smoothing_noise_is_clipped():
    td3 = TD3(TD3Config(policy_noise=100.0, noise_clip=0.25), spec())
    seen = []
    td3.target_actor = Constant(0.0)
    td3.target1 = td3.target2 = lambda obs, action: seen.append(action) or action.sum(-1)
    td3.critic_target(batch(512))
    assert seen[0].abs().max() == pytest.approx(0.25)


def test_sac_target_subtracts_the_temperature_times_the_log_probability():
    sac = SAC(SACConfig(alpha=0.5, autotune=False), spec())
    sac.target1, sac.target2 = Constant(2.0), Constant(4.0)
    data = batch()
    torch.manual_seed(1)
    _, log_prob = sac.actor.sample(data.next_obs)
    torch.manual_seed(1)
    assert torch.allclose(sac.critic_target(data, sac.alpha), data.rewards + 0.9 * (2.0 - 0.5 * log_prob), atol=1e-6)


def test_the_temperature_follows_the_entropy_target():
    """Entropy above the target lowers alpha; a fixed alpha never moves."""
    high = SAC(SACConfig(target_entropy_scale=-5.0), spec())  # target entropy +10: far above the policy's
    low = SAC(SACConfig(target_entropy_scale=5.0), spec())  # target entropy -10: far below
    fixed = SAC(SACConfig(autotune=False), spec())
    for agent in (high, low, fixed):
        for _ in range(20):
            agent.update(batch(32))
    assert float(high.alpha) > 0.2 > float(low.alpha)
    assert float(fixed.alpha) == pytest.approx(0.2)
    assert set(high.optimizers()) == {"actor", "critic", "alpha"}
    assert high.optimizers()["critic"].modules == ("critic1", "critic2")


def test_pixel_sac_trains_its_encoder_through_the_critic_only():
    """The actor reads detached features: its backward leaves the encoder's gradients as the critic left them."""
    from scalerl.hooks import Hook, HookList

    frames = gym.spaces.Box(0, 255, (6, 40, 40), np.uint8)
    sac = SAC(SACConfig(), AgentSpec(frames, ACTIONS, net=NetConfig(hidden=16, depth=1, width=0.25)))
    assert set(sac.modules()) == {"encoder", "actor", "critic1", "critic2"}
    assert sac.optimizers()["critic"].modules == ("encoder", "critic1", "critic2")
    seen = {}

    class Grads(Hook):
        name = "grads"

        def __init__(self):
            pass

        def after_backward(self, optimizer, modules):
            seen[optimizer] = [p.grad.clone() for p in sac.encoder.parameters()]

    sac.hooks = HookList([Grads()])
    data = Batch(obs=torch.randint(0, 255, (8, 6, 40, 40), dtype=torch.uint8), actions=torch.zeros(8, 2),
                 rewards=torch.randn(8), next_obs=torch.randint(0, 255, (8, 6, 40, 40), dtype=torch.uint8),
                 discounts=torch.full((8,), 0.9))
    before = [p.clone() for p in sac.target_encoder.parameters()]
    sac.update(data)
    assert any(g.abs().sum() > 0 for g in seen["critic"])
    assert all(torch.equal(a, b) for a, b in zip(seen["critic"], seen["actor"]))
    moved = [not torch.equal(a, b) for a, b in zip(before, sac.target_encoder.parameters())]
    assert any(moved)  # the target encoder follows the encoder (Polyak)


def test_pixel_sac_runs_on_cale_with_frame_replay(tmp_path):
    pytest.importorskip("ale_py")
    summary = train(env="cale:breakout", agent="sac", steps=240, eval_every=0, eval_episodes=1, log_every=120,
                    run_dir=str(tmp_path / "run"), progress="off", net={"hidden": 32, "width": 0.25},
                    algo={"learning_starts": 120, "batch_size": 8, "buffer_size": 1000})
    assert summary["updates"] == 121 and set(summary["parameters"]) == {"encoder", "actor", "critic1", "critic2"}


def test_discrete_or_pixel_environments_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="bounded continuous actions for sac"):
        SAC(SACConfig(), AgentSpec(OBS, gym.spaces.Discrete(3)))
    with pytest.raises(ConfigError, match="vector observations for td3"):
        TD3(TD3Config(), AgentSpec(gym.spaces.Box(0, 255, (3, 64, 64), np.uint8), ACTIONS))
    with pytest.raises(ConfigError, match="net.encoder must be auto or mlp for vector observations"):
        SAC(SACConfig(), AgentSpec(OBS, ACTIONS, net=NetConfig(encoder="nature_cnn")))


@pytest.mark.parametrize("agent", ["sac", "td3"])
def test_a_killed_run_resumes_exactly(resumes_exactly, agent):
    settings = {"env": "classic:Pendulum-v1", "agent": agent, "steps": 1200, "eval_every": 600, "eval_episodes": 2,
                "checkpoint_every": 600, "log_every": 100, "progress": "off", "net": {"hidden": 16},
                "algo": {"learning_starts": 300, "batch_size": 32}}
    resumes_exactly(settings, 600)


@pytest.mark.parametrize("agent, steps, eval_every", [("sac", 6000, 1000), ("td3", 12000, 2000)])
def test_sac_and_td3_swing_the_pendulum_up(tmp_path, agent, steps, eval_every):
    """Random play scores about -1200 to -1500; both agents pass -400 (best evaluation; seeds 0-2 reached -146
    to -203 here), and the run stops there. SAC gets there by 4k-5k steps (best within 6k: -151, -173, -199),
    TD3's delayed actor later (within 6k only one seed of three). TD3 has 12k steps because where it passes
    depends on the CPU: seed 0 passed by 8k on the machines this was written on, but on one with AVX-512
    kernels (2026-12-06) its evaluations were -1619, -1298, -496, -852 and then -153 at 10k."""
    summary = train(env="classic:Pendulum-v1", agent=agent, steps=steps, net={"hidden": 64}, eval_every=eval_every,
                    eval_episodes=5, stop_at_return=-400, run_dir=str(tmp_path / "run"), progress="off",
                    algo={"learning_starts": 1000})
    assert summary["best_eval_return"] >= -400, summary


def test_sac_entropy_in_action_units_is_cleanrls_log_probability():
    """entropy_units=action subtracts the sum of the log half-ranges (CleanRL's log-probability of the
    environment's action); on Pendulum's [-2, 2] that is log 2 per sample, and on [-1, 1] nothing."""
    import math

    import gymnasium as gym
    import numpy as np

    from scalerl.agents import AgentSpec
    from scalerl.agents.sac import SAC, SACConfig
    from scalerl.nets import NetConfig

    def log_probs(units: str, high: float) -> torch.Tensor:
        torch.manual_seed(0)
        spec = AgentSpec(obs_space=gym.spaces.Box(-1, 1, (3,), np.float32),
                         action_space=gym.spaces.Box(-high, high, (1,), np.float32), num_envs=1,
                         device=torch.device("cpu"), seed=0, net=NetConfig(hidden=16))
        agent = SAC(SACConfig(entropy_units=units), spec)
        torch.manual_seed(1)
        return agent.sample(agent.encoder(torch.zeros(4, 3)))[1]

    assert torch.allclose(log_probs("squashed", 2.0) - log_probs("action", 2.0), torch.full((4,), math.log(2.0)))
    assert torch.equal(log_probs("squashed", 1.0), log_probs("action", 1.0))
