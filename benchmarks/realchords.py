"""The ReaLchords pipeline end to end at CPU scale, ending in the comparison table of docs/realchords.md.

    python benchmarks/realchords.py --out benchmarks/results/realchords      # about 1.5 hours on 2 cores

Steps (each an ordinary `scalerl chords` run directory under --out; finished ones are reused, so an
interrupted pipeline continues where it stopped): data, then the online model and the teacher (in
parallel), then a contrastive and a discriminative reward model (in parallel), then RL finetuning from
the online model with each of --seeds (two at a time), then `scalerl chords eval` of online MLE, every
RL run and the teacher on the held-out songs. The table (RL as mean and range over seeds) goes to
--out/table.md.

Two ablations (first seed only; --no-ablations skips them) separate the parts of the objective:
  kd-s0  distillation only: KL to the teacher, no reward models
  rm-s0  reward models only, with the KL taken to the online MLE model instead of the teacher (the
         paper's reward-model ablations do this: without any KL the policy collapses)
and --multiscale adds the ReaLchords-M variant: contrastive and discriminative reward models also trained
on 16- and 32-frame fragments, all six scoring windows of their own length (rlm-s0).

--key-change P adds models trained on crops that modulate with probability P (not in the paper): an
online model and a teacher pretrained that way (online-kc, teacher-kc) and RL from them with the
multi-scale reward models on modulating melodies (rl-kc-s0), to see whether the adaptation test can be
passed through the data.

Each model is evaluated once into --out/eval/NAME.json, so adding runs later evaluates only the new ones.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from scalerl.music.evaluate import plot_adaptation


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
    parser.add_argument("--finetune-steps", type=int, default=1000)
    parser.add_argument("--beta", type=float, default=0.5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the RL finetuning runs")
    parser.add_argument("--ablations", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--multiscale", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--key-change", type=float, default=0.0, help="probability of a modulating crop (0: skip)")
    args = parser.parse_args()
    out, data = args.out, args.out / "data"
    if not (data / "test.jsonl").exists():
        chords("data", "--synthetic", str(args.synthetic), "--bach", str(args.bach), "-o", str(data))
    common = ["--data", str(data), "--threads", "1"]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda model: once(out / model, "pretrain", "--model", model, "--steps", str(args.pretrain_steps),
                                         "--eval-every", "250", *common), ["online", "teacher"]))
        reward_runs = {out / f"reward-{kind}": ["--kind", kind] for kind in ("contrastive", "discriminative")}
        if args.multiscale:
            reward_runs |= {out / f"reward-{kind}-{frames}": ["--kind", kind, "--crop-frames", str(frames)]
                            for frames in (16, 32) for kind in ("contrastive", "discriminative")}
        list(pool.map(lambda run: once(run, "rewards", *reward_runs[run], "--steps", str(args.reward_steps),
                                       "--eval-every", "200", *common), reward_runs))
        rewards = ["--rewards", str(out / "reward-contrastive"), str(out / "reward-discriminative")]
        online = ["--policy", str(out / "online")]
        finetuning = {out / f"rl-s{seed}": [*online, *rewards, "--teacher", str(out / "teacher"), "--seed", str(seed)]
                      for seed in args.seeds}
        if args.ablations:
            finetuning[out / f"kd-s{args.seeds[0]}"] = [*online, "--teacher", str(out / "teacher"), "--seed", str(args.seeds[0])]
            finetuning[out / f"rm-s{args.seeds[0]}"] = [*online, *rewards, "--teacher", str(out / "online"),
                                                        "--seed", str(args.seeds[0])]
        if args.multiscale:
            finetuning[out / f"rlm-s{args.seeds[0]}"] = [*online, "--rewards", *map(str, reward_runs), "--teacher",
                                                         str(out / "teacher"), "--seed", str(args.seeds[0])]
        if args.key_change:
            key_change = ["--key-change", str(args.key_change)]
            list(pool.map(lambda model: once(out / f"{model}-kc", "pretrain", "--model", model, "--steps",
                                             str(args.pretrain_steps), "--eval-every", "250", *key_change, *common),
                          ["online", "teacher"]))
            finetuning[out / f"rl-kc-s{args.seeds[0]}"] = [
                "--policy", str(out / "online-kc"), "--rewards", *map(str, reward_runs), "--teacher", str(out / "teacher-kc"),
                "--seed", str(args.seeds[0]), *key_change]
        list(pool.map(lambda run: once(run, "finetune", *finetuning[run], "--beta",
                                       str(args.beta), "--steps", str(args.finetune_steps), "--eval-every", "50", *common),
                      finetuning))
    runs = [out / "online", *finetuning, out / "teacher"]
    if args.key_change:
        runs += [out / "online-kc", out / "teacher-kc"]
    results = {}
    for run in runs:
        path = out / "eval" / f"{run.name}.json"
        if not path.exists():
            subprocess.run([sys.executable, "-m", "scalerl", "chords", "eval", str(run), "--data", str(data),
                            "-o", str(path)], check=True, stdout=subprocess.DEVNULL)
        results |= json.loads(path.read_text())
    (out / "table.md").write_text(seed_table(results) + "\n")
    plot_adaptation(group_curves(results), out / "adaptation.png")
    print(seed_table(results))


def group_name(run_name: str) -> str:
    """'online (rl-s1)' -> 'rl': the runs of one kind, whatever their seed."""
    return run_name.split(" (")[1].rstrip(")").split("-s")[0]


def group_curves(results: dict[str, dict]) -> dict[str, list[float]]:
    curves: dict[str, list] = {}
    for name, result in results.items():
        curves.setdefault(group_name(name), []).append(result["fit_after_shift"])
    return {group: list(np.nanmean(np.array(members), axis=0)) for group, members in curves.items()}


def seed_table(results: dict[str, dict]) -> str:
    """One row per model kind; runs of the same kind (RL seeds) as mean [min, max]."""
    keys = ["note_in_chord", "onset_emd", "chord_length_entropy", "chord_entropy", "distinct_chords", "frames_to_recover",
            "fit_kept_after_shift"]
    groups: dict[str, list[dict]] = {}
    for name, result in results.items():
        groups.setdefault(group_name(name), []).append(result)
    rows = ["| model | runs | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for group, members in groups.items():
        cells = []
        for key in keys:
            values = np.array([member[key] for member in members], dtype=float)
            cell = f"{np.mean(values):.3f}"
            cells.append(cell + (f" [{np.min(values):.3f}, {np.max(values):.3f}]" if len(values) > 1 else ""))
        rows.append(f"| {group} | {len(members)} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
