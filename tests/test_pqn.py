"""PQN: Q(lambda) targets worked out by hand, LayerNorm by default, a solved CartPole, an exact resume."""

import gymnasium as gym
import numpy as np
import pytest
from torch import nn

from scalerl import ConfigError, train
from scalerl.agents.base import AgentSpec
from scalerl.agents.pqn import PQN, PQNConfig
from scalerl.loops.on_policy import Rollout

VECTOR = gym.spaces.Box(-1, 1, (4,), np.float32)


def test_q_lambda_targets_by_hand():
    """gamma 0.9, lambda 0.5, rewards 1, greedy values at collection max_q = (10, 20, 30); the last
    observation's greedy value is 40. G_2 = 1 + 0.9 * 40 = 37; G_1 = 1 + 0.9 (0.5 * 37 + 0.5 * 30) = 31.15;
    G_0 = 1 + 0.9 (0.5 * 31.15 + 0.5 * 20) = 24.0175. A termination at step 1 makes G_1 = 1 and
    G_0 = 1 + 0.9 (0.5 * 1 + 0.5 * 20) = 10.45; a truncation there bootstraps from the final observation
    (greedy value 5): G_1 = 1 + 0.9 * 5 = 5.5."""
    agent = PQN(PQNConfig(gamma=0.9, q_lambda=0.5, rollout_steps=3, minibatches=1),
                AgentSpec(VECTOR, gym.spaces.Discrete(2)))
    agent.greedy_values = lambda obs: np.where(np.isclose(obs[:, 0], 0.4), 40.0, 5.0)
    rollout = Rollout(obs=np.zeros((3, 1, 4), np.float32), actions=np.zeros((3, 1), np.int64),
                      rewards=np.ones((3, 1), np.float32), terminated=np.zeros((3, 1), bool),
                      truncated=np.zeros((3, 1), bool),
                      extras={"max_q": np.array([[10.0], [20.0], [30.0]], np.float32)},
                      next_obs=np.full((1, 4), 0.4, np.float32), final_obs=np.zeros((0, 4), np.float32),
                      final_index=np.zeros((0, 2), np.int64))
    assert agent.q_lambda_returns(rollout)[:, 0].tolist() == pytest.approx([24.0175, 31.15, 37.0])
    rollout.terminated[1, 0] = True
    assert agent.q_lambda_returns(rollout)[:2, 0].tolist() == pytest.approx([10.45, 1.0])
    rollout.terminated[1, 0], rollout.truncated[1, 0] = False, True
    rollout.final_obs, rollout.final_index = np.zeros((1, 4), np.float32), np.array([[1, 0]])
    assert agent.q_lambda_returns(rollout)[1, 0] == pytest.approx(5.5)


def test_layer_norm_is_in_the_q_network_and_epsilon_decays_over_a_tenth_of_the_run():
    agent = PQN(PQNConfig(), AgentSpec(VECTOR, gym.spaces.Discrete(2), num_envs=4, run_steps=10_000))
    assert any(isinstance(m, nn.LayerNorm) for m in agent.q.modules())
    assert agent.epsilon() == 1.0
    agent.env_steps = 500
    assert agent.epsilon() == pytest.approx(0.005 + 0.995 * 0.5)
    agent.env_steps = 1_000
    assert agent.epsilon() == pytest.approx(0.005)
    plain = PQN(PQNConfig(layer_norm=False), AgentSpec(VECTOR, gym.spaces.Discrete(2), num_envs=4))
    assert not any(isinstance(m, nn.LayerNorm) for m in plain.q.modules())
    with pytest.raises(ConfigError, match="discrete actions for pqn"):
        PQN(PQNConfig(), AgentSpec(VECTOR, gym.spaces.Box(-1, 1, (2,), np.float32), num_envs=4))


def test_pqn_solves_cartpole(tmp_path):
    summary = train(env="classic:CartPole-v1", agent="pqn", steps=100_000, num_envs=16, eval_every=10_000,
                    stop_at_return=475, run_dir=str(tmp_path / "run"), progress="off",
                    algo={"minibatches": 8, "epochs": 4, "q_lambda": 0.9, "epsilon_end": 0.05, "epsilon_fraction": 0.2,
                          "optim": {"lr": 1e-3}})
    assert summary["best_eval_return"] >= 475


def test_a_killed_pqn_run_resumes_exactly(resumes_exactly):
    settings = {"env": "classic:CartPole-v1", "agent": "pqn", "steps": 4096, "num_envs": 8, "eval_every": 2048,
                "eval_episodes": 2, "checkpoint_every": 2048, "log_every": 512, "progress": "off",
                "algo": {"minibatches": 4}}
    resumes_exactly(settings, 2048)
