"""Aggregates against values computed by hand, normalizers on known scores, and reports from runs."""

import json
import re

import numpy as np
import pytest

from scalerl import ConfigError, train
from scalerl.analysis import (
    ScoreMatrix,
    aggregates,
    final_score,
    find_runs,
    human_normalized,
    iqm,
    normalized_score,
    probability_of_improvement,
    score_matrix,
    write_report,
)
from scalerl.cli import main


def test_numpy_iqm_and_improvement_probability_match_rliable():
    """scalerl computes both in numpy (a bootstrap calls them thousands of times); they must be rliable's."""
    from rliable import metrics

    from scalerl.analysis.aggregate import improvement_probability

    rng = np.random.default_rng(0)
    for _ in range(100):  # small integer scores: many ties, and identical columns now and then
        x = rng.integers(0, 4, size=(rng.integers(1, 7), 3)).astype(float)
        y = rng.integers(0, 4, size=(rng.integers(1, 7), 3)).astype(float)
        assert iqm(x) == pytest.approx(metrics.aggregate_iqm(x), abs=1e-12)
        assert improvement_probability(x, y) == pytest.approx(metrics.probability_of_improvement(x, y), abs=1e-12)


def test_iqm_is_the_mean_of_the_middle_half():
    scores = np.arange(1.0, 9.0).reshape(8, 1)  # 8 runs on 1 task: the middle half is 3, 4, 5, 6
    assert iqm(scores) == pytest.approx(4.5)
    two_tasks = np.array([[1.0, 100.0], [2.0, 3.0], [4.0, 5.0], [6.0, -50.0]])  # pooled: -50 1 2 3 | 4 5 6 100
    assert iqm(two_tasks) == pytest.approx((2 + 3 + 4 + 5) / 4)
    estimate = aggregates(ScoreMatrix(("t",), {"g": scores}), reps=200)["g"]
    assert estimate["IQM"].point == pytest.approx(4.5)
    assert estimate["Median"].point == pytest.approx(4.5) and estimate["Mean"].point == pytest.approx(4.5)
    assert estimate["Optimality gap"].point == pytest.approx(0.0)  # every score is above 1
    below = aggregates(ScoreMatrix(("t",), {"g": np.array([[0.25], [0.5], [1.5]])}), reps=200)["g"]
    assert below["Optimality gap"].point == pytest.approx((0.75 + 0.5 + 0.0) / 3)


def test_bootstrap_interval_contains_the_true_mean_for_a_fixed_seed():
    rng = np.random.default_rng(0)
    scores = rng.normal(5.0, 1.0, size=(20, 3))
    estimate = aggregates(ScoreMatrix(("a", "b", "c"), {"g": scores}), reps=2000, seed=0)["g"]["Mean"]
    assert estimate.low < 5.0 < estimate.high
    assert estimate.low < scores.mean() < estimate.high
    assert estimate.high - estimate.low < 1.0
    again = aggregates(ScoreMatrix(("a", "b", "c"), {"g": scores}), reps=2000, seed=0)["g"]["Mean"]
    assert again == estimate


def test_probability_of_improvement_of_a_group_that_always_wins_is_one():
    worse = np.zeros((4, 2))
    better = np.ones((4, 2))
    estimates = probability_of_improvement(ScoreMatrix(("a", "b"), {"x": better, "y": worse}), [("x", "y"), ("y", "x")],
                                           reps=200)
    assert estimates[("x", "y")].point == pytest.approx(1.0)
    assert estimates[("y", "x")].point == pytest.approx(0.0)


