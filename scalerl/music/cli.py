"""`scalerl chords ...`: the ReaLchords pipeline's commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from scalerl.checks import ConfigError, in_range
from scalerl.flags import (
    SEEDS,
    ArgumentParser,
    check_flags,
    field_types,
    integer,
    number,
    option_value,
    tyro_cli,
    writable_path,
)
from scalerl.music.accompany import accompany
from scalerl.music.data import (
    SYNTHETIC_FORMS,
    bach_chorales,
    chorale_count,
    lead_sheets,
    load_songs,
    save_songs,
    split_songs,
    synthetic_songs,
)
from scalerl.music.evaluate import compare, markdown_table, plot_adaptation
from scalerl.music.finetune import FinetuneConfig, finetune, resume_finetuning
from scalerl.music.jam import serve
from scalerl.music.pretrain import PretrainConfig, export_model, pretrain, resume_pretraining
from scalerl.music.rewards import RewardConfig, resume_reward_training, train_reward_model
from scalerl.music.vocab import chord_name
from scalerl.progress import progress

MAX_BARS = 1_000
MAX_SONGS = 1_000_000
"""Past these a typo (a 30-digit --bars or --synthetic) would build data for ever."""


def train_or_resume(args: list[str], config_class: type, train, resume, command: str) -> int:
    """`scalerl chords COMMAND` for a training command: --resume RUN_DIR alone, or the config's flags."""
    run_dir = option_value(args, "--resume")
    if run_dir is not None:
        if len(args) != 2:
            raise ConfigError("--resume RUN_DIR takes no other options: the run's config.json is used as is")
        print(json.dumps(resume(run_dir)))
        return 0
    check_flags(args, field_types(config_class, "", type(None)))
    print(json.dumps(train(tyro_cli(config_class, args, f"scalerl chords {command}"))))
    return 0


def cmd_data(args: list[str]) -> int:
    parser = ArgumentParser(prog="scalerl chords data", description=(
        "Build a melody + chord dataset from Bach chorales (music21's corpus), synthetic diatonic songs, "
        "and your own lead sheets (MusicXML/ABC with chord symbols); split 80/10/10 by song. All the chorales "
        "and 600 synthetic songs take about 1.5 minutes."))
    parser.add_argument("--bach", type=integer(-1, 100_000), default=0, metavar="N",
                        help="chorales to take (-1: all ~370, ~1 min)")
    parser.add_argument("--synthetic", type=integer(0, MAX_SONGS), default=0, metavar="N",
                        help="synthetic songs to generate")
    parser.add_argument("--bars", type=integer(1, MAX_BARS), default=8, help="bars per synthetic song")
    parser.add_argument("--synthetic-form", choices=SYNTHETIC_FORMS, default="loop",
                        help="loop: a two-bar progression repeats, as in pop songs; walk: each next chord drawn afresh")
    parser.add_argument("--leadsheets", nargs="+", type=Path, default=[], metavar="PATH", help="files or folders")
    parser.add_argument("--seed", type=SEEDS, default=0)
    parser.add_argument("-o", "--out", type=writable_path("folder"), default=Path("data/chords"))
    parsed = parser.parse_args(args)
    songs, problems = [], []
    if parsed.bach:
        available = chorale_count()
        total = available if parsed.bach < 0 else min(parsed.bach, available)
        chorales = bach_chorales(None if parsed.bach < 0 else parsed.bach)
        for song, name, problem in progress(chorales, total=total, desc="chorales", unit="file"):
            (songs.append(song) if song else problems.append((name, problem)))
    for song, name, problem in progress(lead_sheets(parsed.leadsheets), desc="lead sheets", unit="file"):
        (songs.append(song) if song else problems.append((name, problem)))
    if parsed.synthetic:
        songs += synthetic_songs(parsed.synthetic, parsed.bars, parsed.seed, parsed.synthetic_form)
    for name, problem in problems:
        print(f"skipped {name}: {problem}", file=sys.stderr)
    if not songs:
        raise ConfigError(f"no songs: every file was skipped ({len(problems)}, reasons above)" if problems else
                          "no songs: give --bach N, --synthetic N or --leadsheets PATH")
    splits = split_songs(songs, parsed.seed)
    for split, members in splits.items():
        save_songs(members, parsed.out / f"{split}.jsonl")
    counts = {split: len(members) for split, members in splits.items()}
    print(json.dumps({"out": str(parsed.out), "songs": counts, "skipped": len(problems),
                      "frames": sum(s.frames for s in songs)}))
    return 0


def cmd_pretrain(args: list[str]) -> int:
    return train_or_resume(args, PretrainConfig, pretrain, resume_pretraining, "pretrain")


