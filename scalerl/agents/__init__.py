"""Agent registry: `--agent NAME` looks agents up here."""

from __future__ import annotations

from scalerl.agents.base import Agent, AgentSpec, OffPolicyConfig, OnPolicyConfig, Optimized
from scalerl.agents.dqn import DQN, DQNConfig
from scalerl.checks import unknown_name

AGENTS: dict[str, type[Agent]] = {agent.name: agent for agent in [DQN]}


def agent_class(name: str) -> type[Agent]:
    if name not in AGENTS:
        raise unknown_name("agent", name, AGENTS)
    return AGENTS[name]


__all__ = ["AGENTS", "DQN", "Agent", "AgentSpec", "DQNConfig", "OffPolicyConfig", "OnPolicyConfig", "Optimized", "agent_class"]