def test_human_normalized_scores_of_known_values():
    assert human_normalized("breakout", 1.7) == pytest.approx(0.0)  # random
    assert human_normalized("breakout", 30.5) == pytest.approx(1.0)  # human
    assert human_normalized("breakout", 16.1) == pytest.approx(0.5)
    assert human_normalized("pong", 14.6) == pytest.approx(1.0)
    assert normalized_score("atari:pong", {"return_mean": -20.7}) == pytest.approx(0.0)
    assert normalized_score("cale:breakout", {"return_mean": 30.5}) == pytest.approx(1.0)
    assert normalized_score("metaworld:MT10", {"return_mean": 4000.0, "success_mean": 0.7}) == 0.7
    assert normalized_score("dmc:cheetah-run", {"return_mean": 612.0}) == 612.0
    with pytest.raises(ConfigError, match="no human reference score for Atari game 'tetris'"):
        human_normalized("tetris", 10.0)


def fake_run(folder, name, env, seed, width, evals, metrics=()):
    """A run directory as train() writes one, with made-up records."""
    path = folder / name
    path.mkdir(parents=True)
    config = {"env": env, "seed": seed, "agent": "dqn", "net": {"width": width}, "run_dir": str(path)}
    (path / "config.json").write_text(json.dumps(config))
    (path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in evals))
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))
    return path


def test_score_matrix_is_runs_by_tasks_grouped_by_config(tmp_path):
    for width in (1, 4):
        for seed in range(3):
            for game, human in (("breakout", 30.5), ("pong", 14.6)):
                fake_run(tmp_path, f"w{width}-{game}-s{seed}", f"atari:{game}", seed, width,
                         [{"step": 100, "wall_time": 1.0, "return_mean": human * width / 4}])
    matrix = score_matrix(find_runs([tmp_path]), ["net.width"])
    assert matrix.tasks == ("atari:breakout", "atari:pong")
    assert set(matrix.scores) == {"net.width=1", "net.width=4"}
    assert matrix.scores["net.width=4"].shape == (3, 2)  # 3 seeds x 2 tasks
    assert np.allclose(matrix.scores["net.width=4"], 1.0)
    assert np.allclose(matrix.scores["net.width=1"][:, 0], (30.5 / 4 - 1.7) / (30.5 - 1.7))
    with pytest.raises(ConfigError, match="group 'net.width=1' must have the same number of runs on every task"):
        fake_run(tmp_path, "extra", "atari:pong", 9, 1, [{"step": 100, "return_mean": 0.0}])
        score_matrix(find_runs([tmp_path]), ["net.width"])
    with pytest.raises(ConfigError, match="scores must be \\(runs, 2 tasks\\)"):
        ScoreMatrix(("a", "b"), {"g": np.zeros((2, 3))})


def test_report_and_plot_from_trained_runs(tmp_path, capsys):
    """Two configs x two seeds of real (tiny) runs: the report lists their config difference, a final
    score per group with an interval, and figures that exist."""
    for hidden in (16, 32):
        for seed in (0, 1):
            train(env="classic:CartPole-v1", steps=600, seed=seed, eval_every=300, eval_episodes=2, log_every=200,
                  progress="off", run_dir=str(tmp_path / "runs" / f"h{hidden}-s{seed}"), net={"hidden": hidden},
                  algo={"learning_starts": 200})
    out = tmp_path / "report.md"
    assert main(["report", str(tmp_path / "runs"), "-o", str(out), "--reps", "200"]) == 0
    text = out.read_text()
    assert "# Report: 4 runs, 2 groups, 1 tasks" in text
    assert "| group | net.hidden |" in text and "| net.hidden=16 | 16 |" in text
    assert "## Aggregates across tasks" in text and "## Probability of improvement" in text
    figures = tmp_path / "report_figures"
    for name in ("aggregates", "performance_profiles", "score_vs_step", "score_vs_wall_time", "train_loss",
                 "train_grad_norm"):
        assert (figures / f"{name}.png").stat().st_size > 1000 and (figures / f"{name}.svg").is_file()
    assert main(["plot", str(tmp_path / "runs"), "--group-by", "net.hidden", "--metric", "loss", "-o",
                 str(tmp_path / "p")]) == 0
    assert (tmp_path / "p" / "loss_vs_step.png").is_file()
    capsys.readouterr()
    assert main(["plot", str(tmp_path / "runs"), "--metric", "dormant"]) == 2
    assert "no run records metric 'dormant'" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert main(["plot", str(tmp_path / "runs"), "--group-by", "net.depht"]) == 2
    assert "runs have no config key 'net.depht'" in capsys.readouterr().err


