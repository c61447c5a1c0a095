"""DQN on CartPole-v1: scalerl against CleanRL's dqn.py and Stable-Baselines3, side by side.

Each round runs scalerl, CleanRL and SB3 one after another (alternating, so a slow minute of the machine
hits all three), each in its own process with one torch thread, and reads the steps per second of the
learning phase (after learning_starts: start-up, the random warm-up and the final evaluation are left out).
Ratios are taken per round, then their median and range are reported: absolute figures drift with the
machine, ratios hold.

The peers run their released code in an environment of their own, with their own gymnasium pin:

    python3 -m venv benchmarks/.peers
    benchmarks/.peers/bin/pip install torch==2.13.0 stable-baselines3==2.9.2 gymnasium==0.29.1 tyro tensorboard
    git clone https://github.com/vwxyzjn/cleanrl benchmarks/.cleanrl      # measured at commit fe8d8a03
    python benchmarks/peers_dqn.py --rounds 3 --steps 40000 --setting both --json benchmarks/data/peers_dqn.json

Settings (CleanRL dqn.py's defaults but for the length of the run):
- `cleanrl`: Adam lr 2.5e-4, replay 10k, batch 128, learning starts at 10k steps, one update every 10 steps,
  target copied every 500 steps, epsilon 1 -> 0.05 over half the run, plain 1-step DQN, MSE loss, no
  gradient clipping, MLP 120-84 (scalerl: 120-120, its torso has one width).
- `every1`: the same with one update per environment step. It also times a bare-torch update (scalerl's
  network, loss and fused Adam on random batches, nothing else): the floor a loop with one update per step
  can reach; scalerl / floor is the share of that rate the whole loop keeps.
SB3's DQN has no MSE option and clips gradients at 10 (its defaults): the one difference left.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
LEARNING_STARTS = 10_000
SB3_SCRIPT = """
import json, sys, time
import torch
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import BaseCallback
steps, train_freq, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
class Clock(BaseCallback):
    def _on_step(self):
        if self.num_timesteps == {learning_starts}:
            self.start = time.perf_counter()
        return True
clock = Clock()
model = DQN("MlpPolicy", "CartPole-v1", learning_rate=2.5e-4, buffer_size=10_000, learning_starts={learning_starts},
            batch_size=128, tau=1.0, gamma=0.99, train_freq=train_freq, gradient_steps=1, target_update_interval=500,
            exploration_fraction=0.5, exploration_initial_eps=1.0, exploration_final_eps=0.05,
            policy_kwargs={{"net_arch": [120, 84]}}, seed=seed, device="cpu")
model.learn(steps, callback=clock)
print(json.dumps({{"sps": (steps - {learning_starts}) / (time.perf_counter() - clock.start)}}))
""".format(learning_starts=LEARNING_STARTS)


def one_thread_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def print_ratio_table(results: dict[str, dict[str, list[float]]], label: str, digits: int) -> None:
    """Median steps per second of each side and the median (range) of the per-round ratios, as markdown."""
    print(f"\n| {label} | scalerl SPS | CleanRL SPS | scalerl / CleanRL |\n|---|---|---|---|")
    for name, rows in results.items():
        ratios = [mine / theirs for mine, theirs in zip(rows["scalerl"], rows["cleanrl"])]
        print(f"| {name} | {statistics.median(rows['scalerl']):,.{digits}f} "
              f"| {statistics.median(rows['cleanrl']):,.{digits}f} | "
              f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |")


def run_scalerl(steps: int, train_every: int, seed: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder) / "run"
        subprocess.run([
            sys.executable, "-m", "scalerl", "train", "--env", "classic:CartPole-v1", "--steps", str(steps),
            "--seed", str(seed), "--threads", "1", "--run-dir", str(run_dir), "--progress", "off",
            "--log-every", "1000", "--eval-every", "0", "--eval-episodes", "1", "--checkpoint-every", "0",
            "--net.hidden", "120", "--algo.optim.lr", "2.5e-4", "--algo.buffer-size", "10000",
            "--algo.batch-size", "128", "--algo.learning-starts", str(LEARNING_STARTS),
            "--algo.train-every", str(train_every),
            "--algo.target-update-every", str(500 // train_every), "--algo.n-step", "1", "--algo.no-double",
            "--algo.loss", "mse", "--algo.max-grad-norm", "0", "--algo.epsilon-end", "0.05",
            "--algo.epsilon-decay-steps", str(steps // 2)], check=True, env=one_thread_env(), stdout=subprocess.DEVNULL)
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    learning = [r["sps"] for r in records if r["step"] > LEARNING_STARTS + 1000]
    return len(learning) / sum(1 / sps for sps in learning)  # each record covers 1000 steps


def run_cleanrl_script(python: Path, cleanrl: Path, script: str, args: list[str], learning_starts: int) -> float:
    """Run one of CleanRL's scripts and read the learning phase's steps per second: it prints its SPS since
    start every 100 steps after learning starts, and two of those give the rate in between."""
    with tempfile.TemporaryDirectory() as folder:
        result = subprocess.run([str(python), str(cleanrl / "cleanrl" / script), "--no-cuda", "--no-track", *args],
                                check=True, capture_output=True, text=True, cwd=folder,
                                env={**one_thread_env(), "PYTHONPATH": str(cleanrl)})
    rates = [int(value) for value in re.findall(r"^SPS: (\d+)$", result.stdout, re.MULTILINE)]
    first_step = (learning_starts // 100 + 1) * 100
    last_step = first_step + 100 * (len(rates) - 1)
    return (last_step - first_step) / (last_step / rates[-1] - first_step / rates[0])


def run_cleanrl(python: Path, cleanrl: Path, steps: int, train_every: int, seed: int) -> float:
    return run_cleanrl_script(python, cleanrl, "dqn.py", [
        "--env-id", "CartPole-v1", "--total-timesteps", str(steps), "--seed", str(seed),
        "--train-frequency", str(train_every)], LEARNING_STARTS)


def run_sb3(python: Path, steps: int, train_every: int, seed: int) -> float:
    result = subprocess.run([str(python), "-c", SB3_SCRIPT, str(steps), str(train_every), str(seed)], check=True,
                            capture_output=True, text=True, env=one_thread_env())
    return json.loads(result.stdout.strip().splitlines()[-1])["sps"]


def bare_update_rate(seconds: float = 5.0) -> float:
    """Updates per second of a plain torch DQN update on random batches, with scalerl's network in this
    setting (120-120) and its optimizer (fused Adam): the floor a loop with one update per step can reach."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(1)

    def network():
        return nn.Sequential(nn.Linear(4, 120), nn.ReLU(), nn.Linear(120, 120), nn.ReLU(), nn.Linear(120, 2))

    q, target = network(), network()
    optimizer = torch.optim.Adam(q.parameters(), lr=2.5e-4, fused=True)
    obs, next_obs = torch.randn(128, 4), torch.randn(128, 4)
    actions, rewards, dones = torch.randint(0, 2, (128, 1)), torch.randn(128), torch.zeros(128)

    def update():
        with torch.no_grad():
            td_target = rewards + 0.99 * target(next_obs).max(dim=1).values * (1 - dones)
        loss = F.mse_loss(td_target, q(obs).gather(1, actions).squeeze())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(200):
        update()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        update()
        count += 1
    return count / (time.perf_counter() - start)


