"""Agent registry: `--agent NAME` looks agents up here."""

from __future__ import annotations

from scalerl.agents.base import Agent, OffPolicyConfig
from scalerl.agents.dqn import DQN, DQNConfig
from scalerl.checks import ConfigError

AGENTS: dict[str, type[Agent]] = {agent.name: agent for agent in [DQN]}


def agent_class(name: str) -> type[Agent]:
    if name not in AGENTS:
        raise ConfigError(f"unknown agent {name!r}; valid: {', '.join(AGENTS)}")
    return AGENTS[name]


__all__ = ["AGENTS", "Agent", "OffPolicyConfig", "DQN", "DQNConfig", "agent_class"]
