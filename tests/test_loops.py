"""The run session, the two loops, the agent contract and hooks."""

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from support import records
from torch import nn

from scalerl import train
from scalerl.agents import AGENTS, Agent, AgentSpec, OnPolicyConfig, Optimized
from scalerl.diagnostics.norms import layer_norms
from scalerl.envs import make_env
from scalerl.evaluation import episode_quotas, run_episodes
from scalerl.loops import Loop, Rollout
from scalerl.replay import ReplayBuffer

DATA = Path(__file__).parent / "data"



def test_dqn_numbers_are_pinned(tmp_path):
    """A fixed-seed CartPole run's training records, recorded before DQN moved onto the off-policy loop of the
    run session: the move (and anything after it) must not change what DQN computes. Re-recorded once, on
    2026-11-26, when epsilon-greedy acting began to draw its coin and its random action in one call (the same
    distribution from a different stream of draws). Floats are compared to 1e-4, not exactly, and only over
    the first 2,000 steps: CPUs with AVX2 and with AVX-512 kernels round matrix products differently, by about
    1e-6 after 250 updates, and the gap grows until an action choice differs (2026-12-06: 2e-3 at step 2,250,
    other episodes by step 3,750). A change to what DQN computes moves these numbers by far more."""
    train(env="classic:CartPole-v1", steps=2000, seed=7, run_dir=str(tmp_path / "run"), log_every=250, eval_every=0,
          eval_episodes=2, checkpoint_every=0, progress="off",
          algo={"learning_starts": 500, "target_update_every": 100, "batch_size": 32})
    expected = records(DATA / "dqn_cartpole_seed7.jsonl")
    assert records(tmp_path / "run" / "metrics.jsonl") == [pytest.approx(record, rel=1e-4) for record in expected]


class Recorder(Agent):
    """A uniform-random on-policy agent that keeps every rollout it is handed, to check what the loop collects."""

    name = "recorder"
    config_class = OnPolicyConfig
    loop = "on_policy"
    description = "test agent"

    def __init__(self, cfg, spec):
        super().__init__(cfg, spec)
        self.net = nn.Linear(4, 2)
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=0.0)
        self.rollouts: list[Rollout] = []
        self.acted = 0

    def act(self, obs, *, explore):
        actions = self.rng.integers(0, 2, size=len(obs))
        self.acted += 1
        return actions, {"counter": np.full(len(obs), self.acted), "obs_sum": obs.sum(1)}

    def update(self, rollout):
        self.rollouts.append(rollout)
        loss = self.net(torch.as_tensor(rollout.obs.reshape(-1, 4))).sum()
        self.step_optimizer("net", loss)
        return {"loss": loss.detach()}

    def modules(self):
        return {"net": self.net}

    def optimizers(self):
        return {"net": Optimized(self.optimizer, ("net",))}

    def state_dict(self):
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        self.rng.bit_generator.state = state["rng"]


@pytest.fixture
def recorder(monkeypatch):
    monkeypatch.setitem(AGENTS, "recorder", Recorder)
    agents = []
    original = Loop.__init__

    def keep(self, config, session, agent, hooks):
        agents.append(agent)
        original(self, config, session, agent, hooks)

    monkeypatch.setattr(Loop, "__init__", keep)
    return agents


def test_on_policy_loop_collects_rollouts_with_what_act_returned(tmp_path, recorder):
    summary = train(env="classic:CartPole-v1", agent="recorder", steps=3 * 64 * 2, num_envs=3, eval_every=0,
                    eval_episodes=2, run_dir=str(tmp_path / "run"), progress="off", algo={"rollout_steps": 64})
    agent = recorder[0]
    assert summary["updates"] == 2 and summary["steps"] == 384 and len(agent.rollouts) == 2
    first, second = agent.rollouts
    assert first.obs.shape == (64, 3, 4) and first.actions.shape == (64, 3) and first.rewards.dtype == np.float32
    assert np.array_equal(first.extras["counter"][:, 0], np.arange(1, 65))
    assert np.allclose(first.extras["obs_sum"], first.obs.sum(-1))
    # The rollouts continue each other, and within one, obs[t + 1] follows obs[t] unless an episode ended.
    assert np.array_equal(first.next_obs, second.obs[0])
    done = first.terminated | first.truncated
    assert done.any() and len(first.final_index) == done.sum()
    for t, n in first.final_index:
        assert done[t, n]
    # CartPole's velocities change every step: an unchanged observation would mean a stale copy.
    continuing = ~done[:-1]
    assert not np.any(np.all(first.obs[1:] == first.obs[:-1], axis=-1) & continuing)