def test_performance_profile_counts_runs_above_each_threshold():
    from scalerl.analysis import performance_profiles

    scores = np.array([[0.1, 0.5], [0.9, 1.5]])  # 4 scores; above 0: all, above 0.7: 2, above 2: none
    profiles, intervals = performance_profiles(ScoreMatrix(("a", "b"), {"g": scores}), np.array([0.0, 0.7, 2.0]),
                                               reps=100)
    assert np.allclose(profiles["g"], [1.0, 0.5, 0.0])
    assert intervals["g"].shape == (2, 3)


def test_runs_group_by_their_sweep_variant_name(tmp_path):
    from scalerl.analysis.runs import RunRecord, group_runs

    runs = [RunRecord(tmp_path / variant / f"seed{seed}", {"seed": seed, "env": "e"}, [], [], None)
            for variant in ("softmoe4", "flatten-2048") for seed in (0, 1)]
    groups = group_runs(runs, ["variant"])
    assert {label: [run.seed for run in members] for label, members in groups.items()} == {
        "softmoe4": [0, 1], "flatten-2048": [0, 1]}


def test_group_labels_of_an_ablation_name_only_the_setting_each_group_changes(tmp_path):
    from scalerl.analysis.runs import RunRecord, group_runs

    def run(name, atoms=1, v_max=10.0, noisy=False, double=False):
        algo = {"atoms": atoms, "v_max": v_max, "noisy": noisy, "double": double}
        return RunRecord(tmp_path / name, {"seed": 0, "env": "e", "algo": algo}, [], [], None)

    ablation = [run("base"), run("c51", atoms=51, v_max=100.0), run("c51v10", atoms=51), run("noisy", noisy=True),
                run("double", double=True)]
    keys = ["algo.atoms", "algo.v_max", "algo.noisy", "algo.double"]
    assert list(group_runs(ablation, keys)) == [
        "the shared settings", "algo.atoms=51, algo.v_max=100", "algo.atoms=51", "algo.noisy=True",
        "algo.double=True"]
    three = [run("dqn"), run("rainbow", atoms=51, v_max=100.0, noisy=True), run("rainbow-v10", atoms=51, noisy=True)]
    assert list(group_runs(three, keys[:3])) == [
        "algo.atoms=1, algo.v_max=10, algo.noisy=False", "algo.atoms=51, algo.v_max=100, algo.noisy=True",
        "algo.atoms=51, algo.v_max=10, algo.noisy=True"]
    no_base = [run("dqn", double=True), run("rainbow", atoms=51, v_max=100.0, noisy=True),
               run("rainbow-v10", atoms=51, noisy=True), run("rainbow-v10-double", atoms=51, noisy=True, double=True)]
    assert list(group_runs(no_base, keys)) == [
        "algo.atoms=1, algo.v_max=10, algo.noisy=False, algo.double=True",
        "algo.atoms=51, algo.v_max=100, algo.noisy=True, algo.double=False",
        "algo.atoms=51, algo.v_max=10, algo.noisy=True, algo.double=False",
        "algo.atoms=51, algo.v_max=10, algo.noisy=True, algo.double=True"]
    grid = [run("a"), run("b", atoms=51), run("c", noisy=True), run("d", atoms=51, noisy=True)]
    assert list(group_runs(grid, ["algo.atoms", "algo.noisy"])) == [
        "algo.atoms=1, algo.noisy=False", "algo.atoms=51, algo.noisy=False", "algo.atoms=1, algo.noisy=True",
        "algo.atoms=51, algo.noisy=True"]


