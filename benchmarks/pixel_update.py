"""What one pixel update costs, fp32 against bf16 autocast (`--precision bf16`), for the agents the studies
run on MinAtar: DQN and Rainbow with the MinAtar CNN at widths 1 and 4, on one torch thread.

Each round times `--updates` updates of every configuration in turn (after warm-up updates), so load on a
shared machine falls on all of them alike; the cost is CPU seconds per update (the process's own user +
system time, steadier than wall time on a busy machine). Reported: the median over rounds, and the bf16 /
fp32 ratio per round with its range. Also printed: this CPU's matrix-product rates in fp32 and bf16 at the
size of a wide network's dense layer, the ceiling any update's products can reach.

    python benchmarks/pixel_update.py                     # 5 rounds of 100 updates
    python benchmarks/pixel_update.py --rounds 9 --json benchmarks/data/pixel_update.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from scalerl.agents import AgentSpec, agent_class
from scalerl.envs import make_env
from scalerl.nets import NetConfig
from scalerl.provenance import provenance
from scalerl.replay import Batch
from scalerl.session import keep_freed_memory


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_agent(name: str, width: float, env: str = "minatar:breakout") -> tuple[object, Batch]:
    envs = make_env(env, 1, 0)
    space, actions = envs.single_observation_space, envs.single_action_space
    cls = agent_class(name)
    cfg = cls.config_class()
    agent = cls(cfg, AgentSpec(obs_space=space, action_space=actions, num_envs=1, device=torch.device("cpu"),
                               seed=0, net=NetConfig(width=width)))
    rng = np.random.default_rng(0)
    size = cfg.batch_size
    obs = torch.as_tensor(rng.random((size, *space.shape)) > 0.8)
    batch = Batch(obs=obs, actions=torch.as_tensor(rng.integers(0, actions.n, size)),
                  rewards=torch.as_tensor(rng.random(size), dtype=torch.float32),
                  next_obs=torch.as_tensor(rng.random((size, *space.shape)) > 0.8),
                  discounts=torch.full((size,), 0.99), weights=torch.ones(size), indices=np.arange(size))
    return agent, batch


def time_updates(agent, batch: Batch, updates: int, precision: str) -> float:
    context = (torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext())
    with context:
        started = cpu_seconds()
        for _ in range(updates):
            agent.update(batch)
        return (cpu_seconds() - started) / updates


def product_rate(dtype: torch.dtype) -> float:
    """This CPU's matrix-product rate (FLOP/s) at a pixel network's dense-layer size."""
    a, b = torch.randn(64, 4096, dtype=dtype), torch.randn(512, 4096, dtype=dtype)
    for _ in range(3):
        a @ b.T
    started = cpu_seconds()
    for _ in range(30):
        a @ b.T
    return 30 * 2 * 64 * 4096 * 512 / max(cpu_seconds() - started, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--json", type=Path, default=None, help="also write the measurements here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()  # as every run's session does
    cases = [(name, width, precision) for name in ("dqn", "rainbow") for width in (1, 4)
             for precision in ("fp32", "bf16")]
    agents = {(name, width, precision): make_agent(name, width) for name, width, precision in cases}
    for (name, width, precision), (agent, batch) in agents.items():
        time_updates(agent, batch, 10, precision)  # warm-up
    seconds: dict[tuple, list[float]] = {case: [] for case in cases}
    for _ in range(args.rounds):
        for case in cases:
            agent, batch = agents[case]
            seconds[case].append(time_updates(agent, batch, args.updates, case[2]))
    rates = {"fp32": product_rate(torch.float32), "bf16": product_rate(torch.bfloat16)}
    print(f"matrix products on this CPU: fp32 {rates['fp32'] / 1e9:.0f} GFLOP/s, bf16 {rates['bf16'] / 1e9:.0f}")
    print(f"{'agent':8s} {'width':>5s} {'fp32 ms':>8s} {'bf16 ms':>8s} {'fp32/bf16':>10s} {'range':>14s}")
    rows = []
    for name in ("dqn", "rainbow"):
        for width in (1, 4):
            fp32, bf16 = seconds[(name, width, "fp32")], seconds[(name, width, "bf16")]
            ratios = [a / b for a, b in zip(fp32, bf16)]
            row = {"agent": name, "width": width, "fp32_ms": 1e3 * statistics.median(fp32),
                   "bf16_ms": 1e3 * statistics.median(bf16), "speedup": statistics.median(ratios),
                   "speedup_min": min(ratios), "speedup_max": max(ratios)}
            rows.append(row)
            print(f"{name:8s} {width:5d} {row['fp32_ms']:8.2f} {row['bf16_ms']:8.2f} {row['speedup']:10.2f} "
                  f"[{row['speedup_min']:.2f}, {row['speedup_max']:.2f}]")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "provenance": provenance(),
                                         "command": "python benchmarks/pixel_update.py " + " ".join(sys.argv[1:]),
                                         "rounds": args.rounds, "updates": args.updates, "rates": rates,
                                         "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
