"""The GraMa study's shipped results: what a finished study folder turns into (`scalerl study grama --export`),
and the README's tables, verdicts and figures drawn from it (`scalerl study grama --report`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scalerl.analysis.plots import pyplot, save
from scalerl.analysis.results import (
    Claim,
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
from scalerl.studies.grama import classification

STUDY = "grama"
BLOCKS = ("verdict", "provenance", "classification", "sac")
FIGURES = ("grama_classification", "grama_sac")
NETWORK_LABELS = {"relu_mlp": "ReLU MLP, 4 layers", "residual_layernorm": "residual + LayerNorm, 2 blocks"}
METHOD_LABELS = {"none": "no reset", "redo": "ReDo", "regrama": "ReGraMa"}
PAPER_RESULTS = ("BRO-net, normalized: ReGraMa 1.21 / 1.16 / 1.12 / 1.08 against ReDo 1.17 / 0.96 / 0.92 / 0.94 on "
                 "Humanoid Stand / Run, Dog Stand / Walk (secondary: the project's paper notes, table not identified)")


def command(seed: int) -> str:
    return f"scalerl study {STUDY} --seeds {seed}"


# -- export: a finished study folder -> results ----------------------------------------------------------


def halves(raw: dict) -> tuple[int, int]:
    """The phase counts of the first quarter and of the last half of a classification run."""
    phases = raw["settings"]["phases"]
    return max(1, phases // 4), max(1, phases // 2)


def classification_result(raw: dict) -> RunResult:
    phases = raw["settings"]["phases"]
    first, last = halves(raw)
    steps, accuracy = np.asarray(raw["step"]), np.asarray(raw["accuracy"])
    late = steps > (phases - last) * raw["settings"]["steps_per_phase"]
    reset = sum(r["reset"] for r in raw["resets"])
    still_learning = sum(r["kept_by_other"] for r in raw["resets"])
    counts = {tau: [c[tau] for c in raw["phase_counts"]] for tau in ("0", "0.1")}
    return RunResult(
        run=f"a-{classification.run_name(raw['network'], raw['method'], raw['seed'])}",
        arm={"part": "a", "network": raw["network"], "method": raw["method"]}, seed=raw["seed"],
        command=command(raw["seed"]), provenance=raw["provenance"],
        curves={"step": thin(raw["step"]), "accuracy": thin(raw["accuracy"]),
                "phase": list(range(1, phases + 1)), "phase_accuracy": raw["phase_accuracy"],
                "dormant": [c["dormant"] / c["neurons"] for c in counts["0.1"]],
                "inactive": [c["inactive"] / c["neurons"] for c in counts["0.1"]]},
        finals={"phase_accuracy_first_quarter": float(np.mean(raw["phase_accuracy"][:first])),
                "phase_accuracy_last_half": float(np.mean(raw["phase_accuracy"][-last:])),
                "accuracy_area_last_half": float(accuracy[late].mean()),
                "resets": float(reset), "resets_still_learning": float(still_learning),
                "resets_still_learning_share": still_learning / reset if reset else 0.0,
                "dormant_not_inactive_tau0_max": float(max(c["dormant_not_inactive"] for c in counts["0"])),
                "dormant_share_last": counts["0.1"][-1]["dormant"] / counts["0.1"][-1]["neurons"],
                "inactive_share_last": counts["0.1"][-1]["inactive"] / counts["0.1"][-1]["neurons"]})


def sac_result(run_dir: Path) -> RunResult:
    run = load_run(run_dir)
    provenance_path = run_dir / "provenance.json"
    if not provenance_path.is_file():
        raise ConfigError(f"{run_dir} has no provenance.json: it was made before runs recorded their commit")
    method = run_dir.parent.name
    returns = [float(e["return_mean"]) for e in run.evals]
    measured = [r for r in run.metrics if "dormant/critic1" in r]
    resets = [r for r in run.metrics if f"{method}_reset" in r]
    reset = sum(r[f"{method}_reset"] for r in resets)
    still_learning = sum(r.get("redo_reset_learning", 0.0) for r in resets)
    return RunResult(
        run=f"b-{method}-s{run.seed}", arm={"part": "b", "method": method}, seed=run.seed,
        command=command(run.seed), provenance=json.loads(provenance_path.read_text()),
        curves={"eval_step": [int(e["step"]) for e in run.evals], "eval_return": returns,
                "activity_step": thin([int(r["step"]) for r in measured]),
                "critic_dormant": thin([float(r["dormant/critic1"]) for r in measured]),
                "critic_inactive": thin([float(r["grama/critic1"]) for r in measured])},
        finals={"return_final": returns[-1], "return_last3": float(np.mean(returns[-3:])),
                "resets": float(reset), "resets_still_learning": float(still_learning),
                "resets_still_learning_share": still_learning / reset if reset else 0.0,
                "critic_dormant_last": float(measured[-1]["dormant/critic1"]) if measured else 0.0,
                "critic_inactive_last": float(measured[-1]["grama/critic1"]) if measured else 0.0})


def export(out: Path) -> list[RunResult]:
    """Every finished run of the study folder `out` (both parts)."""
    supervised = [classification_result(json.loads(path.read_text()))
                  for path in sorted((out / "classification").glob("*.json"))]
    finished = sorted(summary.parent for name in classification.METHODS
                      for summary in (out / "runs" / name).glob("seed*/summary.json"))
    return supervised + [sac_result(run_dir) for run_dir in finished]


# -- the README's blocks -----------------------------------------------------------------------------------


def finals(results: Sequence[RunResult], key: str, **arm) -> list[float]:
    return [r.finals[key] for r in select(results, **arm)]


def claims() -> list[Claim]:
    def arm(network: str, method: str, key: str = "accuracy_area_last_half"):
        return lambda rs: finals(rs, key, part="a", network=network, method=method)

    def sac(method: str, key: str = "return_last3"):
        return lambda rs: finals(rs, key, part="b", method=method)

    paper_plasticity = "qualitative: resets restore the plasticity that changing targets wear away (no number read)"
    late = "mean accuracy over the last half of the phases"

    def accuracy_of(network: str, method: str, rs) -> str:
        return f"{np.mean(arm(network, method)(rs)):.2f}"

    return [
        Claim("without resets, a plain ReLU MLP loses plasticity as the labels keep changing", paper_plasticity,
              arm("relu_mlp", "none", "phase_accuracy_first_quarter"),
              arm("relu_mlp", "none", "phase_accuracy_last_half"),
              "end-of-phase accuracy, first quarter minus last half of the phases",
              lambda d, rs: "its units die phase by phase until it fits no new labels" if d.low > 0 else
              "the phases are too short or too few to wear it out"),
        Claim("ReGraMa restores the ReLU MLP's plasticity", paper_plasticity,
              arm("relu_mlp", "regrama"), arm("relu_mlp", "none"), f"{late}, ReGraMa minus no reset",
              lambda d, rs: "re-drawing the units without gradient keeps it fitting "
              f"({accuracy_of('relu_mlp', 'regrama', rs)} against {accuracy_of('relu_mlp', 'none', rs)})"
              if d.low > 0 else "the resets do not keep up"),
        Claim("in a ReLU MLP, ReDo restores it as well (the two metrics agree there)",
              "proof: every ReDo-dormant neuron of a ReLU MLP is GraMa-inactive (the paper's proposition)",
              arm("relu_mlp", "redo"), arm("relu_mlp", "none"), f"{late}, ReDo minus no reset",
              lambda d, rs: "dead ReLU units are the ones both metrics find" if d.low > 0 else
              "ReDo's resets do not keep up here"),
        Claim("with LayerNorm and residual blocks, ReDo resets neurons that still learn",
              "qualitative: ReDo misfires with LayerNorm / residual connections",
              arm("residual_layernorm", "redo", "resets_still_learning_share"),
              arm("relu_mlp", "redo", "resets_still_learning_share"),
              "share of ReDo's resets whose weights still had gradient, residual + LayerNorm minus ReLU MLP",
              lambda d, rs: "the norm couples a unit silent after its ReLU to the others, so its weights keep "
              "learning" if d.low > 0 else "ReDo misfires as often in the plain MLP at tau 0.1"),
        Claim("ReGraMa restores the ReLU MLP's plasticity better than ReDo", PAPER_RESULTS,
              arm("relu_mlp", "regrama"), arm("relu_mlp", "redo"), f"{late}, ReGraMa minus ReDo",
              lambda d, rs: f"ReGraMa keeps it fitting better ({accuracy_of('relu_mlp', 'regrama', rs)} against "
              f"{accuracy_of('relu_mlp', 'redo', rs)})" if d.low > 0 else "the two reset the same dead units"),
        Claim("ReGraMa learns better than ReDo where ReDo misfires (residual + LayerNorm)", PAPER_RESULTS,
              arm("residual_layernorm", "regrama"), arm("residual_layernorm", "redo"), f"{late}, ReGraMa minus ReDo",
              lambda d, rs: "ReDo's resets of learning units cost accuracy" if d.low > 0 else
              f"this net keeps its plasticity without resets ({accuracy_of('residual_layernorm', 'none', rs)}); "
              f"either reset costs accuracy (ReDo {accuracy_of('residual_layernorm', 'redo', rs)}, ReGraMa "
              f"{accuracy_of('residual_layernorm', 'regrama', rs)}): there is nothing to restore and re-drawn units "
              "must learn again"),
        Claim("with a LayerNorm-residual SAC network, ReGraMa ends above ReDo (HalfCheetah)", PAPER_RESULTS,
              sac("regrama"), sac("redo"), "mean of the last 3 evaluations, ReGraMa minus ReDo",
              lambda d, rs: sac_reason(d, rs, "redo")),
        Claim("with a LayerNorm-residual SAC network, ReGraMa ends above no reset (HalfCheetah)", PAPER_RESULTS,
              sac("regrama"), sac("none"), "mean of the last 3 evaluations, ReGraMa minus no reset",
              lambda d, rs: sac_reason(d, rs, "none")),
    ]


def sac_reason(difference: Any, results: Sequence[RunResult], against: str) -> str:
    """Why ReGraMa's SAC runs end where they do against `against`, from what the resets did."""
    regrama_resets = np.mean(finals(results, "resets", part="b", method="regrama"))
    inactive = np.mean(finals(results, "critic_inactive_last", part="b", method="regrama"))
    if regrama_resets == 0:
        idle = (f"ReGraMa reset no neuron (critic inactive share at the end {inactive:.3f}: none fell below its tau), "
                "so its runs are the no-reset runs")
        if against == "none":
            return idle + "; at 20,000 steps there is no lost plasticity to restore"
        redo = np.mean(finals(results, "resets", part="b", method="redo"))
        learning = np.mean(finals(results, "resets_still_learning_share", part="b", method="redo"))
        return (f"{idle}; the gap is ReDo's {redo:,.0f} resets per run, {learning:.0%} of them of neurons still "
                "learning, within noise")
    return (f"ReGraMa reset {regrama_resets:,.0f} neurons per run; "
            + ("it leads" if difference.point > 0 else "it does not lead at this budget"))


