"""scalerl: deep RL for the study of scale."""

from scalerl.checks import ConfigError
from scalerl.config import TrainConfig
from scalerl.envs import make_env
from scalerl.run import Policy, evaluate, load_policy, resume, train

__all__ = ["ConfigError", "Policy", "TrainConfig", "evaluate", "load_policy", "make_env", "resume", "train"]
__version__ = "0.1.0"
