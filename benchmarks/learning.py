"""Learning checks: train several seeds of a recipe and tabulate evaluation returns per seed.

    python benchmarks/learning.py cartpole --seeds 0 1 2 3 4 --workers 2
    python benchmarks/learning.py minatar-breakout --seeds 0 1 2 --workers 2
    python benchmarks/learning.py sac-halfcheetah --seeds 0 1 --workers 2

Each seed is an ordinary `scalerl train` run under --out (default benchmarks/results/<recipe>/); an
existing finished run is read, not retrained, and an unfinished one is resumed. A finished run with a
smaller budget (the same recipe at fewer steps, e.g. the -500k recipe's --out given to the -1500k one) is
trained on to this recipe's budget, its schedules unchanged (`scalerl train --resume RUN_DIR --steps N`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

RECIPES: dict[str, dict] = {
    # DQN defaults; the bar: mean evaluation return >= 475 within 100k steps.
    "cartpole": {"threshold": 475.0, "args": ["--env", "classic:CartPole-v1", "--steps", "100000"]},
    # MinAtar paper's DQN sizes (batch 32, replay 100k, train every step) with Adam and 3-step returns.
    "minatar-breakout": {"threshold": 10.0, "args": [
        "--env", "minatar:breakout", "--steps", "500000", "--eval-every", "25000", "--checkpoint-every", "100000",
        "--algo.optim.lr", "2.5e-4", "--algo.optim.adam-eps", "1.5e-4", "--algo.n-step", "3",
        "--algo.target-update-every", "1000", "--algo.epsilon-decay-steps", "100000", "--algo.epsilon-end", "0.01",
        "--algo.batch-size", "32", "--algo.learning-starts", "5000"]},
    # SAC and TD3 with 256-unit torsos, batch 256, 1k random steps; the bar: mean evaluation return >= -250
    # within 20k steps (random play: about -1200 to -1500).
    "sac-pendulum": {"threshold": -250.0, "args": [
        "--agent", "sac", "--env", "classic:Pendulum-v1", "--steps", "20000", "--net.hidden", "256",
        "--algo.learning-starts", "1000", "--eval-every", "2000", "--eval-episodes", "10"]},
    "td3-pendulum": {"threshold": -250.0, "args": [
        "--agent", "td3", "--env", "classic:Pendulum-v1", "--steps", "20000", "--net.hidden", "256",
        "--algo.learning-starts", "1000", "--eval-every", "2000", "--eval-episodes", "10"]},
    # CleanRL's SAC and TD3 settings (256-unit torsos, batch 256) on a 100k-step budget; random play scores
    # about -300.
    "sac-halfcheetah": {"threshold": 2000.0, "args": [
        "--agent", "sac", "--env", "mujoco:HalfCheetah-v5", "--steps", "100000", "--net.hidden", "256",
        "--eval-every", "10000", "--eval-episodes", "5", "--checkpoint-every", "25000"]},
    "td3-halfcheetah": {"threshold": 2000.0, "args": [
        "--agent", "td3", "--env", "mujoco:HalfCheetah-v5", "--steps", "100000", "--net.hidden", "256",
        "--eval-every", "10000", "--eval-episodes", "5", "--checkpoint-every", "25000"]},
    # The RL Zoo's CartPole settings for PPO (8 envs x 32 steps, 20 epochs on one minibatch, gamma 0.98,
    # lambda 0.8, lr 1e-3, no entropy bonus); the bar: >= 475 within 100k steps on 4 of 5 seeds.
    "ppo-cartpole": {"threshold": 475.0, "args": [
        "--agent", "ppo", "--env", "classic:CartPole-v1", "--steps", "100000", "--num-envs", "8",
        "--algo.rollout-steps", "32", "--algo.minibatches", "1", "--algo.epochs", "20", "--algo.gamma", "0.98",
        "--algo.gae-lambda", "0.8", "--algo.entropy-coef", "0", "--algo.optim.lr", "1e-3", "--eval-every", "10000"]},
    # PQN: 16 envs x 32 steps, 8 minibatches, 4 epochs, lambda 0.9, epsilon to 0.05 over 20%, RAdam 1e-3.
    "pqn-cartpole": {"threshold": 475.0, "args": [
        "--agent", "pqn", "--env", "classic:CartPole-v1", "--steps", "100000", "--num-envs", "16",
        "--algo.minibatches", "8", "--algo.epochs", "4", "--algo.q-lambda", "0.9", "--algo.epsilon-end", "0.05",
        "--algo.epsilon-fraction", "0.2", "--algo.optim.lr", "1e-3", "--eval-every", "10000"]},
    # CleanRL's ppo_continuous_action.py settings and budget (1M steps; 1 env x 2048 steps, 32 minibatches,
    # 10 epochs, lr 3e-4 annealed, no entropy bonus, observation and reward normalization, 64-unit tanh
    # torso, orthogonal init).
    "ppo-halfcheetah": {"threshold": 1000.0, "args": [
        "--agent", "ppo", "--env", "mujoco:HalfCheetah-v5", "--steps", "1000000", "--algo.rollout-steps", "2048",
        "--algo.minibatches", "32", "--algo.epochs", "10", "--algo.optim.lr", "3e-4", "--algo.entropy-coef", "0",
        "--algo.normalize-obs", "--algo.normalize-rewards", "--net.hidden", "64", "--net.activation", "tanh",
        "--net.init", "orthogonal", "--eval-every", "50000", "--eval-episodes", "5", "--checkpoint-every", "100000"]},
    # PQN on MinAtar Breakout at the DQN recipe's budget (minatar-breakout: 500k steps, eval every 25k), with
    # the stable-gradients paper's PQN settings (128 envs x 32 steps, 32 minibatches, 2 epochs, lambda 0.65,
    # RAdam 2.5e-4, epsilon 1 -> 0.005 over 10%) and the same network as DQN's plus LayerNorm.
    "pqn-minatar-breakout": {"threshold": 10.0, "args": [
        "--agent", "pqn", "--env", "minatar:breakout", "--steps", "500000", "--num-envs", "128",
        "--eval-every", "25000", "--checkpoint-every", "100000"]},
}

# DQN against Rainbow on MinAtar at one budget and cadence: 100k steps, an update every step on batches of 32,
# replay 100k, 5k steps before learning, target copied every 1,000 updates, Adam 2.5e-4 (eps 1.5e-4), 3-step
# returns, the same network. DQN explores with epsilon 1 -> 0.01 over 50k steps; Rainbow by its noisy layers,
# with C51 on [-100, 100] (Dopamine's MinAtar Rainbow support), prioritized replay, dueling and double.
MINATAR_SHARED = ["--steps", "100000", "--eval-every", "10000", "--eval-episodes", "10", "--checkpoint-every", "50000",
                  "--algo.optim.lr", "2.5e-4", "--algo.optim.adam-eps", "1.5e-4", "--algo.n-step", "3",
                  "--algo.target-update-every", "1000", "--algo.batch-size", "32", "--algo.buffer-size", "100000",
                  "--algo.learning-starts", "5000", "--algo.train-every", "1"]
for game in ("breakout", "asterix"):
    RECIPES[f"dqn-minatar-{game}"] = {"threshold": 10.0, "args": [
        "--agent", "dqn", "--env", f"minatar:{game}", *MINATAR_SHARED, "--algo.epsilon-decay-steps", "50000",
        "--algo.epsilon-end", "0.01"]}
    RECIPES[f"rainbow-minatar-{game}"] = {"threshold": 10.0, "args": [
        "--agent", "rainbow", "--env", f"minatar:{game}", *MINATAR_SHARED, "--algo.v-max", "100"]}
    # Revisiting Rainbow's MinAtar configs (Obando-Ceron & Castro, 2021) explore by noisy layers and a
    # linearly decaying epsilon together; here with DQN's schedule, so the two differ only in the learner.
    RECIPES[f"rainbow-eps-minatar-{game}"] = {"threshold": 10.0, "args": [
        *RECIPES[f"rainbow-minatar-{game}"]["args"], "--algo.epsilon-start", "1.0", "--algo.epsilon-end", "0.01",
        "--algo.epsilon-decay-steps", "50000"]}
    # Ablation: C51's support narrowed to [-10, 10]. MinAtar's discounted returns at this budget stay under
    # about 10, so on [-100, 100] (4-unit atoms) a return's whole distribution sits on three or four atoms.
    RECIPES[f"rainbow-v10-minatar-{game}"] = {"threshold": 10.0, "args": [
        "--agent", "rainbow", "--env", f"minatar:{game}", *MINATAR_SHARED, "--algo.v-max", "10"]}
    # The same three at five times the budget (500k steps, evaluated every 25k): at 100k the agents are
    # within seed noise of each other. The later flags override MINATAR_SHARED's.
    for agent in ("dqn", "rainbow", "rainbow-v10"):
        RECIPES[f"{agent}-minatar-{game}-500k"] = {"threshold": 10.0, "args": [
            *RECIPES[f"{agent}-minatar-{game}"]["args"], "--steps", "500000", "--eval-every", "25000",
            "--checkpoint-every", "25000"]}
    # Asterix three times longer again: in the MinAtar paper's curves (Young and Tian, 2019) DQN stays near
    # random play on Asterix until about 0.7M frames, then climbs to about 13 by 1.2M. Schedules keep the
    # 500k budget, so a run started here equals a -500k run trained on to 1.5M.
    if game == "asterix":
        for agent in ("dqn", "rainbow-v10"):
            RECIPES[f"{agent}-minatar-{game}-1500k"] = {"threshold": 10.0, "args": [
                *RECIPES[f"{agent}-minatar-{game}-500k"]["args"], "--steps", "1500000", "--schedule-steps", "500000"]}

# The MinAtar paper's own DQN (Young and Tian, 2019; its examples/dqn.py) on Asterix, where its curve leaves
# random play at about 0.8M steps: all six actions, the MinAtar CNN and one dense layer of 128, 1-step
# targets without double Q, Huber loss, centered RMSprop (lr 2.5e-4, decay 0.95, eps 0.01), no gradient
# clipping, batch 32, replay 100k, an update every step from step 5,000, target copied every 1,000 steps,
# epsilon 1 -> 0.1 (the paper holds 1 for 5,000 steps and decays over the next 100k; here linear over all
# 105k). Its curves plot training returns, so the metrics' episode returns are the ones to set beside them.
RECIPES["dqn-paper-minatar-asterix"] = {"threshold": 10.0, "args": [
    "--agent", "dqn", "--env", "minatar:asterix", "--env-opts.full-action-space", "True", "--steps", "1500000",
    "--eval-every", "25000", "--eval-episodes", "10", "--checkpoint-every", "25000", "--net.hidden", "128",
    "--net.depth", "1", "--algo.optim.kind", "rmsprop", "--algo.optim.lr", "2.5e-4", "--algo.n-step", "1",
    "--algo.no-double", "--algo.loss", "huber", "--algo.max-grad-norm", "0", "--algo.batch-size", "32",
    "--algo.buffer-size", "100000", "--algo.learning-starts", "5000", "--algo.train-every", "1",
    "--algo.target-update-every", "1000", "--algo.epsilon-end", "0.1", "--algo.epsilon-decay-steps", "105000"]}

# Which of that DQN's settings lets it learn Asterix where dqn-minatar-asterix does not: the shared recipe
# with exploration ending at 0.1, as the paper's does, instead of 0.01; nothing else changed.
RECIPES["dqn-eps10-minatar-asterix-500k"] = {"threshold": 10.0, "args": [
    *RECIPES["dqn-minatar-asterix-500k"]["args"], "--algo.epsilon-end", "0.1"]}
# The other way round: the paper's DQN with one of the shared recipe's settings at a time, over the span in
# which the paper's DQN here leaves random play (about 0.3-0.5M steps).
for variant, change in (("adam", ["--algo.optim.kind", "adam", "--algo.optim.adam-eps", "1.5e-4"]),
                        ("nstep3", ["--algo.n-step", "3"]),
                        ("explore", ["--algo.epsilon-end", "0.01", "--algo.epsilon-decay-steps", "50000"]),
                        ("net", ["--net.depth", "2", "--algo.double", "--algo.max-grad-norm", "10",
                                 "--env-opts.full-action-space", "False"]),
                        ("depth2", ["--net.depth", "2"]),
                        ("double", ["--algo.double"])):
    RECIPES[f"dqn-paper-{variant}-minatar-asterix-750k"] = {"threshold": 10.0, "args": [
        *RECIPES["dqn-paper-minatar-asterix"]["args"], *change, "--steps", "750000"]}

# Revisiting Rainbow's MinAtar comparison (Obando-Ceron and Castro, ICML 2021; its Configs/dqn_*.gin and
# rainbow_*.gin), in which Rainbow came out ahead of DQN: all six actions, the MinAtar CNN straight into the head
# (no hidden layer), Adam (eps 3.125e-4), batch 32, replay 100k, learning from step 1,000 with an update every 4
# steps, the target copied every 1,000 steps (250 updates), no gradient clipping. DQN: 1-step targets without double
# Q, Huber loss, Adam 2.5e-4, epsilon 1 -> 0.01 (Dopamine holds 1 for 1,000 steps and decays over 250k; here linear
# over all 251k), 0.001 in evaluation. Rainbow: the preset's C51 (51 atoms on [-100, 100]), prioritized replay,
# noisy dueling double Q, 3-step returns, Adam 1e-4, noise starting at their networks_new.py's sigma of
# 0.1 / sqrt(fan-in) (the preset's, Fortunato et al.'s, is 0.5), and epsilon-greedy at a constant 0.01 beside it:
# with noisy layers their agent swaps the epsilon schedule for Dopamine's identity_epsilon, which returns
# epsilon_train, 0.01 unless set (the preset explores by noise alone: the -eps0 ablation). Differences kept: the
# conv is 'VALID' (8x8 map, as the MinAtar paper's) where their Flax conv pads to 10x10, layers start from torch's
# default initialisation rather than Glorot uniform, and noisy layers draw fresh noise at every pass, where their
# NoisyNetwork keeps the random keys of its first call.
REVISITING_RAINBOW = [
    "--env-opts.full-action-space", "True", "--steps", "1000000", "--eval-every", "25000", "--eval-episodes", "10",
    "--checkpoint-every", "25000", "--net.depth", "0", "--algo.optim.adam-eps", "3.125e-4", "--algo.batch-size",
    "32", "--algo.buffer-size", "100000", "--algo.learning-starts", "1000", "--algo.train-every", "4",
    "--algo.target-update-every", "250", "--algo.max-grad-norm", "0"]
for game in ("breakout", "asterix"):
    RECIPES[f"dqn-rr-minatar-{game}"] = {"threshold": 10.0, "args": [
        "--agent", "dqn", "--env", f"minatar:{game}", *REVISITING_RAINBOW, "--algo.n-step", "1", "--algo.no-double",
        "--algo.loss", "huber", "--algo.optim.lr", "2.5e-4", "--algo.epsilon-start", "1.0", "--algo.epsilon-end",
        "0.01", "--algo.epsilon-decay-steps", "251000", "--algo.eval-epsilon", "0.001"]}
    RECIPES[f"rainbow-rr-minatar-{game}"] = {"threshold": 10.0, "args": [
        "--agent", "rainbow", "--env", f"minatar:{game}", *REVISITING_RAINBOW, "--algo.optim.lr", "1e-4",
        "--algo.v-max", "100", "--algo.noisy-sigma0", "0.1", "--algo.epsilon-start", "0.01", "--algo.epsilon-end",
        "0.01"]}
    # Ablation: the noise at the preset's scale, five times theirs, on a head fed by all 1,024 conv features.
    RECIPES[f"rainbow-rr-sigma05-minatar-{game}"] = {"threshold": 10.0, "args": [
        *RECIPES[f"rainbow-rr-minatar-{game}"]["args"], "--algo.noisy-sigma0", "0.5"]}
    # Ablation: C51's support narrowed to [-10, 10]. On [-100, 100] an atom is 4 units wide and MinAtar's
    # discounted returns stay under about 10, so a return's distribution sits on a few atoms near zero.
    RECIPES[f"rainbow-rr-v10-minatar-{game}"] = {"threshold": 10.0, "args": [
        *RECIPES[f"rainbow-rr-minatar-{game}"]["args"], "--algo.v-max", "10"]}
    # Ablation: exploration by the noise alone, as the rainbow preset has it (runs of 2026-11-27 before the recipe
    # took their constant epsilon).
    for support in ("", "v10-"):
        RECIPES[f"rainbow-rr-{support}eps0-minatar-{game}"] = {"threshold": 10.0, "args": [
            *RECIPES[f"rainbow-rr-{support}minatar-{game}"]["args"], "--algo.epsilon-start", "0", "--algo.epsilon-end",
            "0"]}
    # Ablation: Rainbow without its distributional head (scalar Q, Huber loss, priorities from |TD error|), the one
    # component that slows DQN on Asterix when added alone (the dqn-rr-plus-* recipes below).
    RECIPES[f"rainbow-rr-noc51-minatar-{game}"] = {"threshold": 10.0, "args": [
        *RECIPES[f"rainbow-rr-minatar-{game}"]["args"], "--algo.atoms", "1", "--algo.loss", "huber"]}
    # Rainbow on [-10, 10] at DQN's learning rate (2.5e-4, theirs is 1e-4), the one setting that the one-component
    # recipes below keep at DQN's; the recipe that ends 1M steps ahead of dqn-rr-minatar-* on both games. The -500k
    # recipe covers the span in which DQN leaves random play; given its --out, the full recipe trains those runs on.
    RECIPES[f"rainbow-rr-v10-lr25-minatar-{game}"] = {"threshold": 10.0, "args": [
        *RECIPES[f"rainbow-rr-v10-minatar-{game}"]["args"], "--algo.optim.lr", "2.5e-4"]}
    RECIPES[f"rainbow-rr-v10-lr25-minatar-{game}-500k"] = {"threshold": 10.0, "args": [
        *RECIPES[f"rainbow-rr-v10-lr25-minatar-{game}"]["args"], "--steps", "500000"]}
    # Revisiting Rainbow's own method: DQN on this base with one of Rainbow's components added, each set as their
    # Rainbow sets it (noisy layers with their constant epsilon, as above), over the span in which the DQN leaves
    # random play on Asterix (about 0.25-0.35M steps).
    for component, change in (("c51", ["--algo.atoms", "51", "--algo.v-max", "100"]),
                              ("c51v10", ["--algo.atoms", "51", "--algo.v-max", "10"]),
                              ("noisy", ["--algo.noisy", "--algo.noisy-sigma0", "0.1", "--algo.epsilon-start",
                                         "0.01"]),
                              ("per", ["--algo.prioritized", "--algo.priority-beta-start", "0.5",
                                       "--algo.priority-beta-end", "0.5"]),
                              ("nstep3", ["--algo.n-step", "3"]),
                              ("dueling", ["--algo.dueling"]),
                              ("double", ["--algo.double"])):
        RECIPES[f"dqn-rr-plus-{component}-minatar-{game}-500k"] = {"threshold": 10.0, "args": [
            *RECIPES[f"dqn-rr-minatar-{game}"]["args"], *change, "--steps", "500000"]}

# DER on the Atari 100k benchmark (Kaiser et al., 2020) as Dopamine's DER.gin runs it: the agent's preset
# (10-step returns, an update every step from step 1,600, target copied every 2,000 updates, Adam 1e-4), no
# sticky actions, a lost life ends a training episode, episodes capped at 108k frames, and Dopamine's Rainbow
# network (the Nature CNN and one hidden layer of 512). 100k agent steps are 400k frames. Thresholds: well
# above random play (11.5 and -20.7 in the standard table). About 75 ms an update on one CPU core: 2 hours.
for game, threshold in (("RoadRunner", 1000.0), ("Pong", -20.0)):
    RECIPES[f"der-atari-{game.lower()}"] = {"threshold": threshold, "args": [
        "--agent", "der", "--env", f"atari:{game}", "--steps", "100000", "--eval-every", "20000",
        "--eval-episodes", "10", "--checkpoint-every", "5000", "--net.encoder", "nature_cnn", "--net.hidden", "512",
        "--net.depth", "1", "--env-opts.sticky-actions", "0", "--env-opts.episodic-life", "True"]}


def recipe_steps(recipe: str) -> int:
    """The recipe's budget: its last --steps (later flags override earlier ones)."""
    args = RECIPES[recipe]["args"]
    return int(args[len(args) - args[::-1].index("--steps")])


