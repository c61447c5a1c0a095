"""Mutual information between a network's latents and what they might encode, estimated from samples by
k-nearest neighbours (the probes of "Studying the Interplay Between the Actor and Critic Representations
in RL", Garcin et al., ICLR 2025, which use k = 3).

- `ksg_mi(x, y)`: both continuous, the KSG estimator (Kraskov, Stoegbauer & Grassberger, 2004, algorithm 1):
  I = psi(k) + psi(N) - < psi(n_x + 1) + psi(n_y + 1) >, where for each sample the distance to its k-th
  neighbour in the joint space (max-norm) sets a radius, and n_x, n_y count the samples strictly inside it
  in each marginal space.
- `discrete_mi(x, labels)`: x continuous, labels discrete (an action, a level id), Ross's estimator (2014):
  I = psi(N) - < psi(N_label) > + psi(k) - < psi(m) >, the radius taken within the sample's own label and
  m counting all samples inside it.

Estimates are in nats; they can come out slightly negative when the true value is near zero. Each variable
is standardized per dimension first, so no dimension dominates the max-norm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import digamma

from scalerl.checks import ConfigError, positive
from scalerl.hooks.base import MeasuringHook


def as_samples(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, np.float64)
    values = values.reshape(len(values), -1)
    scale = values.std(axis=0)
    return (values - values.mean(axis=0)) / np.where(scale > 0, scale, 1.0)


def jitter(values: np.ndarray, seed: int) -> np.ndarray:
    """Break ties (repeated samples make neighbour counts ill-defined) with noise far below the data's scale."""
    return values + 1e-10 * np.random.default_rng(seed).standard_normal(values.shape)


def check_samples(x: np.ndarray, other: np.ndarray, k: int) -> None:
    if len(x) != len(other):
        raise ConfigError(f"mutual information needs paired samples (got {len(x)} and {len(other)})")
    if len(x) <= k:
        raise ConfigError(f"mutual information with k = {k} needs more than {k} samples (got {len(x)})")


def ksg_mi(x: np.ndarray, y: np.ndarray, k: int = 3, seed: int = 0) -> float:
    """I(X; Y) in nats for continuous X (N, ...) and Y (N, ...)."""
    check_samples(x, y, k)
    xs, ys = jitter(as_samples(x), seed), jitter(as_samples(y), seed + 1)
    joint = np.concatenate([xs, ys], axis=1)
    radius = cKDTree(joint).query(joint, k=k + 1, p=np.inf)[0][:, -1]
    inside = np.nextafter(radius, 0)  # strictly closer than the k-th neighbour
    n_x = cKDTree(xs).query_ball_point(xs, inside, p=np.inf, return_length=True) - 1
    n_y = cKDTree(ys).query_ball_point(ys, inside, p=np.inf, return_length=True) - 1
    return float(digamma(k) + digamma(len(xs)) - np.mean(digamma(n_x + 1) + digamma(n_y + 1)))


def discrete_mi(x: np.ndarray, labels: np.ndarray, k: int = 3, seed: int = 0) -> float:
    """I(X; L) in nats for continuous X (N, ...) and discrete labels L (N,). Samples whose label occurs k
    times or fewer are left out (their neighbourhood is undefined)."""
    labels = np.asarray(labels).reshape(len(labels), -1)
    check_samples(x, labels, k)
    _, label_ids, counts = np.unique(labels, axis=0, return_inverse=True, return_counts=True)
    label_ids = label_ids.reshape(-1)
    keep = counts[label_ids] > k
    if keep.sum() <= k:
        raise ConfigError(f"mutual information with k = {k} needs labels seen more than {k} times")
    xs = jitter(as_samples(x), seed)[keep]
    label_ids = label_ids[keep]
    radius = np.empty(len(xs))
    label_counts = np.empty(len(xs))
    for label in np.unique(label_ids):
        members = np.flatnonzero(label_ids == label)
        radius[members] = cKDTree(xs[members]).query(xs[members], k=k + 1, p=np.inf)[0][:, -1]
        label_counts[members] = len(members)
    m = cKDTree(xs).query_ball_point(xs, radius, p=np.inf, return_length=True) - 1
    return float(digamma(len(xs)) - np.mean(digamma(label_counts)) + digamma(k) - np.mean(digamma(m)))


