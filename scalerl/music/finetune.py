"""RL finetuning of the online chord model (ReaLchords, Section 4).

Each step samples accompaniments of a batch of melody crops from the policy, frame by frame. A whole
accompaniment earns R = sum of reward models (x reward_scale) + rule penalties; rewards are normalized
with running statistics and the batch mean is the baseline (REINFORCE). Each frame also pays
beta * KL(policy(.|x<t, y<t) || teacher(.|x, y<t)): the teacher sees the whole melody, so the term
distils its foresight into the online policy. The KL is differentiated directly through the policy's
distribution on its own samples, as in the paper. The policy runs without dropout, so the distribution
its samples come from is the one whose log-probabilities are differentiated.

    loss = -mean_b[(R_b - baseline) * sum_t log pi(y_bt)] / T + beta * mean_{b,t} KL_bt

An optional rule reward for note-in-chord (fit_reward; not in the paper) joins R_b, or with fit_credit
"frame" enters per frame: A_bt = (R_b - baseline) + W * (G_bt - baseline_t) / std, with G_bt the fit
discounted from frame t on, replacing R_b - baseline in the sum over t.

With a grammar other than free (not in the paper), the policy samples only legal chord tokens, and its
log-probabilities and the KL are taken over them, both distributions renormalized.

A reward model scores fragments as long as those it was trained on (its crop_frames): a longer
accompaniment is scored on windows of that length with 50% overlap, and the reward is their mean. Reward
models trained at several lengths together give the multi-scale variant (ReaLchords-M).
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from scalerl.checks import ConfigError, check_magnitudes, in_range, non_negative, positive, require
from scalerl.music.data import load_songs
from scalerl.music.metrics import chord_value, frame_fit, invalid_holds, melody_pitch, sounding_chords
from scalerl.music.models import chord_logits, chord_vocabulary_mask, generate, grammar_mask, previous_chords
from scalerl.music.pretrain import PretrainConfig, load_chord_model
from scalerl.music.rewards import load_reward_model
from scalerl.music.training import Batches, clipped_step, read_run, run_steps
from scalerl.music.vocab import SILENCE, chord_pitch_classes
from scalerl.normalization import RunningMeanStd
from scalerl.session import Session, read_run_config, resolve_device


@dataclass(frozen=True)
class FinetuneConfig:
    """RL finetuning of an online chord model: reward models plus a KL to the teacher.

    At the defaults (1,000 steps of 16 64-frame accompaniments) a run takes about 8 minutes on one core of a
    2-core machine with the other busy; the note-in-chord of its samples flattens by about 600 steps."""

    policy: str = ""
    """Run directory of the pretrained online model (the policy starts from it)."""
    teacher: str = ""
    """Run directory of the pretrained offline teacher (the KL target)."""
    rewards: list[str] = field(default_factory=list)
    """Run directories of reward models; their outputs are summed (each over windows of its training length)."""
    data: str = "data/chords"
    beta: float = 0.5
    """Weight of the per-frame KL to the teacher (0: reward models only)."""
    reward_scale: float = 50.0
    """Multiplier of the reward models' sum (the paper's x50)."""
    silence_penalty: float = 2.0
    """Per chord frame of silence under a sounding melody, once they pass 4% of the frames."""
    repetition_penalty: float = 2.0
    """Per frame of a chord held longer than 32 frames."""
    invalid_penalty: float = 2.0
    """Per hold token that does not continue the chord sounding before it (a hold of another chord, or of
    nothing): such a frame changes the chord without an onset. The official reimplementation gives -10 to
    an accompaniment its decoder cannot read; this counts the faults, at the other penalties' weight. 0
    leaves such sequences to the reward models, which read them as one long chord."""
    fit_reward: float = 0.0
    """Weight of a rule reward: the accompaniment's note-in-chord. Not in the paper, where only the reward
    models judge harmony; with it the evaluation's main metric is part of the objective, so its gain says how
    far an online model can get rather than how well the reward models judge."""
    fit_credit: Literal["sequence", "frame"] = "sequence"
    """How the fit reward is credited. sequence: one note-in-chord per accompaniment, added to its return,
    so every chord of it shares one number. frame: each frame's fit (1 if the melody note is in the chord
    sounding then, 0 if not or silent) discounted over the frames after it (fit_discount), so a chord is
    credited with the fits it could have changed; not in the paper."""
    fit_discount: float = 0.9
    """Discount of the frame-credited fit: 0.9 looks about ten frames (two and a half beats) ahead."""
    grammar: Literal["free", "holds", "beats"] = "free"
    """Which accompaniments the policy may sample (ChordModelConfig.grammar, which the finetuned model keeps
    for evaluation and jamming); log-probabilities and the KL are taken over the legal tokens. free is the
    paper's; holds and beats are not in it."""
    fit_above_chance: bool = False
    """Score each frame's fit above what a random melody note would earn: 1 - k/12 when the note is in the
    k-note chord sounding, -k/12 when it is not. Plain note-in-chord pays a four-note chord more for
    covering more pitch classes, and the fit-rewarded policy learns to play sevenths; not in the paper."""
    steps: int = 1000
    batch_size: int = 16
    samples_per_melody: int = 1
    """Accompaniments sampled for each melody in a batch (batch_size / this many melodies). Above 1, each
    sample's baseline is the mean return of the other samples of its melody (leave-one-out) instead of the
    batch mean: how hard a melody is no longer counts as the chords' merit. The paper removes that part with
    a learned value model; 1 keeps the batch-mean baseline."""
    crop_frames: int = 64
    lr: float = 1e-4
    temperature: float = 1.0
    transpose: int = 6
    key_change: float = 0.0
    """Probability that a melody crop modulates at a random beat (see TrainingSettings.key_change)."""
    eval_every: int = 50
    seed: int = 0
    device: str = "auto"
    threads: int = 1
    run_dir: str | None = None

    def __post_init__(self) -> None:
        require(bool(self.policy), "policy", "the run directory of a pretrained online model", self.policy)
        require(bool(self.teacher) or self.beta == 0, "teacher", "a teacher run directory when beta > 0", self.teacher)
        require(bool(self.rewards) or self.beta > 0, "rewards", "at least one reward model when beta is 0",
                self.rewards)
        non_negative("beta", self.beta)
        non_negative("fit_reward", self.fit_reward)
        check_magnitudes(self, "")
        for name in ("silence_penalty", "repetition_penalty", "invalid_penalty"):
            non_negative(name, getattr(self, name))
        require(self.fit_credit in ("sequence", "frame"), "fit_credit", "sequence or frame", self.fit_credit)
        require(self.grammar in ("free", "holds", "beats"), "grammar", "free, holds or beats", self.grammar)
        in_range("fit_discount", self.fit_discount, 0.0, 1.0)
        require(0 <= self.seed < 2**31, "seed", "in [0, 2**31)", self.seed)
        positive("steps", self.steps)
        positive("batch_size", self.batch_size)
        positive("samples_per_melody", self.samples_per_melody)
        require(self.batch_size % self.samples_per_melody == 0, "samples_per_melody",
                f"a divisor of batch_size ({self.batch_size})", self.samples_per_melody)
        positive("crop_frames", self.crop_frames)
        positive("lr", self.lr)
        positive("temperature", self.temperature)
        in_range("key_change", self.key_change, 0.0, 1.0)
        positive("eval_every", self.eval_every)


