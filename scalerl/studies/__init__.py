"""Studies: one folder per paper that reproduces its headline effect at small scale.

A study folder holds a README.md (the paper, its claim and its numbers, with the citation, and ours beside
them) and either
- `sweep.toml` (a sweep file, see scalerl.sweep) and `study.toml` (what to compare: `group_by`;
  `last_evaluations`, how many of a run's last evaluations its score averages, 1 if unset; and a `[quick]`
  table of overrides that shrink the sweep to minutes), run through `scalerl sweep` and written up with
  `scalerl report`; or
- `study.py` with `run(out, quick) -> report path`, for pipelines that are not a grid of training runs.

`scalerl study NAME [--quick]` runs one and writes out/report.md with its figures; `scalerl study --list`.

A study that ships its results also has `results.py` with `export(out) -> [RunResult]` (a finished study
folder as data) and `blocks(results, figures) -> {name: markdown}` (its README's generated blocks, figures
drawn into `figures`), and keeps the data in `results.jsonl` beside its README: `scalerl study NAME
--export` writes that file from a finished folder, `scalerl study NAME --report` rewrites the README's
blocks and figures from it (see scalerl.analysis.results).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import tomllib
from pathlib import Path
from typing import Any

from scalerl.analysis import write_report
from scalerl.analysis.results import (
    NOT,
    PARTLY,
    REPRODUCED,
    RESULTS_FILE,
    UNMEASURED,
    fill_blocks,
    read_results,
    verdicts_in,
    write_results,
)
from scalerl.checks import ConfigError, non_negative, unknown_name
from scalerl.sweep import SweepSpec, load_sweep_file, run_sweep

FOLDER = Path(__file__).parent


def study_names() -> list[str]:
    """Study names as typed: a folder's name with - for _ (stable_gradients is `stable-gradients`)."""
    return sorted(path.name.replace("_", "-") for path in FOLDER.iterdir() if (path / "README.md").is_file())


def study_folder(name: str) -> Path:
    if name not in study_names():
        raise unknown_name("study", name, study_names())
    return FOLDER / name.replace("-", "_")


def title(name: str) -> str:
    """The study's one-line description: the first heading of its README."""
    for line in (study_folder(name) / "README.md").read_text().splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return name


def quick_spec(folder: Path, quick: bool, seeds: list[int] | None = None) -> tuple[Any, list[str] | None]:
    """The sweep of a sweep study, shrunk by its [quick] overrides when quick and to `seeds` when given, and the
    keys to group by."""
    spec = load_sweep_file(folder / "sweep.toml")
    settings = tomllib.loads((folder / "study.toml").read_text())
    if quick:
        overrides = settings.get("quick", {})
        spec = SweepSpec(base={**spec.base, **overrides.get("base", {})},
                         grid={**spec.grid, **overrides.get("grid", {})}, variants=spec.variants,
                         seeds=overrides.get("seeds", spec.seeds), max_retries=spec.max_retries)
    return (spec if seeds is None else only_seeds(spec, seeds)), settings.get("group_by")


def scored_evaluations(folder: Path) -> int:
    """How many of a run's last evaluations its report score averages: study.toml's `last_evaluations`, 1 if
    unset (the last evaluation alone)."""
    last = tomllib.loads((folder / "study.toml").read_text()).get("last_evaluations", 1)
    if not isinstance(last, int) or isinstance(last, bool) or last < 1:
        raise ConfigError(f"{folder / 'study.toml'}: last_evaluations must be an integer >= 1 (got {last!r})")
    return last


def only_seeds(spec: Any, seeds: list[int]) -> Any:
    """The sweep `spec` on `seeds` instead of its own (`scalerl study --seeds`)."""
    for seed in seeds:
        non_negative("--seeds", seed)
    return dataclasses.replace(spec, seeds=list(seeds))


def only_variants(spec: Any, names: list[str]) -> Any:
    """The sweep `spec` reduced to the variants whose run folders are `names` (`scalerl study --variants`),
    each kept under the folder name it has in the whole study."""
    available = dict(spec.overrides())
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ConfigError(f"--variants: no variant {unknown[0]!r}; this study's are {', '.join(available)}")
    return dataclasses.replace(spec, grid={}, variants=[{"name": name, **available[name]} for name in names])


def results_module(name: str) -> Any:
    folder = study_folder(name)
    if not (folder / "results.py").is_file():
        raise ConfigError(f"study {name} does not ship its results as data yet (no results.py)")
    return importlib.import_module(f"scalerl.studies.{folder.name}.results")


