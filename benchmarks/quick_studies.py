"""CPU time of every `scalerl study NAME --quick`, the Ray workers' included, written where `scalerl study --list`
reads it (scalerl/studies/quick_cost.json).

Each quick study runs as its own command with one Ray worker. This process makes itself the subreaper of
everything the command starts (Linux's PR_SET_CHILD_SUBREAPER), so the Ray processes that outlive their parents
are reaped here and their CPU time counts: the cost is the children's user + system time, steadier than wall
time on a busy machine (which still slows a run through shared caches; the wall time is recorded beside it).

    python benchmarks/quick_studies.py                    # every study, written to scalerl/studies/quick_cost.json
    python benchmarks/quick_studies.py --studies gap least --out /tmp/cost.json
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scalerl.provenance import provenance
from scalerl.studies import QUICK_COST_FILE, study_names

PR_SET_CHILD_SUBREAPER = 36
REAP_SECONDS = 120.0
"""How long to wait for what a study left running (Ray's processes) after its command returns."""


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def reap_descendants() -> None:
    """Wait for every process the last command left behind; kill those still running after REAP_SECONDS."""
    deadline = time.monotonic() + REAP_SECONDS
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.monotonic() > deadline:
                subprocess.run(["pkill", "-KILL", "-P", str(os.getpid())], check=False)
            time.sleep(0.2)


def measure(name: str) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        before, started = children_cpu_seconds(), time.monotonic()
        result = subprocess.run([sys.executable, "-m", "scalerl", "study", name, "--quick", "-o", f"{folder}/out",
                                 "--workers", "1"], capture_output=True, text=True, env={**os.environ,
                                                                                      "OMP_NUM_THREADS": "1"})
        wall = time.monotonic() - started
        reap_descendants()
    if result.returncode != 0:
        raise SystemExit(f"scalerl study {name} --quick failed:\n{result.stderr[-2000:]}")
    return {"cpu_seconds": round(children_cpu_seconds() - before, 1), "wall_seconds": round(wall, 1),
            "date": time.strftime("%Y-%m-%d"), "commit": provenance()["commit"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", nargs="*", default=None, help="default: every study")
    parser.add_argument("--out", type=Path, default=QUICK_COST_FILE)
    args = parser.parse_args()
    if ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit("cannot become a subreaper (Linux only): Ray's workers would escape the count")
    costs = json.loads(args.out.read_text())["studies"] if args.out.is_file() else {}
    for name in args.studies or study_names():
        costs[name] = measure(name)
        print(f"{name:18s} {costs[name]['cpu_seconds'] / 60:6.1f} CPU-minutes  ({costs[name]['wall_seconds'] / 60:.1f} "
              "minutes on the clock)", flush=True)
        args.out.write_text(json.dumps({"command": "python benchmarks/quick_studies.py", "workers": 1,
                                        "studies": dict(sorted(costs.items()))}, indent=1) + "\n")


if __name__ == "__main__":
    main()
