"""A researcher's agent and hook in a file outside the package: registered by decorator, listed by the CLI,
trained by name, and carried into the processes a run starts."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from scalerl import ConfigError, register_agent, register_hook

PLUGIN = textwrap.dedent('''
    from scalerl import register_agent, register_hook
    from scalerl.agents import DQN
    from scalerl.hooks import Hook
    from scalerl.diagnostics.norms import NormsConfig


    @register_agent
    class HalfStepDQN(DQN):
        """DQN that reports how many updates it made, under a name of its own."""

        name = "half-step-dqn"
        description = "a researcher's DQN variant, from a file of their own"

        def update(self, batch):
            metrics = super().update(batch)
            self.made = getattr(self, "made", 0) + 1
            return metrics


    @register_hook
    class UpdateCounter(Hook):
        name = "update-counter"
        config_class = NormsConfig
        description = "counts updates (a researcher's hook)"

        def __init__(self, cfg, agent):
            super().__init__(cfg, agent)
            self.updates = 0

        def after_update(self, metrics):
            self.updates += 1

        def on_log(self):
            return {"counted_updates": float(self.updates)}
''')


def scalerl(*args, cwd):
    return subprocess.run([sys.executable, "-m", "scalerl", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env={**os.environ, "SCALERL_PLUGINS": ""})


def test_an_agent_and_a_hook_from_a_file_of_ones_own_train_by_name(tmp_path):
    plugin = tmp_path / "my_agent.py"
    plugin.write_text(PLUGIN)
    listed = scalerl("agents", "--plugins", str(plugin), cwd=tmp_path)
    assert listed.returncode == 0 and "half-step-dqn" in listed.stdout and "a researcher's DQN variant" in listed.stdout
    hooks = scalerl("hooks", "--plugins", str(plugin), cwd=tmp_path)
    assert "update-counter" in hooks.stdout
    run = tmp_path / "run"
    done = scalerl("train", "--plugins", str(plugin), "--agent", "half-step-dqn", "--hooks", "update-counter",
                   "--steps", "600", "--algo.learning-starts", "200", "--eval-every", "0", "--eval-episodes", "1",
                   "--log-every", "300", "--progress", "off", "--run-dir", str(run), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["agent"] == "half-step-dqn" and summary["updates"] > 0
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["counted_updates"] == summary["updates"]
    unknown = scalerl("train", "--agent", "half-step-dqn", "--steps", "10", cwd=tmp_path)  # without the plug-in
    assert unknown.returncode == 2 and "unknown agent 'half-step-dqn'" in unknown.stderr


def test_registration_refuses_what_is_not_an_agent_or_hook_and_names_taken():
    from scalerl.agents import DQN

    with pytest.raises(ConfigError, match="subclass of scalerl.agents.Agent"):
        register_agent(object)
    with pytest.raises(ConfigError, match="subclass of scalerl.hooks.Hook"):
        register_hook(DQN)

    class Impostor(DQN):
        name = "dqn"

    with pytest.raises(ConfigError, match="agent name 'dqn' is taken"):
        register_agent(Impostor)


OBJECTIVE = textwrap.dedent('''
    import torch
    from scalerl import register_objective
    from scalerl.agents.objectives import Objective


    @register_objective
    class LatentNorm(Objective):
        """A penalty on the size of the actor's latents, added to every PPO minibatch."""

        name = "latent-norm"
        description = "a researcher's auxiliary loss, from a file of their own"
        saved = ("scale",)

        def __init__(self, agent):
            super().__init__(agent)
            self.scale = torch.nn.Linear(1, 1)  # a network of its own: optimized and saved with the agent

        def modules(self):
            return {"latent_scale": self.scale}

        def start_update(self, rollout, obs, actions):
            self.obs = obs

        def minibatch_loss(self, index):
            latents = self.agent.network.actor_trunk(self.obs[index])
            self.norm = latents.square().mean().detach()
            return 1e-3 * (self.scale.weight.square().sum() + latents.square().mean())

        def end_update(self, obs, returns):
            return {"latent_norm": self.norm}