def test_updates_hand_priorities_back_to_the_buffer(tmp_path, monkeypatch):
    from scalerl.agents.dqn import DQN

    handed = []
    update = DQN.update

    def with_priorities(self, batch):
        metrics = update(self, batch)
        metrics["priorities"] = torch.arange(len(batch.rewards), dtype=torch.float32)
        handed.append(batch.indices)
        return metrics

    received = []
    monkeypatch.setattr(DQN, "update", with_priorities)
    monkeypatch.setattr(ReplayBuffer, "update_priorities",
                        lambda self, indices, priorities: received.append((indices, priorities)))
    summary = train(env="classic:CartPole-v1", steps=300, eval_every=0, eval_episodes=1, run_dir=str(tmp_path / "run"),
                    progress="off", algo={"learning_starts": 100, "batch_size": 8})
    assert len(received) == summary["updates"] == 201
    assert all(r[0] is h for r, h in zip(received, handed))
    assert torch.equal(received[0][1], torch.arange(8, dtype=torch.float32))
    assert "priorities" not in json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])


def test_the_norms_hook_logs_per_layer_norms_computed_by_hand(tmp_path):
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 0.0]]))
        net[0].bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
        net[2].weight.copy_(torch.tensor([[1.0, -2.0, 0.5]]))
        net[2].bias.zero_()
    net(torch.tensor([[1.0, 1.0]])).sum().backward()
    # Hidden pre-activations (3, 0, 2): unit 2 is off. d/dw2 = (3, 0, 2), d/db2 = 1; d/dW0 row i = w2_i * x on
    # active units: (1, 1) and (0.5, 0.5); d/db0 = (1, 0, 0.5).
    norms = layer_norms(net)
    assert norms["2"][0] == pytest.approx((9 + 4 + 1) ** 0.5)
    assert norms["0"][0] == pytest.approx((1 + 1 + 0.25 + 0.25 + 1 + 0.25) ** 0.5)
    assert norms["0"][1] == pytest.approx((1 + 4 + 1 + 9 + 1 + 1) ** 0.5)
    assert norms[""][0] == pytest.approx((14 + 3.75) ** 0.5)

    summary = train(env="classic:CartPole-v1", steps=600, eval_every=0, eval_episodes=1, run_dir=str(tmp_path / "run"),
                    progress="off", log_every=100, hooks=["norms"], hook_opts={"norms": {"every": 50}},
                    algo={"learning_starts": 200, "max_grad_norm": 0.0})
    logged = records(tmp_path / "run" / "metrics.jsonl")
    measured = [r for r in logged if "grad_norm/q" in r]
    # Updates start at step 200 (one per step): update 0 falls in the record at step 200, updates 50-400 in the
    # four records after it; none before.
    assert summary["updates"] == 401 and [r["step"] for r in measured] == [200, 300, 400, 500, 600]
    assert {"grad_norm/q.head", "weight_norm/q.torso.0", "grad_norm/q.torso.2", "weight_norm/q"} <= set(measured[0])


def test_a_run_with_hooks_resumes_exactly(resumes_exactly):
    """Crash right after the checkpoint at step 1000 (as a kill would), resume, and compare with a whole run."""
    settings = {"env": "classic:CartPole-v1", "steps": 2000, "eval_every": 1000, "eval_episodes": 2,
                "checkpoint_every": 1000, "log_every": 100, "progress": "off", "hooks": ["norms"],
                "hook_opts": {"norms": {"every": 30}}, "algo": {"learning_starts": 300, "target_update_every": 50}}
    resumes_exactly(settings, 1000)


def test_evaluation_episodes_do_not_depend_on_the_number_of_envs():
    assert episode_quotas(10, 4).tolist() == [3, 3, 2, 2]
    assert episode_quotas(2, 4).tolist() == [1, 1, 0, 0]

    class Alternate:
        def act(self, obs, explore):
            return (np.arange(len(obs)) % 2), {}

    envs = make_env("classic:CartPole-v1", 3, 0)
    result = run_episodes(Alternate(), envs, 7, seed=11)
    assert len(result.returns) == len(result.lengths) == 7 and result.successes is None
    assert result.returns == result.lengths and all(r > 0 for r in result.returns)
    assert run_episodes(Alternate(), envs, 7, seed=11).returns == result.returns


def test_a_rejected_agent_leaves_no_run_directory(tmp_path):
    from scalerl import ConfigError

    with pytest.raises(ConfigError, match="discrete actions for dqn"):
        train(env="classic:Pendulum-v1", steps=10, run_dir=str(tmp_path / "a" / "b"))
    assert not (tmp_path / "a").exists()


def test_agent_spec_defaults_fit_a_space():
    spec = AgentSpec(gym.spaces.Box(-1, 1, (4,), np.float32), gym.spaces.Discrete(2))
    assert spec.num_envs == 1 and spec.device == torch.device("cpu")


