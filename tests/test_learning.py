"""Long learning checks (pytest -m slow): they run benchmarks/learning.py's recipes, whose recorded
per-seed results are in benchmarks/NOTES.md."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
LEARNING = Path(__file__).parents[1] / "benchmarks" / "learning.py"


def run_recipe(recipe: str, seeds: list[int], out: Path) -> list[dict]:
    subprocess.run([sys.executable, str(LEARNING), recipe, "--seeds", *map(str, seeds), "--out", str(out)], check=True)
    return json.loads((out / "table.json").read_text())


def test_dqn_solves_cartpole_within_100k_steps_on_4_of_5_seeds(tmp_path):
    rows = run_recipe("cartpole", [0, 1, 2, 3, 4], tmp_path)
    assert sum(row["best"] >= 475 for row in rows) >= 4, rows


def test_dqn_learns_minatar_breakout(tmp_path):
    rows = run_recipe("minatar-breakout", [0], tmp_path)
    assert rows[0]["best"] >= 10, rows


@pytest.mark.parametrize("agent", ["sac", "td3"])
def test_sac_and_td3_run_halfcheetah(tmp_path, agent):
    pytest.importorskip("mujoco")
    rows = run_recipe(f"{agent}-halfcheetah", [0], tmp_path)
    assert rows[0]["best"] >= 2000, rows
