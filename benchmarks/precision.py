"""Learning under `--precision bf16` against fp32, as data: the finished runs of the sweep in
benchmarks/precision.toml (DQN on MinAtar Breakout at width 4, 5 seeds per precision) written to
benchmarks/data/precision_learning.json, which the results page renders (benchmarks/report.py).

    scalerl sweep benchmarks/precision.toml -o sweeps/precision --workers 1      # resumable, about 2 CPU-hours
    python benchmarks/precision.py sweeps/precision --json benchmarks/data/precision_learning.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from scalerl.analysis.runs import load_run
from scalerl.checks import ConfigError


def run_record(run_dir: Path) -> dict:
    """One finished run: its precision and seed, the commit it ran from, its evaluation curve and finals."""
    run = load_run(run_dir)
    returns = [float(e["return_mean"]) for e in run.evals]
    return {"precision": run.config["precision"], "seed": run.seed,
            "provenance": json.loads((run_dir / "provenance.json").read_text()),
            "eval_step": [int(e["step"]) for e in run.evals], "eval_return": [round(r, 3) for r in returns],
            "return_final": returns[-1], "return_last3": sum(returns[-3:]) / len(returns[-3:]),
            "updates": int(run.summary["updates"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="the folder `scalerl sweep benchmarks/precision.toml -o` wrote")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    finished = sorted(path.parent for path in args.sweep_dir.glob("*/seed*/summary.json"))
    if not finished:
        raise ConfigError(f"{args.sweep_dir} holds no finished run of benchmarks/precision.toml")
    runs = [run_record(run_dir) for run_dir in finished]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"),
                                     "command": "python benchmarks/precision.py " + " ".join(sys.argv[1:]),
                                     "sweep": "benchmarks/precision.toml", "runs": runs}, indent=1) + "\n")
    print(f"{len(runs)} runs -> {args.json}")


if __name__ == "__main__":
    main()
