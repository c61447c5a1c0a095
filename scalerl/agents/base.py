"""The agent contract: what every loop needs from an agent, and the settings off-policy agents share.

An agent is built from its config and an `AgentSpec`, names the loop it runs in, acts on batches of
observations, and learns from what its loop hands it (a replay batch or a rollout). It names its
networks (`modules()` for the online ones, `targets()` apart) and its optimizers (`optimizers()`, each
with the modules it steps), so diagnostics and resets can reach them without knowing the algorithm.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from scalerl.checks import build_nested, in_range, positive, require
from scalerl.hooks.base import HookList
from scalerl.nets import FastForward, NetConfig
from scalerl.optim import OptimizerConfig, load_optimizer_state
from scalerl.replay import PrioritySettings


@dataclass(frozen=True)
class AgentSpec:
    """What an agent is built for: the spaces of one environment, how many act together, where the
    networks live, the seed of its own random streams, and the network shape."""

    obs_space: gym.Space
    action_space: gym.Space
    num_envs: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    net: NetConfig = field(default_factory=NetConfig)
    run_steps: int = 0
    """Environment steps that schedules such as learning-rate annealing run over (0: unknown): the run's
    budget, or its first budget if it was continued to a longer one."""
    tasks: tuple[str, ...] = ()
    """For a multi-task set (metaworld:MT10, multitask:...), the task of each environment, in the order of
    the one-hot task id that ends every observation; empty otherwise."""


class Optimized(NamedTuple):
    """An optimizer and the names (keys of `modules()`) of the networks it steps."""

    optimizer: torch.optim.Optimizer
    modules: tuple[str, ...]


@dataclass(frozen=True)
class OffPolicyConfig:
    """Replay and update cadence, read by the off-policy loop."""

    buffer_size: int = 100_000
    """Transitions kept in replay."""
    batch_size: int = 64
    """Transitions per gradient step."""
    learning_starts: int = 1_000
    """Environment steps of data collected before the first update."""
    train_every: int = 1
    """Environment steps between training rounds."""
    gradient_steps: int = 1
    """Gradient steps per training round."""
    gamma: float = 0.99
    """Discount factor."""
    n_step: int = 1
    """Rewards summed before bootstrapping (n-step returns)."""
    balance_envs: ClassVar[bool] = False
    """Agents that set this take `batch_size` transitions from every environment column for each update (one
    column per task of a multi-task set), instead of `batch_size` in all."""

    def __post_init__(self) -> None:
        build_nested(self, "algo")
        positive("algo.buffer_size", self.buffer_size)
        positive("algo.batch_size", self.batch_size)
        require(self.learning_starts >= 0, "algo.learning_starts", ">= 0", self.learning_starts)
        positive("algo.train_every", self.train_every)
        positive("algo.gradient_steps", self.gradient_steps)
        in_range("algo.gamma", self.gamma, 0.0, 1.0)
        positive("algo.n_step", self.n_step)
        require(self.n_step < self.buffer_size, "algo.n_step", "< algo.buffer_size", self.n_step)

    def replay_priorities(self, steps: int) -> PrioritySettings | None:
        """Prioritized replay's settings for a run of `steps` environment steps, or None for uniform replay
        (an agent that hands priorities back from its updates overrides this)."""
        return None


@dataclass(frozen=True)
class OnPolicyConfig:
    """Rollout length, read by the on-policy loop."""

    rollout_steps: int = 128
    """Steps collected from each environment before one update over the rollout."""

    def __post_init__(self) -> None:
        build_nested(self, "algo")
        positive("algo.rollout_steps", self.rollout_steps)


@torch.no_grad()
def polyak(pairs: Iterable[tuple[nn.Module, nn.Module]], tau: float) -> None:
    """Move each target network (the second of a pair) a share `tau` of the way to its online network (tau 1:
    copy it), every parameter of every pair in one fused call: the one place agents update targets."""
    pairs = list(pairs)
    online = [p for module, _ in pairs for p in module.parameters()]
    target = [p for _, module in pairs for p in module.parameters()]
    if tau == 1.0:
        torch._foreach_copy_(target, online)
    else:
        torch._foreach_lerp_(target, online, tau)


class Agent(ABC):
    """An agent acts on batches of observations and learns from what its loop collects.

    Subclasses set `name`, `config_class`, `loop` and `description`. The loop attaches its hooks to
    `self.hooks`; `step_optimizer` is where they see gradients, between backward and the step.
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    loop: ClassVar[Literal["off_policy", "on_policy"]]
    description: ClassVar[str]
    critic_of_actions: ClassVar[bool] = False
    """Whether `q_value` answers: the agent has a critic of state-action pairs (SAC, TD3)."""
    saved: ClassVar[tuple[str, ...]] = ()
    """The attributes that make up the agent's checkpoint, each under its own name: networks, optimizers,
    learned tensors (log_alpha), objects with a state_dict (running statistics), counters. The agent's RNG
    is always saved. `tests/test_agents_contract.py` checks that every network and optimizer an agent holds
    is among them (or inside one of them), since one left out breaks exact resume."""

    def __init__(self, cfg: Any, spec: AgentSpec) -> None:
        self.cfg = cfg
        self.spec = spec
        self.device = spec.device
        self.rng = np.random.default_rng(spec.seed)
        self.hooks = HookList()
        self._stepped: dict[str, tuple[torch.optim.Optimizer, tuple[str, ...], list[nn.Parameter]]] = {}
        self._fast_forwards: dict[nn.Module, FastForward] = {}

    def fast(self, module: nn.Module) -> FastForward:
        """`module`'s forward for acting and for targets, built once per network (see FastForward): acting
        on one observation through torch's module dispatch costs more than a small network's arithmetic.
        Keyed by the network itself, so a network swapped in later gets its own."""
        forward = self._fast_forwards.get(module)
        if forward is None:
            forward = self._fast_forwards[module] = FastForward(module, self.rng)
        return forward

    @abstractmethod
    def act(self, obs: np.ndarray, *, explore: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Actions for a batch of observations, and whatever else the update will need per step (log-probs,
        values; an empty dict for most off-policy agents). explore=False is the evaluation policy."""

    @abstractmethod
    def update(self, batch: Any) -> dict[str, torch.Tensor]:
        """Learn from a replay batch or a rollout. Returns detached scalars, read only when the loop logs.
        An off-policy agent with prioritized replay adds "priorities": one per sampled transition."""

    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """The online networks by name: what diagnostics measure, resets touch and parameter counts count."""

    def targets(self) -> dict[str, nn.Module]:
        """Target networks by name (slow copies of online ones): neither measured nor reset."""
        return {}

    @abstractmethod
    def optimizers(self) -> dict[str, Optimized]:
        """Each optimizer by name, with the names of the modules it steps."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training exactly: the `saved` attributes and the RNG."""
        state: dict[str, Any] = {"rng": self.rng.bit_generator.state}
        for name in self.saved:
            value = getattr(self, name)
            if isinstance(value, torch.Tensor):
                state[name] = value.detach().clone()
            elif hasattr(value, "state_dict"):  # networks, optimizers, running statistics
                state[name] = value.state_dict()
            else:  # counters, and parts an agent's config leaves out (None)
                state[name] = value
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        for name in self.saved:
            value = getattr(self, name)
            if isinstance(value, torch.Tensor):
                with torch.no_grad():
                    value.copy_(state[name])
            elif isinstance(value, torch.optim.Optimizer):
                load_optimizer_state(value, state[name])
            elif hasattr(value, "load_state_dict"):
                value.load_state_dict(state[name])
            else:
                setattr(self, name, state[name])

    def train_scalars(self) -> dict[str, float]:
        """Scalars about acting (e.g. epsilon) logged alongside training metrics."""
        return {}

    def q_value(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray | None:
        """The critic's value of taking `actions` in `obs`, for hooks that judge how an episode is going
        (LEAST); None for an agent without a critic of state-action pairs."""
        return None

    def latent_modules(self) -> dict[str, nn.Module]:
        """The modules whose outputs are what each head reads, by name (PPO: its actor's and critic's trunks),
        for hooks that probe representations; empty where the agent names none."""
        return {}

    def step_optimizer(self, name: str, loss: torch.Tensor, max_grad_norm: float = 0.0) -> torch.Tensor | None:
        """Backpropagate `loss` and step optimizer `name`: hooks see the raw gradients after backward, then
        the global norm is clipped to `max_grad_norm` (0: no clipping). Returns the norm before clipping,
        or None when clipping is off (it is not computed then)."""
        if name not in self._stepped:  # looked up once: this runs every gradient step
            optimizer, modules = self.optimizers()[name]
            self._stepped[name] = (optimizer, modules, [p for group in optimizer.param_groups for p in group["params"]])
        optimizer, modules, parameters = self._stepped[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.hooks:
            self.hooks.after_backward(name, {module: self.modules()[module] for module in modules})
        grad_norm = None
        if max_grad_norm > 0:
            grad_norm = nn.utils.clip_grad_norm_(parameters, max_grad_norm)
        optimizer.step()
        return grad_norm


def check_optimizers(config: Any, prefix: str = "algo") -> None:
    """Check every OptimizerConfig field of an agent config under its flag name (algo.optim, algo.critic_optim)."""
    import dataclasses

    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if isinstance(value, OptimizerConfig):
            value.check(f"{prefix}.{item.name}")


@contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Inside the block the modules' parameters need no gradients. An actor's loss passes through the
    critics: without this, its backward pass would also compute the critics' weight gradients, which the
    critic's next step throws away (it zeroes them first)."""
    parameters = [p for module in modules for p in module.parameters() if p.requires_grad]
    for parameter in parameters:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in parameters:
            parameter.requires_grad_(True)