def test_config_differences_of_runs_of_different_agents_mark_absent_keys(tmp_path):
    from scalerl.analysis.report import config_differences
    from scalerl.analysis.runs import RunRecord, group_runs

    runs = [RunRecord(tmp_path / agent / "seed0", {"seed": 0, "env": "e", "agent": agent, "algo": algo}, [], [], None)
            for agent, algo in (("td3", {"policy_noise": 0.2}), ("sac", {"alpha": 0.2}))]
    rows = config_differences(runs, group_runs(runs, ["agent"]))
    assert rows[0] == "| group | agent | algo.alpha | algo.policy_noise |"
    assert rows[2:] == ['| agent=td3 | "td3" | - | 0.2 |', '| agent=sac | "sac" | 0.2 | - |']


def test_report_plots_a_diagnostic_logged_only_in_records_between_the_first_and_the_last(tmp_path):
    """A hook measuring every N updates writes its keys into some log records only (the activity monitor's
    dormant ratios in the gap study: neither the first record, before learning, nor the last), and metric
    names hold dots (dormant/q.torso.0) that must not cut a figure's file name."""
    run_dir = tmp_path / "runs" / "r"
    train(env="classic:CartPole-v1", steps=600, eval_every=600, eval_episodes=1, log_every=100, progress="off",
          run_dir=str(run_dir), algo={"learning_starts": 200}, hooks=["activity"],
          hook_opts={"activity": {"every": 10_000}})
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [bool(any(k.startswith("dormant/") for k in r)) for r in (records[0], records[-1])] == [False, False]
    assert "dormant/q.torso.0" in {k for r in records for k in r}
    assert main(["report", str(tmp_path / "runs"), "-o", str(tmp_path / "report.md"), "--reps", "50"]) == 0
    links = re.findall(r"\]\((report_figures/[^)]+)\)", (tmp_path / "report.md").read_text())
    assert "report_figures/train_dormant_q.torso.0.png" in links
    for link in links:
        assert (tmp_path / link).is_file(), link


def test_curve_mean_goes_on_past_a_run_that_ended_early():
    """A run stopped at its target return ends before the others: the mean covers the longest run, over
    the runs that reach each step, and the band is the one run's value once only it is left."""
    from scalerl.analysis.plots import mean_and_band

    steps = np.asarray([0.0, 50.0, 100.0])
    short = (steps[:2], np.asarray([0.0, 10.0]))
    long = (steps, np.asarray([2.0, 4.0, 6.0]))
    grid, mean, low, high = mean_and_band([short, long], points=3, reps=200)
    assert grid.tolist() == [0.0, 50.0, 100.0]
    assert mean.tolist() == [1.0, 7.0, 6.0]
    assert low[2] == high[2] == 6.0
    assert low[1] == 4.0 and high[1] == 10.0


def test_a_run_scores_by_the_mean_of_its_last_evaluations_when_asked(tmp_path, capsys):
    """--last N averages a run's last N evaluations (all of them when it has fewer), and the report says so."""
    for seed, returns in ((0, [1.0, 2.0, 3.0, 4.0]), (1, [5.0, 6.0, 7.0, 8.0])):
        fake_run(tmp_path / "runs", f"s{seed}", "classic:CartPole-v1", seed, 1,
                 [{"step": 100 * (k + 1), "wall_time": 1.0, "return_mean": r} for k, r in enumerate(returns)])
    first, second = sorted(find_runs([tmp_path / "runs"]), key=lambda run: run.seed)
    assert final_score(first) == 4.0 and final_score(first, last=3) == 3.0 and final_score(first, last=10) == 2.5
    with pytest.raises(ConfigError, match="last must be >= 1 evaluation"):
        final_score(first, last=0)
    out = tmp_path / "report.md"
    assert main(["report", str(tmp_path / "runs"), "-o", str(out), "--reps", "50", "--last", "2"]) == 0
    text = out.read_text()
    assert "Score: return, the mean of the last 2 evaluations of each run." in text
    assert "| all runs | 5.5 [3.5, 7.5] |" in text  # the seeds score 3.5 and 7.5
    assert main(["report", str(tmp_path / "runs"), "--last", "0"]) == 2
    assert "argument --last: must be in [1, 10,000] (got 0)" in capsys.readouterr().err


