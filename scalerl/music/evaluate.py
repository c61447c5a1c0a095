"""Generate accompaniments and compare models on held-out songs: harmonic fit, rhythm and diversity,
and the adaptation test (the melody jumps a tritone mid-song: how fast does the harmony follow?)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from scalerl.analysis.plots import pyplot
from scalerl.checks import ConfigError
from scalerl.music.data import Song, song_tokens
from scalerl.music.metrics import (
    chord_entropy,
    chord_length_entropy,
    chord_length_shares,
    chord_value,
    frame_fit,
    invalid_holds,
    melody_pitch,
    note_in_chord,
    onset_emd,
    onset_interval_histogram,
)
from scalerl.music.models import generate
from scalerl.music.pretrain import load_chord_model
from scalerl.music.rule import RecentNotesRule
from scalerl.music.vocab import NUM_PITCHES
from scalerl.progress import progress


def adaptation_frames(frames: int) -> tuple[int, int]:
    """(primer, shift) of the adaptation test in a window: the song's true chords are given for the first
    quarter, and the melody jumps a tritone at the middle. At 128 frames this is the paper's test (8 beats
    given, the jump at beat 17); shorter windows keep it inside the positions a model was trained on."""
    return frames // 4, frames // 2


def before_shift(shift: int) -> slice:
    """The frames the fit before the jump is measured on: up to 16 generated frames just before it."""
    return slice(shift - min(16, shift // 2), shift)


def transpose_melody_tokens(melody: list[int], start: int, semitones: int) -> list[int]:
    shifted = []
    for index, token in enumerate(melody):
        pitch = melody_pitch(token)
        if index < start or pitch is None or not 0 <= pitch + semitones < NUM_PITCHES:
            shifted.append(token)
        else:
            shifted.append(token + semitones)
    return shifted


def crops(songs: list[Song], frames: int) -> list[tuple[list[int], list[int]]]:
    """Full-length windows of each song (songs shorter than `frames` are skipped)."""
    windows = []
    for song in songs:
        chords, melody = song_tokens(song)
        for start in range(0, len(melody) - frames + 1, frames):
            windows.append((chords[start:start + frames], melody[start:start + frames]))
    return windows


def evaluate_model(model: torch.nn.Module | RecentNotesRule, songs: list[Song], frames: int, temperature: float = 1.0,
                   batch: int = 32, name: str = "eval") -> dict[str, float | list[float]]:
    """Metrics of the model's accompaniments of the songs' melodies (and of the songs' own chords, for
    reference), plus the per-frame harmonic fit of the adaptation test (see adaptation_frames)."""
    windows = crops(songs, frames)
    if not windows:
        raise ValueError(f"no song is {frames} frames long")
    generated, shifted_generated = [], []
    primer_frames, shift = adaptation_frames(frames)
    for index in progress(range(0, len(windows), batch), desc=name, unit="batch"):
        melody = torch.tensor([m for _, m in windows[index:index + batch]])
        generated += generate(model, melody, temperature, seed=index).tolist()
        if frames >= 16:
            shifted = torch.tensor([transpose_melody_tokens(m, shift, 6) for _, m in windows[index:index + batch]])
            primer = torch.tensor([c[:primer_frames] for c, _ in windows[index:index + batch]])
            shifted_chords = generate(model, shifted, temperature, seed=index, primer=primer)
            shifted_generated += list(zip(shifted_chords.tolist(), shifted.tolist()))
    shares, data_shares = chord_length_shares(generated), chord_length_shares([c for c, _ in windows])
    truth_histogram = sum(onset_interval_histogram(c, m) for c, m in windows)
    model_histogram = sum(onset_interval_histogram(c, m) for c, (_, m) in zip(generated, windows))
    result: dict[str, float | list[float]] = {
        "note_in_chord": float(np.nanmean([note_in_chord(c, m) for c, (_, m) in zip(generated, windows)])),
        "onset_emd": onset_emd(model_histogram, truth_histogram),
        "chord_length_entropy": float(np.nanmean([chord_length_entropy(c) for c in generated])),
        "one_frame_chords": shares["1"],
        "chord_length_shares": shares,
        "chord_entropy": float(np.nanmean([chord_entropy(c) for c in generated])),
        "distinct_chords": distinct_chords(generated),
        "invalid_holds": invalid_hold_share(generated),
        "data_note_in_chord": float(np.nanmean([note_in_chord(c, m) for c, m in windows])),
        "data_chord_length_entropy": float(np.nanmean([chord_length_entropy(c) for c, _ in windows])),
        "data_one_frame_chords": data_shares["1"],
        "data_chord_length_shares": data_shares,
        "data_chord_entropy": float(np.nanmean([chord_entropy(c) for c, _ in windows])),
        "data_distinct_chords": distinct_chords([c for c, _ in windows]),
        "data_invalid_holds": invalid_hold_share([c for c, _ in windows]),
    }
    if shifted_generated:
        fits = np.array([frame_fit(c, m) for c, m in shifted_generated])
        result["fit_after_shift"] = [float(x) for x in np.nanmean(fits, axis=0)]
        result["frames_to_recover"] = frames_to_recover(result["fit_after_shift"])
        result["fit_kept_after_shift"] = fit_kept_after_shift(result["fit_after_shift"])
    return result


def distinct_chords(accompaniments: list[list[int]]) -> int:
    """How many different chords (root and quality) all the accompaniments use together: diversity."""
    return len({value for chords in accompaniments for value in map(chord_value, chords) if value is not None})


def invalid_hold_share(accompaniments: list[list[int]]) -> float:
    """The share of frames holding a chord that is not the one sounding before (see metrics.invalid_holds).
    The held-out data's windows have some: a window that starts inside a chord starts with its hold."""
    return sum(map(invalid_holds, accompaniments)) / sum(map(len, accompaniments))


