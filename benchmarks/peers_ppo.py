"""PPO: scalerl against CleanRL's ppo.py (CartPole, 4 envs) and ppo_continuous_action.py (HalfCheetah, 1 env).

Same method as peers_dqn.py (its set-up, plus MuJoCo for the peers: `benchmarks/.peers/bin/pip install
mujoco==2.3.7 imageio`): each round runs scalerl and CleanRL one after another, one torch thread each, with
CleanRL's settings on both sides, and compares steps per second over the whole run (CleanRL prints
steps / time since its loop started after every rollout; scalerl's last metrics record gives the same).

- cartpole: 4 envs x 128 steps, 4 minibatches, 4 epochs, lr 2.5e-4 annealed, separate 64-64 tanh actor and
  critic with orthogonal init, entropy 0.01.
- halfcheetah: 1 env x 2048 steps, 32 minibatches, 10 epochs, lr 3e-4 annealed, separate 64-64 tanh networks,
  observation and reward normalization, no entropy bonus. CleanRL runs HalfCheetah-v4 (gymnasium 0.29.1,
  MuJoCo 2.3.7), scalerl HalfCheetah-v5 (MuJoCo 3.3.0): the same model and step cost.

    python benchmarks/peers_ppo.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peers_dqn import HERE, one_thread_env, print_ratio_table

NETWORK = ["--algo.encoders", "separate", "--net.hidden", "64", "--net.depth", "2", "--net.activation", "tanh",
           "--net.init", "orthogonal"]
CASES = {
    "cartpole": {
        "scalerl": ["--env", "classic:CartPole-v1", "--num-envs", "4", *NETWORK],
        "cleanrl": ("ppo.py", ["--env-id", "CartPole-v1", "--num-envs", "4"]),
        "steps": 100_000,
    },
    "halfcheetah": {
        "scalerl": ["--env", "mujoco:HalfCheetah-v5", "--algo.rollout-steps", "2048", "--algo.minibatches", "32",
                    "--algo.epochs", "10", "--algo.optim.lr", "3e-4", "--algo.entropy-coef", "0",
                    "--algo.normalize-obs", "--algo.normalize-rewards", *NETWORK],
        "cleanrl": ("ppo_continuous_action.py", ["--env-id", "HalfCheetah-v4"]),
        "steps": 20_480,
    },
}


def run_scalerl(case: str, steps: int, seed: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder) / "run"
        subprocess.run([sys.executable, "-m", "scalerl", "train", "--agent", "ppo", *CASES[case]["scalerl"],
                        "--steps", str(steps), "--seed", str(seed), "--threads", "1", "--run-dir", str(run_dir),
                        "--progress", "off", "--log-every", "2048", "--eval-every", "0", "--eval-episodes", "1",
                        "--checkpoint-every", "0"], check=True, env=one_thread_env(), stdout=subprocess.DEVNULL)
        last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    return last["step"] / last["wall_time"]


def run_cleanrl(python: Path, cleanrl: Path, case: str, steps: int, seed: int) -> float:
    script, args = CASES[case]["cleanrl"]
    with tempfile.TemporaryDirectory() as folder:
        result = subprocess.run([str(python), str(cleanrl / "cleanrl" / script), "--no-cuda", "--no-track", *args,
                                 "--total-timesteps", str(steps), "--seed", str(seed)],
                                check=True, capture_output=True, text=True, cwd=folder,
                                env={**one_thread_env(), "PYTHONPATH": str(cleanrl)})
    return float(re.findall(r"^SPS: (\d+)$", result.stdout, re.MULTILINE)[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--peers-python", type=Path, default=HERE / ".peers" / "bin" / "python")
    parser.add_argument("--cleanrl", type=Path, default=HERE / ".cleanrl", help="a CleanRL checkout")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "peers_ppo.json")
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    for case in args.cases:
        rows = results[case] = {"scalerl": [], "cleanrl": []}
        steps = CASES[case]["steps"]
        for seed in range(args.rounds):
            rows["scalerl"].append(run_scalerl(case, steps, seed))
            rows["cleanrl"].append(run_cleanrl(args.peers_python, args.cleanrl, case, steps, seed))
            print(case, seed, {key: round(values[-1], 1) for key, values in rows.items()}, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "results": results}, indent=2) + "\n")
    print_ratio_table(results, "case", 0)


if __name__ == "__main__":
    main()
