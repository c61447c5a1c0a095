"""Environment steps per second of the training loop, against the environment-only limit.

Each case runs the real `scalerl train` loop. "random" keeps epsilon at 1 and never updates: the
loop's cost with the policy and learner taken out. "dqn" acts epsilon-greedily and updates every 4
environment steps on batches of 32; "dqn-every10" is CleanRL's dqn.py CartPole setting
(every 10 steps, batch 128); "pqn" is PQN with its defaults (rollouts of 32 steps from every env, 2 epochs
of 32 minibatches), to set beside "random" at the same --num-envs. SPS is the median of the loop's own log
records after learning starts, so start-up and the final evaluation are not counted.

    python benchmarks/sps.py                 # random and dqn, 3 repeats, prints a markdown table
    python benchmarks/sps.py --steps 20000 --repeats 1 --envs classic:CartPole-v1
    python benchmarks/sps.py --envs minatar:breakout --cases random pqn --num-envs 128 --steps 200000
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from scalerl import train

CASES = {
    "random": ("dqn", {"learning_starts": 10**9, "epsilon_start": 1.0, "epsilon_end": 1.0}),
    "dqn": ("dqn", {"learning_starts": 1_000, "train_every": 4, "batch_size": 32, "epsilon_decay_steps": 5_000}),
    # CleanRL dqn.py's CartPole setting: train every 10 steps, batch 128.
    "dqn-every10": ("dqn",
                    {"learning_starts": 1_000, "train_every": 10, "batch_size": 128, "epsilon_decay_steps": 5_000}),
    "pqn": ("pqn", {}),
}
"""case: (agent, its algo settings)."""


def measure(env: str, case: str, steps: int, num_envs: int, seed: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder) / "run"
        agent, algo = CASES[case]
        train(env=env, agent=agent, steps=steps, num_envs=num_envs, seed=seed, run_dir=str(run_dir), progress="off",
              eval_every=0, eval_episodes=1, checkpoint_every=0, log_every=1_000, threads=1, algo=algo)
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    after_start = [r["sps"] for r in records if r["step"] > 2_000] or [r["sps"] for r in records]
    return statistics.median(after_start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["classic:CartPole-v1", "minatar:breakout"])
    parser.add_argument("--cases", nargs="+", default=["random", "dqn"], choices=list(CASES))
    parser.add_argument("--num-envs", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sps.json")
    args = parser.parse_args()

    rows = []
    for env in args.envs:
        for case in args.cases:
            values = [measure(env, case, args.steps, args.num_envs, seed) for seed in range(args.repeats)]
            rows.append({"env": env, "case": case, "num_envs": args.num_envs, "sps_median": statistics.median(values),
                         "sps_runs": values})
            print(f"{env:24s} {case:7s} {statistics.median(values):9,.0f} sps  runs: {[round(v) for v in values]}",
                  flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "machine": platform.machine(),
            "processor": platform.processor(), "threads": 1, "steps": args.steps}
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print("\n| env | loop | num_envs | SPS (median) |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['env']} | {row['case']} | {row['num_envs']} | {row['sps_median']:,.0f} |")


if __name__ == "__main__":
    main()
