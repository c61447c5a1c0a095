"""The GraMa study (`scalerl study grama`): where activation-based and gradient-based neuron activity part,
and what resetting by each does.

(a) Continual classification (`classification.py`): a plain ReLU MLP, which loses plasticity as the labels
    keep changing, and a residual MLP with LayerNorm, where ReDo's activations and GraMa's gradients disagree;
    no reset, ReDo and ReGraMa at the same threshold, 5 seeds.
(b) SAC on HalfCheetah with a residual LayerNorm network (the BRO-like setting where the paper shows ReDo
    misfiring): no reset, ReDo (tau 0.02) and ReGraMa (tau 0.01), the GraMa paper's BRO-net settings,
    every 1,000 updates, 5 seeds, an ordinary sweep under out/runs (finished runs are reused). ReDo logs how
    many of the neurons it reset still had gradient (`redo_reset_learning`).

The report is drawn from the runs through the same code that writes the README's shipped tables (`results.py`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalerl.analysis.results import fill_blocks
from scalerl.studies.grama import classification, results
from scalerl.sweep import SweepSpec, run_sweep


@dataclass(frozen=True)
class Settings:
    classification: classification.Settings = field(default_factory=classification.Settings)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    sac_steps: int = 20_000
    eval_every: int = 5_000
    sac_learning_starts: int = 5_000
    reset_every: int = 1_000
    """Updates between ReDo's or ReGraMa's resets in SAC."""


FULL = Settings()
"""About an hour on 2 cores: the numbers in the study's README."""
QUICK = Settings(classification=classification.Settings(phases=2, steps_per_phase=40, samples=256, hidden=32,
                                                        reset_every=20, record_every=10),
                 seeds=[0], sac_steps=900, eval_every=300, sac_learning_starts=100, reset_every=100)
"""A couple of minutes: every part, with 800 SAC updates and eight resets a run, at a size that learns nothing."""

NETWORK = {"net.torso": "residual", "net.norm": "layer", "net.depth": 2, "net.hidden": 256, "net.activation": "relu"}
"""SAC's actor and critic in part (b): two residual blocks with LayerNorm, as BRO-net's critic."""
VARIANTS = {  # named as classification.METHODS, which the results read both parts by
    "none": {"hooks": ["activity"]},
    "redo": {"hooks": ["redo", "activity"], "hook_opts.redo.tau": 0.02},
    "regrama": {"hooks": ["regrama", "activity"], "hook_opts.regrama.tau": 0.01},
}


def sac_base(settings: Settings) -> dict[str, Any]:
    return {"env": "mujoco:HalfCheetah-v5", "agent": "sac", "steps": settings.sac_steps, **NETWORK,
            "eval_every": settings.eval_every, "eval_episodes": 5, "log_every": 1_000,
            "checkpoint_every": 10_000, "hook_opts.activity.every": settings.reset_every,
            "hook_opts.redo.every": settings.reset_every, "hook_opts.regrama.every": settings.reset_every,
            "algo.learning_starts": settings.sac_learning_starts}


def run_sac(settings: Settings, out: Path, workers: int | None, address: str | None) -> None:
    variants = [{"name": name, **overrides} for name, overrides in VARIANTS.items()]
    result = run_sweep(SweepSpec(base=sac_base(settings), variants=variants, seeds=settings.seeds), out,
                       workers=workers, address=address, report=False)
    if result["failed"]:
        raise RuntimeError(f"{len(result['failed'])} GraMa study runs failed, first: {result['failed'][0]['error']}")


def write_report(out: Path, quick: bool) -> Path:
    runs = results.export(out)
    template = "\n\n".join(f"<!-- generated: {name} -->\n<!-- end generated: {name} -->" for name in results.BLOCKS)
    body = fill_blocks(template, results.blocks(runs, out / "report_figures"))
    body = body.replace("](figures/", "](report_figures/")
    report = out / "report.md"
    report.write_text(f"# GraMa study{' (quick: every part, nothing learned)' if quick else ''}\n\n{body}\n")
    return report


def run(out: Path, quick: bool = False, workers: int | None = None, address: str | None = None,
        seeds: list[int] | None = None) -> Path:
    """Both parts into `out` (finished runs are kept), on `seeds` when given (the study a seed at a time); the
    report covers every finished run in `out`."""
    settings = QUICK if quick else FULL
    if seeds is not None:
        settings = dataclasses.replace(settings, seeds=list(seeds))
    out.mkdir(parents=True, exist_ok=True)
    classification.run_all(settings.classification, settings.seeds, out / "classification")
    run_sac(settings, out / "runs", workers, address)
    return write_report(out, quick)
