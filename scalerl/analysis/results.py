"""Study results as data that ships, and the README blocks generated from it.

A study's finished runs are kept in the repository as one JSON line per run (`results.jsonl` in the study's
folder): the settings that set its arm apart, its seed, the scalerl version and commit that made it, the
command that makes it again, its curves (thinned) and its final numbers. Every table of a study's README sits
between markers

    <!-- generated: NAME -->
    ...
    <!-- end generated: NAME -->

and is rewritten from that data by `scalerl study NAME --report`; a test regenerates every block and fails on
any difference, so no number in a README is typed by hand.

Verdicts compare two arms' final numbers with a 95% bootstrap interval on the difference of their means
(rliable's independent bootstrap over seeds): REPRODUCED where the interval lies on the paper's side of
zero, PARTLY where only the point estimate does, NOT REPRODUCED otherwise.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scalerl.analysis.aggregate import Estimate, seeded_bootstrap
from scalerl.checks import ConfigError

RESULTS_FILE = "results.jsonl"
CURVE_POINTS = 200
"""Curves are thinned to at most this many points: a few MB for all studies together."""


@dataclass(frozen=True)
class RunResult:
    """One finished run of a study, as it ships."""

    run: str
    """Unique within the study: the arm's name and the seed, e.g. plain-radam-d4-s0."""
    arm: dict[str, Any]
    """The settings that set this run's arm apart from the study's other arms."""
    seed: int
    command: str
    """The command that makes this run again (on CPU, the same curve)."""
    provenance: dict[str, Any]
    """scalerl's version and commit, and the library versions, when the run was made."""
    curves: dict[str, list[float]]
    """Named series of equal length, among them the x axis (e.g. `epoch` or `step`)."""
    finals: dict[str, float] = field(default_factory=dict)


def thin(values: Sequence[float], points: int = CURVE_POINTS) -> list[float]:
    """At most `points` values, evenly spaced over the series, the first and last kept."""
    if len(values) <= points:
        return list(values)
    keep = np.unique(np.linspace(0, len(values) - 1, points).round().astype(int))
    return [values[i] for i in keep]


def rounded(value: Any) -> Any:
    """Seven significant digits: what float32 training can vouch for, and short lines in the data."""
    if isinstance(value, float):
        return value if not math.isfinite(value) or value == 0 else float(f"{value:.7g}")
    if isinstance(value, dict):
        return {key: rounded(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(inner) for inner in value]
    return value


def write_results(path: Path, results: Sequence[RunResult]) -> Path:
    """Write `results` (one line each, sorted by run) to `path`."""
    names = [result.run for result in results]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: two results share a run name")
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(rounded(asdict(result)), sort_keys=True) for result in sorted(results, key=lambda r: r.run)]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_results(path: Path) -> list[RunResult]:
    if not path.is_file():
        raise ConfigError(f"no shipped results at {path}: run the study, then scalerl study NAME --export")
    results = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            results.append(RunResult(**json.loads(line)))
        except (json.JSONDecodeError, TypeError) as error:
            raise ConfigError(f"{path}:{number} is not a result record ({error})") from None
    return results


def select(results: Sequence[RunResult], **arm: Any) -> list[RunResult]:
    """The results whose arm has every given setting, ordered by seed."""
    chosen = [r for r in results if all(r.arm.get(key) == value for key, value in arm.items())]
    return sorted(chosen, key=lambda r: r.seed)


# -- statistics ------------------------------------------------------------------------------------------


def mean_interval(values: Sequence[float], reps: int = 2000, seed: int = 0) -> Estimate:
    """The mean over seeds with its 95% bootstrap interval (rliable, percentile)."""
    from rliable import library

    scores = np.asarray(values, dtype=float).reshape(-1, 1)
    with seeded_bootstrap(seed):
        points, intervals = library.get_interval_estimates({"x": scores}, lambda s: np.mean(s), reps=reps,
                                                           random_state=np.random.RandomState(seed))
    low, high = np.ravel(intervals["x"])
    return Estimate(float(np.ravel(points["x"])[0]), float(low), float(high))


def difference_interval(first: Sequence[float], second: Sequence[float], reps: int = 2000,
                        seed: int = 0) -> Estimate:
    """mean(first) - mean(second) with its 95% interval, each arm's seeds resampled independently."""
    from rliable import library

    pair = (np.asarray(first, dtype=float).reshape(-1, 1), np.asarray(second, dtype=float).reshape(-1, 1))
    with seeded_bootstrap(seed):
        points, intervals = library.get_interval_estimates(
            {"d": pair}, lambda a, b: np.mean(a) - np.mean(b), reps=reps, random_state=np.random.RandomState(seed))
    low, high = np.ravel(intervals["d"])
    return Estimate(float(np.ravel(points["d"])[0]), float(low), float(high))


