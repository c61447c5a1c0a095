"""The ReaLchords pipeline at CPU scale (`scalerl study realchords`), ending in the comparison table and the
adaptation figure of its report.

Steps, each an ordinary `scalerl chords` run directory under the study's folder (finished ones are reused,
so an interrupted study continues where it stopped), two at a time: data, then the online model, the
teacher, and a contrastive and a discriminative reward model, then RL finetuning from the online model with
each seed, then `scalerl chords eval` of online MLE, every RL run and the teacher on the held-out songs.
Last, online models of other sizes pretrained for the same steps: with the main one, their validation
records (loss, and note-in-chord of their own accompaniments) are the measured curve the pretraining budget
was chosen from (budget.png).

Two ablations (first seed only) separate the parts of the objective:
  kd-s0  distillation only: KL to the teacher, no reward models
  rm-s0  reward models only, with the KL taken to the online MLE model instead of the teacher (the
         paper's reward-model ablations do this: without any KL the policy collapses)
and the multi-scale variant ReaLchords-M: contrastive and discriminative reward models also trained on 16-
and 32-frame fragments, all six scoring windows of their own length (rlm-s0).

key_change > 0 adds models trained on crops that modulate with that probability (not in the paper): an
online model and a teacher pretrained that way (online-kc, teacher-kc) and RL from them with the
multi-scale reward models on modulating melodies (rl-kc-s0), to see whether the adaptation test can be
passed through the data.

history_noise > 0 adds an online model pretrained with history noise (not in the paper: chords before a
random beat read in a wrong key, so it learns to follow the melody against its own guesses; online-hn) and
RL from it with the same reward models and teacher (rl-hn-s0).

frame_fit > 0 adds RL that is also rewarded for note-in-chord, credited frame by frame at that weight with
four samples per melody, scored above a random note's fit, and decoded with chords that change only on
beats (none of it in the paper: `chords finetune --fit-credit frame --fit-above-chance --grammar beats`;
rl-frame-s0, from the history-noise model when there is one, for frame_fit_steps), beside the paper's
variant. Without the grammar and the chance correction the fit reward is gamed (docs/realchords-notes.md).

Each model is evaluated once into eval/NAME.json, so adding runs later evaluates only the new ones. Beside
them, eval/rule.json: the recent-notes rule (scalerl.music.rule), what following the melody alone is worth.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from scalerl.analysis.plots import pyplot
from scalerl.music.cli import main as chords_main
from scalerl.music.data import load_songs
from scalerl.music.evaluate import evaluate_model, plot_adaptation
from scalerl.music.models import ChordModelConfig
from scalerl.music.rule import RecentNotesRule
from scalerl.music.training import TrainingSettings


@dataclass(frozen=True)
class Settings:
    synthetic: int = 600
    synthetic_form: str = "loop"
    """loop (a two-bar progression repeats, as in pop songs) or walk (every next chord drawn afresh)."""
    bach: int = -1
    """Chorales (-1: all)."""
    pretrain_steps: int = 2000
    """Where validation loss and note-in-chord flatten for the online model (budget.png)."""
    curve_sizes: list[tuple[int, int]] = field(default_factory=lambda: [(64, 2), (256, 4)])
    """(dim, layers) of the online models pretrained beside the main one (128, 3) for the size curve."""
    reward_steps: int = 500
    finetune_steps: int = 1000
    beta: float = 0.5
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    ablations: bool = True
    multiscale: bool = True
    key_change: float = 0.5
    history_noise: float = 0.5
    """> 0 adds an online model pretrained with history noise and RL from it (rl-hn), beside the paper's."""
    frame_fit: float = 16.0
    """> 0 adds RL with the fit reward credited frame by frame at this weight (rl-frame), beside the paper's."""
    frame_fit_steps: int = 2000
    eval_limit: int | None = None
    """Evaluate on the first N held-out songs only (None: all)."""
    processes: bool = True
    """Each step in a process of its own, two at a time; False: one after another in this process, which
    spares every step the few seconds of importing torch (longer than a quick step itself)."""


FULL = Settings()
"""About 2.5 hours on 2 cores: the table in the study's README."""
QUICK = Settings(synthetic=60, bach=0, pretrain_steps=10, curve_sizes=[(16, 1)], reward_steps=10, finetune_steps=4,
                 frame_fit_steps=4, seeds=[0], ablations=False, multiscale=False, key_change=0.0, eval_limit=4,
                 processes=False)
"""Under a minute: every step of the pipeline, at a size that learns nothing."""


def chords_in_a_process(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "scalerl", "chords", *args], check=True, stdout=subprocess.DEVNULL)


def chords_here(*args: str) -> None:
    """`scalerl chords ARGS` in this process, its printed summary dropped and torch's thread count restored
    (each command sets its own)."""
    threads = torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            chords_main(list(args))
    finally:
        torch.set_num_threads(threads)


