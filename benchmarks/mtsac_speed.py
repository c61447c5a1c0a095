"""MT-SAC's environment steps per second on Meta-World MT10, next to the environment-only limit.

Each case runs the real `scalerl train` loop on metaworld:MT10 (10 environments, one per task):
- "env-only": uniformly random actions and no updates (learning never starts): the loop's cost with the
  learner taken out, the most any agent could reach;
- "mtsac": the reference cadence, one update per vector step (every 10 environment steps) on 128 x 10
  transitions, with the reference 3 x 400 actor and critics;
- "mtsac-every-step": one update per environment step, ten times the reference's updates.
SPS is the median of the loop's log records once updates have begun (start-up not counted).

    python benchmarks/mtsac_speed.py                  # all cases, 1 repeat, prints a markdown table
    python benchmarks/mtsac_speed.py --cases mtsac --steps 6000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
from pathlib import Path

import torch

from scalerl import train

WARMUP = 2_000
"""Random steps before updates begin (the reference's 40,000 are skipped: they only fill replay)."""
CASES = {
    "env-only": {"learning_starts": 10**9},
    "mtsac": {"learning_starts": WARMUP, "train_every": 10},
    "mtsac-every-step": {"learning_starts": WARMUP, "train_every": 1},
}


def measure(case: str, steps: int, seed: int, device: str) -> float:
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder) / "run"
        train(env="metaworld:MT10", agent="mtsac", steps=steps, seed=seed, run_dir=str(run_dir), progress="off",
              eval_every=0, eval_episodes=10, checkpoint_every=0, log_every=500, threads=1, device=device,
              algo=CASES[case])
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    after_start = [r["sps"] for r in records if r["step"] > WARMUP + 500] or [r["sps"] for r in records]
    return statistics.median(after_start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--steps", type=int, default=5_000, help="environment steps per run, summed over the 10 tasks")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "mtsac_speed.json")
    args = parser.parse_args()

    rows = []
    for case in args.cases:
        values = [measure(case, args.steps, seed, args.device) for seed in range(args.repeats)]
        rows.append({"case": case, "sps_median": statistics.median(values), "sps_runs": values})
        print(f"{case}: {statistics.median(values):,.0f} steps/s", flush=True)
    limit = next((row["sps_median"] for row in rows if row["case"] == "env-only"), None)
    print(f"\nmetaworld:MT10, {args.device}, torch {torch.__version__}, {platform.processor() or platform.machine()}\n")
    print("| case | env steps/s | share of env-only |")
    print("|---|---|---|")
    for row in rows:
        share = f"{row['sps_median'] / limit:.1%}" if limit else ""
        print(f"| {row['case']} | {row['sps_median']:,.0f} | {share} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": args.device, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
