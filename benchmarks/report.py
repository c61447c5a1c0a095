"""The results page's tables from the benchmark data that ships (`benchmarks/data/*.json`).

    python benchmarks/report.py          # rewrite README.md's generated blocks
    python benchmarks/report.py --check  # exit 1 if a block differs from what the data gives

Each data file records its date, the command that made it and the commit it ran from; a table names them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tomllib
from pathlib import Path

from scalerl.analysis.results import (
    difference_interval,
    estimate_text,
    fill_blocks,
    markdown_table,
    mean_interval,
)

FOLDER = Path(__file__).parent
README = FOLDER / "README.md"


def made_by(data: dict) -> str:
    commit = data["provenance"]["commit"]
    return (f"Measured {data['date']} with `{data['command']}` (scalerl {data['provenance']['scalerl']}, commit "
            f"{commit[:12]}{'+changes' if commit.endswith('+changes') else ''}, torch {data['provenance']['torch']}).")


def pixel_update(data: dict) -> str:
    rows = [[row["agent"], f"{row['width']:g}", f"{row['fp32_ms']:.1f}", f"{row['bf16_ms']:.1f}",
             f"{row['speedup']:.2f} [{row['speedup_min']:.2f}, {row['speedup_max']:.2f}]"] for row in data["rows"]]
    table = markdown_table(["agent", "width", "fp32 ms / update", "bf16 ms / update",
                            f"fp32 / bf16 time (range over {data['rounds']} rounds)"], rows)
    rate = data["rates"]["bf16"] / data["rates"]["fp32"]
    return (f"{table}\n\nA bare bf16 matrix product runs {rate:.1f}x the fp32 rate on this core. "
            f"{made_by(data)}")


def study_speed(data: dict) -> str:
    """Each tree's rate beside the first tree's (the version before the change), per variant."""
    base = data["rows"][0]["tree"]
    rows = [[row["variant"], row["commit"][:12] + ("+changes" if row["commit"].endswith("+changes") else ""),
             f"{row['steps_per_cpu_second']:,.0f}",
             "1 (the yardstick)" if row["tree"] == base else
             f"{row['ratio']:.2f} [{row['ratio_min']:.2f}, {row['ratio_max']:.2f}]"] for row in data["rows"]]
    table = markdown_table(["variant (seed 0)", "scalerl commit", "steps / CPU-second after learning starts",
                            f"ratio to the first commit (range over {data['rounds']} rounds)"], rows)
    trees = list(dict.fromkeys(row["tree"] for row in data["rows"]))
    seconds = {tree: sum(1 / row["steps_per_cpu_second"] for row in data["rows"] if row["tree"] == tree)
               for tree in trees}
    whole = ", ".join(f"{seconds[base] / seconds[tree]:.2f}x" for tree in trees[1:])
    return (f"{table}\n\nThe study's arms together (the same steps in each, medians): {whole} the first commit's "
            "speed. "
            f"{data['steps']:,} steps after learning starts per run, study `{data['study']}`. {made_by(data)}")


def peers_dqn(data: dict) -> str:
    """Steps per second of the learning phase, scalerl beside CleanRL's dqn.py and SB3, per setting."""
    rows = []
    for setting, runs in data["results"].items():
        def ratio(peer: str) -> str:
            if not runs[peer]:
                return "-"
            values = [mine / theirs for mine, theirs in zip(runs["scalerl"], runs[peer])]
            return f"{statistics.median(values):.2f} [{min(values):.2f}, {max(values):.2f}]"

        rows.append([SETTINGS.get(setting, setting), *[f"{statistics.median(runs[key]):,.0f}"
                                                       for key in ("scalerl", "cleanrl", "sb3")],
                     ratio("cleanrl"), ratio("sb3"), ratio("floor")])
    table = markdown_table(["setting", "scalerl steps/s", "CleanRL steps/s", "SB3 steps/s", "scalerl / CleanRL",
                            "scalerl / SB3", "scalerl / bare update"], rows)
    return (f"{table}\n\nMedians over {data['rounds']} rounds of {data['steps']:,} steps (ratios: median and range "
            f"of the per-round ratios); CleanRL at commit {data['cleanrl_commit'][:8]}. {made_by(data)}")


def precision_learning(data: dict) -> str:
    """Final returns of DQN under fp32 and bf16 autocast over seeds, and their difference."""
    by_precision = {name: [run for run in data["runs"] if run["precision"] == name] for name in ("fp32", "bf16")}
    rows = []
    for name, runs in by_precision.items():
        if not runs:
            rows.append([name, "0", "-", "-"])
            continue
        rows.append([name, str(len(runs)), estimate_text(mean_interval([run["return_final"] for run in runs])),
                     estimate_text(mean_interval([run["return_last3"] for run in runs]))])
    table = markdown_table(["precision", "seeds", "final return [95% CI]", "mean of the last 3 evaluations [95% CI]"],
                           rows)
    fp32, bf16 = ([run["return_last3"] for run in by_precision[name]] for name in ("fp32", "bf16"))
    if len(fp32) >= 2 and len(bf16) >= 2:
        gap = difference_interval(bf16, fp32)
        if min(len(fp32), len(bf16)) < PLANNED_SEEDS:  # a bootstrap over two or three seeds is far too narrow
            verdict = (f"from {min(len(fp32), len(bf16))} seeds an arm, too few for the interval to decide "
                       f"({PLANNED_SEEDS} planned); --precision bf16 stays opt-in")
        elif gap.low <= 0 <= gap.high:
            verdict = "an interval that holds zero: no difference shown"
        else:
            verdict = "an interval clear of zero: the two learn differently"
        summary = f"bf16 minus fp32, mean of the last 3 evaluations: {estimate_text(gap)}, {verdict}."
    else:
        summary = "Fewer than two finished seeds in an arm: no difference is estimated yet."
    commits = sorted({run["provenance"]["commit"][:12] for run in data["runs"]})
    return (f"{table}\n\n{summary} Runs of `{data['sweep']}` (commits {', '.join(commits)}), exported "
            f"{data['date']} with `{data['command']}`.")


PLANNED_SEEDS = len(tomllib.loads((FOLDER / "precision.toml").read_text())["seeds"])
"""Seeds per precision in benchmarks/precision.toml."""

SETTINGS = {"cleanrl": "CleanRL's settings (an update every 10 steps, batch 128)",
            "every1": "an update every step (batch 128)"}

BLOCKS = {
    "pixel-update": ("pixel_update.json", pixel_update),
    "study-speed-gap": ("study_speed_gap.json", study_speed),
    "study-speed-tokenize": ("study_speed_tokenize.json", study_speed),
    "peers-dqn": ("peers_dqn.json", peers_dqn),
    "precision-learning": ("precision_learning.json", precision_learning),
}


def blocks() -> dict[str, str]:
    return {name: render(json.loads((FOLDER / "data" / file).read_text())) for name, (file, render) in BLOCKS.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    text = README.read_text()
    regenerated = fill_blocks(text, blocks())
    if args.check:
        if regenerated != text:
            print("benchmarks/README.md differs from its data: run python benchmarks/report.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(regenerated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