def once(chords: Callable[..., None], run_dir: Path, *args: str) -> None:
    """Run a chords command unless its run finished; resume it if it started (from the beginning if it was
    killed before its first checkpoint)."""
    if (run_dir / "summary.json").exists():
        return
    resuming = (run_dir / "config.json").exists()
    print(f"realchords: {args[0]} {run_dir.name}{' (resumed)' if resuming else ''} ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    if resuming:
        chords(args[0], "--resume", str(run_dir))
    else:
        chords(*args, "--run-dir", str(run_dir))
    print(f"realchords: {args[0]} {run_dir.name} done in {time.monotonic() - started:,.0f} s", file=sys.stderr,
          flush=True)


def finish(jobs: list[Future]) -> None:
    """Wait for every job, raising the first failure."""
    for job in jobs:
        job.result()


def run(out: Path, quick: bool = False) -> Path:
    """Run (or continue) the pipeline in `out` and write out/report.md; returns its path."""
    settings = QUICK if quick else FULL
    chords = chords_in_a_process if settings.processes else chords_here
    out = Path(out)
    data = out / "data"
    if not (data / "test.jsonl").exists():
        chords("data", "--synthetic", str(settings.synthetic), "--synthetic-form", settings.synthetic_form,
               "--bach", str(settings.bach), "-o", str(data))
    common = ["--data", str(data), "--threads", "1"]

    def pretrain(run: Path, *args: str) -> None:
        once(chords, run, "pretrain", *args, "--steps", str(settings.pretrain_steps), "--eval-every", "250", *common)

    with ThreadPoolExecutor(2 if settings.processes else 1) as pool:
        # Every run that needs only the data goes in one queue, so no core waits for the other's last job.
        pretraining = {out / "online": ["--model", "online"], out / "teacher": ["--model", "teacher"]}
        if settings.history_noise:
            pretraining[out / "online-hn"] = ["--model", "online", "--history-noise", str(settings.history_noise)]
        if settings.key_change:
            key_change = ["--key-change", str(settings.key_change)]
            pretraining |= {out / f"{model}-kc": ["--model", model, *key_change] for model in ("online", "teacher")}
        reward_runs = {out / f"reward-{kind}": ["--kind", kind] for kind in ("contrastive", "discriminative")}
        if settings.multiscale:
            reward_runs |= {out / f"reward-{kind}-{frames}": ["--kind", kind, "--crop-frames", str(frames)]
                            for frames in (16, 32) for kind in ("contrastive", "discriminative")}
        finish([*(pool.submit(pretrain, run, *args) for run, args in pretraining.items()),
                *(pool.submit(once, chords, run, "rewards", *args, "--steps", str(settings.reward_steps),
                              "--eval-every", "200",
                              *common) for run, args in reward_runs.items())])
        rewards = ["--rewards", str(out / "reward-contrastive"), str(out / "reward-discriminative")]
        online = ["--policy", str(out / "online")]

        def realchords(policy: str, seed: int) -> list[str]:
            return ["--policy", str(out / policy), *rewards, "--teacher", str(out / "teacher"), "--seed", str(seed)]

        # The first seed and the history-noise run go first: with them the main comparison is in early.
        finetuning = {out / f"rl-s{settings.seeds[0]}": realchords("online", settings.seeds[0])}
        if settings.history_noise:
            finetuning[out / f"rl-hn-s{settings.seeds[0]}"] = realchords("online-hn", settings.seeds[0])
        if settings.frame_fit:
            finetuning[out / f"rl-frame-s{settings.seeds[0]}"] = [
                *realchords("online-hn" if settings.history_noise else "online", settings.seeds[0]),
                "--fit-reward", str(settings.frame_fit), "--fit-credit", "frame", "--samples-per-melody", "4",
                "--fit-above-chance", "--grammar", "beats", "--steps", str(settings.frame_fit_steps)]
        finetuning |= {out / f"rl-s{seed}": realchords("online", seed) for seed in settings.seeds[1:]}
        if settings.ablations:
            finetuning[out / f"kd-s{settings.seeds[0]}"] = [*online, "--teacher", str(out / "teacher"),
                                                            "--seed", str(settings.seeds[0])]
            finetuning[out / f"rm-s{settings.seeds[0]}"] = [*online, *rewards, "--teacher", str(out / "online"),
                                                        "--seed", str(settings.seeds[0])]
        if settings.multiscale:
            finetuning[out / f"rlm-s{settings.seeds[0]}"] = [*online, "--rewards", *map(str, reward_runs),
                                                         "--teacher", str(out / "teacher"),
                                                         "--seed", str(settings.seeds[0])]
        if settings.key_change:
            finetuning[out / f"rl-kc-s{settings.seeds[0]}"] = [
                "--policy", str(out / "online-kc"), "--rewards", *map(str, reward_runs),
                "--teacher", str(out / "teacher-kc"), "--seed", str(settings.seeds[0]), *key_change]
        # A run's own arguments come last, so they override the shared ones (rl-frame's steps).
        finish([pool.submit(once, chords, run, "finetune", "--beta", str(settings.beta),
                            "--steps", str(settings.finetune_steps), "--eval-every", "50", *common, *args)
                for run, args in finetuning.items()])
        runs = [out / "online", *finetuning, out / "teacher"]
        if settings.key_change:
            runs += [out / "online-kc", out / "teacher-kc"]
        if settings.history_noise:
            runs.append(out / "online-hn")
        # Each model is evaluated once; the pretraining runs of the size curve queue behind the evaluations.
        limit = ["--limit", str(settings.eval_limit)] if settings.eval_limit else []
        evaluations = {run: out / "eval" / f"{run.name}.json" for run in runs}
        finish([*(pool.submit(chords, "eval", str(run), "--data", str(data), "-o", str(path), "--threads", "1", *limit)
                  for run, path in evaluations.items() if not current_evaluation(path)),
                *(pool.submit(pretrain, out / f"online-{dim}x{layers}", "--model", "online", "--net.dim", str(dim),
                              "--net.layers", str(layers)) for dim, layers in settings.curve_sizes)])
    results = {}
    for path in evaluations.values():
        results |= json.loads(path.read_text())
    rule = out / "eval" / "rule.json"
    if not current_evaluation(rule):  # the yardstick: what following the melody alone is worth on these songs
        songs = load_songs(data / "test.jsonl")[:settings.eval_limit]
        frames = TrainingSettings().crop_frames
        rule.write_text(json.dumps({"rule (recent notes)": evaluate_model(RecentNotesRule(), songs, frames)}, indent=2))
    results |= json.loads(rule.read_text())
    plot_adaptation(group_curves(results), out / "adaptation.png")
    default = ChordModelConfig()
    curves = {f"online {dim}x{layers}": out / f"online-{dim}x{layers}" for dim, layers in settings.curve_sizes}
    if settings.history_noise:
        curves[f"online {default.dim}x{default.layers}, history noise {settings.history_noise}"] = out / "online-hn"
    plot_budget({f"online {default.dim}x{default.layers}": out / "online", **curves, "teacher": out / "teacher"},
                out / "budget.png")
    report = out / "report.md"
    report.write_text(f"# ReaLchords study{' (quick: every step, nothing learned)' if quick else ''}\n\n"
                      f"Settings: {settings}\n\n{seed_table(results)}\n\n![Adaptation test](adaptation.png)\n\n"
                      f"Pretraining budget: validation records against steps, per model size.\n\n"
                      f"![Pretraining curves](budget.png)\n\n"
                      "The paper's numbers, and how ours compare: the study's README "
                      "(`scalerl study --readme realchords`).\n")
    return report


def group_name(run_name: str) -> str:
    """'online (rl-s1)' -> 'rl': the runs of one kind, whatever their seed."""
    return run_name.split(" (")[1].rstrip(")").split("-s")[0]


SEED_TABLE_KEYS = ["note_in_chord", "onset_emd", "chord_length_entropy", "one_frame_chords", "chord_entropy",
                   "distinct_chords", "invalid_holds", "frames_to_recover", "fit_kept_after_shift"]


def current_evaluation(path: Path) -> bool:
    """Whether an evaluation file holds every metric the report reads: one written before a metric was
    added is redone."""
    return path.exists() and all(set(SEED_TABLE_KEYS) <= result.keys()
                                 for result in json.loads(path.read_text()).values())


def group_curves(results: dict[str, dict]) -> dict[str, list[float]]:
    curves: dict[str, list] = {}
    for name, result in results.items():
        curves.setdefault(group_name(name), []).append(result["fit_after_shift"])
    return {group: list(np.nanmean(np.array(members), axis=0)) for group, members in curves.items()}


def seed_table(results: dict[str, dict]) -> str:
    """One row per model kind; runs of the same kind (RL seeds) as mean [min, max]."""
    groups: dict[str, list[dict]] = {}
    for name, result in results.items():
        groups.setdefault(group_name(name), []).append(result)
    rows = ["| model | runs | " + " | ".join(SEED_TABLE_KEYS) + " |", "|---|---|" + "---|" * len(SEED_TABLE_KEYS)]
    for group, members in groups.items():
        cells = []
        for key in SEED_TABLE_KEYS:
            values = np.array([member[key] for member in members], dtype=float)
            cell = f"{np.mean(values):.3f}"
            cells.append(cell + (f" [{np.min(values):.3f}, {np.max(values):.3f}]" if len(values) > 1 else ""))
        rows.append(f"| {group} | {len(members)} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plot_budget(runs: dict[str, Path], path: Path) -> None:
    """Validation loss and the note-in-chord of the models' own accompaniments against pretraining steps,
    one line per run: where they flatten is the budget worth training for."""
    plt = pyplot()
    figure, (loss_axis, fit_axis) = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, run in runs.items():
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][1:]
        steps = [record["step"] for record in records]
        loss_axis.plot(steps, [record["valid_loss"] for record in records], marker="o", markersize=3, label=label)
        fit_axis.plot(steps, [record.get("valid_note_in_chord", np.nan) for record in records], marker="o",
                      markersize=3, label=label)
    loss_axis.set_ylabel("validation loss (chord tokens)")
    fit_axis.set_ylabel("note-in-chord, own accompaniments")
    for axis in (loss_axis, fit_axis):
        axis.set_xlabel("pretraining step")
    fit_axis.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    figure.tight_layout()
    figure.savefig(path, dpi=150)
    plt.close(figure)
