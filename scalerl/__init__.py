"""scalerl: deep RL for the study of scale."""

from scalerl.checks import ConfigError
from scalerl.config import TrainConfig
from scalerl.envs import make_env
from scalerl.run import evaluate, resume, train

__all__ = ["ConfigError", "TrainConfig", "evaluate", "make_env", "resume", "train"]
__version__ = "0.1.0"
