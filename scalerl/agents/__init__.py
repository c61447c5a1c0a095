"""Agent registry: `--agent NAME` looks agents up here."""

from __future__ import annotations

from scalerl.agents.base import Agent, AgentSpec, OffPolicyConfig, OnPolicyConfig, Optimized
from scalerl.agents.dqn import DER, DQN, DERConfig, DQNConfig, Rainbow, RainbowConfig
from scalerl.agents.mtsac import MTSAC, MTSACConfig
from scalerl.agents.ppo import PPO, PPOConfig
from scalerl.agents.pqn import PQN, PQNConfig
from scalerl.agents.sac import SAC, SACConfig
from scalerl.agents.td3 import TD3, TD3Config
from scalerl.checks import unknown_name

AGENTS: dict[str, type[Agent]] = {agent.name: agent for agent in [DQN, Rainbow, DER, SAC, TD3, MTSAC, PPO, PQN]}


def agent_class(name: str) -> type[Agent]:
    if name not in AGENTS:
        raise unknown_name("agent", name, AGENTS)
    return AGENTS[name]


__all__ = ["AGENTS", "DER", "DQN", "MTSAC", "PPO", "PQN", "SAC", "TD3", "Agent", "AgentSpec", "DERConfig", "DQNConfig",
           "MTSACConfig", "OffPolicyConfig", "OnPolicyConfig", "Optimized", "PPOConfig", "PQNConfig", "Rainbow",
           "RainbowConfig", "SACConfig", "TD3Config", "agent_class"]