def cmd_eval(args: list[str]) -> int:
    parser = ArgumentParser(prog="scalerl chords eval", description=(
        "Accompany held-out melodies with each model and compare note-in-chord, onset EMD against the data, "
        "chord-length and chord entropy, distinct chords, and the adaptation test: the first quarter of each window's "
        "chords given, then the melody jumps a tritone at its middle (at 128 frames, the paper's test). About a "
        "minute per model on the study's 97 held-out songs."))
    parser.add_argument("runs", nargs="+", type=Path, help="chords run directories (pretrain or finetune)")
    parser.add_argument("--data", type=Path, default=Path("data/chords"))
    parser.add_argument("--split", choices=["test", "valid", "train"], default="test")
    parser.add_argument("--frames", type=integer(1, 100_000), default=None,
                        help="window length (default: the shortest crop length the models were trained on)")
    parser.add_argument("--temperature", type=number(0, 5), default=1.0, help="0: greedy")
    parser.add_argument("--limit", type=integer(1, 1_000_000), default=None, help="use only the first N songs")
    parser.add_argument("--rule", action="store_true", help="also accompany with the recent-notes rule (no learning: "
                        "on each beat the triad holding most of the melody's recent notes), "
                        "a yardstick for online models")
    parser.add_argument("-o", "--out", type=writable_path("file"), default=None, help="also write the results as JSON")
    parser.add_argument("--plot", type=Path, default=None, help="also draw the adaptation test (PNG and SVG)")
    parser.add_argument("--threads", type=integer(1, 512), default=None,
                        help="torch threads (default: torch's own choice)")
    parsed = parser.parse_args(args)
    if parsed.threads is not None:
        import torch

        torch.set_num_threads(parsed.threads)
    songs = load_songs(parsed.data / f"{parsed.split}.jsonl")[: parsed.limit]
    try:
        results = compare(parsed.runs, songs, parsed.frames, parsed.temperature, parsed.rule)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    print(markdown_table(results))
    if parsed.out:
        parsed.out.parent.mkdir(parents=True, exist_ok=True)
        parsed.out.write_text(json.dumps(results, indent=2) + "\n")
    if parsed.plot:
        plot_adaptation({name: r["fit_after_shift"] for name, r in results.items() if "fit_after_shift" in r},
                        parsed.plot)
    return 0


def cmd_rewards(args: list[str]) -> int:
    return train_or_resume(args, RewardConfig, train_reward_model, resume_reward_training, "rewards")


def cmd_finetune(args: list[str]) -> int:
    return train_or_resume(args, FinetuneConfig, finetune, resume_finetuning, "finetune")


def cmd_accompany(args: list[str]) -> int:
    parser = ArgumentParser(prog="scalerl chords accompany", description=(
        "Add chords to a melody (MIDI, MusicXML or ABC) with an online model, frame by frame as the jam page plays "
        "it; writes a MIDI file. Reading the melody with music21 takes most of the time; the chords take a few "
        "milliseconds a 16th note on one thread."))
    parser.add_argument("run", type=Path, nargs="?", default=None,
                        help="run directory of an online model (pretrained or finetuned); "
                             "default: the model that ships")
    parser.add_argument("melody", type=Path)
    parser.add_argument("-o", "--out", type=Path, required=True, help="MIDI file to write")
    parser.add_argument("--temperature", type=number(0, 5), default=1.0, help="0: greedy")
    parser.add_argument("--seed", type=integer(0, 2**63 - 1), default=0)
    parsed = parser.parse_args(args)
    song = accompany(parsed.run, parsed.melody, parsed.out, parsed.temperature, parsed.seed)
    print(json.dumps({"out": str(parsed.out), "frames": song.frames,
                      "chords": [f"{c.start / 4:g}:{chord_name(c.value)}" for c in song.chords]}))
    return 0


def cmd_jam(args: list[str]) -> int:
    parser = ArgumentParser(prog="scalerl chords jam", description=(
        "Serve the live jam page: play a melody in the browser, the online model answers with chords."))
    parser.add_argument("run", type=Path, nargs="?", default=None,
                        help="run directory of an online model (pretrained or finetuned); "
                             "default: the model that ships")
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to let other machines join")
    parser.add_argument("--port", type=integer(0, 65_535), default=8765)
    parser.add_argument("--temperature", type=number(0, 5), default=1.0,
                        help="the page's starting temperature (0: greedy)")
    parser.add_argument("--bpm", type=number(20, 400), default=90.0, help="the page's starting tempo")
    parser.add_argument("--threads", type=integer(1, 512), default=1)
    parsed = parser.parse_args(args)
    in_range("bpm", parsed.bpm, 30, 240)
    in_range("port", parsed.port, 0, 65535)
    serve(parsed.run, parsed.host, parsed.port, parsed.temperature, parsed.bpm, parsed.threads)
    return 0


def cmd_export(args: list[str]) -> int:
    parser = ArgumentParser(prog="scalerl chords export", description=(
        "Write a chord model alone (config.json and weights, no optimizer state) to share it or ship it; "
        "every command that takes a run directory takes the folder too."))
    parser.add_argument("run", type=Path, help="run directory of a chord model (pretrained or finetuned)")
    parser.add_argument("-o", "--out", type=writable_path("folder"), required=True)
    parsed = parser.parse_args(args)
    out = export_model(parsed.run, parsed.out)
    print(json.dumps({"out": str(out), "bytes": sum(path.stat().st_size for path in out.iterdir())}))
    return 0


COMMANDS = {"data": cmd_data, "pretrain": cmd_pretrain, "rewards": cmd_rewards, "finetune": cmd_finetune,
            "eval": cmd_eval, "accompany": cmd_accompany, "jam": cmd_jam, "export": cmd_export}


def main(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        print("usage: scalerl chords COMMAND\n\ncommands:\n  data       build a melody + chord dataset\n"
              "  pretrain   maximum-likelihood training of the online model or the offline teacher (--model)\n"
              "  rewards    train a reward model (--kind contrastive|discriminative, --rhythm)\n"
              "  finetune   RL finetuning of an online model: reward models + KL to the teacher (--beta)\n"
              "  eval       compare models' accompaniments of held-out melodies\n"
              "  accompany  add chords to a MIDI/MusicXML/ABC melody and write MIDI\n"
              "  jam        serve a page to play a melody live in the browser and hear the model's chords\n"
              "  export     write a model alone (config and weights) to share or ship")
        return 0
    command, *rest = args
    if command not in COMMANDS:
        raise ConfigError(f"unknown chords command {command!r}; valid: {', '.join(COMMANDS)}")
    return COMMANDS[command](rest)
