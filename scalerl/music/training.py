"""The training loop shared by the chord models and the reward models: random transposed crops of
songs, AdamW with warm-up and cosine decay, periodic validation, and the usual run directory
(config.json, metrics.jsonl, TensorBoard, checkpoints) with exact resume after a kill."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from scalerl.checkpoint import load_checkpoint
from scalerl.checks import ConfigError, check_magnitudes, in_range, non_negative, positive, require
from scalerl.music.data import Song, load_songs, song_tokens
from scalerl.music.vocab import FRAMES_PER_BEAT, PAD, as_onset
from scalerl.progress import progress
from scalerl.session import Session, read_run_config


@dataclass(frozen=True)
class TrainingSettings:
    data: str = "data/chords"
    """Folder with train.jsonl and valid.jsonl (from `scalerl chords data`)."""
    steps: int = 2_000
    """Gradient steps."""
    batch_size: int = 32
    crop_frames: int = 64
    """Frames per training crop (16 beats at 4 frames a beat)."""
    lr: float = 1e-3
    """AdamW learning rate (cosine decay to 10% over the run, after a warm-up)."""
    weight_decay: float = 0.01
    transpose: int = 6
    """Random transposition in [-transpose, +transpose] semitones per crop."""
    key_change: float = 0.0
    """Probability that a crop changes key at a random beat: from there on, melody and chords move by a
    random interval in [-6, 6]. Not in the paper; a way to show models mid-song modulations."""
    history_noise: float = 0.0
    """Probability that a crop's chords before a random beat are read in another key, with no loss on them:
    from that beat on, the model must follow the melody against a wrong chord history, as when it
    accompanies and its first chords were guesses. Not in the paper; chord models only."""
    eval_every: int = 250
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 1
    run_dir: str | None = None
    """Default runs/chords/<kind>-s<seed>-<time>."""

    def __post_init__(self) -> None:
        positive("steps", self.steps)
        positive("batch_size", self.batch_size)
        positive("crop_frames", self.crop_frames)
        positive("lr", self.lr)
        non_negative("weight_decay", self.weight_decay)
        require(0 <= self.seed < 2**31, "seed", "in [0, 2**31)", self.seed)
        require(0 <= self.transpose <= 12, "transpose", "in [0, 12]", self.transpose)
        in_range("key_change", self.key_change, 0.0, 1.0)
        in_range("history_noise", self.history_noise, 0.0, 1.0)
        positive("eval_every", self.eval_every)
        check_magnitudes(self, "")  # every number finite and within 1e12, the nested model's too


def crop_tokens(song: Song, start: int, frames: int, semitones: int) -> tuple[list[int], list[int]]:
    chords, melody = song_tokens(song.transposed(semitones) if semitones else song)
    chords, melody = chords[start:start + frames], melody[start:start + frames]
    padding = [PAD] * (frames - len(chords))
    return chords + padding, melody + padding


def splice(before: list[int], after: list[int], frame: int) -> list[int]:
    """`before` up to `frame`, `after` from it on; what sounds at the seam starts there."""
    tokens = before[:frame] + after[frame:]
    if frame < len(tokens):
        tokens[frame] = as_onset(tokens[frame])
    return tokens


class Batches:
    """Random transposed crops of songs, starting on beats, drawn from a seeded generator; with
    probability key_change a crop modulates at a random beat, and with probability history_noise its
    chords before a random beat are read in a wrong key (see TrainingSettings)."""

    def __init__(self, songs: list[Song], frames: int, transpose: int, rng: np.random.Generator,
                 key_change: float = 0.0, history_noise: float = 0.0) -> None:
        if not songs:
            raise ConfigError("no training songs")
        self.songs, self.frames, self.transpose, self.rng = songs, frames, transpose, rng
        self.key_change, self.history_noise = key_change, history_noise

    def fitting_shift(self, song: Song, base: int, largest: int, nonzero: bool = False) -> int:
        """A random shift in [-largest, largest] that keeps the song's melody in MIDI range (0 if none does)."""
        shifts = [k for k in range(-largest, largest + 1) if k or not nonzero]
        return next((int(k) for k in self.rng.permutation(shifts) if song.transposed(base + int(k)).fits()), 0)

    def sample(self, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(chords, melody, targets) of `size` crops: the chords a model reads, the melody, and the chords it
        should predict (the chords read, or PAD where history noise made them wrong)."""
        chords, melody, targets = [], [], []
        for _ in range(size):
            song = self.songs[self.rng.integers(len(self.songs))]
            beats = max(1, (song.frames - self.frames) // FRAMES_PER_BEAT + 1)
            start = int(self.rng.integers(beats)) * FRAMES_PER_BEAT
            semitones = self.fitting_shift(song, 0, self.transpose)
            c, m = crop_tokens(song, start, self.frames, semitones)
            if self.key_change and self.rng.random() < self.key_change and self.frames > FRAMES_PER_BEAT:
                frame = int(self.rng.integers(1, self.frames // FRAMES_PER_BEAT)) * FRAMES_PER_BEAT
                shift = self.fitting_shift(song, semitones, 6, nonzero=True)
                if shift:
                    c_shifted, m_shifted = crop_tokens(song, start, self.frames, semitones + shift)
                    c, m = splice(c, c_shifted, frame), splice(m, m_shifted, frame)
            t = c
            if self.history_noise and self.rng.random() < self.history_noise and self.frames > FRAMES_PER_BEAT:
                frame = int(self.rng.integers(1, self.frames // FRAMES_PER_BEAT)) * FRAMES_PER_BEAT
                wrong, _ = crop_tokens(song, start, self.frames, semitones + int(self.rng.integers(1, 12)))
                c = splice(wrong, c, frame)
                t = [PAD] * frame + c[frame:]
            chords.append(c)
            melody.append(m)
            targets.append(t)
        return tuple(torch.tensor(part, device=device) for part in (chords, melody, targets))


def validation_crops(songs: list[Song], frames: int) -> list[tuple[list[int], list[int]]]:
    """Every consecutive crop of the songs, untransposed (the last one padded)."""
    return [crop_tokens(song, start, frames, 0) for song in songs for start in range(0, max(1, song.frames), frames)]


def learning_rate(cfg: TrainingSettings, step: int) -> float:
    warmup = min(100, cfg.steps // 10 or 1)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, cfg.steps - warmup)
    return cfg.lr * (0.1 + 0.45 * (1 + np.cos(np.pi * progress)))


LossFn = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]
"""(model, chords, melody, targets) -> (loss, scalars to log)."""
ValidateFn = Callable[[torch.nn.Module, list[Song], torch.device], dict[str, float]]


def fit(cfg: TrainingSettings, kind: str, model_fn: Callable[[torch.device], torch.nn.Module], loss_fn: LossFn,
        validate_fn: ValidateFn, resume: bool = False) -> dict[str, Any]:
    """Train `model_fn(device)` with `loss_fn` on random crops, validating every eval_every steps; with
    resume, continue the run in `cfg.run_dir` from its checkpoint."""
    run_dir = Path(cfg.run_dir or f"runs/chords/{kind}-s{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}")
    cfg = dataclasses.replace(cfg, run_dir=str(run_dir))
    train_songs, valid_songs = load_songs(Path(cfg.data) / "train.jsonl"), load_songs(Path(cfg.data) / "valid.jsonl")
    session = Session(run_dir, dataclasses.asdict(cfg), seed=cfg.seed, device=cfg.device, threads=cfg.threads,
                      resume=resume)
    device = session.device
    model = model_fn(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    step, wall_time = 0, 0.0
    if (checkpoint := session.checkpoint) is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        rng.bit_generator.state = checkpoint["numpy_rng"]
        step, wall_time = checkpoint["step"], checkpoint["wall_time"]
        session.restore_rng()
    batches = Batches(train_songs, cfg.crop_frames, cfg.transpose, rng, cfg.key_change, cfg.history_noise)
    session.write_json("parameters.json", {kind: sum(p.numel() for p in model.parameters())})
    if step == 0:  # the untrained model: the baseline every later record improves on
        session.log(0, {**evaluate_mode(model, validate_fn, valid_songs, device), "wall_time": 0.0})

    def train_step(step: int, logged: bool) -> dict[str, float]:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        loss, scalars = loss_fn(model, *batches.sample(cfg.batch_size, device))
        clipped_step(optimizer, loss, model.parameters())
        if not logged:
            return {}
        return {"loss": loss.item(), **scalars, "lr": optimizer.param_groups[0]["lr"],
                **evaluate_mode(model, validate_fn, valid_songs, device)}

    return run_steps(session, kind, cfg.steps, cfg.eval_every, step, wall_time, train_step, "loss",
                     lambda: {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                              "numpy_rng": rng.bit_generator.state})


def clipped_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, parameters: Any) -> None:
    """One optimizer step on `loss`, the gradient's global norm clipped to 1, as every chords training takes it."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(parameters, 1.0)
    optimizer.step()


def run_steps(session: Session, kind: str, steps: int, eval_every: int, step: int, wall_time: float,
              train_step: Callable[[int, bool], dict[str, float]], shown: str,
              checkpoint: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The step-and-record loop the chords trainings share, from `step` to `steps`: `train_step(step, logged)`
    makes one update and, when `logged` (every `eval_every` steps and at the last), returns the record to log;
    then the run is checkpointed with `checkpoint()`'s parts. The bar shows the record's `shown` value."""
    started = time.perf_counter() - wall_time
    record: dict[str, float] = {}
    bar = progress(total=steps, initial=step, desc=kind, unit="step")
    while step < steps:
        logged = (step + 1) % eval_every == 0 or step + 1 == steps
        scalars = train_step(step, logged)
        step += 1
        bar.update()
        if logged:
            wall_time = time.perf_counter() - started
            record = {**scalars, "wall_time": wall_time}
            session.log(step, record)
            session.save(step, wall_time, **checkpoint())
            bar.set_postfix({shown: f"{record[shown]:.3f}"})
    bar.close()
    return session.finish({"kind": kind, "steps": step, **record})


def evaluate_mode(model: torch.nn.Module, validate_fn: ValidateFn, songs: list[Song],
                  device: torch.device) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        result = validate_fn(model, songs, device)
    model.train()
    return result


def read_run(run_dir: str | Path, config_class: type) -> tuple[Any, Path]:
    """A ReaLchords run's config; a run of anything else (an RL agent's, say) is refused in one line."""
    run_dir = Path(run_dir)
    data = read_run_config(run_dir)
    data.pop("finetune", None)  # a finetuned policy's run also records how it was finetuned
    unknown = set(data) - {item.name for item in dataclasses.fields(config_class)}
    if unknown and "agent" in data:
        raise ConfigError(f"{run_dir} is a scalerl train run (agent {data['agent']}), not a chords model run")
    wanted = config_class.__name__.removesuffix("Config").lower()
    if unknown and "model" in data:
        raise ConfigError(f"{run_dir} holds a pretrained {data['model']} chord model, not a {wanted} run")
    if unknown:
        raise ConfigError(f"{run_dir} is not a chords model run: its config.json has {', '.join(sorted(unknown)[:3])}")
    return config_class(**data), run_dir


def latest_weights(run_dir: Path) -> dict[str, Any]:
    return load_checkpoint(run_dir / "checkpoints" / "latest.pt")