def classification_table(results: Sequence[RunResult]) -> str:
    rows = []
    for network in classification.NETWORKS:
        for method in classification.METHODS:
            members = select(results, part="a", network=network, method=method)
            if not members:
                continue
            late = mean_interval([r.finals["accuracy_area_last_half"] for r in members])
            first = np.mean([r.finals["phase_accuracy_first_quarter"] for r in members])
            reset = np.mean([r.finals["resets"] for r in members])
            share = np.mean([r.finals["resets_still_learning_share"] for r in members])
            dormant = np.mean([r.finals["dormant_share_last"] for r in members])
            grama = np.mean([r.finals["inactive_share_last"] for r in members])
            subset = max(r.finals["dormant_not_inactive_tau0_max"] for r in members)
            rows.append([NETWORK_LABELS[network], METHOD_LABELS[method], str(len(members)), f"{first:.2f}",
                         estimate_text(late), f"{reset:,.0f}" if method != "none" else "",
                         f"{share:.2f}" if method != "none" else "", f"{dormant:.2f} / {grama:.2f}", f"{subset:.0f}"])
    return markdown_table(["network", "resets", "seeds", "end-of-phase accuracy, first quarter",
                           "mean accuracy, last half [95% CI]", "neurons reset", "of them still learning",
                           "dormant / inactive at the end (tau 0.1)", "dormant, not inactive (tau 0, most)"], rows)


