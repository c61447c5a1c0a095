"""Every agent on a GPU: `scalerl train --device cuda` with the diagnostics and a reset hook, the run trained on
to a longer budget (`--resume RUN --steps N`) and evaluated on the GPU, beside the same run on the CPU.

    python benchmarks/gpu_check.py --out gpu-check

Steps per second are the median of the metrics records once updates run (one torch thread either way); the
CPU runs go on in parallel processes while the GPU runs take turns, so they never share the GPU. Prints a
markdown table and writes it, with every run's summary, to OUT/gpu_check.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HOOKS = ["--hooks", "norms", "activity", "redo", "--hook-opts.norms.every", "200", "--hook-opts.activity.every",
         "200", "--hook-opts.redo.every", "500"]
PIXELS = ["--net.encoder", "nature_cnn", "--net.hidden", "512", "--net.depth", "1"]

# name: (agent, env, its options, steps on the GPU, steps on the CPU (0: no CPU run), steps at which updates
# begin). Pixel SAC's CPU speed is in benchmarks/NOTES.md already; here it would outlast the rest together.
CASES: dict[str, tuple[str, str, list[str], int, int, int]] = {
    "dqn": ("dqn", "minatar:breakout", ["--algo.learning-starts", "1000"], 4000, 3000, 1000),
    "rainbow": ("rainbow", "minatar:breakout", ["--algo.learning-starts", "1000"], 4000, 3000, 1000),
    "der (Atari, Nature CNN)": ("der", "atari:Pong", [*PIXELS, "--env-opts.sticky-actions", "0"], 3000, 2000, 1600),
    "pqn (128 envs)": ("pqn", "minatar:breakout", ["--num-envs", "128"], 40960, 20480, 0),
    "ppo (separate encoders)": ("ppo", "classic:CartPole-v1", ["--num-envs", "8", "--algo.encoders", "separate"],
                                16384, 16384, 0),
    "sac": ("sac", "classic:Pendulum-v1", ["--net.hidden", "256", "--algo.learning-starts", "1000"], 4000, 3000,
            1000),
    "td3": ("td3", "classic:Pendulum-v1", ["--net.hidden", "256", "--algo.learning-starts", "1000"], 4000, 3000,
            1000),
    "sac (CALE pixels)": ("sac", "cale:KungFuMaster", [*PIXELS, "--algo.learning-starts", "500"], 2000, 0, 500),
    "mtsac (2 tasks)": ("mtsac", "multitask:Pendulum-v1,MountainCarContinuous-v0",
                        ["--algo.learning-starts", "1000"], 4000, 3000, 1000),
}


def scalerl(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SCALERL_PROGRESS": "off"}
    return subprocess.run([sys.executable, "-m", "scalerl", *args], env=env, capture_output=True, text=True)


def steps_per_second(run_dir: Path, from_step: int) -> float:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rates = [r["sps"] for r in records if r["step"] > from_step + 500] or [r["sps"] for r in records]
    return statistics.median(rates)


def train(case: str, device: str, out: Path, steps: int) -> Path:
    agent, env, options, _, _, _ = CASES[case]
    run_dir = out / device / case.split(" ")[0] / env.replace(":", "-").replace(",", "+")
    done = scalerl("train", "--agent", agent, "--env", env, *options, *HOOKS, "--steps", str(steps),
                   "--device", device, "--threads", "1", "--eval-every", str(steps // 2), "--eval-episodes", "2",
                   "--checkpoint-every", str(steps // 2), "--log-every", "250", "--run-dir", str(run_dir))
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        raise RuntimeError(f"{device} training failed: {done.stderr.strip().splitlines()[-1]}")
    return run_dir


def gpu_case(case: str, out: Path) -> dict:
    """Train on the GPU, train on to half as many steps again, evaluate: each must name the GPU."""
    _, _, _, steps, _, starts = CASES[case]
    run_dir = train(case, "cuda", out, steps)
    row = {"gpu_sps": steps_per_second(run_dir, starts)}
    summary = json.loads((run_dir / "summary.json").read_text())
    continued = scalerl("train", "--resume", str(run_dir), "--steps", str(steps + steps // 2))
    if continued.returncode != 0:
        raise RuntimeError(f"--resume --steps failed: {continued.stderr.strip().splitlines()[-1]}")
    evaluated = scalerl("eval", str(run_dir), "--episodes", "2", "--device", "cuda")
    if evaluated.returncode != 0:
        raise RuntimeError(f"eval failed: {evaluated.stderr.strip().splitlines()[-1]}")
    final = json.loads(continued.stdout)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    diagnostics = sorted({key.split("/")[0] for record in records for key in record if "/" in key})
    row |= {"device": summary["device"], "steps": final["steps"], "updates": final["updates"],
            "final_eval": final["final_eval_return"], "eval_return": json.loads(evaluated.stdout)["return_mean"],
            "diagnostics": diagnostics}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-check"))
    parser.add_argument("--cpu-workers", type=int, default=8)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    args = parser.parse_args()
    started = time.perf_counter()

    def cpu_case(case: str) -> float:
        return steps_per_second(train(case, "cpu", args.out, CASES[case][4]), CASES[case][5])

    rows: dict[str, dict] = {}
    with ThreadPoolExecutor(args.cpu_workers) as pool:
        cpu = {case: pool.submit(cpu_case, case) for case in args.cases if CASES[case][4]}
        for case in args.cases:
            try:
                rows[case] = gpu_case(case, args.out)
            except Exception as error:  # one agent's failure must not hide the others' results
                rows[case] = {"error": str(error)}
            print(case, rows[case], f"{time.perf_counter() - started:.0f}s", flush=True)
        for case in cpu:
            try:
                rows[case]["cpu_sps"] = cpu[case].result()
            except Exception as error:
                rows[case]["cpu_error"] = str(error)

    print("\n| agent | env | GPU steps/s | CPU steps/s | GPU / CPU | device | trained on to | diagnostics logged |")
    print("|---|---|---|---|---|---|---|---|")
    for case in args.cases:
        row, env = rows[case], CASES[case][1]
        if "error" in row:
            print(f"| {case} | {env} | failed: {row['error']} | | | | | |")
            continue
        cpu_sps = row.get("cpu_sps")
        ratio = f"{row['gpu_sps'] / cpu_sps:.2f}" if cpu_sps else row.get("cpu_error", "")
        print(f"| {case} | {env} | {row['gpu_sps']:,.0f} | {cpu_sps or 0:,.0f} | {ratio} | {row['device']} "
              f"| {row['steps']:,} | {', '.join(row['diagnostics'])} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
