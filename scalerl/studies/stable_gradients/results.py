"""The stable-gradients study's shipped results: what a finished study folder turns into
(`scalerl study stable-gradients --export`), and the README's tables, verdicts and figures drawn from it
(`scalerl study stable-gradients --report`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scalerl.analysis.plots import pyplot, save
from scalerl.analysis.results import (
    Claim,
    Estimate,
    RunResult,
    estimate_text,
    markdown_table,
    mean_interval,
    provenance_line,
    select,
    thin,
    verdict_table,
)
from scalerl.analysis.runs import load_run
from scalerl.checks import ConfigError
from scalerl.studies.stable_gradients import pqn_depth
from scalerl.studies.stable_gradients.study import FULL, Settings

STUDY = "stable-gradients"
FIGURES = ("stable_gradients_nonstationary", "stable_gradients_pqn")


def command(seed: int, variant: str) -> str:
    return f"scalerl study {STUDY} --seeds {seed} --variants {variant}"


def phase_ends(settings: Settings) -> list[int]:
    """The epoch index that closes each phase of labels."""
    return [e - 1 for e in range(settings.change_every, settings.epochs + 1, settings.change_every)]


# -- export: a finished study folder -> results ----------------------------------------------------------


def supervised_result(raw: dict) -> RunResult:
    settings = Settings(**{**raw["settings"], "seeds": [raw["seed"]], "depths": tuple(raw["settings"]["depths"])})
    ends = phase_ends(settings)
    variant = f"{raw['architecture']}-{raw['optimizer']}-d{raw['depth']}"
    finals = {f"accuracy_phase{k + 1}": raw["accuracy"][end] for k, end in enumerate(ends)}
    finals |= {f"grad_norm_phase{k + 1}": raw["first_layer_grad_norm"][end] for k, end in enumerate(ends)}
    return RunResult(run=f"a-{variant}-s{raw['seed']}",
                     arm={"part": "a", "architecture": raw["architecture"], "optimizer": raw["optimizer"],
                          "depth": raw["depth"]},
                     seed=raw["seed"], command=command(raw["seed"], variant), provenance=raw["provenance"],
                     curves={"epoch": list(range(1, settings.epochs + 1)), "accuracy": raw["accuracy"],
                             "first_layer_grad_norm": raw["first_layer_grad_norm"]},
                     finals=finals)


def rl_result(run_dir: Path) -> RunResult:
    run = load_run(run_dir)
    name, blocks = pqn_depth.variant_of(run)
    provenance_path = run_dir / "provenance.json"
    if not provenance_path.is_file():
        raise ConfigError(f"{run_dir} has no provenance.json: it was made before runs recorded their commit")
    steps, norms = pqn_depth.first_layer_norms(run)
    returns = [float(e["return_mean"]) for e in run.evals]
    return RunResult(run=f"b-{name}-{blocks}blocks-s{run.seed}", arm={"part": "b", "variant": name, "blocks": blocks},
                     seed=run.seed, command=command(run.seed, f"{name}-{blocks}blocks"),
                     provenance=json.loads(provenance_path.read_text()),
                     curves={"eval_step": [int(e["step"]) for e in run.evals], "eval_return": returns,
                             "norm_step": thin([int(s) for s in steps]), "first_layer_grad_norm": thin(list(norms))},
                     finals={"return_final": returns[-1], "return_last3": float(np.mean(returns[-3:])),
                             "grad_norm_start": float(norms[0]),
                             "grad_norm_last_quarter": float(norms[steps >= 0.75 * steps[-1]].mean())})


def export(out: Path) -> list[RunResult]:
    """Every finished run of the study folder `out` (both parts)."""
    supervised = [supervised_result(json.loads(path.read_text())) for path in sorted((out / "runs").glob("*.json"))]
    finished = sorted(summary.parent for summary in (out / "pqn").glob("*/seed*/summary.json"))
    return supervised + [rl_result(run_dir) for run_dir in finished]


# -- the README's blocks -----------------------------------------------------------------------------------


def finals(results: Sequence[RunResult], key: str, **arm) -> list[float]:
    return [r.finals[key] for r in select(results, **arm)]


def last_phase(results: Sequence[RunResult]) -> int:
    return max(int(key.removeprefix("accuracy_phase")) for r in results for key in r.finals
               if key.startswith("accuracy_phase"))


def claims(results: Sequence[RunResult]) -> list[Claim]:
    phase = last_phase(results)
    accuracy, deep, shallow = f"accuracy_phase{phase}", max(FULL.depths), min(FULL.depths)

    def arm(architecture: str, optimizer: str, depth: int, key: str = accuracy):
        return lambda rs: finals(rs, key, part="a", architecture=architecture, optimizer=optimizer, depth=depth)

    def gradient_kept(architecture: str, depth: int):
        return lambda rs: [r.finals[f"grad_norm_phase{phase}"] / r.finals["grad_norm_phase1"]
                           for r in select(rs, part="a", architecture=architecture, optimizer="radam", depth=depth)]

    def best_single(rs):
        singles = [arm("multiskip", "radam", deep)(rs), arm("plain", "kron", deep)(rs)]
        return max(singles, key=np.mean)

    def ceiling(rs) -> str:
        best = max(np.mean(arm(a, o, d)(rs)) for a in ("plain", "multiskip") for o in ("radam", "kron")
                   for d in FULL.depths)
        return f"{best:.2f}"

    def rl(variant: str, blocks: int, key: str = "return_last3"):
        return lambda rs: finals(rs, key, part="b", variant=variant, blocks=blocks)

    paper_sl = ("qualitative: the paper's non-stationary CIFAR-10 analysis (labels reshuffled every 20 of 100 "
                "epochs); no number read")
    paper_rl = ("+83% median over 57 Atari games, better on 90% (secondary: the project's paper notes, not the "
                "paper's table)")
    def too_short(difference: Estimate, rs: Sequence[RunResult]) -> str:
        return (f"a phase is 140 RAdam steps on 1,797 random-labelled digits: no arm recovers far (best last-phase "
                f"accuracy {ceiling(rs)}, chance 0.10), so depth cannot show")
    return [
        Claim(f"a deep plain MLP recovers worse after reshuffles than a shallow one ({deep} vs {shallow} layers)",
              paper_sl, arm("plain", "radam", shallow), arm("plain", "radam", deep),
              f"phase-{phase} accuracy, {shallow} minus {deep} layers", too_short),
        Claim("the deep plain MLP's first-layer gradient shrinks after reshuffles more than the shallow one's",
              paper_sl, gradient_kept("plain", shallow), gradient_kept("plain", deep),
              f"first-layer gradient norm, phase {phase} / phase 1, {shallow} minus {deep} layers",
              lambda d, rs: "the deep plain net's gradient norm falls after the first reshuffle and stays low"
              if d.low > 0 else "both gradients fall by a similar share"),
        Claim(f"multi-skip + LayerNorm keeps the deep net trainable ({deep} layers, RAdam)", paper_sl,
              arm("multiskip", "radam", deep), arm("plain", "radam", deep),
              f"phase-{phase} accuracy, multi-skip minus plain", too_short),
        Claim(f"Kron keeps the deep net trainable ({deep} layers, plain)", paper_sl,
              arm("plain", "kron", deep), arm("plain", "radam", deep), f"phase-{phase} accuracy, Kron minus RAdam",
              lambda d, rs: "Kron's preconditioning speeds the early recovery a short phase measures"
              if d.low > 0 else too_short(d, rs)),
        Claim("both together are best", paper_sl, arm("multiskip", "kron", deep), best_single,
              f"phase-{phase} accuracy, both minus the better single intervention ({deep} layers)",
              lambda d, rs: "the combination leads" if d.point > 0 else
              f"plain + Kron recovers fastest (phase {phase}: {np.mean(arm('plain', 'kron', deep)(rs)):.2f} against "
              f"{np.mean(arm('multiskip', 'kron', deep)(rs)):.2f} with multi-skip + Kron)"),
        Claim("depth hurts plain PQN (MinAtar Breakout, 1 vs 5 blocks)", "qualitative (PQN depth collapse)",
              rl("baseline", 1), rl("baseline", 5), "mean of the last 3 evaluations, 1 minus 5 blocks",
              lambda d, rs: "the 5-block plain torso learns unstably and ends lower" if d.point > 0 else
              "at 300k steps the deep plain torso has not collapsed"),
        Claim("multi-skip + LN + Kron lift deep PQN above its baseline (5 blocks)", paper_rl,
              rl("multiskip_kron", 5), rl("baseline", 5), "mean of the last 3 evaluations, both minus baseline",
              lambda d, rs: "the intervened deep torso learns steadily where the plain one is unstable"
              if d.point > 0 else "Kron at a third of the learning rate starts slower; 300k steps is 3% of the "
              "paper's budget"),
        Claim("the deep plain PQN's first-layer gradient collapses", "qualitative (PQN gradient norms fall with depth)",
              rl("baseline", 1, "grad_norm_last_quarter"), rl("baseline", 5, "grad_norm_last_quarter"),
              "first-layer gradient norm over the last quarter, 1 minus 5 blocks",
              lambda d, rs: "the deep torso's gradient is smaller" if d.low > 0 else
              "no vanishing gradient at 5 blocks x 256: the failure is unstable learning, not fading gradients"),
    ]


def label(architecture: str, optimizer: str) -> str:
    return f"{'multi-skip + LN' if architecture == 'multiskip' else 'plain'}, " \
           f"{optimizer.replace('radam', 'RAdam').replace('kron', 'Kron')}"


def supervised_arms(results: Sequence[RunResult]):
    """(depth, architecture, optimizer, its results) of every part-(a) arm that has results, in table order."""
    for depth in FULL.depths:
        for architecture in ("plain", "multiskip"):
            for optimizer in ("radam", "kron"):
                members = select(results, part="a", architecture=architecture, optimizer=optimizer, depth=depth)
                if members:
                    yield depth, architecture, optimizer, members


def supervised_table(results: Sequence[RunResult]) -> str:
    phases = last_phase(results)
    rows = []
    for depth, architecture, optimizer, members in supervised_arms(results):
        accuracy = [np.mean([r.finals[f"accuracy_phase{k}"] for r in members]) for k in range(1, phases + 1)]
        last = mean_interval([r.finals[f"accuracy_phase{phases}"] for r in members])
        gradient = [np.mean([r.finals[f"grad_norm_phase{k}"] for r in members]) for k in (1, phases)]
        rows.append([f"{label(architecture, optimizer)}, {depth} layers", str(len(members)),
                     *[f"{a:.2f}" for a in accuracy[:-1]], estimate_text(last), *[f"{g:.3g}" for g in gradient]])
    header = ["network, optimizer", "seeds", *[f"phase {k}" for k in range(1, phases)], f"phase {phases} [95% CI]",
              "grad norm, phase 1", f"phase {phases}"]
    return markdown_table(header, rows)


def rl_table(results: Sequence[RunResult]) -> str:
    rows = []
    for blocks in pqn_depth.FULL.blocks:
        for variant in pqn_depth.VARIANTS:
            members = select(results, part="b", variant=variant, blocks=blocks)
            if not members:
                continue
            final = mean_interval([r.finals["return_final"] for r in members])
            last3 = mean_interval([r.finals["return_last3"] for r in members])
            start = np.mean([r.finals["grad_norm_start"] for r in members])
            end = np.mean([r.finals["grad_norm_last_quarter"] for r in members])
            rows.append([pqn_depth.LABELS[variant], str(blocks), str(len(members)), estimate_text(final),
                         estimate_text(last3), f"{start:.3g} / {end:.3g}"])
    return markdown_table(["torso, optimizer", "blocks", "seeds", "final return [95% CI]",
                           "mean of the last 3 evaluations [95% CI]", "first-layer grad norm, first / last quarter"],
                          rows)


def blocks(results: Sequence[RunResult], figures: Path | None) -> dict[str, str]:
    """The README's generated blocks; the figures are drawn into `figures` when given."""
    if figures is not None:
        plot_supervised(results, figures / FIGURES[0])
        plot_rl(results, figures / FIGURES[1])
    return {"verdict": verdict_table(claims(results), results), "provenance": provenance_line(results),
            "nonstationary": supervised_table(results), "pqn": rl_table(results)}


