"""`scalerl study`: the list, a pipeline study (ReaLchords) and a sweep study, each run --quick to its report."""

import json

import pytest

import scalerl.studies
from scalerl.cli import main
from scalerl.studies import run_study


def test_the_list_names_each_study_with_its_claim_and_its_quick_cost(capsys):
    assert main(["study", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(scalerl.studies.study_names()) and any(line.startswith("realchords") for line in lines)
    # every study's quick form has been measured (benchmarks/quick_studies.py): a new study must be too
    assert all(line.endswith(" CPU-minutes)") for line in lines), [line for line in lines if "quick:" not in line]
    assert main(["study", "nope"]) == 2
    assert ("unknown study 'nope'; valid: actor-critic, cale, gap, grama, least, metaworld, mtrl-scaling, realchords, "
            "stable-gradients, tokenize") in capsys.readouterr().err


def test_every_sweep_study_is_a_valid_sweep_full_and_quick(tmp_path):
    """Each trial of each sweep study, full size and quick, builds a valid config (before anything runs)."""
    from scalerl.studies import quick_spec, study_folder, study_names

    sweeps = [name for name in study_names() if (study_folder(name) / "sweep.toml").is_file()]
    assert {"gap", "least", "tokenize"} <= set(sweeps)
    for name in sweeps:
        for quick in (False, True):
            spec, group_by = quick_spec(study_folder(name), quick)
            assert spec.trials(tmp_path / name) and group_by


def test_realchords_quick_runs_the_whole_pipeline_to_a_report(tmp_path, capsys):
    pytest.importorskip("music21")
    report = run_study("realchords", tmp_path / "rc", quick=True)
    said = capsys.readouterr().err  # each step says when it starts and ends: a quick run is never silent
    assert "realchords: pretrain online ..." in said and "realchords: finetune rl-s0 done in" in said
    text = report.read_text()
    for row in ("| online | 1 |", "| rl | 1 |", "| rl-frame | 1 |", "| teacher | 1 |", "| recent notes | 1 |"):
        assert row in text
    assert (tmp_path / "rc" / "adaptation.png").stat().st_size > 0
    assert (tmp_path / "rc" / "rl-s0" / "summary.json").is_file()
    frame = json.loads((tmp_path / "rc" / "rl-frame-s0" / "config.json").read_text())["finetune"]
    assert (frame["grammar"], frame["fit_above_chance"], frame["fit_credit"]) == ("beats", True, "frame")


@pytest.mark.xdist_group("ray")  # starts Ray
def test_a_sweep_study_runs_its_quick_grid_and_puts_the_claim_above_the_report(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    folder = tmp_path / "studies" / "tiny"
    folder.mkdir(parents=True)
    (folder / "README.md").write_text("# Tiny: wider torsos on CartPole\n\nThe claim and the paper's numbers.\n")
    (folder / "sweep.toml").write_text(
        'seeds = [0, 1, 2]\n[base]\nenv = "classic:CartPole-v1"\nsteps = 100000\neval_episodes = 2\n'
        '[grid]\n"net.width" = [1, 2, 4]\n')
    (folder / "study.toml").write_text(
        'group_by = ["net.width"]\n[quick]\nseeds = [0]\n[quick.base]\nsteps = 400\n"algo.learning_starts" = 200\n'
        '[quick.grid]\n"net.width" = [1, 2]\n')
    monkeypatch.setattr(scalerl.studies, "FOLDER", tmp_path / "studies")
    report = run_study("tiny", tmp_path / "out", quick=True, workers=2, log=lambda message: None)
    text = report.read_text()
    assert text.startswith("# Tiny: wider torsos on CartPole")
    assert "# This run (quick)" in text and "net.width=1" in text and "net.width=2" in text
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_dir() and "width" in p.name) == \
        ["net.width=1", "net.width=2"]
    report = run_study("tiny", tmp_path / "out", quick=True, workers=2, log=lambda message: None, seeds=[1])
    assert sorted(p.name for p in (tmp_path / "out" / "net.width=2").iterdir()) == ["seed0", "seed1"]
    assert "| net.width=1 | 2 | 0, 1 |" in report.read_text()  # the report counts both seeds
    report = run_study("tiny", tmp_path / "out", quick=True, workers=2, log=lambda message: None, seeds=[2],
                       variants=["net.width=2"])
    assert not (tmp_path / "out" / "net.width=1" / "seed2").exists()
    assert sorted(p.name for p in (tmp_path / "out" / "net.width=2").iterdir()) == ["seed0", "seed1", "seed2"]
    assert "| net.width=2 | 3 | 0, 1, 2 |" in report.read_text() and "| net.width=1 | 2 | 0, 1 |" in report.read_text()


def test_seeds_and_variants_apply_to_sweep_studies_only_and_must_exist(tmp_path):
    from scalerl.checks import ConfigError
    from scalerl.studies import only_variants, quick_spec, study_folder

    spec, _ = quick_spec(study_folder("gap"), False, [2])
    assert {trial.seed for trial in spec.trials(tmp_path)} == {2}
    with pytest.raises(ConfigError, match="--seeds"):
        quick_spec(study_folder("gap"), False, [-1])
    with pytest.raises(ConfigError, match="--seeds applies to sweep studies"):
        run_study("realchords", tmp_path / "rc", seeds=[0])
    with pytest.raises(ConfigError, match="--variants applies to sweep studies"):
        run_study("realchords", tmp_path / "rc", variants=["rl"])

    tokenize, _ = quick_spec(study_folder("tokenize"), False, [0])
    part = only_variants(tokenize, ["softmoe4-shuffled", "flatten-512"])
    whole = {(t.name, t.seed): t.config for t in tokenize.trials(tmp_path)}
    assert {(t.name, t.seed): t.config for t in part.trials(tmp_path)} == \
        {key: whole[key] for key in [("softmoe4-shuffled", 0), ("flatten-512", 0)]}  # same folders, same configs
    grid = only_variants(spec, ["net.bottleneck=gap,net.width=4"])
    assert [t.run_dir.parent.name for t in grid.trials(tmp_path)] == ["net.bottleneck=gap,net.width=4"]
    with pytest.raises(ConfigError, match="no variant 'flatten-1024'; this study's are flatten-512, flatten-2048"):
        only_variants(tokenize, ["flatten-1024"])


def test_a_study_scores_runs_by_as_many_last_evaluations_as_its_study_toml_says(tmp_path):
    from scalerl.checks import ConfigError
    from scalerl.studies import scored_evaluations, study_folder

    assert scored_evaluations(study_folder("tokenize")) == 3 and scored_evaluations(study_folder("least")) == 1
    (tmp_path / "study.toml").write_text("last_evaluations = 0\n")
    with pytest.raises(ConfigError, match="last_evaluations must be an integer >= 1 \\(got 0\\)"):
        scored_evaluations(tmp_path)


@pytest.mark.xdist_group("ray")  # starts Ray
def test_cale_quick_measures_the_dead_zone_and_compares_sac_with_dqn(tmp_path):
    pytest.importorskip("ale_py")
    pytest.importorskip("ray")
    text = run_study("cale", tmp_path / "cale", quick=True).read_text()
    assert "| 0.5 | 0.561 / 0.5" in text  # exact share of centred actions beside the measured one
    for row in ("| DQN (atari) |", "| SAC (cale, tau 0.5) |", "| random (cale, 1 episodes) |"):
        assert row in text
    assert (tmp_path / "cale" / "report_figures" / "returns.png").stat().st_size > 0


@pytest.mark.xdist_group("ray")  # starts Ray
def test_grama_quick_trains_every_arm_counts_misfires_and_reports_from_the_shipped_form(tmp_path):
    pytest.importorskip("mujoco")
    pytest.importorskip("ray")
    from scalerl.studies.grama import results

    report = run_study("grama", tmp_path / "grama", quick=True).read_text()
    runs = results.export(tmp_path / "grama")
    assert sorted(r.run for r in runs) == sorted(
        [f"a-{network}-{method}-s0" for network in ("relu_mlp", "residual_layernorm")
         for method in ("none", "redo", "regrama")] + ["b-none-s0", "b-redo-s0", "b-regrama-s0"])
    for run in runs:
        if run.arm["part"] == "a" and run.arm["network"] == "relu_mlp":  # tau 0 in a ReLU MLP: dormant => inactive
            assert run.finals["dormant_not_inactive_tau0_max"] == 0
        if run.arm["method"] == "none":
            assert run.finals["resets"] == 0
    assert sum(r.finals["resets"] for r in runs if r.arm["method"] == "redo") > 0  # the resets fire
    assert "| ReLU MLP, 4 layers | ReGraMa | 1 |" in report and "| ReDo | 1 |" in report
    assert "NOT MEASURED YET" in report  # one seed: no verdict is claimed
    assert (tmp_path / "grama" / "report_figures" / "grama_sac.png").stat().st_size > 0


@pytest.mark.xdist_group("ray")  # starts Ray
def test_stable_gradients_quick_runs_both_parts_and_caches_them(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("heavyball")
    import json

    report = run_study("stable-gradients", tmp_path / "sg", quick=True).read_text()
    runs = [json.loads(path.read_text()) for path in sorted((tmp_path / "sg" / "runs").glob("*.json"))]
    assert len(runs) == 8 and all(len(run["accuracy"]) == 4 and all(g > 0 for g in run["first_layer_grad_norm"])
                                  for run in runs)
    assert "| plain, Kron, 4 layers |" in report and "| multi-skip + LN, RAdam, 2 layers |" in report
    pqn_runs = sorted(path.parent.parent.name for path in (tmp_path / "sg" / "pqn").glob("*/seed0/summary.json"))
    assert pqn_runs == ["baseline-1blocks", "baseline-2blocks", "multiskip_kron-1blocks", "multiskip_kron-2blocks"]
    assert "| plain + RAdam | 2 |" in report and "| multi-skip + LN + Kron | 1 |" in report
    again = run_study("stable-gradients", tmp_path / "sg", quick=True)  # cached runs: nothing trains again
    assert again.read_text() == report


def test_the_multitask_studies_build_valid_configs_full_and_quick():
    """Every run of the Meta-World+ and multi-task scaling studies is a valid config, full size and quick."""
    from scalerl.config import TrainConfig
    from scalerl.studies.metaworld import study as metaworld
    from scalerl.studies.mtrl_scaling import study as scaling
    from scalerl.sweep import nest

    for settings in (scaling.FULL, scaling.QUICK):
        variants = scaling.variants(settings)
        assert len(variants) == len(settings.widths) * len(settings.task_counts) + 2
        for variant in variants:
            config = TrainConfig.from_dict(nest({"agent": "mtsac",
                                                 **{k: v for k, v in variant.items() if k != "name"}}))
            assert config.algo.train_every == config.resolved().num_envs  # one update per vector step
    for settings in (metaworld.FULL, metaworld.QUICK):
        for version in metaworld.VERSIONS:
            config = TrainConfig.from_dict(nest({**metaworld.base_settings(settings),
                                                 "env_opts.reward_function_version": version}))
            assert config.env_opts.reward_function_version == version and config.resolved().num_envs == 3
    assert {v["name"] for v in scaling.variants(scaling.FULL)} >= {"tasks10-width1024", "tasks4-actor1024-critic64"}


@pytest.mark.xdist_group("ray")  # starts Ray
def test_actor_critic_quick_trains_each_encoder_layout_and_probes_it_on_train_and_test_levels(tmp_path):
    import json

    report = run_study("actor-critic", tmp_path / "ac", quick=True).read_text()
    rows = [json.loads(path.read_text()) for path in sorted((tmp_path / "ac" / "measurements").glob("*.json"))]
    assert sorted(row["encoders"] for row in rows) == ["separate", "shared", "shared_matched"]
    for row in rows:
        assert len(row["train"]) == len(row["test"]) == 4
        assert set(row["mi"]["actor"]) == {"observation", "value", "action", "level"}
    separate = next(row for row in rows if row["encoders"] == "separate")
    matched = next(row for row in rows if row["encoders"] == "shared_matched")
    assert abs(sum(matched["parameters"].values()) / sum(separate["parameters"].values()) - 1) < 0.05
    assert "| shared, parameter-matched |" in report and "| separate | critic |" in report


def test_least_results_measure_the_stop_rate_a_random_stop_was_set_to(tmp_path, monkeypatch):
    """The LEAST study's export reads a run's stops per step after its start: a random stop set to a rate
    measures near it, and a run without stops measures none."""
    from scalerl import train
    from scalerl.studies.least import results

    monkeypatch.setattr(results, "variants", lambda: [("td3-pendulum", {}), ("td3-pendulum-random-stop", {}),
                                                      ("td3-pendulum-least", {})])
    settings = {"env": "classic:Pendulum-v1", "agent": "td3", "steps": 1500, "eval_every": 750, "eval_episodes": 1,
                "log_every": 100, "progress": "off", "algo": {"learning_starts": 1400}}  # stops need no learning
    train(run_dir=str(tmp_path / "td3-pendulum" / "seed0"), **settings)
    train(run_dir=str(tmp_path / "td3-pendulum-random-stop" / "seed0"), hooks=["random_stop"],
          hook_opts={"random_stop": {"rate": 0.05, "start": 0.15}}, **settings)
    train(run_dir=str(tmp_path / "td3-pendulum-least" / "seed0"), hooks=["least"],
          hook_opts={"least": {"start": 0.15, "min_episodes": 2, "gradient": "none"}}, **settings)
    none, least, stopped = results.export(tmp_path)  # in folder order
    # the rate a random-stop arm is set to is the LEAST arm's, read the same way
    assert results.measured_rates(tmp_path) == {("td3", "classic:Pendulum-v1"): least.finals["stops_per_step"]}
    assert none.arm["stop"] == "none" and none.finals["stopped"] == 0 and none.finals["stops_per_step"] == 0
    assert stopped.arm == {"agent": "td3", "env": "classic:Pendulum-v1", "stop": "random_stop"}
    assert 0.03 < stopped.finals["stops_per_step"] < 0.07  # about 64 stops in the 1,275 steps after the start
    assert stopped.finals["episodes"] > none.finals["episodes"]
    assert "| TD3 |" not in results.arms_table([none, stopped])  # only the study's own tasks are tabulated
