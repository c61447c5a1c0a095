"""Optimizers every agent chooses from by name: Adam, AdamW, RAdam, RMSprop and Kron.

RMSprop is there for the DQN papers that used it: Nature DQN and the MinAtar paper's DQN (Young and Tian,
2019: centered, squared-gradient decay 0.95, epsilon 0.01 added to the root, learning rate 2.5e-4), so
their settings can be run as published.

Kron is PSGD-Kron (Li, 2018; the "Stable Gradients" paper's second-order optimizer) from heavyball,
a maintained package. The paper used kron-torch; heavyball's PSGDKron implements the same
preconditioner, works with torch 2.13, and does not pull in triton as kron-torch does. Where their defaults
differ scalerl sets kron-torch's (`KRON_TORCH_DEFAULTS`): triangular preconditioners for dimensions up to
8192 (heavyball: 2048), an initial preconditioner scale of 1 (heavyball: estimated from the first
gradient), and the update probability held at 1 for 500 steps and then annealed by 0.999 a step to 0.03
(heavyball: held for 1000). One difference stays a flag: kron-torch merges a conv kernel's dimensions
into one matrix before preconditioning it, heavyball (and scalerl by default) does not
(`kron_merge_dims`). Both use momentum 0.9 and a preconditioner learning rate of 0.1; heavyball's
own update clipping (a trust-region clip) is kept: kron-torch versions differ there. Measured on this
project's 2-core CPU (MLP 64-256-256-8, batch 256): Adam 2.4 ms a step, heavyball Kron 39 ms eager, and
compiled 30 ms after 140 s of compilation, so scalerl runs it eager.
Following the paper, Kron's learning rate is the configured one divided by `kron_lr_divisor` (3).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch

from scalerl.checks import ConfigError, check_choices, in_range, install_hint, non_negative, positive


@dataclass(frozen=True)
class OptimizerConfig:
    """One optimizer's settings. An agent holds one of these per optimizer it steps, named `optim` when
    it has one (--algo.optim.lr) and `<part>_optim` when it has several (--algo.critic-optim.lr).

    The owning agent config checks it with `check("algo.<field>")`, so an error names the flag the user
    typed; a config built on its own is checked when `make_optimizer` uses it."""

    kind: Literal["adam", "adamw", "radam", "rmsprop", "kron"] = "adam"
    """adam, adamw (decoupled weight decay), radam, rmsprop, or kron (PSGD-Kron, second order)."""
    lr: float = 1e-3
    """Learning rate (Kron divides it by kron_lr_divisor)."""
    adam_eps: float = 1e-8
    """Epsilon of Adam, AdamW and RAdam (Atari agents often use 1.5e-4)."""
    rmsprop_alpha: float = 0.95
    """RMSprop's decay of its squared-gradient average (MinAtar's DQN: 0.95)."""
    rmsprop_eps: float = 0.01
    """RMSprop's epsilon, added to the root of the squared-gradient average (MinAtar's DQN: 0.01)."""
    rmsprop_centered: bool = True
    """RMSprop divides by the gradient's standard deviation rather than its root mean square."""
    weight_decay: float = 0.0
    """L2 penalty (adam, radam, rmsprop, kron) or decoupled weight decay (adamw)."""
    kron_lr_divisor: float = 3.0
    """Kron's learning rate is lr / this: the stable-gradients paper's practice."""
    kron_merge_dims: bool = False
    """Kron preconditions a conv kernel (out, in, h, w) as one matrix of merged dimensions (kron-torch's
    default, which the stable-gradients paper ran) instead of one factor per dimension (heavyball's default,
    and scalerl's until this flag: kept so earlier runs resume unchanged). Dense layers are the same either
    way."""

    def check(self, prefix: str) -> None:
        check_choices(self, prefix)
        positive(f"{prefix}.lr", self.lr)
        positive(f"{prefix}.adam_eps", self.adam_eps)
        in_range(f"{prefix}.rmsprop_alpha", self.rmsprop_alpha, 0.0, 1.0)
        positive(f"{prefix}.rmsprop_eps", self.rmsprop_eps)
        non_negative(f"{prefix}.weight_decay", self.weight_decay)
        positive(f"{prefix}.kron_lr_divisor", self.kron_lr_divisor)


KRON_TORCH_DEFAULTS = {"max_size_triangular": 8192, "precond_init_scale": 1.0, "flat_start": 500}
"""kron-torch's Kron defaults where heavyball's PSGDKron differs (see the module docstring)."""


def make_optimizer(parameters: Iterable[torch.nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    cfg.check("optim")
    parameters = list(parameters)
    if cfg.kind == "kron":
        try:
            import heavyball
        except ImportError:
            raise ConfigError(f"optimizer kind kron needs heavyball: {install_hint('kron')}") from None

        heavyball.utils.compile_mode = None  # eager: compiling costs minutes on CPU for a small gain
        schedule = heavyball.utils.precond_update_prob_schedule(flat_start=KRON_TORCH_DEFAULTS["flat_start"])
        return heavyball.PSGDKron(parameters, lr=cfg.lr / cfg.kron_lr_divisor, weight_decay=cfg.weight_decay,
                                  max_size_triangular=KRON_TORCH_DEFAULTS["max_size_triangular"],
                                  precond_init_scale=KRON_TORCH_DEFAULTS["precond_init_scale"],
                                  preconditioner_update_probability=schedule, merge_dims=cfg.kron_merge_dims)
    fused = all(p.device.type in ("cpu", "cuda") for p in parameters)
    if cfg.kind == "adam":
        return torch.optim.Adam(parameters, lr=cfg.lr, eps=cfg.adam_eps, weight_decay=cfg.weight_decay, fused=fused)
    if cfg.kind == "adamw":
        return torch.optim.AdamW(parameters, lr=cfg.lr, eps=cfg.adam_eps, weight_decay=cfg.weight_decay, fused=fused)
    if cfg.kind == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=cfg.lr, alpha=cfg.rmsprop_alpha, eps=cfg.rmsprop_eps,
                                   centered=cfg.rmsprop_centered, weight_decay=cfg.weight_decay, foreach=True)
    return torch.optim.RAdam(parameters, lr=cfg.lr, eps=cfg.adam_eps, weight_decay=cfg.weight_decay, foreach=True)


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """Load an optimizer's state exactly. torch's load_state_dict casts floating-point state to the
    parameter's dtype, but heavyball keeps some Kron state in float64; a resumed run that lost that
    precision drifts away from the uninterrupted one, so the saved dtypes are put back."""
    optimizer.load_state_dict(saved)
    restore_dtypes(optimizer.state_dict()["state"], saved["state"])


def restore_dtypes(live: dict | list, saved: dict | list) -> None:
    """Where a tensor in the (live) optimizer state differs in dtype from the saved one, replace it
    with a copy of the saved tensor. Walks the nested dicts and lists optimizers keep per parameter."""
    for key, value in live.items() if isinstance(live, dict) else enumerate(live):
        original = saved[key]
        if torch.is_tensor(value) and value.dtype != original.dtype:
            live[key] = original.to(device=value.device, copy=True)
        elif isinstance(value, dict | list):
            restore_dtypes(value, original)