def cleanrl_commit(cleanrl: Path) -> str:
    result = subprocess.run(["git", "-C", str(cleanrl), "rev-parse", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60_000)
    parser.add_argument("--setting", choices=["cleanrl", "every1", "both"], default="both")
    parser.add_argument("--peers-python", type=Path, default=HERE / ".peers" / "bin" / "python")
    parser.add_argument("--cleanrl", type=Path, default=HERE / ".cleanrl", help="a CleanRL checkout")
    parser.add_argument("--json", type=Path, default=None, help="write the measurements here (the results page "
                        "reads benchmarks/data/peers_dqn.json)")
    args = parser.parse_args()
    for path, what in ((args.peers_python, "--peers-python"), (args.cleanrl / "cleanrl" / "dqn.py", "--cleanrl")):
        if not path.exists():
            parser.error(f"{path} is missing ({what}); see the set-up at the top of this file")
    every = {"cleanrl": 10, "every1": 1}
    settings = every if args.setting == "both" else {args.setting: every[args.setting]}
    results: dict[str, dict[str, list[float]]] = {}
    for name, train_every in settings.items():
        rows = results[name] = {"scalerl": [], "cleanrl": [], "sb3": [], "floor": []}
        for round_index in range(args.rounds):
            rows["scalerl"].append(run_scalerl(args.steps, train_every, round_index))
            rows["cleanrl"].append(run_cleanrl(args.peers_python, args.cleanrl, args.steps, train_every, round_index))
            rows["sb3"].append(run_sb3(args.peers_python, args.steps, train_every, round_index))
            if train_every == 1:
                rows["floor"].append(bare_update_rate())
            print(name, round_index, {key: round(values[-1]) for key, values in rows.items() if values}, flush=True)
    if args.json:
        from scalerl.provenance import provenance

        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "date": time.strftime("%Y-%m-%d"), "provenance": provenance(),
            "command": "python benchmarks/peers_dqn.py " + " ".join(sys.argv[1:]), "steps": args.steps,
            "rounds": args.rounds, "cleanrl_commit": cleanrl_commit(args.cleanrl), "results": results},
            indent=1) + "\n")
    print("\n| setting | scalerl SPS | CleanRL SPS | SB3 SPS | scalerl / CleanRL | scalerl / SB3 | scalerl / floor |")
    print("|---|---|---|---|---|---|---|")
    for name, rows in results.items():
        def ratio(peer):
            if not rows[peer]:
                return "-"
            values = [mine / theirs for mine, theirs in zip(rows["scalerl"], rows[peer])]
            return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

        medians = [f"{statistics.median(rows[key]):,.0f}" for key in ("scalerl", "cleanrl", "sb3")]
        print(f"| {name} | {' | '.join(medians)} | {ratio('cleanrl')} | {ratio('sb3')} | {ratio('floor')} |")


if __name__ == "__main__":
    main()