def sac_table(results: Sequence[RunResult]) -> str:
    rows = []
    for method in classification.METHODS:
        members = select(results, part="b", method=method)
        if not members:
            continue
        final = mean_interval([r.finals["return_final"] for r in members])
        last3 = mean_interval([r.finals["return_last3"] for r in members])
        reset = np.mean([r.finals["resets"] for r in members])
        share = np.mean([r.finals["resets_still_learning_share"] for r in members])
        activity = [np.mean([r.finals[key] for r in members])
                    for key in ("critic_dormant_last", "critic_inactive_last")]
        rows.append([METHOD_LABELS[method], str(len(members)), estimate_text(final), estimate_text(last3),
                     f"{reset:,.0f}" if method != "none" else "",
                     f"{share:.2f}" if method == "redo" else "", f"{activity[0]:.3f} / {activity[1]:.3f}"])
    return markdown_table(["resets", "seeds", "final return [95% CI]", "mean of the last 3 evaluations [95% CI]",
                           "neurons reset", "of them still learning", "critic dormant / inactive at the end"], rows)


def blocks(results: Sequence[RunResult], figures: Path | None) -> dict[str, str]:
    """The README's generated blocks; the figures are drawn into `figures` when given."""
    if figures is not None:
        plot_classification(results, figures / FIGURES[0])
        plot_sac(results, figures / FIGURES[1])
    return {"verdict": verdict_table(claims(), results), "provenance": provenance_line(results),
            "classification": classification_table(results), "sac": sac_table(results)}


