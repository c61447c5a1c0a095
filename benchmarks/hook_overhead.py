"""What the activity monitor and the resets cost, as a share of training time.

A hook that measures every N updates costs (extra time of a measured update) / N per update. Both parts are
timed here on the real agent: updates of SAC (HalfCheetah-sized, batch 256) or DQN (MinAtar Breakout CNN,
batch 32) on one fixed batch, plain and with the hook measuring or resetting at every update, alternating
in rounds; the share at the hook's default interval is the extra time over `every` environment steps of
a training run (one update per step, at the loop's measured steps per second).

    python benchmarks/hook_overhead.py                       # sac and dqn, 5 rounds of 200 updates
    python benchmarks/hook_overhead.py --agents sac --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from scalerl.agents import agent_class
from scalerl.agents.base import AgentSpec
from scalerl.hooks import HookList, HookOptions, make_hooks
from scalerl.nets import NetConfig
from scalerl.replay import Batch

SPACES = {
    "sac": (gym.spaces.Box(-np.inf, np.inf, (17,), np.float32), gym.spaces.Box(-1, 1, (6,), np.float32), 256),
    "dqn": (gym.spaces.Box(0, 1, (10, 10, 4), np.float32), gym.spaces.Discrete(3), 32),
}


def make_batch(obs_space: gym.Space, action_space: gym.Space, size: int) -> Batch:
    generator = torch.Generator().manual_seed(0)
    obs = torch.rand(size, *obs_space.shape, generator=generator)
    if isinstance(action_space, gym.spaces.Discrete):
        actions = torch.randint(0, action_space.n, (size,), generator=generator)
    else:
        actions = torch.rand(size, *action_space.shape, generator=generator) * 2 - 1
    return Batch(obs=obs, actions=actions, rewards=torch.rand(size, generator=generator),
                 next_obs=torch.rand(size, *obs_space.shape, generator=generator),
                 discounts=torch.full((size,), 0.99))


def time_updates(agent, hooks: HookList, batch: Batch, updates: int) -> float:
    agent.hooks = hooks
    start = time.perf_counter()
    for _ in range(updates):
        agent.update(batch)
        hooks.after_update({})
    return (time.perf_counter() - start) / updates


def measure(name: str, rounds: int, updates: int) -> dict[str, float]:
    obs_space, action_space, batch_size = SPACES[name]
    torch.manual_seed(0)
    agent = agent_class(name)(agent_class(name).config_class(batch_size=batch_size, learning_starts=0),
                              AgentSpec(obs_space, action_space, net=NetConfig(hidden=256) if name == "sac"
                                        else NetConfig()))
    batch = make_batch(obs_space, action_space, batch_size)
    every_update = HookOptions(activity={"every": 1}, redo={"every": 1, "start": 0}, regrama={"every": 1, "start": 0})
    cases = {"plain": [], "activity": ["activity"], "redo": ["redo"], "regrama": ["regrama"]}
    times: dict[str, list[float]] = {case: [] for case in cases}
    time_updates(agent, HookList(), batch, 20)  # warm up
    for _ in range(rounds):
        for case, names in cases.items():
            times[case].append(time_updates(agent, make_hooks(names, every_update, agent), batch, updates))
    return {case: statistics.median(values) for case, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", nargs="+", default=["sac", "dqn"], choices=list(SPACES))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--every", type=int, default=1_000, help="the hooks' interval in updates (their default)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "hook_overhead.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in args.agents:
        result = measure(name, args.rounds, args.updates)
        plain = result["plain"]
        for case in ("activity", "redo", "regrama"):
            extra = result[case] - plain
            rows.append({"agent": name, "hook": case, "update_ms": plain * 1e3,
                         "measured_update_ms": result[case] * 1e3,
                         "share_at_default_interval": extra / (args.every * plain)})
    print("| agent | hook | update (ms) | update with the hook acting (ms) | share of update time at every 1,000 |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['agent']} | {row['hook']} | {row['update_ms']:.2f} | {row['measured_update_ms']:.2f} | "
              f"{100 * row['share_at_default_interval']:.3f}% |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