def fit_kept_after_shift(fit: list[float]) -> float:
    """Mean harmonic fit after the shift over the mean of the 16 frames before it: 1 means the harmony
    followed the jump at once; a graded companion to frames_to_recover, which only counts full recovery."""
    fit = np.array(fit)
    shift = adaptation_frames(len(fit))[1]
    return float(np.nanmean(fit[shift:]) / np.nanmean(fit[before_shift(shift)]))


def frames_to_recover(fit: list[float], window: int = 8) -> float:
    """Frames after the shift until the harmonic fit (mean over `window` frames) is back to 90% of its
    level before the shift; NaN if it never is."""
    fit = np.array(fit)
    shift = adaptation_frames(len(fit))[1]
    before = np.nanmean(fit[before_shift(shift)])
    for offset in range(len(fit) - shift - window + 1):
        if np.nanmean(fit[shift + offset:shift + offset + window]) >= 0.9 * before:
            return float(offset)
    return float("nan")


def compare(run_dirs: list[Path], songs: list[Song], frames: int | None = None,
            temperature: float = 1.0, rule: bool = False) -> dict[str, dict]:
    """Every model on the same windows: `frames` long, by default the shortest crop any was trained on.
    Longer windows than a model's training crops are refused: its positions past them never trained,
    and such a test measures that rather than the model (our first table did)."""
    models = {run_dir: load_chord_model(run_dir) for run_dir in run_dirs}
    frames = frames or min(cfg.crop_frames for cfg, _ in models.values())
    results = {}
    for run_dir, (cfg, model) in models.items():
        if frames > cfg.crop_frames:
            raise ConfigError(f"{run_dir} was trained on {cfg.crop_frames}-frame crops; its later positions are "
                              f"untrained: evaluate with --frames <= {cfg.crop_frames}, or pretrain on longer crops")
        name = f"{cfg.model} ({run_dir.name})"
        results[name] = evaluate_model(model, songs, frames, temperature, name=name)
    if rule:
        results["rule (recent notes)"] = evaluate_model(RecentNotesRule(), songs, frames, temperature, name="rule")
    return results


def markdown_table(results: dict[str, dict]) -> str:
    rows = ["| model | note-in-chord | onset EMD | chord-length entropy | one-frame chords | chord entropy "
            "| distinct chords | invalid holds | frames to recover after a tritone shift | fit kept after the shift |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    data = next(iter(results.values()))
    for name, r in results.items():
        rows.append(f"| {name} | {r['note_in_chord']:.3f} | {r['onset_emd']:.3f} | {r['chord_length_entropy']:.2f} | "
                    f"{r['one_frame_chords']:.3f} | "
                    f"{r['chord_entropy']:.2f} | {r['distinct_chords']} | {r['invalid_holds']:.3f} | "
                    f"{r.get('frames_to_recover', float('nan')):.0f} | "
                    f"{r.get('fit_kept_after_shift', float('nan')):.2f} |")
    rows.append(f"| data (held-out chords) | {data['data_note_in_chord']:.3f} | 0 | "
                f"{data['data_chord_length_entropy']:.2f} | {data['data_one_frame_chords']:.3f} | "
                f"{data['data_chord_entropy']:.2f} | {data['data_distinct_chords']} | "
                f"{data['data_invalid_holds']:.3f} | - | - |")
    return "\n".join(rows)


def plot_adaptation(curves: dict[str, list[float]], path: Path, smoothing: int = 8) -> None:
    """The adaptation test as a figure: per model, the harmonic fit per frame (mean over `smoothing`
    frames), with the primer and the tritone jump marked. Written as PNG and SVG."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(8.5, 3.6))
    for label, curve in curves.items():
        fit = np.array(curve, dtype=float)
        smoothed = [np.nanmean(fit[max(0, t - smoothing + 1):t + 1]) for t in range(len(fit))]
        axis.plot(np.arange(len(fit)) / 4 + 1, smoothed, label=label)
    primer, shift = adaptation_frames(len(next(iter(curves.values()))))
    axis.axvspan(1, primer / 4 + 1, color="0.9", label="true chords given")
    axis.axvline(shift / 4 + 1, color="0.3", linestyle="--", label="melody up a tritone")
    axis.set_xlabel("beat")
    axis.set_ylabel(f"note in chord ({smoothing}-frame mean)")
    axis.set_ylim(0, 1)
    axis.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".png", ".svg"):
        figure.savefig(path.with_suffix(suffix), dpi=150)
    plt.close(figure)
