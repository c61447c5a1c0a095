"""Probing a finished PPO run (`scalerl probe RUN_DIR`): the mutual information of its actor's and critic's
latents with what they might encode, measured on the run's own policy. The estimators are in
scalerl.diagnostics.information; this module, at the run layer, loads the run and plays it."""

from __future__ import annotations

import numpy as np
import torch

from scalerl.checks import ConfigError
from scalerl.diagnostics.information import discrete_mi, ksg_mi, projected
from scalerl.envs import make_env
from scalerl.run import load_agent
from scalerl.session import EVAL_SEED_OFFSET


def probe_envs(config, count: int) -> tuple[list, str]:
    """`count` one-copy vector envs for a probe and what their index stands for. A run on levels (Procgen,
    MinAtar with --env-opts.num-levels) gets copy i fixed on training level start + i, so the index is the
    level; otherwise each copy is the evaluation env under its own seed, and the index is the env copy."""
    options = config.env_kwargs(training=False)
    levels = config.env_opts.num_levels or 0
    if levels:
        if levels < count:
            raise ConfigError(f"the probe puts each of its {count} env copies on its own training level; the run has "
                              f"only {levels} (env_opts.num_levels)")
        start = config.env_opts.start_level or 0
        return [make_env(config.env_spec, 1, config.seed, **{**options, "num_levels": 1, "start_level": start + i,
                                                         "level_set": "train"}) for i in range(count)], "level"
    return [make_env(config.env_spec, 1, config.seed + i, **options) for i in range(count)], "env_copy"


def probe_run(run_dir, steps: int = 512, num_envs: int = 8, k: int = 3, seed: int = 0) -> dict[str, dict[str, float]]:
    """Mutual information of a PPO run's actor and critic latents (the features each trunk hands its head)
    with the observation, the critic's value, the action taken, and the level (runs on levels: each of
    `num_envs` copies plays one training level) or else the environment copy, on `steps` steps of the run's
    own policy from its latest checkpoint. Returns {latent: {target: nats}}."""
    config, agent = load_agent(run_dir, device="cpu")
    if config.agent != "ppo":
        raise ConfigError(f"the actor/critic probe reads PPO's two trunks; {run_dir} is a {config.agent} run")
    envs, copy_name = probe_envs(config, num_envs)
    obs = np.concatenate([env.reset(seed=config.seed + EVAL_SEED_OFFSET + i)[0] for i, env in enumerate(envs)])
    seen, actions, values = [], [], []
    for _ in range(max(1, steps // num_envs)):
        action, extras = agent.act(obs, explore=True)
        seen.append(agent.prepare(obs, explore=False))
        actions.append(extras["action"])
        values.append(extras["value"])
        obs = np.concatenate([env.step(action[i:i + 1])[0] for i, env in enumerate(envs)])
    for env in envs:
        env.close()
    batch = np.concatenate(seen)
    with torch.no_grad():
        tensor = torch.as_tensor(batch)
        latents = {name: module(tensor).numpy() for name, module in agent.latent_modules().items()}
    actions_all, values_all = np.concatenate(actions), np.concatenate(values)
    copies_all = np.tile(np.arange(num_envs), len(seen))
    observations = projected(batch, seed)
    results = {}
    for name, latent in latents.items():
        mutual_information = discrete_mi if agent.discrete else ksg_mi
        action_mi = mutual_information(latent, actions_all, k, seed)
        results[name] = {"observation": ksg_mi(latent, observations, k, seed),
                         "value": ksg_mi(latent, values_all, k, seed),
                         "action": action_mi, copy_name: discrete_mi(latent, copies_all, k, seed)}
    return results