def test_a_series_of_one_evaluation_is_drawn_visibly(tmp_path):
    """A quick study's runs evaluate once: a single point drawn as a line shows nothing. It gets a marker."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scalerl.analysis import find_runs, plot_curves

    for seed in (0, 1):
        run = tmp_path / f"run{seed}"
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"env": "classic:CartPole-v1", "seed": seed, "agent": "dqn"}))
        (run / "eval.jsonl").write_text(json.dumps({"step": 500, "return_mean": 20.0 + seed, "returns": [20.0]}) + "\n")
        (run / "metrics.jsonl").write_text("")
    drawn = []
    original = plt.Axes.plot

    def recording(axis, *args, **kwargs):
        lines = original(axis, *args, **kwargs)
        drawn.extend(lines)
        return lines

    plt.Axes.plot = recording
    try:
        plot_curves(find_runs([tmp_path]), "return_mean", tmp_path / "curve")
    finally:
        plt.Axes.plot = original
    visible = [line for line in drawn if line.get_marker() not in (None, "None", "", " ") and len(line.get_xdata())]
    assert visible and all(np.isfinite(line.get_ydata()).all() for line in visible)


def test_a_report_says_at_the_top_when_no_run_made_an_update(tmp_path):
    """A quick study whose budget ends before learning starts scores untrained networks: its report says so
    first, and every report counts each group's updates."""
    for seed in (0, 1):
        train(env="classic:CartPole-v1", steps=200, seed=seed, eval_every=0, eval_episodes=1, progress="off",
              run_dir=str(tmp_path / "runs" / f"s{seed}"), algo={"learning_starts": 1000})
    text = write_report([tmp_path / "runs"], tmp_path / "report.md").read_text()
    assert "**No group made a single gradient update**" in text.split("Written")[0]
    assert "| updates per run |" in text and "| 0 |" in text


def test_a_config_table_with_many_differing_settings_turns_on_its_side():
    from types import SimpleNamespace

    from scalerl.analysis.report import WIDE_TABLE_KEYS, config_differences

    keys = [f"algo.k{index}" for index in range(WIDE_TABLE_KEYS + 2)]
    runs = [SimpleNamespace(config={"env": "classic:CartPole-v1", "seed": 0, "algo": {k[5:]: arm for k in keys}})
            for arm in (1, 2)]
    groups = {"first": [runs[0]], "second": [runs[1]]}
    lines = config_differences(runs, groups)
    assert lines[:2] == ["- group 1: first", "- group 2: second"]
    assert "| setting | group 1 | group 2 |" in lines
    assert sum(line.startswith("| algo.k") for line in lines) == len(keys)


def test_a_report_of_groups_on_different_tasks_compares_them_per_task(tmp_path):
    """A study grouped by env (each group on its own task), part-way through (3 runs against 2): the report
    gives each group's numbers on its own tasks and no aggregate across them, instead of refusing."""
    for seed in range(3):
        fake_run(tmp_path / "runs", f"hopper-s{seed}", "mujoco:Hopper-v5", seed, 1,
                 [{"step": 100, "wall_time": 1.0, "return_mean": 1000.0 + seed}])
    for seed in range(2):
        fake_run(tmp_path / "runs", f"cheetah-s{seed}", "mujoco:HalfCheetah-v5", seed, 4,
                 [{"step": 100, "wall_time": 1.0, "return_mean": 3000.0}])
    text = write_report([tmp_path / "runs"], tmp_path / "report.md", ["env"], reps=100).read_text()
    hopper_row = next(line for line in text.splitlines() if line.startswith("| env=mujoco:Hopper-v5 | -"))
    assert hopper_row.endswith("| 1,001 [1,000, 1,002] |")  # "-" under HalfCheetah (no run), its mean under Hopper
    assert "compared per task only" in text and "## Aggregates across tasks" not in text
