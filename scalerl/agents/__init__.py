"""Agent registry: `--agent NAME` looks agents up here."""

from __future__ import annotations

from scalerl.agents.base import Agent, AgentSpec, OffPolicyConfig, OnPolicyConfig, Optimized
from scalerl.agents.dqn import DER, DQN, DERConfig, DQNConfig, Rainbow, RainbowConfig
from scalerl.agents.mtsac import MTSAC, MTSACConfig
from scalerl.agents.ppo import PPO, PPOConfig
from scalerl.agents.pqn import PQN, PQNConfig
from scalerl.agents.sac import SAC, SACConfig
from scalerl.agents.td3 import TD3, TD3Config
from scalerl.checks import ConfigError, unknown_name
from scalerl.plugins import check_plugin_class, load_plugins_from_environment

AGENTS: dict[str, type[Agent]] = {agent.name: agent for agent in [DQN, Rainbow, DER, SAC, TD3, MTSAC, PPO, PQN]}


def register_agent(cls: type[Agent]) -> type[Agent]:
    """Make an agent class of your own (a subclass of Agent, or of one of scalerl's) trainable by its `name`
    (a class decorator; see scalerl.plugins)."""
    if not (isinstance(cls, type) and issubclass(cls, Agent)):
        raise ConfigError(f"register_agent takes a subclass of scalerl.agents.Agent (got {cls!r})")
    check_plugin_class(cls, "agent", ("name", "config_class", "loop", "description"), AGENTS)
    AGENTS[cls.name] = cls
    return cls


def agent_class(name: str) -> type[Agent]:
    if name not in AGENTS:
        load_plugins_from_environment()
    if name not in AGENTS:
        raise unknown_name("agent", name, AGENTS)
    return AGENTS[name]


__all__ = ["AGENTS", "DER", "DQN", "MTSAC", "PPO", "PQN", "SAC", "TD3", "Agent", "AgentSpec", "DERConfig", "DQNConfig",
           "MTSACConfig", "OffPolicyConfig", "OnPolicyConfig", "Optimized", "PPOConfig", "PQNConfig", "Rainbow",
           "RainbowConfig", "SACConfig", "TD3Config", "agent_class", "register_agent"]
