"""The ReaLchords pipeline end to end at CPU scale, ending in the comparison table of docs/realchords.md.

    python benchmarks/realchords.py --out benchmarks/results/realchords      # about an hour on 2 cores

Steps (each an ordinary `scalerl chords` run directory under --out; finished ones are reused, so an
interrupted pipeline continues where it stopped): data, then the online model and the teacher (in
parallel), then a contrastive and a discriminative reward model (in parallel), then RL finetuning,
then `scalerl chords eval` of online MLE, RL and the teacher on the held-out songs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def chords(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "scalerl", "chords", *args], check=True, stdout=subprocess.DEVNULL)


def once(run_dir: Path, *args: str) -> None:
    """Run a chords command unless its run finished; resume it if it has a checkpoint."""
    if (run_dir / "summary.json").exists():
        return
    if (run_dir / "checkpoints" / "latest.pt").exists():
        chords(args[0], "--resume", str(run_dir))
    else:
        chords(*args, "--run-dir", str(run_dir))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "realchords")
    parser.add_argument("--synthetic", type=int, default=600)
    parser.add_argument("--bach", type=int, default=-1, help="chorales (-1: all)")
    parser.add_argument("--pretrain-steps", type=int, default=1000)
    parser.add_argument("--reward-steps", type=int, default=500)
    parser.add_argument("--finetune-steps", type=int, default=100)
    parser.add_argument("--beta", type=float, default=0.5)
    args = parser.parse_args()
    out, data = args.out, args.out / "data"
    if not (data / "test.jsonl").exists():
        chords("data", "--synthetic", str(args.synthetic), "--bach", str(args.bach), "-o", str(data))
    common = ["--data", str(data), "--threads", "1"]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda model: once(out / model, "pretrain", "--model", model, "--steps", str(args.pretrain_steps),
                                         "--eval-every", "250", *common), ["online", "teacher"]))
        list(pool.map(lambda kind: once(out / f"reward-{kind}", "rewards", "--kind", kind, "--steps", str(args.reward_steps),
                                        "--eval-every", "200", *common), ["contrastive", "discriminative"]))
    once(out / "rl", "finetune", "--policy", str(out / "online"), "--teacher", str(out / "teacher"), "--rewards",
         str(out / "reward-contrastive"), str(out / "reward-discriminative"), "--beta", str(args.beta),
         "--steps", str(args.finetune_steps), "--eval-every", "25", *common)
    subprocess.run([sys.executable, "-m", "scalerl", "chords", "eval", str(out / "online"), str(out / "rl"),
                    str(out / "teacher"), "--data", str(data), "--frames", "128", "-o", str(out / "eval.json")], check=True)
    print(json.dumps({name: json.loads((out / name / "summary.json").read_text())
                      for name in ("online", "teacher", "reward-contrastive", "reward-discriminative", "rl")}, indent=1))


if __name__ == "__main__":
    main()
