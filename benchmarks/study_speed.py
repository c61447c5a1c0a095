"""Steps per CPU-second of a study's own runs, this checkout against another version of scalerl, side by side.

A study's cost is its training loop after learning starts: acting, the environment, replay and the updates
at the study's replay ratio. This runs the study's sweep file as it stands (seed 0 of each variant; its
hooks included, its evaluations and checkpoints left out) for `--steps` steps after learning starts, each
run in its own process on one torch thread, with every tree given by `--trees` (source folders of scalerl,
e.g. a `git worktree` of an older commit) in turn within each round, so a slow minute of a shared machine
falls on all of them. The rate is steps per CPU-second of the process between the log records at learning
start and at the end. Reported: each tree's median rate, and its ratio to the first tree's per round, with
the range over rounds.

    git worktree add /tmp/before <commit>
    python benchmarks/study_speed.py --study gap --trees /tmp/before . --rounds 3 --steps 4000 \\
        --json benchmarks/data/study_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
STUDIES = HERE.parent / "scalerl" / "studies"

CHILD = """
import dataclasses, json, sys, time
from scalerl import train
from scalerl.hooks.base import Hook

@dataclasses.dataclass(frozen=True)
class NoOptions:
    pass

class ProcessClock(Hook):
    name, config_class, description = "process_clock", NoOptions, "the process's CPU seconds in each log record"
    def on_log(self):
        return {"process_cpu_seconds": time.process_time()}

config = json.loads(sys.argv[1])
config["hooks"] = [*config.get("hooks", []), ProcessClock]
train(**config)
"""


def variant_configs(study: str, names: list[str] | None, steps: int) -> dict[str, dict]:
    """Seed 0 of each variant of the study's sweep file, run for `steps` steps after learning starts."""
    from scalerl.sweep import load_sweep_file

    spec = load_sweep_file(STUDIES / study.replace("-", "_") / "sweep.toml")
    configs = {}
    for trial in spec.trials(Path("unused")):
        if trial.seed != spec.seeds[0] or (names and trial.name not in names):
            continue
        config = dict(trial.config)
        starts = config.get("algo", {}).get("learning_starts", 0)
        config.update(steps=starts + steps, eval_every=0, checkpoint_every=0, threads=1, log_every=1000,
                      progress="off")
        config.pop("run_dir")
        configs[trial.name] = config
    return configs


def measure(tree: Path, config: dict) -> float:
    """Steps per CPU-second after learning starts, of one run made by the scalerl in `tree`."""
    starts = config.get("algo", {}).get("learning_starts", 0)
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder) / "run"
        env = {**os.environ, "PYTHONPATH": str(tree.resolve()), "OMP_NUM_THREADS": "1"}
        subprocess.run([sys.executable, "-c", CHILD, json.dumps({**config, "run_dir": str(run_dir)})], env=env,
                       cwd=folder, check=True, stdout=subprocess.DEVNULL)
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    learning = [r for r in records if r["step"] >= starts and "process_cpu_seconds" in r]
    first, last = learning[0], learning[-1]
    return (last["step"] - first["step"]) / (last["process_cpu_seconds"] - first["process_cpu_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", default="gap")
    parser.add_argument("--variants", nargs="*", default=None, help="the sweep's variant folders (default: all)")
    parser.add_argument("--trees", nargs="+", type=Path, default=[HERE.parent])
    parser.add_argument("--steps", type=int, default=4000, help="steps after learning starts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the measurements here")
    args = parser.parse_args()
    configs = variant_configs(args.study, args.variants, args.steps)
    rates: dict[tuple[str, str], list[float]] = {}
    for round_index in range(args.rounds):
        for name, config in configs.items():
            for tree in args.trees:
                rate = measure(tree, config)
                rates.setdefault((name, str(tree)), []).append(rate)
                print(f"round {round_index + 1} {name:28s} {str(tree):24s} {rate:8.1f} steps/CPU-s", flush=True)
    rows = []
    base = str(args.trees[0])
    for name in configs:
        for tree in args.trees:
            ratios = [a / b for a, b in zip(rates[(name, str(tree))], rates[(name, base)])]
            rows.append({"variant": name, "tree": str(tree), "commit": commit_of(tree),
                         "steps_per_cpu_second": statistics.median(rates[(name, str(tree))]),
                         "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios)})
            print(f"{name:28s} {rows[-1]['commit'][:12]:14s} {rows[-1]['steps_per_cpu_second']:8.1f} steps/CPU-s  "
                  f"x{rows[-1]['ratio']:.2f} [{rows[-1]['ratio_min']:.2f}, {rows[-1]['ratio_max']:.2f}]")
    if args.json:
        from scalerl.provenance import provenance

        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "date": time.strftime("%Y-%m-%d"), "provenance": provenance(),
            "command": "python benchmarks/study_speed.py " + " ".join(sys.argv[1:]), "study": args.study,
            "steps": args.steps, "rounds": args.rounds, "rows": rows}, indent=1) + "\n")


def commit_of(tree: Path) -> str:
    result = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return result.stdout.strip() + ("+changes" if dirty else "")


if __name__ == "__main__":
    main()