''')


def test_a_ppo_objective_from_a_file_of_ones_own_trains_and_resumes(tmp_path):
    plugin = tmp_path / "my_objective.py"
    plugin.write_text(OBJECTIVE)
    listed = scalerl("agents", "--plugins", str(plugin), cwd=tmp_path)
    assert "latent-norm" in listed.stdout and "a researcher's auxiliary loss" in listed.stdout
    common = ["--plugins", str(plugin), "--agent", "ppo", "--algo.objectives", "latent-norm", "--steps", "1024",
              "--num-envs", "2", "--algo.rollout-steps", "64", "--eval-every", "512", "--eval-episodes", "1",
              "--log-every", "128", "--progress", "off", "--checkpoint-every", "512"]
    done = scalerl("train", *common, "--run-dir", str(tmp_path / "run"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["parameters"]["latent_scale"] == 2
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(record["latent_norm"] > 0 for record in records)
    import torch

    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", weights_only=False)
    assert set(checkpoint["agent"]["scale"]) == {"weight", "bias"}
    unknown = scalerl("train", "--agent", "ppo", "--algo.objectives", "latent-norm", "--steps", "10", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown objective 'latent-norm'" in unknown.stderr


SUITE = textwrap.dedent('''
    import gymnasium as gym
    import numpy as np
    from scalerl import register_suite
    from scalerl.envs import Suite


    class Corridor(gym.Env):
        """Walk right along a corridor of `length` cells to the reward at its end."""

        def __init__(self, length, render_mode=None):
            self.length, self.render_mode = length, render_mode
            self.observation_space = gym.spaces.Box(0.0, 1.0, (length,), np.float32)
            self.action_space = gym.spaces.Discrete(2)

        def observe(self):
            return np.eye(self.length, dtype=np.float32)[self.position]

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.position = 0
            return self.observe(), {}

        def step(self, action):
            self.position = max(0, self.position + (1 if action == 1 else -1))
            done = self.position == self.length - 1
            return self.observe(), float(done), done, False, {}


    def make(task, *, max_episode_steps=50, render_mode=None):
        length = {"short": 4, "long": 8}[task]
        return gym.wrappers.TimeLimit(Corridor(length, render_mode), max_episode_steps)


    register_suite(Suite("corridor", "a corridor to walk along (a researcher's suite)", lambda: ["short", "long"],
                         make=make, fixed_options=("render_mode",)))
''')


def test_an_environment_suite_from_a_file_of_ones_own_trains_by_name(tmp_path):
    plugin = tmp_path / "my_suite.py"
    plugin.write_text(SUITE)
    listed = scalerl("envs", "--plugins", str(plugin), cwd=tmp_path)
    assert listed.returncode == 0 and "corridor" in listed.stdout and "a corridor to walk along" in listed.stdout
    run = tmp_path / "run"
    done = scalerl("train", "--plugins", str(plugin), "--env", "corridor:short", "--env-opts.max-episode-steps", "20",
                   "--steps", "3000", "--algo.learning-starts", "300", "--algo.epsilon-decay-steps", "1000",
                   "--eval-every", "0", "--eval-episodes", "2", "--progress", "off", "--run-dir", str(run),
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["env"] == "corridor:short" and summary["final_eval_return"] == 1.0  # it learns to walk right
    unknown = scalerl("train", "--env", "corridor:short", "--steps", "10", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown env suite 'corridor'" in unknown.stderr


def test_register_suite_refuses_bad_names_and_taken_ones():
    from scalerl import register_suite
    from scalerl.envs import SUITES, Suite

    with pytest.raises(ConfigError, match="letters, digits"):
        register_suite(Suite("my:suite", "", list, make=lambda task: None))
    with pytest.raises(ConfigError, match="'classic' is taken"):
        register_suite(Suite("classic", "", list, make=lambda task: None))
    with pytest.raises(ConfigError, match="needs make"):
        register_suite(Suite("nothing", "", list))
    assert "nothing" not in SUITES


def test_train_takes_a_researchers_agent_and_hook_classes_from_their_own_script(tmp_path):
    """In Python the classes themselves can be handed to train(): registered, and recorded by name."""
    from scalerl import train
    from scalerl.agents import DQN
    from scalerl.diagnostics.norms import NormsConfig
    from scalerl.hooks import Hook

    class ScriptDQN(DQN):
        name = "script-dqn"
        description = "a DQN defined in a researcher's script"

    class Updates(Hook):
        name = "script-updates"
        config_class = NormsConfig
        description = "counts updates"

        def __init__(self, cfg, agent):
            super().__init__(cfg, agent)
            self.updates = 0

        def after_update(self, metrics):
            self.updates += 1

        def on_log(self):
            return {"script_updates": float(self.updates)}

    summary = train(agent=ScriptDQN, hooks=[Updates, "norms"], steps=400, eval_every=0, eval_episodes=1,
                    log_every=200, run_dir=str(tmp_path / "run"), progress="off", algo={"learning_starts": 100})
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["agent"] == "script-dqn" and config["hooks"] == ["script-updates", "norms"]
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert summary["agent"] == "script-dqn" and last["script_updates"] == summary["updates"] > 0
    with pytest.raises(ConfigError, match="subclass of scalerl.hooks.Hook"):
        train(hooks=[DQN], steps=10)