def kl_to_teacher(policy_logits: torch.Tensor, teacher_logits: torch.Tensor,
                  legal: torch.Tensor | None = None) -> torch.Tensor:
    """KL(policy || teacher) per frame over the chord vocabulary: (batch, frames); with a `legal` mask
    (batch, frames, vocab), between both distributions renormalized over each frame's legal tokens. The
    non-chord columns are dropped, and illegal ones pushed to a finite -1e9, rather than masked to -inf,
    so no inf - inf reaches the gradient."""
    columns = chord_vocabulary_mask(policy_logits.device)
    policy_logits, teacher_logits = policy_logits[..., columns], teacher_logits[..., columns]
    if legal is not None:
        policy_logits = policy_logits.masked_fill(~legal[..., columns], -1e9)
        teacher_logits = teacher_logits.masked_fill(~legal[..., columns], -1e9)
    log_p = F.log_softmax(policy_logits, -1)
    log_q = F.log_softmax(teacher_logits, -1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def windowed_reward(model: torch.nn.Module, chords: torch.Tensor, melody: torch.Tensor, window: int) -> torch.Tensor:
    """The mean of the model's rewards over `window`-frame windows with 50% overlap (the last one flush
    with the end), so no frame goes unscored; the plain reward when the sequence fits one window."""
    frames = chords.shape[1]
    if frames <= window:
        return model(chords, melody)
    starts = list(range(0, frames - window + 1, max(1, window // 2)))
    if starts[-1] != frames - window:
        starts.append(frames - window)
    return torch.stack([model(chords[:, s:s + window], melody[:, s:s + window]) for s in starts]).mean(0)


def penalties(chords: list[int], melody: list[int], silence: float, repetition: float, invalid: float = 0.0) -> float:
    """The rule-based penalties of one accompaniment (a negative number or 0)."""
    silent_under_melody = sum(1 for c, m in zip(chords, melody) if c == SILENCE and melody_pitch(m) is not None)
    allowed = int(0.04 * len(chords))
    held_too_long = sum(max(0, event.end - event.start - 32) for event in sounding_chords(chords))
    return -silence * max(0,
                          silent_under_melody - allowed) - repetition * held_too_long - invalid * invalid_holds(chords)


def baselined(returns: np.ndarray, group: int) -> np.ndarray:
    """Returns (one per sample, or per sample and frame) minus their baseline: the batch mean, or for
    consecutive groups of `group` samples of one melody, the mean of the other samples in the group
    (leave-one-out, so a sample's baseline does not depend on its own return); per frame for frame returns."""
    if group == 1:
        return returns - returns.mean(0)
    grouped = returns.reshape(-1, group, *returns.shape[1:])
    return ((grouped - grouped.mean(1, keepdims=True)) * group / (group - 1)).reshape(returns.shape)


def chance_fits(chord_lists: list[list[int]]) -> np.ndarray:
    """Per sample and frame, the share of the 12 pitch classes the sounding chord covers (0 for silence):
    the note-in-chord a melody note drawn at random would score."""
    return np.array([[len(chord_pitch_classes(value)) / 12 if (value := chord_value(token)) is not None else 0.0
                      for token in chords] for chords in chord_lists])


def fit_to_go(fits: np.ndarray, discount: float) -> np.ndarray:
    """Per sample and frame, the discounted sum of the frame fits from that frame on (NaN fits, where the
    melody or the chord is silent, earn 0)."""
    rewards = np.nan_to_num(fits)
    to_go, running = np.zeros_like(rewards), np.zeros(len(rewards))
    for frame in reversed(range(rewards.shape[1])):
        running = rewards[:, frame] + discount * running
        to_go[:, frame] = running
    return to_go


def finetune(cfg: FinetuneConfig, resume: bool = False) -> dict[str, Any]:
    run_dir = Path(cfg.run_dir or f"runs/chords/finetune-s{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}")
    cfg = dataclasses.replace(cfg, run_dir=str(run_dir))
    policy_cfg, _ = read_run(cfg.policy, PretrainConfig)
    require(policy_cfg.model == "online", "policy", "an online model run", policy_cfg.model)
    if cfg.grammar != "free":
        policy_cfg = dataclasses.replace(policy_cfg, net=dataclasses.replace(policy_cfg.net, grammar=cfg.grammar))
    # The finetuned policy loads like a pretrained online model: its config.json carries the model spec.
    config = {**dataclasses.asdict(policy_cfg), "run_dir": str(run_dir), "finetune": dataclasses.asdict(cfg)}
    # Everything the run reads is loaded before its directory is claimed: a bad path leaves nothing behind.
    device = resolve_device(cfg.device)
    policy = load_chord_model(cfg.policy, str(device))[1]
    policy.cfg = policy_cfg.net  # generate() and the legal-token mask read the grammar from here
    teacher = load_chord_model(cfg.teacher, str(device))[1] if cfg.teacher else None
    reward_models = [(model, reward_cfg.crop_frames) for reward_cfg, model in
                     (load_reward_model(path, str(device)) for path in cfg.rewards)]
    songs = load_songs(Path(cfg.data) / "train.jsonl")
    session = Session(run_dir, config, seed=cfg.seed, device=cfg.device, threads=cfg.threads, resume=resume)
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    norm, step, wall_time = RunningMeanStd(), 0, 0.0
    """The returns' running mean and variance, for reward normalization."""
    if (checkpoint := session.checkpoint) is not None:
        policy.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        rng.bit_generator.state = checkpoint["numpy_rng"]
        generator.set_state(checkpoint["generator"])
        norm.load_state_dict(returns_norm_state(checkpoint["norm"]))
        step, wall_time = checkpoint["step"], checkpoint["wall_time"]
        session.restore_rng()
    batches = Batches(songs, cfg.crop_frames, cfg.transpose, rng, cfg.key_change)

    def train_step(step: int, logged: bool) -> dict[str, float]:
        _, melody, _ = batches.sample(cfg.batch_size // cfg.samples_per_melody, device)
        melody = melody.repeat_interleave(cfg.samples_per_melody, 0)
        chords = generate(policy, melody, cfg.temperature, generator=generator)
        with torch.no_grad():
            model_rewards = [windowed_reward(model, chords, melody, window) for model, window in reward_models]
            teacher_logits = teacher(chords, melody) if teacher is not None else None
        chord_lists, melody_lists = chords.tolist(), melody.tolist()
        rule = np.array([penalties(c, m, cfg.silence_penalty, cfg.repetition_penalty, cfg.invalid_penalty)
                         for c, m in zip(chord_lists, melody_lists)])
        frame_fits = np.array([frame_fit(c, m) for c, m in zip(chord_lists, melody_lists)])
        fit_rewards = frame_fits - chance_fits(chord_lists) if cfg.fit_above_chance else frame_fits
        with warnings.catch_warnings():  # an accompaniment with no scored frame has NaN fit
            warnings.simplefilter("ignore", RuntimeWarning)
            fits = np.nanmean(frame_fits, 1)
            fit_term = cfg.fit_reward * np.nan_to_num(np.nanmean(fit_rewards, 1))
        learned = cfg.reward_scale * sum(r.cpu().numpy()
                                         for r in model_rewards) if model_rewards else np.zeros(len(rule))
        returns = learned + rule + (fit_term if cfg.fit_credit == "sequence" else 0.0)
        norm.update(returns)
        normalized = norm.normalize(returns)
        advantages = baselined(normalized, cfg.samples_per_melody)[:, None]
        if cfg.fit_reward and cfg.fit_credit == "frame":
            frame_advantages = baselined(fit_to_go(fit_rewards, cfg.fit_discount), cfg.samples_per_melody)
            advantages = advantages + cfg.fit_reward * frame_advantages / max(frame_advantages.std(), 1e-6)
        advantages = torch.tensor(advantages, dtype=torch.float32, device=device)
        policy_logits = policy(chords, melody)
        legal = grammar_mask(policy.cfg.grammar, previous_chords(chords), torch.arange(chords.shape[1], device=device))
        sampled_logits = chord_logits(policy_logits)
        if legal is not None:
            sampled_logits = sampled_logits.masked_fill(~legal, float("-inf"))
        log_probs = F.log_softmax(sampled_logits, -1).gather(-1, chords.unsqueeze(-1)).squeeze(-1)
        pg_loss = -(advantages * log_probs).sum(1).mean() / chords.shape[1]
        kl = (kl_to_teacher(policy_logits, teacher_logits, legal) if teacher_logits is not None
              else torch.zeros_like(log_probs))
        loss = pg_loss + cfg.beta * kl.mean()
        clipped_step(optimizer, loss, policy.parameters())
        if not logged:
            return {}
        return {"return": float(returns.mean()), "reward_models": float(learned.mean()),
                "penalties": float(rule.mean()), "fit_reward": float(fit_term.mean()),
                "kl": kl.mean().item(), "loss": loss.item(), "note_in_chord": float(np.nanmean(fits)),
                "chord_frames": float(np.mean([chord_value(t) is not None for c in chord_lists for t in c]))}

    return run_steps(session, "finetune", cfg.steps, cfg.eval_every, step, wall_time, train_step, "note_in_chord",
                     lambda: {"model": policy.state_dict(), "optimizer": optimizer.state_dict(),
                              "numpy_rng": rng.bit_generator.state, "generator": generator.get_state(),
                              "norm": norm.state_dict()})


def returns_norm_state(state: dict[str, Any]) -> dict[str, Any]:
    """The returns' statistics as a checkpoint holds them; one written before RunningMeanStd kept them (count,
    mean and the sum of squared deviations, m2) is converted."""
    if "m2" not in state:
        return state
    count = float(state["count"])
    return {"mean": np.array(float(state["mean"])), "var": np.array(state["m2"] / count if count else 1.0),
            "count": max(count, 1e-4)}


def resume_finetuning(run_dir: str | Path) -> dict[str, Any]:
    data = read_run_config(run_dir)
    if "finetune" not in data:
        raise ConfigError(f"{run_dir} is not a chords finetuning run (its config.json has no finetune section)")
    return finetune(FinetuneConfig(**data["finetune"]), resume=True)
