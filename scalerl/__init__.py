"""scalerl: deep RL for the study of scale."""

from scalerl.agents import register_agent
from scalerl.agents.objectives import register_objective
from scalerl.checks import ConfigError
from scalerl.config import TrainConfig
from scalerl.envs import make_env, register_suite
from scalerl.hooks import register_hook
from scalerl.provenance import VERSION
from scalerl.run import Policy, evaluate, load_policy, resume, train

__all__ = ["ConfigError", "Policy", "TrainConfig", "evaluate", "load_policy", "make_env", "register_agent",
           "register_hook", "register_objective", "register_suite",
           "resume", "train"]
__version__ = VERSION