PROJECTED_DIMS = 64
"""Observations with more dimensions than this are probed through a fixed random projection to this many
(a k-NN estimate in thousands of pixel dimensions says nothing)."""


def projected(obs: np.ndarray, seed: int = 0) -> np.ndarray:
    flat = np.asarray(obs, np.float64).reshape(len(obs), -1)
    if flat.shape[1] <= PROJECTED_DIMS:
        return flat
    projection = np.random.default_rng(seed).standard_normal((flat.shape[1], PROJECTED_DIMS)) / np.sqrt(flat.shape[1])
    return flat @ projection


@dataclass(frozen=True)
class ProbeConfig:
    every: int = 100
    """Updates between probes (the first update is probed)."""
    samples: int = 512
    """Observations of the update's batch the estimates use."""
    k: int = 3
    """Neighbours of the k-NN estimators."""

    def __post_init__(self) -> None:
        positive("hook_opts.probe.every", self.every)
        positive("hook_opts.probe.samples", self.samples)
        positive("hook_opts.probe.k", self.k)


class ProbeHook(MeasuringHook):
    """Every N updates, mutual information of PPO's actor and critic latents with the observation, the
    critic's value and the greedy action, on observations of that update's own batch (taken from the
    first forward pass of the actor's trunk). Logged as mi/<actor|critic>.<target>."""

    name = "probe"
    config_class = ProbeConfig
    description = "mutual information of PPO's actor and critic latents with observation, value, action"

    def __init__(self, cfg: ProbeConfig, agent: Any) -> None:
        super().__init__(cfg, agent)
        if set(agent.latent_modules()) != {"actor", "critic"}:
            raise ConfigError(f"hook probe reads an actor's and a critic's latents (PPO's trunks); {agent.name} "
                              "names none")
        self.batch: Any = None
        self.handle = None
        self.arm()

    def arm(self) -> None:
        if self.updates % self.cfg.every == 0 and self.handle is None:
            self.handle = self.agent.latent_modules()["actor"].register_forward_pre_hook(self.capture)

    def capture(self, module: Any, args: tuple) -> None:
        import torch

        if self.batch is None and torch.is_grad_enabled():
            self.batch = args[0].detach()[: self.cfg.samples]

    def after_update(self, metrics: dict) -> None:
        if self.handle is not None and self.batch is not None:
            self.handle.remove()
            self.handle = None
            self.pending.update(self.measure(self.batch))
            self.batch = None
        self.updates += 1
        self.arm()

    def measure(self, obs: Any) -> dict[str, float]:
        import torch

        agent, cfg = self.agent, self.cfg
        if len(obs) <= cfg.k + 1:
            return {}
        with torch.no_grad():
            policy, values = agent.network(obs)
            latents = {name: module(obs).cpu().numpy() for name, module in agent.latent_modules().items()}
        actions = (policy.argmax(-1) if agent.discrete else policy).cpu().numpy()
        observations = projected(obs.cpu().numpy())
        scalars = {}
        for name, latent in latents.items():
            scalars[f"mi/{name}.observation"] = ksg_mi(latent, observations, cfg.k)
            scalars[f"mi/{name}.value"] = ksg_mi(latent, values.cpu().numpy(), cfg.k)
            scalars[f"mi/{name}.action"] = (discrete_mi(latent, actions, cfg.k) if agent.discrete
                                            else ksg_mi(latent, actions, cfg.k))
        return scalars

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None
        super().load_state_dict(state)
        self.arm()
