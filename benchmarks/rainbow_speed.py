"""Where a Rainbow/DER training step spends its time: acting, the environment, replay sampling (uniform and
prioritized), the update, and the priority write-back, each timed on its own; and the loop's own steps/second
with an update every step.

The replay is filled by random play first, so sampling walks real episodes (n-step windows cut at their
ends, frame stacks rebuilt from single frames on Atari). One torch thread.

    python benchmarks/rainbow_speed.py                         # minatar:breakout, der and rainbow
    python benchmarks/rainbow_speed.py --env atari:pong --fill 100000 --hidden 512 --depth 1 --loop-steps 0
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch
from net_timing import median_ms

from scalerl import train
from scalerl.agents import AgentSpec, agent_class
from scalerl.config import TrainConfig
from scalerl.envs import final_observations, make_env
from scalerl.replay import FrameReplayBuffer, ReplayBuffer


def build(env_name: str, agent_name: str, fill: int, prioritized: bool, net: dict):
    config = TrainConfig(env=env_name, agent=agent_name, net=net,
                         algo={"prioritized": prioritized, "buffer_size": max(fill, 1000)})
    envs = make_env(env_name, 1, 0, **config.env_kwargs(training=True))
    space, actions = envs.single_observation_space, envs.single_action_space
    algo = config.algo
    args = (algo.buffer_size, 1, space, actions, algo.n_step, algo.gamma, 0, "cpu", algo.replay_priorities(10**6))
    stack = config.frame_stack()
    frames = stack and stack > 1 and space.dtype == np.uint8
    buffer = FrameReplayBuffer(*args, frame_stack=stack) if frames else ReplayBuffer(*args)
    agent = agent_class(agent_name)(algo, AgentSpec(space, actions, 1, torch.device("cpu"), 0, config.net, 10**6))
    rng = np.random.default_rng(0)
    obs, _ = envs.reset(seed=0)
    for _ in range(fill):
        action = rng.integers(0, actions.n, size=1)
        next_obs, reward, terminated, truncated, infos = envs.step(action)
        done = terminated | truncated
        buffer.add(obs, action, reward, final_observations(next_obs, done, infos), terminated, truncated)
        obs = next_obs
    return envs, agent, buffer, obs, algo.batch_size


def profile(env_name: str, agent_name: str, fill: int, repeats: int, net: dict) -> dict[str, float]:
    envs, agent, buffer, obs, batch_size = build(env_name, agent_name, fill, prioritized=True, net=net)
    _, _, uniform, _, _ = build(env_name, agent_name, fill, prioritized=False, net=net)
    batch = buffer.sample(batch_size)
    errors = torch.rand(batch_size)
    action = agent.act(obs, explore=True)[0]
    row = {
        "act": median_ms(lambda: agent.act(obs, explore=True), repeats),
        "env step": median_ms(lambda: envs.step(action), repeats),
        "sample, uniform": median_ms(lambda: uniform.sample(batch_size), repeats),
        "sample, prioritized": median_ms(lambda: buffer.sample(batch_size), repeats),
        "priority write-back": median_ms(lambda: buffer.update_priorities(batch.indices, errors), repeats),
        "update (forward, backward, Adam)": median_ms(lambda: agent.update(batch), repeats),
    }
    envs.close()
    return row


def loop_sps(env_name: str, agent_name: str, steps: int, net: dict) -> float:
    with tempfile.TemporaryDirectory() as folder:
        summary = train(env=env_name, agent=agent_name, steps=steps, run_dir=str(Path(folder) / "run"), progress="off",
                        net=net,
                        eval_every=0, eval_episodes=1, checkpoint_every=0, threads=1,
                        algo={"learning_starts": 1_000, "train_every": 1, "buffer_size": 100_000})
    return summary["sps"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="minatar:breakout")
    parser.add_argument("--agents", nargs="+", default=["der", "rainbow"])
    parser.add_argument("--fill", type=int, default=20_000, help="transitions of random play in replay")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--loop-steps", type=int, default=5_000, help="steps of the real loop (0: skip)")
    parser.add_argument("--hidden", type=int, default=None, help="--net.hidden (Dopamine's Atari Rainbow: 512)")
    parser.add_argument("--depth", type=int, default=None, help="--net.depth (Dopamine's Atari Rainbow: 1)")
    args = parser.parse_args()
    net = {key: value for key, value in (("hidden", args.hidden), ("depth", args.depth)) if value is not None}
    torch.set_num_threads(1)
    print(f"{args.env}, replay filled with {args.fill:,} random-play transitions; median ms over {args.repeats} calls; "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}\n")
    for agent in args.agents:
        row = profile(args.env, agent, args.fill, args.repeats, net)
        update = row["update (forward, backward, Adam)"]
        replay = row["sample, prioritized"] + row["priority write-back"]
        print(f"### {agent}\n\n| part | ms | share of the update |\n|---|---|---|")
        for name, ms in row.items():
            print(f"| {name} | {ms:.3f} | {ms / update:.1%} |")
        print(f"\nprioritized sampling + write-back: {replay:.3f} ms, {replay / update:.1%} of the update's time")
        if args.loop_steps:
            print(f"loop, an update every step: {loop_sps(args.env, agent, args.loop_steps, net):,.0f} steps/s")
        print()


if __name__ == "__main__":
    main()
