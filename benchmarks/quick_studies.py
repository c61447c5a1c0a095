"""CPU time of every `scalerl study NAME --quick`, the Ray workers' included, written where `scalerl study --list`
reads it (scalerl/studies/quick_cost.json).

Each quick study runs as its own command with one Ray worker and a marker in its environment, which every
process it starts inherits (Ray's raylet and workers included, though they leave its process tree). The
processes carrying the marker are read from /proc every 0.2 s until the last has exited, and the cost is the
sum of each one's user + system time (Linux only; a process living less than 0.2 s can be missed). CPU time is
steadier than wall time on a busy machine, which still slows a run through shared caches; the wall time is
recorded beside it.

    python benchmarks/quick_studies.py                    # every study, written to scalerl/studies/quick_cost.json
    python benchmarks/quick_studies.py --studies gap least --out /tmp/cost.json
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from scalerl.provenance import provenance
from scalerl.studies import QUICK_COST_FILE, study_folder, study_names

POLL_SECONDS = 0.2
LINGER_SECONDS = 120.0
"""How long to follow what a study left running (Ray's processes) after its command returns."""
TICKS = os.sysconf("SC_CLK_TCK")


def marked_cpu_seconds(marker: bytes) -> dict[int, float]:
    """user + system seconds of every running process whose environment holds `marker`."""
    seconds = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if marker not in Path(f"/proc/{entry}/environ").read_bytes():
                continue
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited, or not ours to read
            continue
        seconds[int(entry)] = (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
    return seconds


def runs_on_ray(name: str) -> bool:
    """Whether the study trains through a local Ray (a sweep, or a pipeline that takes --workers)."""
    folder = study_folder(name)
    if not (folder / "study.py").is_file():
        return True
    module = importlib.import_module(f"scalerl.studies.{folder.name}.study")
    return "address" in inspect.signature(module.run).parameters


def measure(name: str) -> dict:
    marker = f"SCALERL_QUICK_COST={uuid.uuid4().hex}"
    key, value = marker.split("=")
    seen: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        workers = ["--workers", "1"] if runs_on_ray(name) else []
        started, errors = time.monotonic(), Path(folder) / "stderr"
        with errors.open("w") as stderr:  # a file, not a pipe: Ray's warnings would fill a pipe and stall the study
            command = subprocess.Popen([sys.executable, "-m", "scalerl", "study", name, "--quick", "-o",
                                        f"{folder}/out", *workers], stdout=subprocess.DEVNULL, stderr=stderr,
                                       env={**os.environ, "OMP_NUM_THREADS": "1", key: value})
        while command.poll() is None:
            seen.update(marked_cpu_seconds(marker.encode()))
            time.sleep(POLL_SECONDS)
        wall = time.monotonic() - started
        deadline = time.monotonic() + LINGER_SECONDS
        while (running := marked_cpu_seconds(marker.encode())) and time.monotonic() < deadline:
            seen.update(running)
            time.sleep(POLL_SECONDS)
        if command.returncode != 0:
            raise SystemExit(f"scalerl study {name} --quick failed:\n{errors.read_text()[-2000:]}")
    return {"cpu_seconds": round(sum(seen.values()), 1), "wall_seconds": round(wall, 1),
            "processes": len(seen), "date": time.strftime("%Y-%m-%d"), "commit": provenance()["commit"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", nargs="*", default=None, help="default: every study")
    parser.add_argument("--out", type=Path, default=QUICK_COST_FILE)
    args = parser.parse_args()
    costs = json.loads(args.out.read_text())["studies"] if args.out.is_file() else {}
    for name in args.studies or study_names():
        costs[name] = measure(name)
        print(f"{name:18s} {costs[name]['cpu_seconds'] / 60:6.1f} CPU-minutes  ({costs[name]['wall_seconds'] / 60:.1f} "
              "minutes on the clock)", flush=True)
        args.out.write_text(json.dumps({"command": "python benchmarks/quick_studies.py", "workers": 1,
                                        "studies": dict(sorted(costs.items()))}, indent=1) + "\n")


if __name__ == "__main__":
    main()