def export_study(name: str, out: str | Path | None = None) -> Path:
    """The finished runs in the study folder `out` (default studies/NAME) written to the study's shipped
    results.jsonl."""
    out = Path(out or Path("studies") / name)
    if not out.is_dir():
        raise ConfigError(f"{out} is not a study folder: run scalerl study {name} -o {out} first")
    results = results_module(name).export(out)
    if not results:
        raise ConfigError(f"{out} holds no finished run of study {name}")
    return write_results(study_folder(name) / RESULTS_FILE, results)


def regenerated_readme(name: str, figures: bool = False) -> tuple[str, str]:
    """The study README as it is and as its shipped results make it (figures redrawn when `figures`)."""
    folder = study_folder(name)
    results = read_results(folder / RESULTS_FILE)
    text = (folder / "README.md").read_text()
    blocks = results_module(name).blocks(results, folder / "figures" if figures else None)
    return text, fill_blocks(text, blocks)


def report_study(name: str) -> Path:
    """Rewrite the study README's generated blocks and its figures from the shipped results."""
    _, regenerated = regenerated_readme(name, figures=True)
    path = study_folder(name) / "README.md"
    path.write_text(regenerated)
    return path


QUICK_COST_FILE = Path(__file__).parent / "quick_cost.json"
"""Each quick study's measured CPU time, written by benchmarks/quick_studies.py."""


def quick_cost(name: str) -> str:
    """`quick: 3.2 CPU-minutes` as benchmarks/quick_studies.py measured it, or '' where it has not."""
    if not QUICK_COST_FILE.is_file():
        return ""
    cost = json.loads(QUICK_COST_FILE.read_text())["studies"].get(name)
    return "" if cost is None else f"quick: {cost['cpu_seconds'] / 60:.1f} CPU-minutes"


def verdict_summary(name: str) -> str:
    """`3 REPRODUCED, 1 PARTLY, 2 NOT REPRODUCED` from the README's generated verdict table."""
    from collections import Counter

    counts = Counter(verdicts_in((study_folder(name) / "README.md").read_text()))
    if not counts:
        return "no shipped results yet"
    return ", ".join(f"{counts[word]} {word}" for word in (REPRODUCED, PARTLY, NOT, UNMEASURED) if counts[word])


def run_study(name: str, out: str | Path | None = None, quick: bool = False, workers: int | None = None,
              address: str | None = None, log=print, seeds: list[int] | None = None,
              variants: list[str] | None = None) -> Path:
    """Run (or continue) a study into `out` (default studies/NAME, or studies/NAME-quick) and return the
    path of its report. Its training runs go to a local Ray with `workers` CPUs, or to the Ray cluster at
    `address` (see scalerl.sweep). `seeds` and `variants` (run folder names) run part of a sweep study, so a
    study longer than one sitting can be taken in parts; the report covers every finished run of the study
    in `out`."""
    folder = study_folder(name)
    out = Path(out or Path("studies") / (f"{name}-quick" if quick else name))
    if (folder / "study.py").is_file():
        module = importlib.import_module(f"scalerl.studies.{folder.name}.study")
        accepts = inspect.signature(module.run).parameters
        options = {}
        for option, value in (("seeds", seeds), ("variants", variants)):
            if value is not None and option not in accepts:
                raise ConfigError(f"study {name} is a pipeline that sets its own runs: --{option} applies to sweep "
                                  "studies and to pipelines that take it")
            if value is not None:
                options[option] = value
        if "address" in accepts:
            return module.run(out, quick=quick, workers=workers, address=address, **options)
        if workers is not None or address is not None:
            raise ConfigError(f"study {name} does not run on Ray: --workers and --address do not apply to it")
        return module.run(out, quick=quick, **options)
    if not (folder / "sweep.toml").is_file():
        raise ConfigError(f"study {name} has neither a study.py nor a sweep.toml")
    study_spec, group_by = quick_spec(folder, quick)
    spec = study_spec if seeds is None else only_seeds(study_spec, seeds)
    spec = spec if variants is None else only_variants(spec, variants)
    result = run_sweep(spec, out, workers=workers, address=address, report=False, log=log)
    if result["failed"]:
        raise ConfigError(f"study {name}: {len(result['failed'])} runs failed, first: {result['failed'][0]['error']}")
    finished = [summary.parent for variant, _ in study_spec.overrides()
                for summary in sorted((out / variant).glob("seed*/summary.json"))]
    report = write_report(finished, out / "report.md", group_by, last=scored_evaluations(folder))
    claim = (folder / "README.md").read_text()
    report.write_text(claim.rstrip() + "\n\n---\n\n# This run" + (" (quick)" if quick else "") + "\n\n" +
                      report.read_text().replace("\n# ", "\n## ", 1).removeprefix("# "))
    return report
