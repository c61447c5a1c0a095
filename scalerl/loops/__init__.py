"""The two training loops over one session: off-policy (replay) and on-policy (rollouts)."""

from scalerl.loops.base import Loop, LoopState
from scalerl.loops.off_policy import OffPolicyLoop
from scalerl.loops.on_policy import OnPolicyLoop
from scalerl.replay import Rollout

LOOPS: dict[str, type[Loop]] = {"off_policy": OffPolicyLoop, "on_policy": OnPolicyLoop}

__all__ = ["LOOPS", "Loop", "LoopState", "OffPolicyLoop", "OnPolicyLoop", "Rollout"]
