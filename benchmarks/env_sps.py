"""Environment-only speed: random-policy steps per second of one task per suite, built by `make_env`.

This is the ceiling an agent's SPS can be compared against: no policy, no learner, no replay, just the
vector env stepping random actions (sampled ahead of time, so sampling is not counted). Each case
steps for `--seconds` after a one-second warm-up and counts environment steps (vector steps x envs).
Suites whose extra is not installed are skipped; Procgen lives in its own environment, so run the
script there with `--cases procgen:coinrun`.

    python benchmarks/env_sps.py                       # every installed suite, 1 and 8 envs
    python benchmarks/env_sps.py --cases atari:breakout --num-envs 1 2 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from scalerl import ConfigError, make_env

CASES: dict[str, dict] = {
    "classic:CartPole-v1": {},
    "minatar:breakout": {},
    "atari:breakout": {},
    "cale:breakout": {},
    "mujoco:HalfCheetah-v5": {},
    "dmc:cheetah-run": {},
    "dmc:cheetah-run pixels": {"pixels": True},
    "metaworld:MT1/reach-v3": {},
    "metaworld:MT10": {},
    "procgen:coinrun": {},
}
FIXED_NUM_ENVS = {"metaworld:MT10": 10}
"""Task sets with one environment per task."""


def steps_per_second(spec: str, num_envs: int, seconds: float, **options) -> float:
    envs = make_env(spec, num_envs, seed=0, **options)
    envs.action_space.seed(0)
    actions = [envs.action_space.sample() for _ in range(256)]
    envs.reset(seed=0)
    for phase_seconds in (1.0, seconds):
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < phase_seconds:
            for action in actions[:32]:
                envs.step(action)
            steps += 32
            actions.append(actions.pop(0))
        elapsed = time.perf_counter() - start
    envs.close()
    return steps * num_envs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--num-envs", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "env_sps.json")
    args = parser.parse_args()

    rows = []
    for case in args.cases:
        spec = case.split()[0]
        for num_envs in sorted({FIXED_NUM_ENVS.get(case, n) for n in args.num_envs}):
            try:
                sps = steps_per_second(spec, num_envs, args.seconds, **CASES[case])
            except ConfigError as error:
                print(f"{case:26s} skipped: {error}", flush=True)
                break
            rows.append({"case": case, "num_envs": num_envs, "sps": sps})
            print(f"{case:26s} {num_envs:3d} envs {sps:10,.0f} steps/s", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(), "cpus": os.cpu_count(),
            "seconds": args.seconds, "numpy": np.__version__}
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print("\n| task | envs | steps/s |\n|---|---|---|")
    for row in rows:
        print(f"| {row['case']} | {row['num_envs']} | {row['sps']:,.0f} |")


if __name__ == "__main__":
    main()
