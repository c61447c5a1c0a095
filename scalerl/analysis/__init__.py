"""Evaluation downstream of training: read run directories, normalize scores, aggregate them with
confidence intervals (rliable), plot, and write reports."""

from scalerl.analysis.aggregate import (
    Estimate,
    ScoreMatrix,
    aggregates,
    final_score,
    iqm,
    performance_profiles,
    probability_of_improvement,
    score_matrix,
)
from scalerl.analysis.plots import plot_aggregates, plot_curves
from scalerl.analysis.report import write_report
from scalerl.analysis.runs import RunRecord, find_runs, group_runs, load_run
from scalerl.analysis.scores import ATARI_RANDOM_AND_HUMAN, human_normalized, normalized_score

__all__ = [
    "ATARI_RANDOM_AND_HUMAN", "Estimate", "RunRecord", "ScoreMatrix", "aggregates", "final_score", "find_runs",
    "group_runs", "human_normalized", "iqm", "load_run", "normalized_score", "performance_profiles",
    "plot_aggregates", "plot_curves", "probability_of_improvement", "score_matrix", "write_report",
]