def test_hooks_see_each_finished_episode_step_by_step(tmp_path, monkeypatch):
    import scalerl.run
    from scalerl.hooks import Hook, HookList

    class Episodes(Hook):
        name = "episodes"
        wants_episodes = True

        def __init__(self):
            self.seen = []

        def on_episode_end(self, episode):
            self.seen.append(episode)

    hook = Episodes()
    monkeypatch.setattr(scalerl.run, "make_hooks", lambda *args: HookList([hook]))
    summary = train(env="classic:CartPole-v1", steps=300, num_envs=2, eval_every=0, eval_episodes=1, log_every=300,
                    run_dir=str(tmp_path / "run"), progress="off", algo={"learning_starts": 1000})
    logged = records(tmp_path / "run" / "metrics.jsonl")[-1]
    assert len(hook.seen) == summary["episodes"] > 5
    assert {episode.env_index for episode in hook.seen} == {0, 1}
    assert all(episode.rewards.tolist() == [1.0] * episode.length for episode in hook.seen)  # CartPole pays 1 a step
    assert np.mean([episode.episode_return for episode in hook.seen]) == pytest.approx(logged["episode_return"])
    assert all(episode.terminated != episode.truncated for episode in hook.seen)


def test_atari_runs_store_frames_once_and_resume(tmp_path, monkeypatch, crash_after_checkpoint):
    """Atari's vector env cannot be pickled: on resume its episodes restart, and the frame replay must start
    them afresh and end the cut ones by truncation."""
    pytest.importorskip("ale_py")
    from scalerl import resume
    from scalerl.replay import FrameReplayBuffer

    loops = []
    original = Loop.__init__
    monkeypatch.setattr(Loop, "__init__", lambda self, *args: loops.append(self) or original(self, *args))
    settings = {"env": "atari:breakout", "steps": 300, "eval_every": 0, "eval_episodes": 1, "checkpoint_every": 200,
                "log_every": 100, "progress": "off", "net": {"hidden": 32, "width": 0.25},
                "env_opts": {"max_episode_frames": 2000},  # the greedy policy may never serve: cap its episode
                "algo": {"learning_starts": 150, "batch_size": 4, "buffer_size": 1000}}
    with crash_after_checkpoint(200):
        train(run_dir=str(tmp_path / "run"), **settings)
    summary = resume(tmp_path / "run")
    buffer = loops[-1].buffer
    assert isinstance(buffer, FrameReplayBuffer) and summary["steps"] == 300
    assert buffer.truncated[199, 0]  # the episode running at the checkpoint was cut there
    assert buffer.bytes_per_transition < 2 * 84 * 84


def test_a_run_stops_at_the_evaluation_that_reaches_stop_at_return(tmp_path):
    """Stopping early still leaves a finished run: the last log, evaluation and checkpoint at the stopping step,
    a summary that says why it stopped, and a resume that has nothing left to do."""
    from scalerl import ConfigError, resume

    settings = {"env": "classic:CartPole-v1", "steps": 3000, "log_every": 300, "eval_every": 500, "eval_episodes": 2,
                "checkpoint_every": 0, "progress": "off", "algo": {"learning_starts": 200}}
    summary = train(run_dir=str(tmp_path / "stopped"), stop_at_return=0.0, **settings)
    assert summary["steps"] == 500 and summary["stopped_at_return"] is True
    assert [r["step"] for r in records(tmp_path / "stopped" / "eval.jsonl")] == [500]
    assert [r["step"] for r in records(tmp_path / "stopped" / "metrics.jsonl")] == [300, 500]
    assert torch.load(tmp_path / "stopped" / "checkpoints" / "latest.pt", weights_only=False)["step"] == 500
    assert resume(tmp_path / "stopped")["steps"] == 500
    summary = train(run_dir=str(tmp_path / "whole"), stop_at_return=1e9, **settings)
    assert summary["steps"] == 3000 and summary["stopped_at_return"] is False
    with pytest.raises(ConfigError, match="stop_at_return"):
        train(run_dir=str(tmp_path / "bad"), stop_at_return=float("nan"), **settings)


@pytest.mark.parametrize("agent", ["dqn", "ppo"])
def test_bf16_updates_keep_fp32_weights_and_learn_something(tmp_path, agent):
    """--precision bf16 runs each update under bf16 autocast: the weights and optimizer stay fp32, the losses
    finite, and the update still moves the network (its loss falls on CartPole's first few hundred updates)."""
    import json

    from scalerl import train
    from scalerl.run import load_agent

    summary = train(env="classic:CartPole-v1", agent=agent, steps=2048, precision="bf16", eval_every=0,
                    eval_episodes=1, log_every=256, progress="off", run_dir=str(tmp_path / agent),
                    **({"algo": {"learning_starts": 256}} if agent == "dqn" else {}))
    assert summary["updates"] > 0
    records = [json.loads(line) for line in (tmp_path / agent / "metrics.jsonl").read_text().splitlines()]
    losses = [r[key] for r in records for key in ("loss", "value_loss") if key in r]
    assert losses and all(np.isfinite(losses))
    _, trained = load_agent(tmp_path / agent, device="cpu")
    for module in trained.modules().values():
        assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in module.parameters())
