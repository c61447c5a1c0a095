"""SAC and TD3 on HalfCheetah: scalerl against CleanRL's sac_continuous_action.py and td3_continuous_action.py.

Same method as peers_dqn.py (its set-up, plus MuJoCo for the peers: `benchmarks/.peers/bin/pip install
mujoco==2.3.7 imageio`): each round runs scalerl and CleanRL one after another, one torch thread each, and
reads the steps per second of the learning phase (one update per environment step). CleanRL's defaults:
256-256 networks, batch 256, replay 1M, tau 0.005; SAC with learning rates 3e-4 (actor) and 1e-3 (critics,
temperature) and a learned temperature; TD3 with 3e-4, policy delay 2, exploration noise 0.1. Learning starts
after 5k random steps on both sides (CleanRL's TD3 default is 25k; shortened here for both).

CleanRL runs HalfCheetah-v4 under its gymnasium 0.29.1 and MuJoCo 2.3.7, scalerl HalfCheetah-v5 under
gymnasium 1.x and MuJoCo 3.3.0: the same model and the same step cost (the environment is about 2% of a
learning step here). CleanRL's SAC updates the actor twice every second step, with an extra actor pass for the
temperature; scalerl updates actor and temperature once a step from the same pass: the same number of
gradient steps.

    python benchmarks/peers_sac.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peers_dqn import HERE, one_thread_env, print_ratio_table, run_cleanrl_script

LEARNING_STARTS = 5_000
SCRIPTS = {"sac": "sac_continuous_action.py", "td3": "td3_continuous_action.py"}


def run_scalerl(agent: str, steps: int, seed: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder) / "run"
        subprocess.run([
            sys.executable, "-m", "scalerl", "train", "--agent", agent, "--env", "mujoco:HalfCheetah-v5",
            "--steps", str(steps), "--seed", str(seed), "--threads", "1", "--run-dir", str(run_dir),
            "--progress", "off", "--log-every", "500", "--eval-every", "0", "--eval-episodes", "1",
            "--checkpoint-every", "0",
            "--net.hidden", "256", "--algo.learning-starts", str(LEARNING_STARTS)],
            check=True, env=one_thread_env(), stdout=subprocess.DEVNULL)
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    learning = [r["sps"] for r in records if r["step"] > LEARNING_STARTS + 500]
    return len(learning) / sum(1 / sps for sps in learning)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=9_000, help="environment steps per run, learning starts at 5k")
    parser.add_argument("--agents", nargs="+", choices=list(SCRIPTS), default=list(SCRIPTS))
    parser.add_argument("--peers-python", type=Path, default=HERE / ".peers" / "bin" / "python")
    parser.add_argument("--cleanrl", type=Path, default=HERE / ".cleanrl", help="a CleanRL checkout")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "peers_sac.json")
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    for agent in args.agents:
        rows = results[agent] = {"scalerl": [], "cleanrl": []}
        for seed in range(args.rounds):
            rows["scalerl"].append(run_scalerl(agent, args.steps, seed))
            rows["cleanrl"].append(run_cleanrl_script(args.peers_python, args.cleanrl, SCRIPTS[agent], [
                "--env-id", "HalfCheetah-v4", "--total-timesteps", str(args.steps), "--seed", str(seed),
                "--learning-starts", str(LEARNING_STARTS)], LEARNING_STARTS))
            print(agent, seed, {key: round(values[-1], 1) for key, values in rows.items()}, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "steps": args.steps, "results": results},
                                   indent=2) + "\n")
    print_ratio_table(results, "agent", 1)


if __name__ == "__main__":
    main()