REPRODUCED, PARTLY, NOT, UNMEASURED = "REPRODUCED", "PARTLY", "NOT REPRODUCED", "NOT MEASURED YET"


def verdict(difference: Estimate) -> str:
    """For a difference that the paper says is positive."""
    if difference.low > 0:
        return REPRODUCED
    return PARTLY if difference.point > 0 else NOT


def fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def estimate_text(estimate: Estimate) -> str:
    return f"{fmt(estimate.point)} [{fmt(estimate.low)}, {fmt(estimate.high)}]"


@dataclass(frozen=True)
class Claim:
    """A paper's claim that one arm's final number exceeds another's, and how to read both from the data."""

    claim: str
    paper: str
    """The paper's number, quoted with its table or figure (marked when read from a secondary source)."""
    better: Callable[[Sequence[RunResult]], list[float]]
    worse: Callable[[Sequence[RunResult]], list[float]]
    measure: str
    """What the difference is of, e.g. `accuracy in phase 5, 12 layers plain minus 4 layers plain`."""
    reason: Callable[[Estimate, Sequence[RunResult]], str]
    """One line on why, given the measured difference and the results (why it reproduces, or the most likely
    reason it does not, measured)."""


def verdict_rows(claims: Sequence[Claim], results: Sequence[RunResult]) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for claim in claims:
        better, worse = claim.better(results), claim.worse(results)
        if len(better) < 2 or len(worse) < 2:
            seeds = f"finished seeds: {len(better)} against {len(worse)}"  # in the order the measure names the arms
            rows.append((claim.claim, claim.paper, f"{claim.measure}: not measured ({seeds})", UNMEASURED,
                         "an arm it compares has fewer than two finished seeds; the study goes on"))
            continue
        difference = difference_interval(better, worse)
        ours = f"{claim.measure}: {estimate_text(difference)} ({min(len(better), len(worse))} seeds, 95% CI)"
        rows.append((claim.claim, claim.paper, ours, verdict(difference), claim.reason(difference, results)))
    return rows


def verdict_table(claims: Sequence[Claim], results: Sequence[RunResult]) -> str:
    lines = ["| claim | paper | ours | verdict | why |", "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in verdict_rows(claims, results)]
    return "\n".join(lines)


def provenance_line(results: Sequence[RunResult]) -> str:
    """How many runs a study's tables come from, and the scalerl versions and commits that made them."""
    commits = sorted({r.provenance["commit"][:12] + ("+changes" if r.provenance["commit"].endswith("+changes") else "")
                      for r in results})
    versions = sorted({r.provenance["scalerl"] for r in results})
    return (f"{len(results)} runs, scalerl {', '.join(versions)}, commit{'s' if len(commits) > 1 else ''} "
            f"{', '.join(commits)}; each run's command, curves and final numbers are in `results.jsonl`.")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    return "\n".join([f"| {' | '.join(header)} |", "|" + "---|" * len(header),
                      *(f"| {' | '.join(row)} |" for row in rows)])


# -- generated blocks ------------------------------------------------------------------------------------

BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end generated: (?P=name) -->)",
                   re.DOTALL)


def block_names(text: str) -> list[str]:
    return [match["name"] for match in BLOCK.finditer(text)]


def fill_blocks(text: str, blocks: dict[str, str]) -> str:
    """`text` with each generated block's body replaced by `blocks[name]`; every block in the text must be
    given and every given block must be in the text."""
    present = block_names(text)
    missing = sorted(set(blocks) - set(present))
    unfilled = sorted(set(present) - set(blocks))
    if missing or unfilled:
        problems = ([f"not in the text: {', '.join(missing)}"] if missing else []) + \
                   ([f"not generated: {', '.join(unfilled)}"] if unfilled else [])
        raise ConfigError(f"generated blocks do not match: {'; '.join(problems)}")
    return BLOCK.sub(lambda match: match[1] + blocks[match["name"]].rstrip("\n") + "\n" + match[4], text)


def verdicts_in(text: str) -> list[str]:
    """The verdict words of a README's generated verdict table, in order (for `scalerl study --list`)."""
    for match in BLOCK.finditer(text):
        if match["name"] == "verdict":
            return re.findall(r"\| (REPRODUCED|PARTLY|NOT REPRODUCED|NOT MEASURED YET) \|", match["body"])
    return []
