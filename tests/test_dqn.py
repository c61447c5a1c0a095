import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from scalerl import train
from scalerl.agents import AgentSpec
from scalerl.agents.dqn import DQN, DQNConfig
from scalerl.checks import ConfigError
from scalerl.nets import DuelingHead, NetConfig
from scalerl.replay import Batch

OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
ACTIONS = gym.spaces.Discrete(3)


def agent(**overrides) -> DQN:
    return DQN(DQNConfig(**overrides), AgentSpec(OBS, ACTIONS, net=NetConfig(hidden=8, depth=1)))


class Fixed(nn.Module):
    """Returns the same Q-values for every observation."""

    def __init__(self, values):
        super().__init__()
        self.values = torch.tensor([values])

    def forward(self, obs):
        return self.values.expand(len(obs), -1)


def batch(reward=1.0, discount=0.5) -> Batch:
    return Batch(obs=torch.zeros(1, 3), actions=torch.zeros(1, dtype=torch.long), rewards=torch.tensor([reward]),
                 next_obs=torch.zeros(1, 3), discounts=torch.tensor([discount]))


def test_double_dqn_values_the_online_argmax_with_the_target_network():
    dqn = agent(double=True)
    dqn.q, dqn.target = Fixed([0.0, 5.0, 1.0]), Fixed([10.0, 2.0, 30.0])
    assert dqn.td_target(batch()).item() == pytest.approx(1.0 + 0.5 * 2.0)


def test_plain_dqn_takes_the_target_maximum():
    dqn = agent(double=False)
    dqn.q, dqn.target = Fixed([0.0, 5.0, 1.0]), Fixed([10.0, 2.0, 30.0])
    assert dqn.td_target(batch()).item() == pytest.approx(1.0 + 0.5 * 30.0)


def test_terminal_transitions_do_not_bootstrap():
    dqn = agent()
    dqn.target = Fixed([10.0, 20.0, 30.0])
    assert dqn.td_target(batch(reward=2.0, discount=0.0)).item() == 2.0


def test_dueling_head_is_value_plus_centred_advantage():
    head = DuelingHead(4, 3)
    features = torch.randn(5, 4)
    q = head(features)
    value, advantage = head.value(features), head.advantage(features)
    assert torch.allclose(q.mean(dim=1, keepdim=True), value, atol=1e-6)
    assert torch.allclose(q - value, advantage - advantage.mean(dim=1, keepdim=True), atol=1e-6)


def test_epsilon_falls_linearly_then_stays():
    dqn = agent(epsilon_start=1.0, epsilon_end=0.1, epsilon_decay_steps=100)
    assert dqn.epsilon() == 1.0
    dqn.env_steps = 50
    assert dqn.epsilon() == pytest.approx(0.55)
    dqn.env_steps = 10_000
    assert dqn.epsilon() == pytest.approx(0.1)


def test_soft_target_update_moves_part_way():
    dqn = agent(tau=0.25)
    with torch.no_grad():
        for p in dqn.q.parameters():
            p.fill_(1.0)
        for p in dqn.target.parameters():
            p.fill_(0.0)
    dqn.update_target()
    assert all(torch.allclose(p, torch.full_like(p, 0.25)) for p in dqn.target.parameters())


def test_hard_target_update_follows_the_schedule():
    dqn = agent(target_update_every=3)
    data = Batch(obs=torch.randn(8, 3), actions=torch.randint(0, 3, (8,)), rewards=torch.randn(8),
                 next_obs=torch.randn(8, 3), discounts=torch.full((8,), 0.9))
    dqn.update(data)
    dqn.update(data)
    assert not all(torch.equal(a, b) for a, b in zip(dqn.q.parameters(), dqn.target.parameters()))
    dqn.update(data)
    assert all(torch.equal(a, b) for a, b in zip(dqn.q.parameters(), dqn.target.parameters()))


def test_greedy_acting_is_deterministic_and_exploration_covers_all_actions():
    dqn = agent(epsilon_start=1.0, epsilon_end=1.0)
    obs = np.zeros((64, 3), np.float32)
    assert len(set(dqn.act(obs, explore=False)[0])) == 1
    assert set(dqn.act(obs, explore=True)[0]) == {0, 1, 2}


def test_evaluation_epsilon_replaces_that_share_of_greedy_actions_and_leaves_training_steps_alone():
    dqn = agent(eval_epsilon=0.3)
    obs = np.zeros((20_000, 3), np.float32)
    greedy = dqn.greedy(obs[:1], noise=False)[0]
    actions = dqn.act(obs, explore=False)[0]
    assert abs(np.mean(actions != greedy) - 0.3 * 2 / 3) < 0.01  # a random action is the greedy one a third of the time
    assert set(actions) == {0, 1, 2} and dqn.env_steps == 0
    with pytest.raises(ConfigError, match=r"algo.eval_epsilon must be in \[0.0, 1.0\]"):
        DQNConfig(eval_epsilon=1.5)


def test_dqn_learns_cartpole_quickly(tmp_path):
    """Within a minute on 2 CPU cores DQN balances the pole far longer than a random policy (~22 steps)."""
    summary = train(steps=15_000, run_dir=str(tmp_path / "run"), eval_every=5_000, stop_at_return=150, progress="off")
    assert summary["best_eval_return"] >= 150, summary


def test_evaluation_follows_each_suites_protocol_unless_set():
    """DQN evaluates Atari and CALE with epsilon 0.001 (Dopamine's: a greedy policy that never presses FIRE
    stalls to the frame cap) and everything else greedily; an explicit --algo.eval-epsilon is kept, and
    config.json records the rate used."""
    from scalerl import TrainConfig

    assert TrainConfig(env="classic:CartPole-v1").resolved().algo.eval_epsilon == 0.0
    assert TrainConfig(env="classic:CartPole-v1", algo={"eval_epsilon": 0.05}).resolved().algo.eval_epsilon == 0.05
    pytest.importorskip("ale_py", reason="pip install -e '.[atari]'")
    assert TrainConfig(env="atari:breakout").resolved().algo.eval_epsilon == 0.001
    assert TrainConfig(env="atari:breakout", algo={"eval_epsilon": 0.0}).resolved().algo.eval_epsilon == 0.0