# -- figures -----------------------------------------------------------------------------------------------


def band(axis, x, curves: np.ndarray, color: str, label: str, style: str = "-") -> None:
    axis.plot(x, curves.mean(axis=0), style, color=color, label=label, marker="o" if len(x) < 20 else None,
              markersize=3)
    axis.fill_between(x, curves.min(axis=0), curves.max(axis=0), color=color, alpha=0.12)


def plot_classification(results: Sequence[RunResult], path: Path) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(16, 4))
    for row, network in enumerate(classification.NETWORKS):
        for color, method in enumerate(classification.METHODS):
            members = select(results, part="a", network=network, method=method)
            if not members:
                continue
            label = f"{METHOD_LABELS[method]}"
            band(axes[row], members[0].curves["step"], np.asarray([r.curves["accuracy"] for r in members]),
                 f"C{color}", label)
            band(axes[2], members[0].curves["phase"], np.asarray([r.curves["dormant"] for r in members]), f"C{color}",
                 f"{METHOD_LABELS[method]}, {'ReLU MLP' if row == 0 else 'residual + LN'}", "-" if row == 0 else ":")
        axes[row].set_title(f"{NETWORK_LABELS[network]}: accuracy", fontsize=10)
        axes[row].set_xlabel("Adam steps (labels redrawn every phase)")
    axes[2].set_title("ReDo-dormant share at each phase's end (tau 0.1)", fontsize=10)
    axes[2].set_xlabel("phase")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    save(figure, path, suffixes=(".png",))


def plot_sac(results: Sequence[RunResult], path: Path) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(16, 4))
    for color, method in enumerate(classification.METHODS):
        members = select(results, part="b", method=method)
        if not members:
            continue
        for axis, (x, y) in zip(axes, (("eval_step", "eval_return"), ("activity_step", "critic_dormant"),
                                       ("activity_step", "critic_inactive"))):
            length = min(len(r.curves[y]) for r in members)
            band(axis, members[0].curves[x][:length], np.asarray([r.curves[y][:length] for r in members]),
                 f"C{color}", METHOD_LABELS[method])
    for axis, title in zip(axes, ("evaluation return (mean, seed range)", "critic 1: ReDo-dormant share (tau 0.1)",
                                  "critic 1: GraMa-inactive share (tau 0.1)")):
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("environment steps")
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    save(figure, path, suffixes=(".png",))