# -- figures -----------------------------------------------------------------------------------------------


def finish(figure, axes, left_title: str, xlabel: str, path: Path) -> None:
    """Both figures' shared frame: the left panel's title, the first layer's gradient norm on a log scale on
    the right, grids, a legend, and the PNG."""
    axes[0].set_title(left_title)
    axes[1].set_title("first layer's gradient norm")
    axes[1].set_yscale("log")
    for axis in axes:
        axis.set_xlabel(xlabel)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    save(figure, path, suffixes=(".png",))


def plot_supervised(results: Sequence[RunResult], path: Path) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(13, 4))
    for color, (depth, architecture, optimizer, members) in enumerate(supervised_arms(results)):
        style = "-" if depth == max(FULL.depths) else ":"
        for axis, key in zip(axes, ("accuracy", "first_layer_grad_norm")):
            curves = np.asarray([r.curves[key] for r in members])
            epochs = members[0].curves["epoch"]
            axis.plot(epochs, curves.mean(axis=0), style, color=f"C{color % 10}",
                      label=f"{label(architecture, optimizer)}, {depth} layers")
            axis.fill_between(epochs, curves.min(axis=0), curves.max(axis=0), color=f"C{color % 10}", alpha=0.1)
    finish(figure, axes, "training accuracy on the current labels (mean, seed range)", "epoch", path)


def plot_rl(results: Sequence[RunResult], path: Path) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(12, 4))
    for color, variant in enumerate(pqn_depth.VARIANTS):
        for blocks in pqn_depth.FULL.blocks:
            members = select(results, part="b", variant=variant, blocks=blocks)
            if not members:
                continue
            style = "-" if blocks == max(pqn_depth.FULL.blocks) else ":"
            name = f"{pqn_depth.LABELS[variant]}, {blocks} block{'s' if blocks > 1 else ''}"
            for axis, (x, y) in zip(axes, (("eval_step", "eval_return"), ("norm_step", "first_layer_grad_norm"))):
                length = min(len(r.curves[y]) for r in members)
                curves = np.asarray([r.curves[y][:length] for r in members])
                axis.plot(members[0].curves[x][:length], curves.mean(axis=0), style, color=f"C{color}", label=name,
                          marker="o" if length < 20 else None, markersize=3)
    finish(figure, axes, "evaluation return (mean over seeds)", "environment steps", path)