def scalerl_train(*args: str) -> None:
    """Run `scalerl train`; if it fails, its own one-line error is already on stderr, so stop with one line too
    instead of a traceback through the thread pool."""
    done = subprocess.run([sys.executable, "-m", "scalerl", "train", *args], stdout=subprocess.DEVNULL)
    if done.returncode:
        raise SystemExit(f"learning.py: `scalerl train {' '.join(args[:2])} ...` exited with {done.returncode}")


def run_seed(recipe: str, seed: int, out: Path) -> Path:
    """Train the seed's run to the recipe's budget: from scratch, by resuming it, or by training a finished
    shorter run on (after resuming it to its own budget if it was cut)."""
    run_dir = out / f"seed{seed}"
    steps = recipe_steps(recipe)
    if not (run_dir / "config.json").exists():
        scalerl_train(*RECIPES[recipe]["args"], "--seed", str(seed), "--threads", "1", "--progress", "off",
                      "--run-dir", str(run_dir))
    if not (run_dir / "summary.json").exists():
        scalerl_train("--resume", str(run_dir))
    summary = json.loads((run_dir / "summary.json").read_text())
    if summary["steps"] < steps and not summary["stopped_at_return"]:
        scalerl_train("--resume", str(run_dir), "--steps", str(steps))
    return run_dir


