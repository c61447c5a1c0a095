"""The agent contract's checkpoint: every network, optimizer and learned tensor an agent holds is saved (or lives
inside something saved), since one left out breaks exact resume without an error."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from scalerl.agents import AGENTS, AgentSpec
from scalerl.nets import NetConfig

DISCRETE = gym.spaces.Box(-1.0, 1.0, (4,), np.float32), gym.spaces.Discrete(2)
CONTINUOUS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32), gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


def build(name: str, **overrides):
    cls = AGENTS[name]
    spaces = CONTINUOUS if name in ("sac", "td3", "mtsac") else DISCRETE
    return cls(cls.config_class(**overrides), AgentSpec(*spaces, net=NetConfig(hidden=8, depth=1), seed=3))


def held(agent) -> dict[str, object]:
    """The networks, optimizers and learned tensors among the agent's attributes."""
    return {name: value for name, value in vars(agent).items()
            if isinstance(value, nn.Module | torch.optim.Optimizer) or
            (isinstance(value, torch.Tensor) and value.requires_grad)}


def parameters_of(value) -> set[int]:
    if isinstance(value, nn.Module):
        return {id(p) for p in value.parameters()}
    if isinstance(value, torch.optim.Optimizer):
        return {id(p) for group in value.param_groups for p in group["params"]}
    return {id(value)}


CASES = [(name, {}) for name in AGENTS] + [("ppo", {"dynamics": "actor"}), ("ppo", {"value_distillation": "actor"}),
                                           ("ppo", {"normalize_obs": True, "normalize_rewards": True})]


@pytest.mark.parametrize(("name", "overrides"), CASES)
def test_everything_an_agent_learns_is_in_its_checkpoint(name, overrides):
    agent = build(name, **overrides)
    # a saved network or tensor holds its parameters' values; a saved optimizer holds none of them
    saved_parameters = set().union(*(parameters_of(getattr(agent, attr)) for attr in agent.saved
                                     if isinstance(getattr(agent, attr), nn.Module | torch.Tensor)))
    missing = [attr for attr, value in held(agent).items() if attr not in agent.saved and
               (isinstance(value, torch.optim.Optimizer) or not parameters_of(value) <= saved_parameters)]
    assert not missing, f"{name} holds {missing} outside its checkpoint (add them to `saved`)"
    for objective in getattr(agent, "objectives", []):  # PPO's add-ons keep their own `saved`
        missing = [attr for attr, value in held(objective).items() if attr not in objective.saved and
                   not parameters_of(value) <= saved_parameters]
        assert not missing, f"objective {objective.name} holds {missing} outside the checkpoint"
        optimized = parameters_of(agent.optimizer)
        assert all(parameters_of(module) <= optimized for module in objective.modules().values())


@pytest.mark.parametrize(("name", "overrides"), CASES)
def test_a_checkpoint_loaded_into_a_fresh_agent_gives_the_same_checkpoint(name, overrides):
    first = build(name, **overrides)
    with torch.no_grad():
        for value in held(first).values():
            for parameter in (value.parameters() if isinstance(value, nn.Module) else []):
                parameter.add_(0.5)  # differ from a fresh agent's initialization
    first.rng.random(7)
    second = build(name, **overrides)
    second.load_state_dict(first.state_dict())
    a, b = first.state_dict(), second.state_dict()
    assert a.keys() == b.keys() and flatten(a) == flatten(b)


def flatten(value):
    if isinstance(value, dict):
        return {key: flatten(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [flatten(inner) for inner in value]
    if isinstance(value, torch.Tensor | np.ndarray):
        return value.tolist()
    return value
