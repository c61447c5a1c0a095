"""The results page's tables from the benchmark data that ships (`benchmarks/data/*.json`).

    python benchmarks/report.py          # rewrite README.md's generated blocks
    python benchmarks/report.py --check  # exit 1 if a block differs from what the data gives

Each data file records its date, the command that made it and the commit it ran from; a table names them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scalerl.analysis.results import fill_blocks, markdown_table

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


BLOCKS = {"pixel-update": ("pixel_update.json", pixel_update), "study-speed-gap": ("study_speed_gap.json", study_speed)}


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