def seed_row(run_dir: Path, threshold: float) -> dict:
    evals = [json.loads(line) for line in (run_dir / "eval.jsonl").read_text().splitlines()]
    summary = json.loads((run_dir / "summary.json").read_text())
    reached = next((e["step"] for e in evals if e["return_mean"] >= threshold), None)
    return {
        "seed": summary["seed"],
        "best": max(e["return_mean"] for e in evals),
        "final": evals[-1]["return_mean"],
        "first_step_at_threshold": reached,
        "wall_time_min": summary["wall_time"] / 60,
        "curve": [(e["step"], round(e["return_mean"], 1)) for e in evals],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", choices=list(RECIPES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or Path(__file__).parent / "results" / args.recipe
    with ThreadPoolExecutor(args.workers) as pool:
        run_dirs = list(pool.map(lambda seed: run_seed(args.recipe, seed, out), args.seeds))
    threshold = RECIPES[args.recipe]["threshold"]
    rows = [seed_row(run_dir, threshold) for run_dir in run_dirs]
    print(f"| seed | best eval | final eval | first step with eval >= {threshold:g} | wall time (min) |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['seed']} | {row['best']:.1f} | {row['final']:.1f} | {row['first_step_at_threshold']} "
              f"| {row['wall_time_min']:.1f} |")
    print()
    for row in rows:
        print(f"seed {row['seed']} curve: " + " ".join(f"{step // 1000}k:{value:g}" for step, value in row["curve"]))
    (out / "table.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
